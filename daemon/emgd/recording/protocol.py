"""The protocol of an ``emgd record`` session and the schedule of cues it expands to.

This module owns what a recording protocol may say (gestures from :mod:`emgd.poses`,
repetitions, hold and rest seconds, effort levels and effort ramps), its defaults and
bounds, reading it from a small TOML file or from a mapping (what the client sends over
the socket), and :func:`schedule`: the list of cues, with times in seconds from the start
of the session. It must not know the daemon, clocks, frames or files other than the
protocol file it is asked to read.

A protocol file holds top-level keys only, every one optional::

    name = "grasps"                 # goes into the recording's session annotation
    gestures = ["power", "pinch"]   # poses of emgd.poses (not "rest")
    reps = 3                        # repetitions of the whole block
    hold_s = 4.0                    # seconds each gesture is held (or ramped)
    rest_s = 3.0                    # rest after each hold
    lead_in_s = 5.0                 # rest before the first cue (the rest baseline)
    efforts = [0.3, 0.6, 1.0]       # effort levels, fraction of the full pose
    ramps = [[0.2, 0.8]]            # effort ramps from → to over hold_s

An unknown key, a value of the wrong type or out of its bounds is a
:class:`~emgd.errors.ConfigError` naming the file, the key, the value and the rule.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emgd.errors import ConfigError, describe_os_error
from emgd.poses import GESTURE_NAMES, REST

# --- Bounds ------------------------------------------------------------------------------
MAX_REPS = 100
MIN_PHASE_S = 0.5
MAX_PHASE_S = 60.0
MIN_LEAD_IN_S = 1.0
MAX_LEVELS = 10
#: Longest session a protocol may describe.
MAX_TOTAL_S = 2 * 3600.0
NAME_RULE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")

# --- Defaults ----------------------------------------------------------------------------
DEFAULT_NAME = "default"
DEFAULT_REPS = 3
DEFAULT_HOLD_S = 4.0
DEFAULT_REST_S = 3.0
DEFAULT_LEAD_IN_S = 5.0
DEFAULT_EFFORTS: tuple[float, ...] = (1.0,)

KEYS: tuple[str, ...] = (
    "name",
    "gestures",
    "reps",
    "hold_s",
    "rest_s",
    "lead_in_s",
    "efforts",
    "ramps",
)


@dataclass(frozen=True)
class Cue:
    """One step of the schedule: hold a pose at an effort (or ramp it) for a while.

    Attributes
    ----------
    onset_s:
        Seconds from the start of the session.
    duration_s:
        Seconds the cue lasts.
    pose:
        ``"rest"`` or a gesture of :data:`emgd.poses.GESTURE_NAMES`.
    effort_start, effort_end:
        Effort (fraction of the full pose, 0-1) at the start and the end; equal for a hold,
        different for a ramp; 0 for rest.
    rep:
        Repetition number (1-based; 0 for the lead-in rest).
    """

    onset_s: float
    duration_s: float
    pose: str
    effort_start: float
    effort_end: float
    rep: int

    @property
    def end_s(self) -> float:
        return self.onset_s + self.duration_s

    @property
    def is_ramp(self) -> bool:
        return self.effort_start != self.effort_end

    def effort_at(self, t_s: float) -> float:
        """The cued effort at ``t_s`` seconds from the session start (linear in a ramp)."""
        if not self.is_ramp or self.duration_s <= 0:
            return self.effort_start
        u = min(1.0, max(0.0, (t_s - self.onset_s) / self.duration_s))
        return self.effort_start + u * (self.effort_end - self.effort_start)

    def effort_text(self) -> str:
        """``"0.5"`` for a hold, ``"0.2:0.8"`` for a ramp (the annotation's effort value)."""
        if self.is_ramp:
            return f"{self.effort_start:g}:{self.effort_end:g}"
        return f"{self.effort_start:g}"


@dataclass(frozen=True)
class Protocol:
    """What a session records; see the module docstring for the meaning of each field."""

    name: str = DEFAULT_NAME
    gestures: tuple[str, ...] = GESTURE_NAMES
    reps: int = DEFAULT_REPS
    hold_s: float = DEFAULT_HOLD_S
    rest_s: float = DEFAULT_REST_S
    lead_in_s: float = DEFAULT_LEAD_IN_S
    efforts: tuple[float, ...] = DEFAULT_EFFORTS
    ramps: tuple[tuple[float, float], ...] = ()

    def to_mapping(self) -> dict[str, Any]:
        """The protocol as plain JSON/TOML values (what :func:`from_mapping` reads back)."""
        return {
            "name": self.name,
            "gestures": list(self.gestures),
            "reps": self.reps,
            "hold_s": self.hold_s,
            "rest_s": self.rest_s,
            "lead_in_s": self.lead_in_s,
            "efforts": list(self.efforts),
            "ramps": [list(r) for r in self.ramps],
        }

    @property
    def total_s(self) -> float:
        """Length of the whole session in seconds."""
        cues = schedule(self)
        return cues[-1].end_s if cues else 0.0


def _number(value: object, key: str, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}: {key} = {value!r}: expected a number {lo:g}-{hi:g}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}: {key} = {value!r}: must be within {lo:g}-{hi:g}")
    return float(value)


def _effort(value: object, key: str, where: str, *, zero_ok: bool) -> float:
    rule = "0-1" if zero_ok else "above 0, at most 1"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not (0.0 <= value <= 1.0)
        or (value == 0 and not zero_ok)
    ):
        raise ConfigError(f"{where}: {key} value {value!r}: expected an effort {rule}")
    return float(value)


def _list(value: object, key: str, where: str, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where}: {key} = {value!r}: expected a list of {what}")
    if len(value) > MAX_LEVELS and key != "gestures":
        raise ConfigError(f"{where}: {key}: at most {MAX_LEVELS} entries, got {len(value)}")
    return list(value)


def from_mapping(data: Mapping[str, Any], where: str) -> Protocol:
    """Validate a protocol given as a mapping (a TOML file's table, a socket request).

    Parameters
    ----------
    data:
        Any subset of :data:`KEYS`; missing keys take their defaults.
    where:
        Named at the start of every error (the file, or ``record.start protocol``).

    Raises
    ------
    ConfigError
        On an unknown key, a wrong type, a value out of bounds, a repeated gesture, effort
        level or ramp, nothing to record, or a session longer than :data:`MAX_TOTAL_S`.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table of protocol keys, got {data!r}")
    for key in data:
        if key not in KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (known keys: {', '.join(KEYS)})")
    name = data.get("name", DEFAULT_NAME)
    if not isinstance(name, str) or not NAME_RULE.match(name):
        raise ConfigError(
            f"{where}: name = {name!r}: expected 1-32 letters, digits, '.', '_' or '-'"
        )
    gestures: list[str] = []
    for g in _list(data.get("gestures", list(GESTURE_NAMES)), "gestures", where, "gestures"):
        if g not in GESTURE_NAMES:
            raise ConfigError(
                f"{where}: gestures: {g!r} is not a gesture (choose from "
                f"{', '.join(GESTURE_NAMES)}; {REST!r} is recorded between them anyway)"
            )
        if g in gestures:
            raise ConfigError(f"{where}: gestures: {g!r} is listed twice")
        gestures.append(g)
    reps = data.get("reps", DEFAULT_REPS)
    if isinstance(reps, bool) or not isinstance(reps, int) or not 1 <= reps <= MAX_REPS:
        raise ConfigError(f"{where}: reps = {reps!r}: expected a whole number 1-{MAX_REPS}")
    hold_s = _number(data.get("hold_s", DEFAULT_HOLD_S), "hold_s", where, MIN_PHASE_S, MAX_PHASE_S)
    rest_s = _number(data.get("rest_s", DEFAULT_REST_S), "rest_s", where, MIN_PHASE_S, MAX_PHASE_S)
    lead_in_s = _number(
        data.get("lead_in_s", DEFAULT_LEAD_IN_S), "lead_in_s", where, MIN_LEAD_IN_S, MAX_PHASE_S
    )
    efforts: list[float] = []
    for e in _list(data.get("efforts", list(DEFAULT_EFFORTS)), "efforts", where, "efforts"):
        level = _effort(e, "efforts", where, zero_ok=False)
        if level in efforts:
            raise ConfigError(f"{where}: efforts: {level:g} is listed twice")
        efforts.append(level)
    ramps: list[tuple[float, float]] = []
    for r in _list(data.get("ramps", []), "ramps", where, "[from, to] pairs"):
        if not isinstance(r, list | tuple) or len(r) != 2:
            raise ConfigError(f"{where}: ramps entry {r!r}: expected [from, to]")
        ramp = (
            _effort(r[0], "ramps", where, zero_ok=True),
            _effort(r[1], "ramps", where, zero_ok=True),
        )
        if ramp[0] == ramp[1]:
            raise ConfigError(f"{where}: ramps entry {list(r)!r}: from and to must differ")
        if ramp in ramps:
            raise ConfigError(f"{where}: ramps: {list(r)!r} is listed twice")
        ramps.append(ramp)
    if not gestures or not (efforts or ramps):
        raise ConfigError(
            f"{where}: nothing to record: name at least one gesture and one effort or ramp"
        )
    protocol = Protocol(
        name=name,
        gestures=tuple(gestures),
        reps=reps,
        hold_s=hold_s,
        rest_s=rest_s,
        lead_in_s=lead_in_s,
        efforts=tuple(efforts),
        ramps=tuple(ramps),
    )
    if protocol.total_s > MAX_TOTAL_S:
        raise ConfigError(
            f"{where}: the session would last {protocol.total_s / 60:.0f} min; at most "
            f"{MAX_TOTAL_S / 60:.0f} min (fewer reps, gestures or levels)"
        )
    return protocol


def load_protocol(path: Path) -> Protocol:
    """Read and validate a protocol TOML file (see the module docstring).

    Raises
    ------
    ConfigError
        When the file cannot be read, is not TOML, or holds a bad key or value (the message
        names the file).
    """
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: protocol file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): not a TOML file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a protocol file") from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the protocol file: {describe_os_error(exc)}"
        ) from None
    return from_mapping(data, str(path))


def schedule(protocol: Protocol) -> list[Cue]:
    """The cues of a session, back to back, times in seconds from its start.

    The lead-in rest (rep 0) comes first; then, for each repetition, each gesture at each
    effort level and then along each ramp, every hold followed by a rest.
    """
    cues: list[Cue] = []
    t_s = 0.0

    def add(pose: str, seconds: float, start: float, end: float, rep: int) -> None:
        nonlocal t_s
        cues.append(Cue(t_s, seconds, pose, start, end, rep))
        t_s += seconds

    add(REST, protocol.lead_in_s, 0.0, 0.0, 0)
    for rep in range(1, protocol.reps + 1):
        for gesture in protocol.gestures:
            for effort in protocol.efforts:
                add(gesture, protocol.hold_s, effort, effort, rep)
                add(REST, protocol.rest_s, 0.0, 0.0, rep)
            for start, end in protocol.ramps:
                add(gesture, protocol.hold_s, start, end, rep)
                add(REST, protocol.rest_s, 0.0, 0.0, rep)
    return cues
