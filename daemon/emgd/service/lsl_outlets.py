"""The daemon's three Lab Streaming Layer streams: what they carry and how pylsl opens them.

- ``<name> EMG`` (type ``EMG``): one float32 channel per electrode in µV, at the ADC's rate,
  labelled and with units per the XDF meta-data conventions
  (``desc/channels/channel/{label,unit,type}``, ``desc/acquisition``).
- ``<name> angles`` (type ``Angles``): ten float32 channels in degrees of flexion, once per
  hop: the five commanded angles (what the servos were sent) then the five the model
  proposed (NaN until its first window). One outlet keeps each pair on one timestamp.
- ``<name> markers`` (type ``Markers``): one string channel, irregular: cues, safety-state
  changes, faults.

The ``source_id`` is stable across restarts of the same board on the same machine (ADC
kind, the machine's serial, a hash of the board's description: chip ID, channels, rate,
gain, bus), so LabRecorder finds the streams again after the service restarts.

This module owns the layouts, the import of pylsl (a missing package or library is one
:class:`~emgd.errors.ConfigError` line naming the extra) and the adaptor from
:class:`~emgd.service.lsl_publisher.Outlet` to pylsl. It pushes nothing itself.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from emgd import __version__
from emgd.config import FINGERS, Config
from emgd.data.bdf_writer import default_labels
from emgd.errors import ConfigError

LSL_EXTRA_HINT = "pip install 'emgd[lsl]'"
#: Where a machine's serial number is read from, first found wins (a Pi's is in the
#: device tree; elsewhere the systemd machine id).
SERIAL_PATHS = (
    Path("/sys/firmware/devicetree/base/serial-number"),
    Path("/proc/device-tree/serial-number"),
    Path("/etc/machine-id"),
)
SERIAL_CHARS = 16
EMG_UNIT = "microvolts"
ANGLE_UNIT = "degrees"
EMG_STREAM = "emg"
ANGLES_STREAM = "angles"
MARKERS_STREAM = "markers"
MANUFACTURER = {"ads1299": "Texas Instruments", "mcp3008": "Microchip"}


@dataclass(frozen=True)
class StreamSpec:
    """One outlet's description, independent of pylsl."""

    key: str  # emg, angles or markers (the publisher's name for it)
    name: str
    type: str
    channel_labels: tuple[str, ...]
    channel_units: tuple[str, ...]
    channel_types: tuple[str, ...]
    nominal_rate_hz: float  # 0 = irregular
    channel_format: str  # "float32" or "string"
    source_id: str
    acquisition: tuple[tuple[str, str], ...] = ()

    @property
    def n_channels(self) -> int:
        return len(self.channel_labels)


def import_pylsl(config: Config) -> ModuleType:
    """pylsl with its liblsl loaded, or one ConfigError line saying what to install."""
    where = f"{config.source}: lsl.enabled = true"
    try:
        import pylsl
    except ImportError as exc:
        raise ConfigError(f"{where} needs the 'lsl' extra ({LSL_EXTRA_HINT}): {exc}") from None
    except RuntimeError as exc:  # pylsl found, its liblsl not
        raise ConfigError(
            f"{where}: pylsl cannot load liblsl ({exc}); install liblsl for this machine or "
            "set PYLSL_LIB to its path"
        ) from None
    module: ModuleType = pylsl
    return module


def machine_serial(paths: Sequence[Path] = SERIAL_PATHS) -> str:
    """The machine's serial (Pi device tree, else machine id), else its host name."""
    for path in paths:
        try:
            text = path.read_bytes().decode("ascii", "replace").strip("\x00\r\n\t ")
        except OSError:
            continue
        if text:
            return text[-SERIAL_CHARS:]
    return socket.gethostname()


def board_source_id(config: Config, board_description: str, serial: str) -> str:
    """``<prefix>-<adc>-<serial>-<hash>``: the same board on the same machine, the same id.

    ``lsl.source_id`` replaces everything before the hash; the hash covers the board's
    description (chip ID, channels, rate, gain, bus) and the channel count.
    """
    digest = hashlib.sha256(
        f"{board_description}|{config.adc.channels}|{config.adc.bus}".encode()
    ).hexdigest()[:8]
    prefix = config.lsl.source_id or f"emgd-{config.adc.backend}-{serial}"
    return f"{prefix}-{digest}"


def stream_specs(
    config: Config, board_description: str, hop_s: float, source_id: str
) -> tuple[StreamSpec, StreamSpec, StreamSpec]:
    """The EMG, angles and markers streams of a daemon with this config and board."""
    name = config.lsl.name
    n = config.adc.channels
    acquisition = (
        ("manufacturer", MANUFACTURER.get(config.adc.backend, config.adc.backend)),
        ("model", config.adc.backend.upper()),
        ("serial_number", source_id),
        ("description", board_description),
        ("software", f"emgd {__version__}"),
    )
    emg = StreamSpec(
        key=EMG_STREAM,
        name=f"{name} EMG",
        type="EMG",
        channel_labels=default_labels(n),
        channel_units=(EMG_UNIT,) * n,
        channel_types=("EMG",) * n,
        nominal_rate_hz=float(config.adc.sample_rate_hz),
        channel_format="float32",
        source_id=f"{source_id}:emg",
        acquisition=acquisition,
    )
    labels = tuple(f"commanded_{f}" for f in FINGERS) + tuple(f"model_{f}" for f in FINGERS)
    angles = StreamSpec(
        key=ANGLES_STREAM,
        name=f"{name} angles",
        type="Angles",
        channel_labels=labels,
        channel_units=(ANGLE_UNIT,) * len(labels),
        channel_types=("Commanded",) * len(FINGERS) + ("Model",) * len(FINGERS),
        nominal_rate_hz=1.0 / hop_s,
        channel_format="float32",
        source_id=f"{source_id}:angles",
        acquisition=acquisition,
    )
    markers = StreamSpec(
        key=MARKERS_STREAM,
        name=f"{name} markers",
        type="Markers",
        channel_labels=("event",),
        channel_units=("",),
        channel_types=("Marker",),
        nominal_rate_hz=0.0,
        channel_format="string",
        source_id=f"{source_id}:markers",
        acquisition=acquisition,
    )
    return emg, angles, markers


def stream_info(pylsl: ModuleType, spec: StreamSpec) -> Any:
    """A pylsl ``StreamInfo`` carrying ``spec`` (channels and acquisition in ``desc``)."""
    fmt = pylsl.cf_string if spec.channel_format == "string" else pylsl.cf_float32
    info = pylsl.StreamInfo(
        spec.name, spec.type, spec.n_channels, spec.nominal_rate_hz, fmt, spec.source_id
    )
    desc = info.desc()
    channels = desc.append_child("channels")
    for label, unit, kind in zip(
        spec.channel_labels, spec.channel_units, spec.channel_types, strict=True
    ):
        channel = channels.append_child("channel")
        channel.append_child_value("label", label)
        if unit:
            channel.append_child_value("unit", unit)
        channel.append_child_value("type", kind)
    acquisition = desc.append_child("acquisition")
    for key, value in spec.acquisition:
        acquisition.append_child_value(key, value)
    return info


class PylslOutlet:
    """A pylsl ``StreamOutlet`` behind the publisher's ``push_chunk(samples, stamps)``."""

    def __init__(self, pylsl: ModuleType, spec: StreamSpec) -> None:
        self.spec = spec
        self._outlet = pylsl.StreamOutlet(stream_info(pylsl, spec))

    def push_chunk(self, samples: Any, timestamps_s: Sequence[float]) -> None:
        if self.spec.channel_format == "string":
            for row, stamp in zip(samples, timestamps_s, strict=True):
                self._outlet.push_sample(row, stamp)
            return
        self._outlet.push_chunk(samples, list(timestamps_s))
