"""Tests of board assembly: backends by name, the simulated wiring, clear errors."""

from __future__ import annotations

import pytest

from emgd.clock import FakeClock
from emgd.config import load_config
from emgd.errors import ConfigError, HardwareInitError
from emgd.service.board import open_board, servo_calibrations


def test_default_config_opens_the_simulated_ads1299_and_pca9685() -> None:
    clock = FakeClock()
    board = open_board(load_config(env={}), clock)
    try:
        assert board.sim is not None
        assert "ADS1299 (ID 0x3E, 8-channel part, 8 used, 1000 Hz, gain 24)" in board.description
        assert "PCA9685 at 0x40" in board.description
        assert board.adc.n_channels == 8
        # The Adafruit library programmed PRE_SCALE 121 (50 Hz) into the simulated chip.
        assert board.sim.pca.prescale == 121
    finally:
        board.close()


def test_simulated_chip_id_from_config_reaches_the_driver() -> None:
    config = load_config(env={}, overrides=["simulation.chip_id=0x3D", "adc.channels=6"])
    board = open_board(config, FakeClock())
    try:
        assert "ID 0x3D, 6-channel part" in board.description
    finally:
        board.close()


def test_more_channels_than_the_simulated_part_has_is_refused() -> None:
    config = load_config(env={}, overrides=["simulation.chip_id=0x3C", "adc.channels=8"])
    with pytest.raises(HardwareInitError, match="4"):
        open_board(config, FakeClock())


def test_mcp3008_backend_by_name() -> None:
    config = load_config(env={}, overrides=["adc.backend=mcp3008", "adc.channels=4"])
    board = open_board(config, FakeClock())
    try:
        assert board.description.startswith("MCP3008 (4 single-ended inputs")
        assert board.adc.n_channels == 4
    finally:
        board.close()


def test_real_spi_bus_without_the_device_node_is_a_clear_init_error(tmp_path) -> None:
    config = load_config(env={}, overrides=["adc.bus=spidev", "adc.spi_bus=6", "adc.spi_device=3"])
    with pytest.raises((HardwareInitError, ImportError)) as info:
        open_board(config, FakeClock())
    message = str(info.value)
    assert "spidev" in message
    assert "\n" not in message


def test_servo_calibrations_follow_the_finger_tables() -> None:
    config = load_config(
        env={},
        overrides=["servo.ring.channel=9", "servo.ring.inverted=true", "servo.thumb.trim_deg=5"],
    )
    cals = servo_calibrations(config)
    assert [c.channel for c in cals] == [0, 1, 2, 9, 4]
    assert cals[3].inverted and not cals[2].inverted
    assert cals[0].trim_deg == 5.0


def test_mcp3008_sclk_above_the_datasheet_limit_names_the_value() -> None:
    config = load_config(
        env={}, overrides=["adc.backend=mcp3008", "adc.mcp3008.spi_speed_hz=3000000"]
    )
    with pytest.raises(ConfigError, match="3000000"):
        open_board(config, FakeClock())
