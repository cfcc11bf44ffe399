"""Tests of emgd.config: the shipped defaults, key and value checking, precedence, cross-field
rules and a round trip of every numeric option through a TOML file."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emgd.config import (
    Config,
    default_config_text,
    describe_options,
    load_config,
    validate,
)
from emgd.errors import ConfigError

DEFAULT_TOML = Path(__file__).resolve().parents[1] / "daemon" / "emgd" / "default.toml"


def write(tmp_path: Path, text: str, name: str = "emgd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, **kwargs: Any) -> Config:
    """Load ``text`` as a config file with an empty environment unless one is given."""
    kwargs.setdefault("env", {})
    return load_config(write(tmp_path, text), **kwargs)


def flat_keys(table: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in table.items():
        if isinstance(value, Mapping):
            yield from flat_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def get_dotted(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


# --------------------------------------------------------------------------------------
# The shipped defaults
# --------------------------------------------------------------------------------------


def test_shipped_default_file_loads_and_equals_the_code_defaults() -> None:
    loaded = load_config(DEFAULT_TOML, env={})
    assert loaded == Config()
    assert loaded.source == str(DEFAULT_TOML)


def test_default_config_text_is_the_shipped_file() -> None:
    assert default_config_text() == DEFAULT_TOML.read_text(encoding="utf-8")


def test_every_option_appears_in_the_default_file_and_nothing_else() -> None:
    file_keys = set(flat_keys(tomllib.loads(default_config_text())))
    option_keys = {key for key, _, _ in describe_options()}
    assert option_keys == file_keys
    # The walk reaches every finger with the same keys, and both front ends.
    per_finger = [
        {key.rpartition(".")[2] for key in option_keys if key.startswith(f"servo.{finger}.")}
        for finger in ("thumb", "index", "middle", "ring", "little")
    ]
    assert per_finger[0] >= {"channel", "min_pulse_us", "max_pulse_us", "inverted", "trim_deg"}
    assert all(keys == per_finger[0] for keys in per_finger)
    assert {"adc.ads1299.gain", "adc.mcp3008.differential", "simulation.seed"} <= option_keys


def test_describe_options_rows_carry_default_and_rule() -> None:
    rows = {key: (default, text) for key, default, text in describe_options()}
    assert rows["adc.sample_rate_hz"] == (1000, "sampling rate per channel (250 … 16000)")
    assert rows["adc.ads1299.gain"] == (
        24,
        "PGA gain for every channel (one of 1, 2, 4, 6, 8, 12, 24)",
    )
    assert rows["servo.ring.channel"] == (3, "PCA9685 output 0-15 (0 … 15)")
    assert rows["servo.address"][0] == 0x40
    assert rows["adc.ads1299.srb2"] == (
        True,
        "connect every channel's IN-P to SRB2 (common reference)",
    )


def test_config_is_frozen_and_source_does_not_affect_equality() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.adc = config.adc  # type: ignore[misc]
    assert dataclasses.replace(config, source="elsewhere.toml") == config


def test_no_file_and_no_environment_gives_the_defaults() -> None:
    config = load_config(env={})
    assert config == Config()
    assert config.source == "<defaults>"
    assert [s.channel for s in config.servo.fingers()] == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------------------
# Unknown keys
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dotted"),
    [
        ("colour = 1\n", "colour"),
        ("[adcc]\nbackend = 'ads1299'\n", "adcc"),
        ("[adc]\nsample_rate = 1000\n", "adc.sample_rate"),
        ("[adc.ads1299]\ngain_db = 24\n", "adc.ads1299.gain_db"),
        ("[servo.thumb]\nchanel = 2\n", "servo.thumb.chanel"),
        ("[servo.pinky]\nchannel = 4\n", "servo.pinky"),
    ],
)
def test_unknown_keys_are_refused_naming_file_and_dotted_key(
    tmp_path: Path, text: str, dotted: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path}: unknown key '{dotted}'")


def test_unknown_key_message_lists_the_known_keys_of_that_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"known here: channel, inverted, max_angle_deg"):
        load_text(tmp_path, "[servo.thumb]\nchanel = 2\n")


def test_source_is_not_a_key_of_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'source'"):
        load_text(tmp_path, "source = 'x'\n")


# --------------------------------------------------------------------------------------
# Types, ranges and choices
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[adc]\nsample_rate_hz = "1000"\n', "adc.sample_rate_hz = '1000': must be a whole number"),
        ("[adc]\nchannels = true\n", "adc.channels = True: must be a whole number"),
        ("[adc]\nchannels = 4.0\n", "adc.channels = 4.0: must be a whole number"),
        ("[servo]\nfrequency_hz = '50'\n", "servo.frequency_hz = '50': must be a number"),
        ("[servo]\nfrequency_hz = false\n", "servo.frequency_hz = False: must be a number"),
        ("[servo]\nfrequency_hz = nan\n", "servo.frequency_hz = nan: must be finite"),
        ("[servo]\nfrequency_hz = inf\n", "servo.frequency_hz = inf: must be finite"),
        ("[adc.ads1299]\nsrb2 = 1\n", "adc.ads1299.srb2 = 1: must be true or false"),
        ('[adc.ads1299]\nsrb2 = "yes"\n', "adc.ads1299.srb2 = 'yes': must be true or false"),
        ("[adc]\nbackend = 1299\n", "adc.backend = 1299: must be a string"),
        ("adc = 3\n", "adc = 3: must be a [section]"),
        ("[servo]\nthumb = 0\n", "servo.thumb = 0: must be a [section]"),
    ],
)
def test_wrong_types_are_refused_with_file_key_value_and_rule(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: {expected}"


def test_an_integer_is_accepted_for_a_float_option_and_stored_as_float(tmp_path: Path) -> None:
    config = load_text(tmp_path, "[servo]\nfrequency_hz = 60\n[servo.index]\ntrim_deg = -3\n")
    assert config.servo.frequency_hz == 60.0
    assert type(config.servo.frequency_hz) is float
    assert config.servo.index.trim_deg == -3.0
    assert type(config.servo.index.trim_deg) is float


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[adc]\nsample_rate_hz = 100\n", "adc.sample_rate_hz = 100: must be at least 250"),
        ("[adc]\nchannels = 9\n", "adc.channels = 9: must be at most 8"),
        ("[adc]\nchannels = 0\n", "adc.channels = 0: must be at least 1"),
        ("[servo]\naddress = 0x80\n", "servo.address = 128: must be at most 127"),
        ("[servo]\naddress = 0x3F\n", "servo.address = 63: must be at least 64"),
        ("[servo.thumb]\ntrim_deg = -30.5\n", "servo.thumb.trim_deg = -30.5: must be at least -30"),
        ("[servo.little]\nchannel = 16\n", "servo.little.channel = 16: must be at most 15"),
        ("[adc.ads1299]\ndrdy_gpio = 28\n", "adc.ads1299.drdy_gpio = 28: must be at most 27"),
        (
            "[adc.mcp3008]\nfrontend_gain = 0.5\n",
            "adc.mcp3008.frontend_gain = 0.5: must be at least 1",
        ),
        ("[simulation]\nseed = -1\n", "simulation.seed = -1: must be at least 0"),
        (
            "[simulation]\nseed = 4294967296\n",
            "simulation.seed = 4294967296: must be at most 4294967295",
        ),
    ],
)
def test_out_of_range_values_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: {expected}"


def test_range_bounds_are_inclusive(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        "[servo.thumb]\ntrim_deg = -30\n[servo.index]\ntrim_deg = 30.0\n"
        "[servo]\naddress = 0x7F\n[simulation]\nseed = 4294967295\n",
    )
    assert config.servo.thumb.trim_deg == -30.0
    assert config.servo.index.trim_deg == 30.0
    assert config.servo.address == 127
    assert config.simulation.seed == 2**32 - 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[adc]\nbackend = "ads1298"\n',
            "adc.backend = 'ads1298': must be one of 'ads1299', 'mcp3008'",
        ),
        ('[adc]\nbus = "i2c"\n', "adc.bus = 'i2c': must be one of 'spidev', 'simulated'"),
        ("[adc.ads1299]\ngain = 3\n", "adc.ads1299.gain = 3: must be one of 1, 2, 4, 6, 8, 12, 24"),
        (
            "[adc.ads1299]\nlead_off_current_na = 12\n",
            "adc.ads1299.lead_off_current_na = 12: must be one of 6, 24, 6000, 24000",
        ),
        ("[simulation]\nmains_hz = 55.0\n", "simulation.mains_hz = 55.0: must be one of 0, 50, 60"),
        ('[servo]\nbus = "spidev"\n', "servo.bus = 'spidev': must be one of 'i2c', 'simulated'"),
    ],
)
def test_values_outside_the_choices_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: {expected}"


def test_an_integer_matches_a_float_choice(tmp_path: Path) -> None:
    config = load_text(tmp_path, "[simulation]\nmains_hz = 60\n")
    assert config.simulation.mains_hz == 60.0
    assert type(config.simulation.mains_hz) is float


# --------------------------------------------------------------------------------------
# Files that cannot be read
# --------------------------------------------------------------------------------------


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[adc\nbackend = 'ads1299'\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path, env={})
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


def test_duplicate_keys_are_malformed_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[adc]\nchannels = 4\nchannels = 5\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, env={})


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: config file not found"


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={})
    assert str(info.value) == f"{tmp_path}: is a directory, not a config file"


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[adc]\nbackend = "ads\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(f"{path}: not UTF-8 text")


def test_a_path_through_a_file_is_a_config_error(tmp_path: Path) -> None:
    parent = write(tmp_path, "")
    path = parent / "emgd.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: cannot read the config file: ENOTDIR (Not a directory)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_names_the_path(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    path.chmod(0)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: permission denied reading the config file"


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_text(tmp_path, "# nothing set\n") == Config()


# --------------------------------------------------------------------------------------
# Precedence: --set > environment > file > defaults
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_file", "in_env", "on_cli", "expected"),
    [
        (False, False, False, 1000),
        (True, False, False, 2000),
        (False, True, False, 4000),
        (True, True, False, 4000),
        (False, False, True, 8000),
        (True, False, True, 8000),
        (True, True, True, 8000),
    ],
)
def test_precedence_cli_over_env_over_file_over_defaults(
    tmp_path: Path, in_file: bool, in_env: bool, on_cli: bool, expected: int
) -> None:
    path = write(tmp_path, "[adc]\nsample_rate_hz = 2000\n" if in_file else "")
    env = {"EMGD__ADC__SAMPLE_RATE_HZ": "4000"} if in_env else {}
    overrides = ["adc.sample_rate_hz=8000"] if on_cli else []
    config = load_config(path, env=env, overrides=overrides)
    assert config.adc.sample_rate_hz == expected


def test_env_and_cli_override_single_keys_and_keep_the_rest_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[adc]\nchannels = 4\nspi_device = 1\n[servo]\nfrequency_hz = 60.0\n")
    config = load_config(
        path,
        env={"EMGD__ADC__CHANNELS": "6", "EMGD__SERVO__THUMB__CHANNEL": "9"},
        overrides=["servo.frequency_hz=100"],
    )
    assert config.adc.channels == 6
    assert config.adc.spi_device == 1
    assert config.servo.frequency_hz == 100.0
    assert config.servo.thumb.channel == 9
    assert config.servo.thumb.max_pulse_us == 2500.0


def test_emgd_config_picks_the_file_when_no_path_is_given(tmp_path: Path) -> None:
    path = write(tmp_path, "[adc]\nsample_rate_hz = 2000\n")
    config = load_config(env={"EMGD_CONFIG": str(path)})
    assert config.adc.sample_rate_hz == 2000
    assert config.source == str(path)


def test_an_explicit_path_wins_over_emgd_config(tmp_path: Path) -> None:
    chosen = write(tmp_path, "[adc]\nsample_rate_hz = 500\n", "chosen.toml")
    ignored = write(tmp_path, "[adc]\nsample_rate_hz = 2000\n", "ignored.toml")
    config = load_config(chosen, env={"EMGD_CONFIG": str(ignored)})
    assert config.adc.sample_rate_hz == 500


def test_emgd_config_naming_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(env={"EMGD_CONFIG": str(tmp_path / "nope.toml")})


def test_load_config_reads_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[adc]\nchannels = 3\n")
    monkeypatch.setenv("EMGD_CONFIG", str(path))
    monkeypatch.setenv("EMGD__ADC__SPI_DEVICE", "1")
    config = load_config()
    assert config.adc.channels == 3
    assert config.adc.spi_device == 1


def test_unrelated_environment_variables_are_ignored() -> None:
    env = {"EMGD_CONFIG": "", "EMGDX__ADC__CHANNELS": "2", "PATH": "/bin", "EMGD_ADC_CHANNELS": "2"}
    assert load_config(env=env) == Config()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("mcp3008", "mcp3008"), ('"mcp3008"', "mcp3008"), ("'mcp3008'", "mcp3008")],
)
def test_override_strings_may_be_bare_words_or_quoted(raw: str, expected: str) -> None:
    config = load_config(env={"EMGD__ADC__BACKEND": raw})
    assert config.adc.backend == expected
    config = load_config(env={}, overrides=[f"adc.backend={raw}"])
    assert config.adc.backend == expected


def test_override_values_are_typed_as_toml() -> None:
    config = load_config(
        env={},
        overrides=[
            "adc.ads1299.srb2=false",
            "servo.address=0x41",
            "adc.ads1299.drdy_chip=/dev/gpiochip4",
            " servo.index.trim_deg = -2.5 ",
        ],
    )
    assert config.adc.ads1299.srb2 is False
    assert config.servo.address == 0x41
    assert config.adc.ads1299.drdy_chip == "/dev/gpiochip4"
    assert config.servo.index.trim_deg == -2.5


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("adc.sample_rate_hz", "--set 'adc.sample_rate_hz': expected section.key=value"),
        ("=5", "--set '=5': expected section.key=value"),
        ("adc.backend=ads 1299", "--set adc.backend: 'ads 1299' is not a TOML value"),
        ("adc.backend=", "--set adc.backend: '' is not a TOML value"),
    ],
)
def test_malformed_overrides_are_refused(item: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides=[item])
    assert str(info.value) == expected


def test_an_override_cannot_treat_a_value_as_a_section(tmp_path: Path) -> None:
    path = write(tmp_path, "[adc]\nbackend = 'mcp3008'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={}, overrides=["adc.backend.kind=1"])
    assert str(info.value) == "adc.backend.kind: backend is a value, not a section"
    # Without a value in the way the override makes a table, refused where it is checked.
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides=["adc.backend.kind=1"])
    assert str(info.value) == (
        "--set adc.backend.kind: adc.backend = {'kind': 1}: must be a string"
    )


def test_bad_override_values_name_the_override_not_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[adc]\nchannels = 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"EMGD__ADC__CHANNELS": "twelve"})
    assert str(info.value) == (
        "environment EMGD__ADC__CHANNELS: adc.channels = 'twelve': must be a whole number"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={}, overrides=["adc.channels=12"])
    assert str(info.value) == "--set adc.channels: adc.channels = 12: must be at most 8"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"EMGD__ADC__CHANELS": "4"})
    assert str(info.value).startswith(
        "environment EMGD__ADC__CHANELS: unknown key 'adc.chanels' (known here: "
    )


def test_a_bad_file_value_is_still_blamed_on_the_file_when_overrides_exist(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "[adc]\nchannels = 12\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"EMGD__ADC__SPI_DEVICE": "1"}, overrides=["servo.i2c_bus=0"])
    assert str(info.value) == f"{path}: adc.channels = 12: must be at most 8"


# --------------------------------------------------------------------------------------
# Cross-field rules
# --------------------------------------------------------------------------------------


def test_ads1299_rate_must_be_one_of_its_data_rates(tmp_path: Path) -> None:
    path = write(tmp_path, "[adc]\nsample_rate_hz = 1500\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (
        f"{path}: adc.sample_rate_hz = 1500: the ADS1299 runs at "
        "250, 500, 1000, 2000, 4000, 8000, 16000 only"
    )


@pytest.mark.parametrize("rate_hz", [250, 500, 1000, 2000, 4000, 8000, 16000])
def test_every_ads1299_data_rate_is_accepted(rate_hz: int) -> None:
    assert load_config(env={}, overrides=[f"adc.sample_rate_hz={rate_hz}"]).adc.sample_rate_hz == (
        rate_hz
    )


def test_mcp3008_is_software_paced_and_takes_any_rate(tmp_path: Path) -> None:
    config = load_text(tmp_path, "[adc]\nbackend = 'mcp3008'\nsample_rate_hz = 1500\n")
    assert config.adc.sample_rate_hz == 1500


def test_mcp3008_differential_has_four_pairs(tmp_path: Path) -> None:
    text = "[adc]\nbackend = 'mcp3008'\nchannels = {n}\n[adc.mcp3008]\ndifferential = {d}\n"
    path = write(tmp_path, text.format(n=5, d="true"))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: adc.channels = 5: the MCP3008 has 4 differential pairs"
    assert load_text(tmp_path, text.format(n=4, d="true")).adc.channels == 4
    assert load_text(tmp_path, text.format(n=8, d="false")).adc.channels == 8


def test_mcp3008_offset_above_vref_is_refused(tmp_path: Path) -> None:
    text = "[adc]\nbackend = '{b}'\n[adc.mcp3008]\nvref_v = 3.3\noffset_v = {o}\n"
    path = write(tmp_path, text.format(b="mcp3008", o=3.4))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == f"{path}: adc.mcp3008.offset_v = 3.4: above vref_v = 3.3"
    assert load_text(tmp_path, text.format(b="mcp3008", o=3.3)).adc.mcp3008.offset_v == 3.3
    # The MCP3008 section is not checked when another ADC is selected.
    assert load_text(tmp_path, text.format(b="ads1299", o=3.4)).adc.mcp3008.offset_v == 3.4


@pytest.mark.parametrize(("min_us", "max_us"), [(2500.0, 2500.0), (2600.0, 2400.0)])
def test_min_pulse_must_be_below_max_pulse(tmp_path: Path, min_us: float, max_us: float) -> None:
    path = write(tmp_path, f"[servo.index]\nmin_pulse_us = {min_us}\nmax_pulse_us = {max_us}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (
        f"{path}: servo.index.min_pulse_us = {min_us:g}: must be below "
        f"max_pulse_us = {max_us:g} (use inverted = true to mirror)"
    )


def test_min_angle_must_be_below_max_angle(tmp_path: Path) -> None:
    path = write(tmp_path, "[servo.middle]\nmin_angle_deg = 90\nmax_angle_deg = 90\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (
        f"{path}: servo.middle.min_angle_deg = 90: must be below max_angle_deg = 90"
    )


def test_two_fingers_on_one_output_are_refused_naming_both(tmp_path: Path) -> None:
    path = write(tmp_path, "[servo.little]\nchannel = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (
        f"{path}: servo.little.channel = 1: output already used by servo.index.channel "
        "(each finger needs its own output)"
    )


def test_swapping_two_outputs_is_allowed(tmp_path: Path) -> None:
    config = load_text(tmp_path, "[servo.thumb]\nchannel = 4\n[servo.little]\nchannel = 0\n")
    assert [s.channel for s in config.servo.fingers()] == [4, 1, 2, 3, 0]


def test_validate_checks_a_config_built_in_code() -> None:
    bad = dataclasses.replace(Config(), adc=dataclasses.replace(Config().adc, sample_rate_hz=300))
    with pytest.raises(ConfigError, match=r"^<defaults>: adc.sample_rate_hz = 300: the ADS1299"):
        validate(bad)
    validate(Config())


# --------------------------------------------------------------------------------------
# Per-finger sections keep their own defaults
# --------------------------------------------------------------------------------------


def test_partial_ring_section_keeps_ring_default_channel(tmp_path: Path) -> None:
    config = load_text(tmp_path, "[servo.ring]\ninverted = true\nmin_pulse_us = 600.0\n")
    ring = config.servo.ring
    assert ring.channel == 3
    assert ring.inverted is True
    assert ring.min_pulse_us == 600.0
    assert ring.max_pulse_us == 2500.0
    assert config.servo.thumb == Config().servo.thumb


def test_partial_servo_section_keeps_every_finger_channel(tmp_path: Path) -> None:
    config = load_text(tmp_path, "[servo]\nfrequency_hz = 60.0\n")
    assert [s.channel for s in config.servo.fingers()] == [0, 1, 2, 3, 4]


def test_environment_override_of_one_finger_key_keeps_its_channel() -> None:
    config = load_config(env={"EMGD__SERVO__RING__TRIM_DEG": "5"})
    assert config.servo.ring.channel == 3
    assert config.servo.ring.trim_deg == 5.0


def test_fingers_are_in_thumb_to_little_order(tmp_path: Path) -> None:
    text = "".join(
        f"[servo.{finger}]\ntrim_deg = {i}\n"
        for i, finger in enumerate(("thumb", "index", "middle", "ring", "little"))
    )
    config = load_text(tmp_path, text)
    assert [s.trim_deg for s in config.servo.fingers()] == [0.0, 1.0, 2.0, 3.0, 4.0]


# --------------------------------------------------------------------------------------
# Round trip of every numeric option through a TOML file
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NumericOption:
    dotted: str
    kind: type
    low: float
    high: float


def numeric_options(cls: type[Any] = Config, prefix: str = "") -> list[NumericOption]:
    """Every int/float option with a range, read from the dataclass declarations."""
    found: list[NumericOption] = []
    instance = cls()
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            found.extend(numeric_options(type(value), f"{prefix}{f.name}."))
        elif f.metadata.get("min") is not None and f.metadata.get("choices") is None:
            kind = type(value)
            assert kind in (int, float), f.name
            found.append(
                NumericOption(f"{prefix}{f.name}", kind, f.metadata["min"], f.metadata["max"])
            )
    return found


NUMERIC_OPTIONS = numeric_options()

# Companion settings that make every in-range value of the option under test valid as a
# whole config (the cross-field rules), and the bound the option must then stay clear of.
COMPANIONS: dict[str, tuple[str, str]] = {
    "min_pulse_us": ("max_pulse_us = 2700.0", "exclude_max"),
    "max_pulse_us": ("min_pulse_us = 300.0", "exclude_min"),
    "min_angle_deg": ("max_angle_deg = 180.0", "exclude_max"),
    "max_angle_deg": ("min_angle_deg = 0.0", "exclude_min"),
    # The loop must stay below acquisition's SCHED_FIFO priority.
    "loop_priority": ("realtime_priority = 99", ""),
    "realtime_priority": ("loop_priority = 0", ""),
    # One uid may not hold more than all clients together.
    "max_clients_per_uid": ("max_clients = 4096", ""),
    "max_clients": ("max_clients_per_uid = 1", ""),
}


def test_the_round_trip_covers_every_ranged_option() -> None:
    names = {o.dotted for o in NUMERIC_OPTIONS}
    assert "adc.sample_rate_hz" in names
    assert "servo.little.max_angle_deg" in names
    assert "simulation.seed" in names
    assert "adc.ads1299.gain" not in names  # a choice, not a range
    # Cross-check against the other walk: every option whose rule is a range is covered.
    ranged = {key for key, _, rule in describe_options() if " … " in rule}
    assert names == ranged


@st.composite
def option_and_value(draw: st.DrawFn) -> tuple[NumericOption, int | float, list[str]]:
    opt = draw(st.sampled_from(NUMERIC_OPTIONS))
    section, _, name = opt.dotted.rpartition(".")
    extra: list[str] = []
    exclude = ""
    if name in COMPANIONS:
        line, exclude = COMPANIONS[name]
        extra.append(f"{section}.{line}")
    if opt.dotted == "adc.sample_rate_hz":
        extra.append('adc.backend = "mcp3008"')  # any rate; the ADS1299 rule is tested above
    value: int | float
    if opt.kind is int:
        value = draw(st.integers(int(opt.low), int(opt.high)))
    else:
        value = draw(
            st.floats(
                opt.low,
                opt.high,
                allow_nan=False,
                allow_infinity=False,
                exclude_min=exclude == "exclude_min",
                exclude_max=exclude == "exclude_max",
            )
        )
    if section.startswith("servo.") and name == "channel":
        # Give every other finger an output that cannot collide with the drawn one.
        fingers = ("thumb", "index", "middle", "ring", "little")
        free = [c for c in range(16) if c != value]
        finger = section.split(".")[1]
        others = [f for f in fingers if f != finger]
        extra.extend(f"servo.{f}.channel = {c}" for f, c in zip(others, free, strict=False))
    return opt, value, extra


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(option_and_value())
def test_any_in_range_numeric_value_round_trips_through_a_toml_file(
    tmp_path: Path, case: tuple[NumericOption, int | float, list[str]]
) -> None:
    opt, value, extra = case
    text = "\n".join([f"{opt.dotted} = {value!r}", *extra]) + "\n"
    config = load_config(write(tmp_path, text), env={})
    loaded = get_dotted(config, opt.dotted)
    assert type(loaded) is opt.kind
    assert loaded == value


def test_one_uid_may_not_hold_more_status_clients_than_all() -> None:
    with pytest.raises(ConfigError, match=r"status.max_clients_per_uid = 80: must not exceed"):
        load_config(env={}, overrides=["status.max_clients_per_uid=80"])
