"""Tests of the acquisition process on the simulated board (a real spawned process)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from emgd.config import load_config
from emgd.errors import HardwareInitError
from emgd.service.acquisition import AcquisitionProcess, RealtimeRequest, apply_realtime


def test_frames_flow_from_the_child_with_the_wearers_intent() -> None:
    config = load_config(env={})
    acq = AcquisitionProcess(config)
    try:
        info = acq.start()
        assert info.n_channels == 8 and info.sample_rate_hz == 1000
        assert "ADS1299 (ID 0x3E" in info.description
        deadline = time.monotonic() + 1.5
        batches = []
        while time.monotonic() < deadline:
            batches.append(acq.read_new())
            time.sleep(0.02)
        index = np.concatenate([b.index for b in batches])
        emg = np.concatenate([b.emg_uv for b in batches])
        intent = np.concatenate([b.intent_deg for b in batches])
        assert index.size > 500
        assert acq.alive()
        # Every gap in the frame index is a lost frame the driver counted.
        gaps = int(np.sum(np.diff(index) - 1))
        assert gaps <= acq.stats().frames_lost
        assert sum(b.overrun_frames for b in batches) == 0
        assert np.all(np.isfinite(emg)) and emg.std() > 0.5
        assert np.all(np.isfinite(intent[-100:]))
        assert np.all((intent[-100:] >= 0) & (intent[-100:] <= 180))
    finally:
        acq.stop()


def test_a_chip_init_failure_in_the_child_is_re_raised_with_its_class() -> None:
    config = load_config(env={}, overrides=["simulation.chip_id=0x3C", "adc.channels=8"])
    acq = AcquisitionProcess(config)
    with pytest.raises(HardwareInitError, match="4"):
        acq.start()


def test_realtime_requests_that_are_refused_become_notes() -> None:
    notes = apply_realtime(RealtimeRequest(cpu=10_000))
    assert len(notes) == 1 and "CPU 10000" in notes[0]


def test_a_cue_reaches_the_wearer_in_the_child_and_its_intent_follows() -> None:
    from emgd.errors import ConfigError
    from emgd.poses import pose_angles_deg

    config = load_config(env={}, overrides=["simulation.wearer='rest'"])
    acq = AcquisitionProcess(config)
    try:
        acq.start()
        with pytest.raises(ConfigError, match="fist"):
            acq.cue("fist", 1.0)
        time.sleep(0.3)
        before = acq.read_new().intent_deg[-1]
        np.testing.assert_allclose(before, pose_angles_deg("rest"), atol=8.0)
        acq.cue("power", 1.0)
        time.sleep(2.0)
        after = acq.read_new().intent_deg[-1]
        power = pose_angles_deg("power")
        assert np.abs(after - power).max() < 0.25 * np.abs(power - before).max()
        assert acq.alive()
    finally:
        acq.stop()
