"""Tests of the monitor (acquisition + servo path without a model) on a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from emgd.clock import FakeClock
from emgd.config import load_config
from emgd.errors import ConfigError
from emgd.service.board import open_board
from emgd.service.monitor import HopSummary, Monitor
from emgd.sim.trajectory import ConstantPose, KeyframeTrajectory


def test_hand_follows_the_simulated_wearer_through_the_real_servo_path() -> None:
    clock = FakeClock()
    # Rest for 1 s, then close to a power grip within 0.5 s and hold.
    trajectory = KeyframeTrajectory.from_pose_steps([("power", 1.0, 0.5, 3.0)], start_hold_s=1.0)
    board = open_board(load_config(env={}), clock, trajectory=trajectory)
    try:
        monitor = Monitor(board, clock, servo_source="intent")
        summaries: list[HopSummary] = []
        monitor.run(3.0, summaries.append)
        last = summaries[-1]
        assert last.hand_deg is not None
        np.testing.assert_allclose(last.hand_deg, [180.0] * 5, atol=1.0)
        # Pulses on the simulated PCA9685: 2500 µs at 180° with the default calibration,
        # within one 12-bit count (about 4.9 µs at 50 Hz).
        assert all(p is not None and abs(p - 2500.0) < 5.0 for p in last.pulses_us)
        # The EMG during the grip is far stronger than at rest.
        rest = np.mean([s.rms_uv.mean() for s in summaries if s.time_s < 0.9])
        grip = np.mean([s.rms_uv.mean() for s in summaries if s.time_s > 2.0])
        assert grip > 5 * rest
        assert last.frames_lost == 0
        assert last.frames_read == pytest.approx(3000, abs=monitor.hop_frames)
    finally:
        board.close()


def test_each_hop_reads_one_servo_frame_of_samples() -> None:
    clock = FakeClock()
    board = open_board(load_config(env={}, overrides=["adc.sample_rate_hz=2000"]), clock)
    try:
        monitor = Monitor(board, clock, servo_source="hold")
        summary = monitor.hop()
        assert monitor.hop_frames == 40
        assert summary.frames == 40
        assert summary.commanded_deg == (30.0,) * 5
    finally:
        board.close()


def test_sweep_moves_between_open_and_flexed() -> None:
    clock = FakeClock()
    board = open_board(load_config(env={}), clock, trajectory=ConstantPose.from_pose("rest"))
    try:
        monitor = Monitor(board, clock, servo_source="sweep")
        commanded = []
        monitor.run(8.0, lambda s: commanded.append(s.commanded_deg[0]))
        assert min(commanded) < 1.0
        assert max(commanded) > 179.0
    finally:
        board.close()


def test_intent_needs_the_simulated_board() -> None:
    clock = FakeClock()
    board = open_board(load_config(env={}), clock)
    try:
        board.sim = None
        with pytest.raises(ConfigError, match="simulated board"):
            Monitor(board, clock, servo_source="intent")
        with pytest.raises(ConfigError, match="one of"):
            Monitor(board, clock, servo_source="dance")
    finally:
        board.close()
