"""Shared fixtures: a fake clock, the default config, and the simulated board.

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
