"""Fault injection end to end: the daemon on the simulated board with a real model.

For each fault (DRDY stuck, garbage frames, chip reset mid-run, I²C NACK) the servos must
never receive a value outside their limits nor a jump larger than the slew limit allows,
and the daemon must notice (FAULT) and, for ADC faults, recover (re-initialise the chip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emgd.calibration.store import StoredCalibration
from emgd.config import Config, load_config
from emgd.hw.servo_math import counts_to_pulse_us, pulse_us_to_angle_deg

pytest.importorskip("torch")
pytest.importorskip("onnx")

MAX_RATE_DEG_S = 200.0
HOP_S = 0.02


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
            "daemon.lock_memory=false",
            f"safety.max_rate_deg_s={MAX_RATE_DEG_S}",
            "safety.fault_hold_s=0.3",
            "servo.index.min_angle_deg=20",
            "servo.index.max_angle_deg=150",
            *extra,
        ],
    )


def run_and_record(
    config: Config, seconds: float, nack_at_hop: int | None = None
) -> dict[str, Any]:
    """Run the daemon, reading back every servo's pulse from the simulated PCA9685."""
    from emgd.service.runner import Daemon

    daemon = Daemon(config, env={})
    daemon.start()
    servo = daemon._servo
    assert servo is not None and servo.pca is not None
    pca = servo.pca
    cals = servo.servos.servos
    angles: list[list[float]] = []
    states: list[str] = []
    frequency_hz = servo.servos.frequency_hz
    original_hop = daemon.hop

    def hop() -> None:
        if nack_at_hop is not None and len(angles) == nack_at_hop:
            assert servo.sim_bus is not None
            servo.sim_bus.inject_nack(3)  # three failed transfers
        original_hop()
        row = []
        for cal in cals:
            counts = pca.counts(cal.channel)
            assert counts is not None
            row.append(pulse_us_to_angle_deg(counts_to_pulse_us(counts, frequency_hz), cal))
        angles.append(row)
        states.append(daemon.state)

    daemon.hop = hop  # type: ignore[method-assign]
    try:
        daemon.run(lambda: False, duration_s=seconds)
        status = daemon.status()
        recoveries = daemon._acq.recoveries if daemon._acq is not None else 0
    finally:
        daemon.shutdown()
    return {
        "angles": np.array(angles),
        "states": states,
        "status": status,
        "recoveries": recoveries,
    }


def check_servo_bounds(result: dict[str, Any]) -> None:
    a = result["angles"]
    assert a.shape[0] > 20
    tol = 1.0  # one 12-bit count is ~0.44° with the default 500-2500 µs range
    assert np.all(a >= -tol) and np.all(a <= 180 + tol)
    assert np.all(a[:, 1] >= 20 - tol) and np.all(a[:, 1] <= 150 + tol)
    # Hops may run late under load; the gate allows at most rate × 0.1 s per hop.
    assert np.max(np.abs(np.diff(a, axis=0))) <= MAX_RATE_DEG_S * 0.1 + tol


@pytest.mark.parametrize("fault", ["no_drdy", "garbage", "reset"])
def test_adc_faults_hold_then_recover(model_path: Path, tmp_path: Path, fault: str) -> None:
    config = config_for(
        model_path,
        tmp_path,
        f"simulation.fault={fault}",
        "simulation.fault_at_s=2.2",
        "simulation.fault_duration_s=0.6",
    )
    result = run_and_record(config, 4.5)
    check_servo_bounds(result)
    assert "fault" in result["states"]
    assert result["recoveries"] >= 1
    # Streaming again after the fault: the last half second ran on fresh frames.
    assert result["states"][-1] == "running"
    assert result["status"]["acquisition"]["frames"] > 2500


def test_i2c_nack_is_a_fault_and_never_a_wild_value(model_path: Path, tmp_path: Path) -> None:
    result = run_and_record(config_for(model_path, tmp_path), 2.5, nack_at_hop=60)
    check_servo_bounds(result)
    assert "fault" in result["states"][60:70]
