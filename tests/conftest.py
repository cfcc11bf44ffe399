"""Shared fixtures: a fake clock, the default config, the simulated board, a small model.

With ``EMGD_TEST_HARDWARE=1`` the contract tests open the real board described by
``$EMGD_TEST_CONFIG`` (a TOML file with ``adc.bus = "spidev"`` and ``servo.bus = "i2c"``)
instead of the simulators.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from emgd.clock import Clock, FakeClock, SystemClock
from emgd.config import Config, load_config
from emgd.service.board import Board, open_board

HARDWARE = os.environ.get("EMGD_TEST_HARDWARE") == "1"


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def default_config() -> Config:
    return load_config(env={})


def hardware_config() -> Config:
    """The real board's config for ``EMGD_TEST_HARDWARE=1`` runs."""
    path = os.environ.get("EMGD_TEST_CONFIG")
    if not path:
        pytest.fail("EMGD_TEST_HARDWARE=1 needs EMGD_TEST_CONFIG=/path/to/board.toml")
    return load_config(Path(path), env={})


@pytest.fixture
def board_and_clock(request: pytest.FixtureRequest) -> Iterator[tuple[Board, Clock]]:
    """The board under contract test: simulated (parametrised by ADC backend) or real."""
    backend = getattr(request, "param", "ads1299")
    if HARDWARE:
        clock: Clock = SystemClock()
        config = hardware_config()
    else:
        clock = FakeClock()
        config = load_config(env={}, overrides=[f"adc.backend={backend}"])
    board = open_board(config, clock)
    try:
        yield board, clock
    finally:
        board.close()


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained but real network (1 kHz, 8 channels), exported with a training
    calibration in its card (source "test"); needs the train extra (torch and onnx)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from emgd.calibration.store import StoredCalibration
    from emgd.dsp.filters import FilterSpec
    from emgd.model.contract import PreprocessContract
    from emgd.model.export import export_onnx
    from emgd.model.network import EmgNet
    from emgd.model.spec import ModelSpec

    spec = ModelSpec(sample_rate_hz=1000.0, n_channels=8, common_length=5, mlp=(16, 8))
    contract = PreprocessContract.for_spec(spec, FilterSpec(mains_hz=50.0))
    cal = StoredCalibration(
        offset=(0.0,) * 8, scale=(20.0,) * 8, sample_rate_hz=1000.0, source="test"
    )
    path = tmp_path_factory.mktemp("model") / "small.onnx"
    export_onnx(EmgNet(spec, seed=0), spec, contract, {"calibration": cal.to_dict()}, path)
    return path
