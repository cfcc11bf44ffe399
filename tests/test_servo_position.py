"""Tests of where the servos are: unit tests of the arithmetic, then the daemon end to end
on the simulated board with a finger held at an end point by ``servo.set_pulse``, reading
every pulse written back from the simulated PCA9685's registers."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emgd.calibration.store import StoredCalibration
from emgd.config import Config, load_config
from emgd.hw.pca9685 import ServoBoard
from emgd.hw.servo_math import ServoCalibration, counts_to_pulse_us, pulse_us_to_angle_deg
from emgd.service import servo_position
from emgd.sim.i2c_bus import SimI2CBus
from emgd.sim.pca9685_sim import Pca9685Sim

MAX_RATE_DEG_S = 200.0
SAFE_RATE_DEG_S = 60.0
INDEX_LIMITS_DEG = (20.0, 150.0)
COUNT_DEG = 0.45  # one 12-bit count with the default 500-2500 µs range


def board(**index: Any) -> ServoBoard:
    bus = SimI2CBus()
    bus.attach(0x40, Pca9685Sim())
    cals = [ServoCalibration(channel=k, min_pulse_us=500.0, max_pulse_us=2500.0) for k in range(5)]
    cals[1] = ServoCalibration(channel=1, min_pulse_us=500.0, max_pulse_us=2500.0, **index)
    return ServoBoard(bus, cals)


# ---- arithmetic ----------------------------------------------------------------------------


def test_position_is_the_last_written_pulse_unclamped() -> None:
    b = board(min_angle_deg=20.0, max_angle_deg=150.0)
    fallback = [30.0] * 5
    np.testing.assert_allclose(servo_position.position_deg(b, fallback), fallback)
    b.write_angles([30.0] * 5)
    b.write_counts([*b.last_counts[:1], 512, *b.last_counts[2:]])  # type: ignore[index]
    where = servo_position.position_deg(b, fallback)
    # 512 counts at 50.03 Hz = 2499 µs = 179.9°: beyond the index's 150° limit, kept.
    assert where[1] == pytest.approx(179.9, abs=0.1)
    assert where[0] == pytest.approx(30.0, abs=COUNT_DEG / 2)
    assert "index 2499 µs (180°)" in servo_position.describe(b, b.read_counts())


def test_counts_beyond_the_limits_follow_the_line_inside_them_match_the_board() -> None:
    b = board(min_angle_deg=20.0, max_angle_deg=150.0, inverted=True, trim_deg=5.0)
    inside = [10.0, 100.0, 90.0, 170.0, 0.0]
    assert servo_position.counts_for_angles(b, inside) == b.angles_to_counts(inside)
    # Beyond the limits: each degree still moves the pulse (inverted: down), no clamp jump.
    out = [
        servo_position.counts_for_angles(b, [30.0, a, 30.0, 30.0, 30.0])[1] for a in (150, 160, 170)
    ]
    assert out[0] > out[1] > out[2]
    with pytest.raises(ValueError, match="not finite"):
        servo_position.counts_for_angles(b, [30.0, float("nan"), 30.0, 30.0, 30.0])


def test_walk_steps_are_slew_limited_and_end_on_the_target() -> None:
    steps = servo_position.walk_steps([180.0, 30.0], [30.0, 30.0], 1.2, 500)
    assert len(steps) == 125
    np.testing.assert_allclose(steps[-1], [30.0, 30.0])
    assert np.max(np.abs(np.diff(np.array([[180.0, 30.0], *steps]), axis=0))) <= 1.2 + 1e-9
    assert servo_position.walk_steps([30.0], [30.0], 1.2, 500) == []
    assert len(servo_position.walk_steps([0.0], [180.0], 1.0, 10)) == 10
    with pytest.raises(ValueError, match="positive"):
        servo_position.walk_steps([0.0], [1.0], 0.0, 10)


# ---- the daemon, end to end ----------------------------------------------------------------

pytest.importorskip("torch")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emgd.dsp.filters import FilterSpec
    from emgd.model.contract import PreprocessContract
    from emgd.model.export import export_onnx
    from emgd.model.network import EmgNet
    from emgd.model.spec import ModelSpec

    spec = ModelSpec(sample_rate_hz=1000.0, n_channels=8, common_length=5, mlp=(16, 8))
    contract = PreprocessContract.for_spec(spec, FilterSpec(mains_hz=50.0))
    cal = StoredCalibration(offset=(0.0,) * 8, scale=(20.0,) * 8, sample_rate_hz=1000.0)
    path = tmp_path_factory.mktemp("model") / "small.onnx"
    export_onnx(EmgNet(spec, seed=1), spec, contract, {"calibration": cal.to_dict()}, path)
    return path


def config_for(model: Path, tmp_path: Path, *extra: str) -> Config:
    return load_config(
        env={},
        overrides=[
            f"model.path={str(model)!r}",
            f"daemon.runtime_dir={str(tmp_path / 'run')!r}",
            f"daemon.state_dir={str(tmp_path / 'state')!r}",
            "daemon.realtime_priority=0",
            "daemon.loop_priority=0",
            "daemon.lock_memory=false",
            f"safety.max_rate_deg_s={MAX_RATE_DEG_S}",
            f"safety.safe_pose_rate_deg_s={SAFE_RATE_DEG_S}",
            "safety.fault_hold_s=0.3",
            f"servo.index.min_angle_deg={INDEX_LIMITS_DEG[0]:g}",
            f"servo.index.max_angle_deg={INDEX_LIMITS_DEG[1]:g}",
            *extra,
        ],
    )


class Written:
    """Every LED-register write to the simulated PCA9685: the five fingers' angles after it."""

    def __init__(self, daemon: Any) -> None:
        servo = daemon._servo
        self.pca: Pca9685Sim = servo.pca
        self.cals = servo.servos.servos
        self.frequency_hz = servo.servos.frequency_hz
        self.counts: list[list[int]] = []
        original = self.pca.write

        def write(data: bytes, *, stop: bool) -> None:
            original(data, stop=stop)
            if data and 0x06 <= data[0] <= 0x45 and len(data) > 1:
                self.counts.append([self.pca.counts(c.channel) for c in self.cals])

        self.pca.write = write

    def angles(self) -> np.ndarray:
        return np.array(
            [
                [
                    pulse_us_to_angle_deg(counts_to_pulse_us(n, self.frequency_hz), cal)
                    for n, cal in zip(row, self.cals, strict=True)
                ]
                for row in self.counts
            ]
        )


def hold(daemon: Any, finger: str, pulse_us: float) -> None:
    daemon._handle_set_pulse({"finger": finger, "pulse_us": pulse_us}, None)
    daemon.run(lambda: False, duration_s=0.2)


def check_from_the_hold(written: Written, held_deg: float, max_step_deg: float) -> np.ndarray:
    """From the first write holding the index at ``held_deg``: no step beyond the slew
    limit, nothing outside the limits or further out than the hold; returns the angles."""
    a = written.angles()
    start = int(np.argmax(np.abs(a[:, 1] - held_deg) < COUNT_DEG))
    assert abs(a[start, 1] - held_deg) < COUNT_DEG, "the held pulse never reached the chip"
    a = a[start:]
    assert len(a) > 5
    assert np.max(np.abs(np.diff(a, axis=0))) <= max_step_deg + COUNT_DEG
    lo, hi = min(INDEX_LIMITS_DEG[0], held_deg), max(INDEX_LIMITS_DEG[1], held_deg)
    assert np.all(a[:, 1] >= lo - COUNT_DEG) and np.all(a[:, 1] <= hi + COUNT_DEG)
    assert np.all(a >= -COUNT_DEG) and np.all(a <= 180.0 + COUNT_DEG)
    return a


def check_journal(caplog: pytest.LogCaptureFixture, written: Written) -> str:
    """The last "stopped with the hand at" line names the pulses in the registers."""
    lines = [r.getMessage() for r in caplog.records if "stopped with the hand" in r.getMessage()]
    assert lines, "no stop line in the journal"
    line = lines[-1]
    for finger, n, cal in zip(
        ("thumb", "index", "middle", "ring", "little"),
        written.counts[-1],
        written.cals,
        strict=True,
    ):
        pulse_us = counts_to_pulse_us(n, written.frequency_hz)
        angle = pulse_us_to_angle_deg(pulse_us, cal)
        assert f"{finger} {pulse_us:.0f} µs ({angle:.0f}°)" in line, line
    assert "read back" in line
    return line


# The index's calibrated end points: 500 µs is 0° and 2499 µs is 180°, both beyond its limits.
END_POINTS = [(500.0, 0.0), (2499.0, 179.9)]


@pytest.mark.parametrize(("pulse_us", "held_deg"), END_POINTS)
def test_sigterm_with_a_finger_held_walks_it_from_the_hold(
    model_path: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    pulse_us: float,
    held_deg: float,
) -> None:
    from emgd.cli import _StopFlag
    from emgd.service.runner import Daemon

    caplog.set_level(logging.INFO, logger="emgd.runner")
    daemon = Daemon(config_for(model_path, tmp_path), env={})
    daemon.start()
    written = Written(daemon)
    stop = _StopFlag()
    try:
        hold(daemon, "index", pulse_us)
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        daemon.run(lambda: stop.requested, duration_s=5.0)
        assert stop.requested
    finally:
        stop.restore()
        daemon.shutdown()
    n_hold = len(written.counts)
    a = check_from_the_hold(written, held_deg, SAFE_RATE_DEG_S * 0.02)
    # It walked all the way to the safe pose (rest: 30°) at 1.2° per frame.
    np.testing.assert_allclose(a[-1], [30.0] * 5, atol=COUNT_DEG)
    assert n_hold > abs(held_deg - 30.0) / (SAFE_RATE_DEG_S * 0.02)
    line = check_journal(caplog, written)
    print(f"\nindex held at {pulse_us:g} µs, SIGTERM: {len(a)} writes from the hold")
    print(
        "index pulses (µs) step by step:",
        " ".join(
            f"{counts_to_pulse_us(row[1], written.frequency_hz):.0f}"
            for row in written.counts[-len(a) :]
        ),
    )
    print("journal:", line)


def test_resume_from_a_held_end_point_is_slew_limited(model_path: Path, tmp_path: Path) -> None:
    from emgd.service.runner import Daemon

    daemon = Daemon(config_for(model_path, tmp_path), env={})
    daemon.start()
    written = Written(daemon)
    try:
        hold(daemon, "index", 2499.0)
        daemon.submit(daemon.resume)
        daemon.run(lambda: False, duration_s=1.5)
        assert (
            not daemon._servo_pulse_us and daemon._safety is not None and not daemon._safety.paused
        )
    finally:
        daemon.shutdown()
    a = check_from_the_hold(written, 179.9, MAX_RATE_DEG_S * 0.1)
    assert a[-1, 1] <= INDEX_LIMITS_DEG[1] + COUNT_DEG  # back inside its limits
    # The first write after the resume moved the index by one slew step at most, not to 150°.
    assert a[1, 1] > INDEX_LIMITS_DEG[1] + 10.0


def test_reload_while_held_then_resume_starts_from_the_hold(
    model_path: Path, tmp_path: Path
) -> None:
    from emgd.service.runner import Daemon

    daemon = Daemon(config_for(model_path, tmp_path), env={})
    daemon.start()
    written = Written(daemon)
    try:
        hold(daemon, "index", 500.0)
        daemon._handle_reload({}, None)
        daemon.run(lambda: False, duration_s=0.2)
        assert daemon._servo_pulse_us  # a reload keeps the operator's hold
        daemon.submit(daemon.resume)
        daemon.run(lambda: False, duration_s=1.0)
    finally:
        daemon.shutdown()
    a = check_from_the_hold(written, 0.0, MAX_RATE_DEG_S * 0.1)
    assert a[-1, 1] >= INDEX_LIMITS_DEG[0] - COUNT_DEG


def test_a_persistent_fault_walks_a_released_finger_from_its_hold(
    model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from emgd.service.runner import Daemon

    caplog.set_level(logging.INFO, logger="emgd.runner")
    config = config_for(
        model_path,
        tmp_path,
        "simulation.fault=no_drdy",
        "simulation.fault_at_s=0.5",
        "simulation.fault_duration_s=30",
    )
    daemon = Daemon(config, env={})
    daemon.start()
    written = Written(daemon)
    try:
        hold(daemon, "index", 2499.0)
        daemon.run(lambda: False, duration_s=1.5)  # the fault is on and persistent
        assert daemon.state == "fault"
        daemon.submit(daemon.resume)  # the operator lets go: the fault walk takes over
        daemon.run(lambda: False, duration_s=1.0)
    finally:
        daemon.shutdown()
    a = check_from_the_hold(written, 179.9, SAFE_RATE_DEG_S * 0.1)
    assert a[-1, 1] < 179.9 - 30.0  # it did walk towards the safe pose
    check_journal(caplog, written)
