"""A simulated person who follows cues: reaction delay, minimum-jerk reach, imperfect hold.

This module owns :class:`Person`, a :class:`~emgd.sim.trajectory.Trajectory` driven by cues
(a pose name and an effort, at a stream time) as ``emgd record`` and ``emgd test`` give them:
after each cue the person waits a reaction time (drawn per cue), moves to the cued pose at
roughly the cued effort along a minimum-jerk ramp, and then holds it the way people do, with
the effort wandering slowly, the fingers drifting a few degrees and a small physiological
tremor on top. Everything random is drawn from the seed (per cue by its index, and one set of
slow oscillators per person), so the same cues give the same angles in any query order. It
must not know about EMG, buses, clocks or the daemon: feeding it cues is the caller's job.

Causality and the renderer's lead
---------------------------------
A cue changes the angles only after its ``at_s`` plus the reaction delay (at least
:data:`MIN_REACTION_S`); everything before stays as it was. The daemon's synthetic wearer is
rendered ahead of the consumer in a child process (:mod:`emgd.sim.prefetch`, the board uses
its default lead :data:`emgd.sim.prefetch.DEFAULT_LEAD_S` = 0.5 s, and the spike generator
reads the trajectory up to one more 0.1 s epoch beyond what it renders). So a cue must reach
the trajectory that renders (the child's copy, not one in the parent) before the renderer has
read past ``at_s + MIN_REACTION_S``: with cues stamped at the consumer's current time that is
too late, so stamp them at least ``lead + 0.1 s - MIN_REACTION_S`` (0.4 s) in the future, or
deliver them that much earlier. A cue earlier than the previous one is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from emgd.errors import ConfigError
from emgd.poses import ANGLE_MAX_DEG, ANGLE_MIN_DEG, N_FINGERS, REST, pose_angles_deg
from emgd.sim.trajectory import minimum_jerk

FloatArray = npt.NDArray[np.float64]

# --- timing of a response to a cue --------------------------------------------------------
# Simple visual reaction times of adults are about 0.2-0.3 s; a choice between several
# gestures, and a graded effort, make them longer.
MIN_REACTION_S = 0.2
MAX_REACTION_S = 0.5
# A deliberate whole-hand movement takes a few tenths of a second; larger ones a bit longer.
MOVEMENT_S: tuple[float, float] = (0.35, 0.7)
MOVEMENT_S_PER_100_DEG = 0.15
# --- holding --------------------------------------------------------------------------------
# People asked for an effort land within about 10-20 % of it and do not keep it constant.
EFFORT_ERROR = 0.15  # each cue's effort is scaled by a uniform factor in 1 ± this
EFFORT_WANDER = 0.06  # slow relative wander of the effort while holding (amplitude)
EFFORT_WANDER_HZ: tuple[float, ...] = (0.13, 0.29, 0.47)
DRIFT_DEG = 2.0  # slow drift of each finger (amplitude of each oscillator)
DRIFT_HZ: tuple[float, ...] = (0.05, 0.11, 0.23)
# Physiological tremor sits near 8-12 Hz and moves a finger by a fraction of a degree to a
# degree when no load is held.
TREMOR_DEG = 0.6
TREMOR_HZ: tuple[float, float] = (8.0, 12.0)

_STREAM_CUE: Final = 11
_STREAM_HOLD: Final = 12


@dataclass(frozen=True, slots=True)
class Response:
    """How the person answered one cue.

    Attributes
    ----------
    pose, effort:
        What was cued.
    cue_s:
        When it was cued.
    start_s, end_s:
        When the movement started (after the reaction) and reached its target.
    from_deg, to_deg:
        Shape ``(5,)``: the angles at the start of the movement, and the target (the cued
        pose at this cue's drawn effort), before the hold's wander, drift and tremor.
    """

    pose: str
    effort: float
    cue_s: float
    start_s: float
    end_s: float
    from_deg: FloatArray
    to_deg: FloatArray


class Person:
    """A seeded person following cues; implements :class:`~emgd.sim.trajectory.Trajectory`.

    Parameters
    ----------
    seed:
        Seed of the person's reaction times, effort errors, wander, drift and tremor.
    start_pose:
        What the hand holds before the first cue (at effort 1).

    Examples
    --------
    >>> person = Person(3)
    >>> person.cue("power", 0.6, at_s=1.0)
    >>> angles = person.angles_deg(np.array([0.5, 2.5]))  # (2, 5) degrees
    """

    def __init__(self, seed: int, *, start_pose: str = REST) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"Person: seed must be an integer >= 0, got {seed!r}")
        self._seed = seed
        self._rest_deg = pose_angles_deg(REST)
        self._start_deg = pose_angles_deg(start_pose)
        self._start_pose = start_pose
        self._responses: list[Response] = []
        rng = np.random.default_rng([seed, _STREAM_HOLD])
        self._wander_phase: FloatArray = rng.uniform(0.0, 2.0 * math.pi, len(EFFORT_WANDER_HZ))
        self._drift_phase: FloatArray = rng.uniform(0.0, 2.0 * math.pi, (len(DRIFT_HZ), N_FINGERS))
        self._tremor_hz: FloatArray = rng.uniform(*TREMOR_HZ, N_FINGERS)
        self._tremor_phase: FloatArray = rng.uniform(0.0, 2.0 * math.pi, N_FINGERS)

    @property
    def responses(self) -> tuple[Response, ...]:
        """Every cue so far and how it was answered, in cue order."""
        return tuple(self._responses)

    def cue(self, pose: str, effort: float, at_s: float) -> None:
        """Ask the person to go to ``pose`` at ``effort`` (0-1), shown at stream time ``at_s``.

        The movement starts a reaction time (0.2-0.5 s, drawn per cue) after ``at_s``, but
        not before the previous cue's movement has started.

        Raises
        ------
        ConfigError
            For an unknown pose, an effort outside ``[0, 1]``, a time that is not finite or
            is earlier than the previous cue's.
        """
        where = f"Person.cue({pose!r}, {effort!r}, at_s={at_s!r})"
        target_unit = pose_angles_deg(pose)  # unknown pose: ConfigError naming it
        if not (isinstance(effort, int | float) and math.isfinite(effort) and 0 <= effort <= 1):
            raise ConfigError(f"{where}: effort must be a number in [0, 1]")
        if not (isinstance(at_s, int | float) and math.isfinite(at_s)):
            raise ConfigError(f"{where}: at_s must be a finite number of seconds")
        previous = self._responses[-1] if self._responses else None
        if previous is not None and at_s < previous.cue_s:
            raise ConfigError(
                f"{where}: cues must come in time order, the previous one was at "
                f"{previous.cue_s:g} s"
            )
        rng = np.random.default_rng([self._seed, _STREAM_CUE, len(self._responses)])
        reaction_s = float(rng.uniform(MIN_REACTION_S, MAX_REACTION_S))
        factor = float(rng.uniform(1.0 - EFFORT_ERROR, 1.0 + EFFORT_ERROR))
        base_s = float(rng.uniform(*MOVEMENT_S))
        start_s = float(at_s) + reaction_s
        if previous is not None:
            start_s = max(start_s, previous.start_s)
        from_deg = self._planned(np.array([start_s]))[0]
        drawn = min(1.0, float(effort) * factor)
        to_deg = self._rest_deg + drawn * (target_unit - self._rest_deg)
        distance_deg = float(np.abs(to_deg - from_deg).max())
        end_s = start_s + base_s + MOVEMENT_S_PER_100_DEG * distance_deg / 100.0
        self._responses.append(
            Response(pose, float(effort), float(at_s), start_s, end_s, from_deg, to_deg)
        )

    def _planned(self, t_s: FloatArray) -> FloatArray:
        """Shape ``(n, 5)``: the intended path (reaches and holds, no wander or tremor)."""
        out = np.repeat(self._start_deg[None, :], t_s.shape[0], axis=0)
        for r in self._responses:
            moving = t_s >= r.start_s
            if not moving.any():
                continue
            s = minimum_jerk((t_s[moving] - r.start_s) / (r.end_s - r.start_s))
            out[moving] = r.from_deg + s[:, None] * (r.to_deg - r.from_deg)
        return out

    def angles_deg(self, t_s: FloatArray) -> FloatArray:
        """Shape ``(n, 5)``: the hand's flexion at times ``t_s`` (any order), in degrees."""
        t = np.asarray(t_s, dtype=np.float64).reshape(-1)
        if not np.isfinite(t).all():
            raise ConfigError("Person.angles_deg: times must be finite numbers of seconds")
        planned = self._planned(t)
        wander = np.zeros(t.shape[0])
        for f_hz, phase in zip(EFFORT_WANDER_HZ, self._wander_phase, strict=True):
            wander += np.sin(2.0 * math.pi * f_hz * t + phase)
        wander *= EFFORT_WANDER / math.sqrt(len(EFFORT_WANDER_HZ) / 2.0)
        held = self._rest_deg + (1.0 + wander)[:, None] * (planned - self._rest_deg)
        for f_hz, phase in zip(DRIFT_HZ, self._drift_phase, strict=True):
            held += DRIFT_DEG * np.sin(2.0 * math.pi * f_hz * t[:, None] + phase[None, :])
        held += TREMOR_DEG * np.sin(
            2.0 * math.pi * self._tremor_hz[None, :] * t[:, None] + self._tremor_phase[None, :]
        )
        out: FloatArray = np.clip(held, ANGLE_MIN_DEG, ANGLE_MAX_DEG)
        return out

    def pose_at(self, t_s: float) -> tuple[str, float]:
        """The pose the hand is moving to or holding at ``t_s``, and its cued effort.

        Before the first movement starts: the start pose at effort 1 (rest: effort 0).
        """
        current: tuple[str, float] = (
            self._start_pose,
            0.0 if self._start_pose == REST else 1.0,
        )
        for r in self._responses:
            if r.start_s > t_s:
                break
            current = (r.pose, r.effort)
        return current
