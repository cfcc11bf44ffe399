"""Tests of firmware_config/: the board configs load and say what they claim, the config.txt
fragment has the required dtparam lines, and the udev rules are well formed with the right
groups and modes."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from emgd.clock import FakeClock
from emgd.config import ADS1299_RATES_HZ, Config, load_config
from emgd.service.board import open_board

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware_config"
BOARDS = FIRMWARE / "boards"

# Header pins a DRDY line must not take: HAT EEPROM (0, 1), I²C1 (2, 3), 1-Wire (4), SPI0 (7-11).
RESERVED_GPIOS = {0, 1, 2, 3, 4, 7, 8, 9, 10, 11}

# MCP3008 SCLK limit at VDD = 3.3 V, by hand from the datasheet's fCLK = 18 x fSAMPLE points
# (1.35 MHz at 2.7 V, 3.6 MHz at 5 V), interpolated: 1.35 + 0.6 / 2.3 x 2.25 MHz.
MCP3008_SCLK_LIMIT_AT_3V3_HZ = 1_936_956

# ADS1299: at or below 4 MHz one byte (2 us) outlasts the 4 tCLK command decode (1.96 us).
ADS1299_NO_GAP_SCLK_HZ = 4_000_000

REQUIRED_DTPARAMS = (
    "dtparam=spi=on",
    "dtparam=i2c_arm=on",
    "dtparam=i2c_arm_baudrate=400000",
)


def load_board(name: str, *overrides: str) -> Config:
    return load_config(BOARDS / f"{name}.toml", env={}, overrides=overrides)


# --------------------------------------------------------------------------------------
# Board configs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "backend", "adc_bus", "servo_bus"),
    [
        ("ads1299", "ads1299", "spidev", "i2c"),
        ("mcp3008", "mcp3008", "spidev", "i2c"),
        ("simulated", "ads1299", "simulated", "simulated"),
    ],
)
def test_each_board_file_loads_with_the_backend_and_buses_it_claims(
    name: str, backend: str, adc_bus: str, servo_bus: str
) -> None:
    config = load_board(name)
    assert config.source == str(BOARDS / f"{name}.toml")
    assert config.adc.backend == backend
    assert config.adc.bus == adc_bus
    assert config.servo.bus == servo_bus
    assert config.adc.sample_rate_hz == 1000
    assert config.adc.channels == 8
    assert config.servo.address == 0x40
    assert config.servo.frequency_hz == 50.0


def test_the_boards_folder_holds_exactly_the_three_boards() -> None:
    assert sorted(p.name for p in BOARDS.iterdir()) == [
        "ads1299.toml",
        "mcp3008.toml",
        "simulated.toml",
    ]


def test_ads1299_board_settings() -> None:
    config = load_board("ads1299")
    ads = config.adc.ads1299
    assert (config.adc.spi_bus, config.adc.spi_device) == (0, 0)
    assert config.adc.sample_rate_hz in ADS1299_RATES_HZ
    assert ads.gain == 24
    assert ads.vref_v == 4.5
    assert ads.drdy == "gpiod"
    assert ads.drdy_gpio == 25
    assert ads.drdy_chip == "/dev/gpiochip0"
    assert ads.drdy_gpio not in RESERVED_GPIOS
    assert ads.spi_speed_hz <= ADS1299_NO_GAP_SCLK_HZ
    assert ads.test_signal is False
    assert config.servo.i2c_bus == 1


def test_mcp3008_board_settings() -> None:
    config = load_board("mcp3008")
    mcp = config.adc.mcp3008
    assert (config.adc.spi_bus, config.adc.spi_device) == (0, 0)
    assert mcp.differential is False
    assert mcp.vdd_v == 3.3
    assert mcp.vref_v == 3.3
    assert mcp.offset_v == pytest.approx(mcp.vref_v / 2)
    assert mcp.frontend_gain == 1000.0
    assert mcp.spi_speed_hz < MCP3008_SCLK_LIMIT_AT_3V3_HZ
    # Eight 24-clock conversions per sample period must fit in the period with room to spare.
    bus_time_s = 8 * 24 / mcp.spi_speed_hz
    assert bus_time_s < 0.5 / config.adc.sample_rate_hz
    assert config.servo.i2c_bus == 1


def test_simulated_board_settings() -> None:
    config = load_board("simulated")
    assert config.simulation.chip_id == 0x3E
    assert config.simulation.mains_hz in (50.0, 60.0)
    assert config.adc.ads1299.gain == 24


@pytest.mark.parametrize("name", ["ads1299", "mcp3008", "simulated"])
def test_board_chip_settings_open_on_the_simulators(name: str) -> None:
    # The same drivers run on the simulated buses, so this checks the board's chip settings
    # (rate, gain, SCLK against the supply, channels) against the real driver code.
    config = load_board(name, "adc.bus=simulated", "servo.bus=simulated")
    board = open_board(config, FakeClock())
    try:
        assert board.adc.n_channels == 8
        assert board.adc.sample_rate_hz == 1000
        assert board.description.startswith(config.adc.backend.upper())
    finally:
        board.close()


@pytest.mark.parametrize("name", ["ads1299", "mcp3008", "simulated"])
def test_board_files_are_commented(name: str) -> None:
    lines = (BOARDS / f"{name}.toml").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# emgd board config: ")
    settings = [line for line in lines if "=" in line and not line.lstrip().startswith("#")]
    explained = [line for line in settings if "#" in line]
    assert len(explained) * 2 >= len(settings), "most settings should say why"


# --------------------------------------------------------------------------------------
# config.txt
# --------------------------------------------------------------------------------------


def active_lines(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_config_txt_has_the_required_dtparam_lines_with_the_prefix() -> None:
    lines = active_lines(FIRMWARE / "config.txt")
    for required in REQUIRED_DTPARAMS:
        assert lines.count(required) == 1, required
    # A bare baudrate line is silently ignored by the firmware: it must never appear.
    assert not any(line.startswith("i2c_arm_baudrate") for line in lines)


def test_config_txt_lines_apply_to_every_board() -> None:
    lines = active_lines(FIRMWARE / "config.txt")
    assert lines[0] == "[all]"
    assert [line for line in lines if line.startswith("[")] == ["[all]"]


def test_config_txt_has_only_known_directive_forms() -> None:
    for line in active_lines(FIRMWARE / "config.txt")[1:]:
        assert re.fullmatch(r"(dtparam|dtoverlay|gpio)=[A-Za-z0-9_,=.-]+", line), line


def test_config_txt_names_both_boot_paths_and_the_drdy_pin() -> None:
    text = (FIRMWARE / "config.txt").read_text(encoding="utf-8")
    assert "/boot/firmware/config.txt" in text
    assert "/boot/config.txt" in text
    drdy_gpio = load_board("ads1299").adc.ads1299.drdy_gpio
    assert f"GPIO{drdy_gpio} " in text
    assert "pin 22" in text  # BCM 25 is header pin 22


def test_modules_load_file_loads_i2c_dev() -> None:
    assert active_lines(FIRMWARE / "emgd-modules.conf") == ["i2c-dev"]


# --------------------------------------------------------------------------------------
# udev rules
# --------------------------------------------------------------------------------------

MATCH_KEYS = {"SUBSYSTEM", "KERNEL", "ACTION", "DRIVER", "SUBSYSTEMS", "KERNELS"}
ASSIGN_KEYS = {"GROUP", "MODE", "OWNER"}
PAIR = re.compile(r'\s*([A-Z]+)\s*(==|!=|=|\+=|:=)\s*"([^"]*)"\s*(,|$)')


@dataclass(frozen=True)
class Rule:
    matches: dict[str, str]
    assigns: dict[str, str]


def parse_rules(path: Path) -> list[Rule]:
    """Parse udev rules of the form ``KEY=="value", ..., KEY="value"`` (one rule per line)."""
    rules = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.endswith("\\"), f"line {number}: no continuation lines expected"
        matches: dict[str, str] = {}
        assigns: dict[str, str] = {}
        position = 0
        while position < len(line):
            pair = PAIR.match(line, position)
            assert pair is not None, f"line {number}: cannot parse {line[position:]!r}"
            key, operator, value, _ = pair.groups()
            if operator == "==":
                assert key in MATCH_KEYS, f"line {number}: {key} is not a match key"
                matches[key] = value
            else:
                assert operator == "=", f"line {number}: {key}{operator} not expected"
                assert key in ASSIGN_KEYS, f"line {number}: {key} is not an assignment key"
                assigns[key] = value
            position = pair.end()
        rules.append(Rule(matches, assigns))
    return rules


def test_the_rule_parser_refuses_malformed_lines(tmp_path: Path) -> None:
    for bad in (
        'SUBSYSTEM=="spidev" GROUP="spi"',  # missing comma
        'SUBSYSTEM==spidev, GROUP="spi"',  # unquoted value
        'GROUP=="spi"',  # a match on an assignment key
        'SUBSYSTEM="spidev"',  # an assignment to a match key
    ):
        path = tmp_path / "bad.rules"
        path.write_text(bad + "\n", encoding="utf-8")
        with pytest.raises(AssertionError):
            parse_rules(path)


def test_udev_rules_parse_as_match_and_assignment_pairs() -> None:
    rules = parse_rules(FIRMWARE / "99-emgd.rules")
    assert len(rules) == 3
    for rule in rules:
        assert set(rule.matches) == {"SUBSYSTEM", "KERNEL"}
        assert set(rule.assigns) == {"GROUP", "MODE"}
        assert rule.assigns["MODE"] == "0660"


@pytest.mark.parametrize(
    ("node", "subsystem", "group"),
    [
        ("spidev0.0", "spidev", "spi"),
        ("spidev0.1", "spidev", "spi"),
        ("i2c-1", "i2c-dev", "i2c"),
        ("i2c-20", "i2c-dev", "i2c"),
        ("gpiochip0", "gpio", "gpio"),
        ("gpiochip4", "gpio", "gpio"),
    ],
)
def test_each_device_node_gets_its_group(node: str, subsystem: str, group: str) -> None:
    rules = parse_rules(FIRMWARE / "99-emgd.rules")
    hits = [
        r
        for r in rules
        if r.matches["SUBSYSTEM"] == subsystem and fnmatch.fnmatchcase(node, r.matches["KERNEL"])
    ]
    assert len(hits) == 1
    assert hits[0].assigns == {"GROUP": group, "MODE": "0660"}


@pytest.mark.parametrize("node", ["i2c-dev", "gpiomem", "spi0", "ttyAMA0"])
def test_the_kernel_patterns_do_not_match_other_nodes(node: str) -> None:
    rules = parse_rules(FIRMWARE / "99-emgd.rules")
    assert not any(fnmatch.fnmatchcase(node, r.matches["KERNEL"]) for r in rules)


def test_udev_rules_file_sorts_after_raspberry_pi_os_rules() -> None:
    # udev applies files in lexical order; after Raspberry Pi OS's 99-com.rules, ours has the
    # last say on the same nodes.
    names = [p.name for p in FIRMWARE.glob("*.rules")]
    assert len(names) == 1
    assert names[0] > "99-com.rules"


def test_readme_describes_every_file() -> None:
    readme = (FIRMWARE / "README.md").read_text(encoding="utf-8")
    for path in sorted(FIRMWARE.rglob("*")):
        if path.is_file() and path.name != "README.md":
            assert path.relative_to(FIRMWARE).as_posix() in readme, path.name
