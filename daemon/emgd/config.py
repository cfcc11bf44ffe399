"""The daemon's configuration: one TOML file read into frozen dataclasses.

Each option is declared once, as a dataclass field carrying its default, its bounds or
allowed values and a one-line description (:func:`option`). The loader walks those
declarations: every key in the file must match one (unknown keys are errors), every value
is type- and bound-checked, and each error names the file, the key, the value and the rule.

Precedence, highest first: command-line ``--set section.key=value`` > environment
variables ``EMGD__SECTION__KEY=value`` > the config file > the defaults below. Override
values are parsed as TOML values (``2000``, ``true``, ``"mcp3008"``).

This module only reads and validates; it opens no hardware and knows nothing of drivers.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from emgd.errors import ConfigError, describe_os_error

DEFAULT_CONFIG_PATH = Path("/etc/emgd/emgd.toml")
ENV_CONFIG_PATH = "EMGD_CONFIG"
ENV_PREFIX = "EMGD__"

ADS1299_RATES_HZ = (250, 500, 1000, 2000, 4000, 8000, 16000)
ADS1299_GAINS = (1, 2, 4, 6, 8, 12, 24)
FINGERS = ("thumb", "index", "middle", "ring", "little")

T = TypeVar("T")


def option(
    default: Any,
    doc: str,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    choices: Sequence[Any] | None = None,
) -> Any:
    """Declare a config option: its default, its rule and a one-line description."""
    meta = {"doc": doc, "min": min_value, "max": max_value, "choices": choices}
    return field(default=default, metadata=meta)


def section(factory: Any, doc: str) -> Any:
    """Declare a nested section (a dataclass with its own options)."""
    return field(default_factory=factory, metadata={"doc": doc})


# --------------------------------------------------------------------------------------
# The options
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ads1299Config:
    gain: int = option(24, "PGA gain for every channel", choices=ADS1299_GAINS)
    vref_v: float = option(4.5, "reference voltage (4.5 V internal)", min_value=1.0, max_value=5.0)
    srb2: bool = option(True, "connect every channel's IN-P to SRB2 (common reference)")
    srb1: bool = option(False, "connect SRB1 to every channel's IN-N")
    bias_drive: bool = option(True, "drive the bias electrode from all channels")
    lead_off: bool = option(False, "enable lead-off detection on every channel")
    lead_off_current_na: int = option(
        6, "lead-off excitation current", choices=(6, 24, 6000, 24000)
    )
    spi_speed_hz: int = option(
        4_000_000,
        "SPI clock (4 MHz needs no inter-byte gaps)",
        min_value=100_000,
        max_value=20_000_000,
    )
    drdy: str = option("gpiod", "DRDY line library", choices=("gpiod", "rpi_gpio"))
    drdy_gpio: int = option(25, "BCM GPIO number of DRDY", min_value=0, max_value=27)
    drdy_chip: str = option("/dev/gpiochip0", "gpiochip device for gpiod")
    test_signal: bool = option(False, "feed the internal test signal to every channel")


@dataclass(frozen=True)
class Mcp3008Config:
    vref_v: float = option(3.3, "ADC reference voltage", min_value=2.7, max_value=5.5)
    vdd_v: float = option(
        3.3, "ADC supply voltage (sets the SCLK limit)", min_value=2.7, max_value=5.5
    )
    offset_v: float = option(
        1.65, "front-end output at 0 µV (mid-rail bias)", min_value=0.0, max_value=5.5
    )
    frontend_gain: float = option(
        1000.0, "analogue gain before the ADC", min_value=1.0, max_value=1e6
    )
    spi_speed_hz: int = option(
        1_000_000,
        "SPI clock (datasheet limit 18 x 200 ksps at 5 V)",
        min_value=10_000,
        max_value=3_600_000,
    )
    differential: bool = option(False, "read pairs CH0-CH1, CH2-CH3, ... instead of single ends")


@dataclass(frozen=True)
class AdcConfig:
    backend: str = option("ads1299", "ADC chip", choices=("ads1299", "mcp3008"))
    bus: str = option("simulated", "SPI bus", choices=("spidev", "simulated"))
    sample_rate_hz: int = option(1000, "sampling rate per channel", min_value=250, max_value=16000)
    channels: int = option(8, "EMG channels used (first N inputs)", min_value=1, max_value=8)
    spi_bus: int = option(0, "spidev bus number (/dev/spidevB.D)", min_value=0, max_value=6)
    spi_device: int = option(0, "spidev chip select (/dev/spidevB.D)", min_value=0, max_value=3)
    ads1299: Ads1299Config = section(Ads1299Config, "ADS1299 front end")
    mcp3008: Mcp3008Config = section(Mcp3008Config, "MCP3008 front end")


@dataclass(frozen=True)
class ServoChannelConfig:
    channel: int = option(0, "PCA9685 output 0-15", min_value=0, max_value=15)
    min_pulse_us: float = option(500.0, "pulse at 0° (open)", min_value=300.0, max_value=2700.0)
    max_pulse_us: float = option(
        2500.0, "pulse at 180° (flexed)", min_value=300.0, max_value=2700.0
    )
    inverted: bool = option(False, "servo mounted mirrored: 0° ↔ 180°")
    trim_deg: float = option(0.0, "offset added to every command", min_value=-30.0, max_value=30.0)
    min_angle_deg: float = option(
        0.0, "mechanical limit, open side", min_value=0.0, max_value=180.0
    )
    max_angle_deg: float = option(
        180.0, "mechanical limit, flexed side", min_value=0.0, max_value=180.0
    )


def _servo(channel: int) -> Any:
    return section(lambda: ServoChannelConfig(channel=channel), f"servo on output {channel}")


@dataclass(frozen=True)
class ServoConfig:
    bus: str = option("simulated", "I²C bus", choices=("i2c", "simulated"))
    i2c_bus: int = option(1, "/dev/i2c-N", min_value=0, max_value=20)
    address: int = option(0x40, "PCA9685 7-bit address", min_value=0x40, max_value=0x7F)
    frequency_hz: float = option(50.0, "servo frame rate", min_value=24.0, max_value=400.0)
    thumb: ServoChannelConfig = _servo(0)
    index: ServoChannelConfig = _servo(1)
    middle: ServoChannelConfig = _servo(2)
    ring: ServoChannelConfig = _servo(3)
    little: ServoChannelConfig = _servo(4)

    def fingers(self) -> tuple[ServoChannelConfig, ...]:
        """The five servo settings in finger order (thumb … little)."""
        return (self.thumb, self.index, self.middle, self.ring, self.little)


@dataclass(frozen=True)
class SimulationConfig:
    seed: int = option(0, "seed of the synthetic wearer", min_value=0, max_value=2**32 - 1)
    mains_hz: float = option(
        50.0, "mains hum in the synthetic EMG (0 = none)", choices=(0.0, 50.0, 60.0)
    )
    chip_id: int = option(0x3E, "ID register of the simulated ADS1299", min_value=0, max_value=0xFF)
    hand_speed_deg_s: float = option(
        350.0, "simulated servo speed", min_value=10.0, max_value=2000.0
    )
    wearer: str = option(
        "sequence",
        "what the simulated wearer does until `emgd record` or `emgd test` cues it",
        choices=("sequence", "rest"),
    )
    fault: str = option(
        "none",
        "fault the simulated ADS1299 injects (fault-injection tests and demos)",
        choices=("none", "no_drdy", "garbage", "reset"),
    )
    fault_at_s: float = option(
        5.0, "seconds after start when the fault begins", min_value=0.0, max_value=1e6
    )
    fault_duration_s: float = option(
        1.0, "how long a no_drdy or garbage fault lasts", min_value=0.0, max_value=1e6
    )


@dataclass(frozen=True)
class ModelConfig:
    path: str = option(
        "",
        "ONNX model; empty = the active `emgd model install`ed one, else the shipped default",
    )
    mains_hz: float = option(
        50.0, "mains notch of the live filter (0 = none)", choices=(0.0, 50.0, 60.0)
    )


@dataclass(frozen=True)
class SafetyConfig:
    max_rate_deg_s: float = option(
        400.0, "highest commanded finger speed", min_value=10.0, max_value=2000.0
    )
    safe_pose: str = option(
        "rest",
        "pose a persistent fault moves to",
        choices=("rest", "open", "power", "chuck", "pinch"),
    )
    safe_pose_rate_deg_s: float = option(
        60.0, "speed of the move to the safe pose", min_value=5.0, max_value=500.0
    )
    fault_hold_s: float = option(
        1.0,
        "a fault lasting longer moves the hand to the safe pose",
        min_value=0.0,
        max_value=60.0,
    )
    stale_after_s: float = option(
        0.1, "no new samples for this long is a fault", min_value=0.02, max_value=5.0
    )
    smoothing: bool = option(True, "One Euro smoothing of the model output")
    min_cutoff_hz: float = option(2.0, "One Euro cutoff when still", min_value=0.05, max_value=50.0)
    beta: float = option(0.02, "One Euro cutoff increase per deg/s", min_value=0.0, max_value=10.0)


@dataclass(frozen=True)
class DaemonConfig:
    runtime_dir: str = option("", "status socket folder; empty = $RUNTIME_DIRECTORY or /run/emgd")
    state_dir: str = option("", "calibration folder; empty = $STATE_DIRECTORY or /var/lib/emgd")
    socket_group: str = option("emgd", "group allowed to pause, resume and calibrate")
    realtime_priority: int = option(
        50, "SCHED_FIFO priority of acquisition (0 = normal)", min_value=0, max_value=99
    )
    acquisition_cpu: int = option(
        -1, "CPU to pin acquisition to (-1 = any)", min_value=-1, max_value=255
    )
    loop_priority: int = option(
        40,
        "SCHED_FIFO priority of the control loop, below acquisition's (0 = normal)",
        min_value=0,
        max_value=98,
    )
    lock_memory: bool = option(True, "mlockall the acquisition process")


@dataclass(frozen=True)
class StatusConfig:
    max_clients: int = option(
        64, "status socket connections in all (beyond: the reserve)", min_value=1, max_value=4096
    )
    max_clients_per_uid: int = option(
        16, "status socket connections one peer uid may hold", min_value=1, max_value=4096
    )
    reserved_clients: int = option(
        4,
        "connections beyond max_clients for the first of root's and the socket group's",
        min_value=0,
        max_value=64,
    )
    idle_timeout_s: float = option(
        10.0,
        "a client without a complete request for this long is dropped",
        min_value=0.5,
        max_value=3600.0,
    )
    max_requests_per_s: float = option(
        50.0, "requests per second per client (bursts of 2 s)", min_value=1.0, max_value=10_000.0
    )
    max_bytes_per_s: float = option(
        65_536.0,
        "request bytes per second per client (bursts of 2 s)",
        min_value=32_768.0,
        max_value=1e8,
    )
    max_cpu_ms_per_s: float = option(
        50.0, "CPU time the status server may use per second", min_value=5.0, max_value=1000.0
    )


@dataclass(frozen=True)
class LslConfig:
    enabled: bool = option(False, "publish EMG, angles and markers on Lab Streaming Layer")
    name: str = option("emgd", "stream name prefix ('<name> EMG', '<name> angles', ...)")
    source_id: str = option("", "source_id prefix; empty = derived from the board and machine")
    queue_chunks: int = option(
        256, "chunks the loop may hand the publisher ahead of it", min_value=4, max_value=65536
    )
    dejitter: bool = option(
        True, "stamp frames by a line through their DRDY times (false: each frame's own)"
    )


@dataclass(frozen=True)
class Config:
    adc: AdcConfig = section(AdcConfig, "EMG acquisition")
    servo: ServoConfig = section(ServoConfig, "PCA9685 servo board")
    model: ModelConfig = section(ModelConfig, "the network")
    safety: SafetyConfig = section(SafetyConfig, "limits between model and servos")
    daemon: DaemonConfig = section(DaemonConfig, "paths, permissions, scheduling")
    status: StatusConfig = section(StatusConfig, "limits of the status socket")
    simulation: SimulationConfig = section(SimulationConfig, "the simulated board")
    lsl: LslConfig = section(LslConfig, "Lab Streaming Layer outlets (pip install 'emgd[lsl]')")
    #: Where the values came from (for messages); not an option.
    source: str = field(default="<defaults>", compare=False, metadata={"internal": True})


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Iterable[str] = (),
) -> Config:
    """Read, merge and validate the configuration.

    Parameters
    ----------
    path:
        The TOML file; ``None`` uses ``$EMGD_CONFIG`` or, failing that, only the defaults.
    env:
        Environment to read ``EMGD__SECTION__KEY`` overrides from (default: ``os.environ``).
    overrides:
        ``section.key=value`` strings from the command line.
    """
    env = os.environ if env is None else env
    if path is None and env.get(ENV_CONFIG_PATH):
        path = Path(env[ENV_CONFIG_PATH])
    tree: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        tree = _read_toml(path)
        source = str(path)
    # dotted key → where an override came from, so a bad override is not blamed on the file
    origins: dict[str, str] = {}
    for key, raw in sorted(env.items()):
        if key.startswith(ENV_PREFIX):
            dotted = key[len(ENV_PREFIX) :].lower().replace("__", ".")
            where = f"environment {key}"
            _set_dotted(tree, dotted, _parse_value(raw, where))
            origins[dotted] = where
    for item in overrides:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        where = f"--set {name.strip()}"
        _set_dotted(tree, name.strip(), _parse_value(raw.strip(), where))
        origins[name.strip()] = where
    config = _build(Config, tree, source, prefix="", origins=origins)
    config = dataclasses.replace(config, source=source)
    validate(config)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied reading the config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): not a TOML file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        reason = describe_os_error(exc)
        raise ConfigError(f"{path}: cannot read the config file: {reason}") from None


def _parse_value(raw: str, where: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        # A bare word is taken as a string, so `--set adc.backend=mcp3008` works.
        if raw and all(ch.isalnum() or ch in "_-./" for ch in raw):
            return raw
        raise ConfigError(f"{where}: {raw!r} is not a TOML value") from None


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _build(
    cls: type[T],
    table: Mapping[str, Any],
    source: str,
    prefix: str,
    *,
    origins: Mapping[str, str],
) -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    known = {n for n, f in fields.items() if not f.metadata.get("internal")}
    for key in table:
        if key not in known:
            where = f"{prefix}{key}"
            hint = ", ".join(sorted(known))
            origin = _origin(origins, where, source)
            raise ConfigError(f"{origin}: unknown key {where!r} (known here: {hint})")
    values: dict[str, Any] = {}
    for name in known:
        f = fields[name]
        kind = hints[name]
        key = f"{prefix}{name}"
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            sub = table.get(name, {})
            if not isinstance(sub, Mapping):
                origin = _origin(origins, key, source)
                raise ConfigError(f"{origin}: {key} = {sub!r}: must be a [section]")
            factory: Any = f.default_factory
            values[name] = _build_section(kind, factory(), sub, source, f"{key}.", origins=origins)
        elif name in table:
            origin = _origin(origins, key, source)
            values[name] = _check(table[name], kind, f.metadata, origin, key)
    return cls(**values)


def _origin(origins: Mapping[str, str], dotted: str, source: str) -> str:
    """Where the value at ``dotted`` came from: an override of it, of a section holding it,
    or of a key below it (an override that turned a value into a table); else the file."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        where = origins.get(".".join(parts[:end]))
        if where is not None:
            return where
    for key, where in origins.items():
        if key.startswith(f"{dotted}."):
            return where
    return source


def _build_section(
    kind: type[T],
    default: T,
    table: Mapping[str, Any],
    source: str,
    prefix: str,
    *,
    origins: Mapping[str, str],
) -> T:
    # Sections whose defaults differ per instance (servo channels) start from that default.
    built = _build(kind, table, source, prefix, origins=origins)
    changes = {
        f.name: getattr(built, f.name)
        for f in dataclasses.fields(kind)  # type: ignore[arg-type]
        if f.name in table or dataclasses.is_dataclass(getattr(built, f.name))
    }
    return dataclasses.replace(default, **changes)  # type: ignore[type-var]


def _check(value: Any, kind: Any, meta: Mapping[str, Any], source: str, key: str) -> Any:
    shown = f"{source}: {key} = {value!r}"
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{shown}: must be true or false")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{shown}: must be a whole number")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{shown}: must be a number")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{shown}: must be finite")
    elif kind is str and not isinstance(value, str):
        raise ConfigError(f"{shown}: must be a string")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        allowed = ", ".join(repr(c) if isinstance(c, str) else f"{c:g}" for c in choices)
        raise ConfigError(f"{shown}: must be one of {allowed}")
    low, high = meta.get("min"), meta.get("max")
    if low is not None and value < low:
        raise ConfigError(f"{shown}: must be at least {_number(low)}")
    if high is not None and value > high:
        raise ConfigError(f"{shown}: must be at most {_number(high)}")
    return value


def _number(bound: float) -> str:
    """A bound as written in messages: whole numbers in full, others in short form."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def validate(config: Config) -> None:
    """Rules that involve more than one option; each error names the keys involved."""
    src = config.source
    adc = config.adc
    if adc.backend == "ads1299" and adc.sample_rate_hz not in ADS1299_RATES_HZ:
        rates = ", ".join(str(r) for r in ADS1299_RATES_HZ)
        raise ConfigError(
            f"{src}: adc.sample_rate_hz = {adc.sample_rate_hz}: the ADS1299 runs at {rates} only"
        )
    if adc.backend == "mcp3008":
        mcp = adc.mcp3008
        n_inputs = 4 if mcp.differential else 8
        if adc.channels > n_inputs:
            raise ConfigError(
                f"{src}: adc.channels = {adc.channels}: the MCP3008 has {n_inputs} "
                f"{'differential pairs' if mcp.differential else 'inputs'}"
            )
        if mcp.offset_v > mcp.vref_v:
            raise ConfigError(
                f"{src}: adc.mcp3008.offset_v = {mcp.offset_v:g}: above vref_v = {mcp.vref_v:g}"
            )
    d = config.daemon
    if d.loop_priority and d.loop_priority >= (d.realtime_priority or 1):
        raise ConfigError(
            f"{src}: daemon.loop_priority = {d.loop_priority}: must be below "
            f"daemon.realtime_priority = {d.realtime_priority} (acquisition must preempt the "
            "loop: the ADS1299 has no FIFO), or 0"
        )
    st = config.status
    if st.max_clients_per_uid > st.max_clients:
        raise ConfigError(
            f"{src}: status.max_clients_per_uid = {st.max_clients_per_uid}: must not exceed "
            f"status.max_clients = {st.max_clients}"
        )
    for finger, servo in zip(FINGERS, config.servo.fingers(), strict=True):
        key = f"servo.{finger}"
        if servo.min_pulse_us >= servo.max_pulse_us:
            raise ConfigError(
                f"{src}: {key}.min_pulse_us = {servo.min_pulse_us:g}: must be below "
                f"max_pulse_us = {servo.max_pulse_us:g} (use inverted = true to mirror)"
            )
        if servo.min_angle_deg >= servo.max_angle_deg:
            raise ConfigError(
                f"{src}: {key}.min_angle_deg = {servo.min_angle_deg:g}: must be below "
                f"max_angle_deg = {servo.max_angle_deg:g}"
            )
    first_user: dict[int, str] = {}
    for finger, servo in zip(FINGERS, config.servo.fingers(), strict=True):
        other = first_user.setdefault(servo.channel, finger)
        if other != finger:
            raise ConfigError(
                f"{src}: servo.{finger}.channel = {servo.channel}: output already used by "
                f"servo.{other}.channel (each finger needs its own output)"
            )


def describe_options(cls: type[Any] = Config, prefix: str = "") -> list[tuple[str, Any, str]]:
    """Every option as ``(dotted key, default, description with rule)``, for docs and tests."""
    rows: list[tuple[str, Any, str]] = []
    instance = cls()
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            rows.extend(_describe_instance(value, f"{prefix}{f.name}."))
            continue
        rows.append((f"{prefix}{f.name}", value, _rule_text(f)))
    return rows


def _describe_instance(instance: Any, prefix: str) -> list[tuple[str, Any, str]]:
    rows: list[tuple[str, Any, str]] = []
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            rows.extend(_describe_instance(value, f"{prefix}{f.name}."))
        else:
            rows.append((f"{prefix}{f.name}", value, _rule_text(f)))
    return rows


def _rule_text(f: dataclasses.Field[Any]) -> str:
    meta = f.metadata
    text = str(meta.get("doc", ""))
    if meta.get("choices") is not None:
        text += " (one of " + ", ".join(str(c) for c in meta["choices"]) + ")"
    elif meta.get("min") is not None and meta.get("max") is not None:
        text += f" ({_number(meta['min'])} … {_number(meta['max'])})"
    elif meta.get("min") is not None:
        text += f" (at least {_number(meta['min'])})"
    elif meta.get("max") is not None:
        text += f" (at most {_number(meta['max'])})"
    return text


def default_config_text() -> str:
    """The commented default config shipped in the package."""
    return (Path(__file__).with_name("default.toml")).read_text(encoding="utf-8")
