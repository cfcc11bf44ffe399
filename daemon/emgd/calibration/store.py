"""Calibrations on disk: versioned JSON in the state directory, written atomically.

A calibration is the wearer's per-channel normalisation (offset and scale after the
filter) plus what was measured to get it. It is data, not config: ``emgd calibrate``
writes it, the daemon reads it at start and on ``reload``. Writes go to a temporary file
in the same folder, are fsynced, renamed over the old file and the folder is fsynced, so a
power cut leaves either the old or the new file, never half of one; the previous good file
is kept as ``calibration.prev.json``. A file that does not parse is a
:class:`~emgd.errors.CalibrationError` naming the file and what is wrong. This module does
no signal processing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emgd.atomic_file import keep_copy, write_atomic
from emgd.dsp.normalise import Normaliser
from emgd.errors import CalibrationError

FORMAT_VERSION = 1
FILE_NAME = "calibration.json"
PREVIOUS_NAME = "calibration.prev.json"
TMP_PREFIX = ".calibration."


@dataclass(frozen=True)
class StoredCalibration:
    """One calibration as stored."""

    offset: tuple[float, ...]
    scale: tuple[float, ...]
    sample_rate_hz: float
    noise_floor_uv: tuple[float, ...] = ()
    effort_level_uv: tuple[float, ...] = ()
    created: str = ""
    source: str = "emgd calibrate"

    def __post_init__(self) -> None:
        if not self.offset or len(self.offset) != len(self.scale):
            raise CalibrationError(
                f"calibration: offset ({len(self.offset)}) and scale ({len(self.scale)}) "
                "need one value per channel"
            )
        for c, (o, s) in enumerate(zip(self.offset, self.scale, strict=True)):
            if not (math.isfinite(o) and math.isfinite(s) and s > 0):
                raise CalibrationError(
                    f"calibration: channel {c + 1}: offset {o!r} / scale {s!r} unusable"
                )

    @property
    def n_channels(self) -> int:
        return len(self.scale)

    def normaliser(self) -> Normaliser:
        return Normaliser(np.array(self.offset), np.array(self.scale))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "created": self.created,
            "source": self.source,
            "sample_rate_hz": self.sample_rate_hz,
            "offset": list(self.offset),
            "scale": list(self.scale),
            "noise_floor_uv": list(self.noise_floor_uv),
            "effort_level_uv": list(self.effort_level_uv),
        }

    def identity(self) -> str:
        """Short content hash, shown in status and logs."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: object, where: str) -> StoredCalibration:
        if not isinstance(data, dict):
            raise CalibrationError(f"{where}: not a JSON object")
        if data.get("version") != FORMAT_VERSION:
            raise CalibrationError(
                f"{where}: version {data.get('version')!r}, this emgd reads {FORMAT_VERSION}"
            )
        try:
            return cls(
                offset=tuple(float(v) for v in data["offset"]),
                scale=tuple(float(v) for v in data["scale"]),
                sample_rate_hz=float(data["sample_rate_hz"]),
                noise_floor_uv=tuple(float(v) for v in data.get("noise_floor_uv", [])),
                effort_level_uv=tuple(float(v) for v in data.get("effort_level_uv", [])),
                created=str(data.get("created", "")),
                source=str(data.get("source", "")),
            )
        except KeyError as exc:
            raise CalibrationError(f"{where}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise CalibrationError(f"{where}: bad value: {exc}") from None
        except CalibrationError as exc:
            raise CalibrationError(f"{where}: {exc}") from None


def now_text() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def load(state_dir: Path) -> StoredCalibration | None:
    """The stored calibration, or None when there is none yet."""
    path = state_dir / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationError(
            f"{path}: corrupt (not JSON: {exc.msg} at line {exc.lineno})"
        ) from None
    return StoredCalibration.from_dict(data, str(path))


def save(state_dir: Path, calibration: StoredCalibration) -> Path:
    """Write atomically, keeping the previous file; returns the path written."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / FILE_NAME
    payload = json.dumps(calibration.to_dict(), indent=2) + "\n"
    if path.exists():
        # The current file stays in place while its copy is made: no moment without one.
        keep_copy(path, state_dir / PREVIOUS_NAME, prefix=TMP_PREFIX)
    write_atomic(path, payload.encode("utf-8"), prefix=TMP_PREFIX)
    return path
