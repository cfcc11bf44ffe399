"""The simulated wearer of the daemon: an idle trajectory until cued, then a person following cues.

This module owns :class:`CuedWearer`, the :class:`~emgd.sim.trajectory.Trajectory` the
simulated board renders, and :func:`cue_source`, which hands a cue to whatever renders it.
Until the first cue the wearer does what ``[simulation] wearer`` says (the seeded endless
:class:`~emgd.sim.trajectory.PoseSequence`, so ``make run`` shows the hand moving, or rest);
from the first cue on it is a :class:`~emgd.sim.person.Person` seeded from ``[simulation]
seed``, and it keeps following cues until the daemon stops (a recording protocol ends at
rest, so the wearer rests after it). The hand leaves the idle trajectory only when the
person starts to move (after the reaction delay), blending into the person's first reach
along a minimum-jerk ramp, so nothing changes before a cue's time. It must not know about
clocks, buses, processes or the daemon; the stream time of a cue is the caller's.
"""

from __future__ import annotations

import numpy as np

from emgd.poses import REST
from emgd.sim.person import Person
from emgd.sim.trajectory import FloatArray, Trajectory, minimum_jerk

#: ``[simulation] wearer`` choices: what the wearer does before anything cues it.
IDLE_SEQUENCE = "sequence"
IDLE_REST = "rest"
IDLE_CHOICES = (IDLE_SEQUENCE, IDLE_REST)


class CuedWearer:
    """An idle trajectory until the first cue, then a :class:`Person` (a Trajectory).

    Parameters
    ----------
    person:
        Who follows the cues (its start pose should be rest).
    idle:
        What the hand does before the first cue; ``None``: the person's start pose.

    Examples
    --------
    >>> from emgd.sim.trajectory import PoseSequence
    >>> wearer = CuedWearer(Person(0), idle=PoseSequence(0))
    >>> wearer.cue("power", 0.6, at_s=12.0)  # from ~12.2-12.5 s on, the person's reach
    """

    def __init__(self, person: Person, idle: Trajectory | None = None) -> None:
        self._person = person
        self._idle = idle

    @property
    def person(self) -> Person:
        return self._person

    @property
    def cued(self) -> bool:
        """True once a cue arrived (the person is in charge from its movement on)."""
        return bool(self._person.responses)

    def cue(self, pose: str, effort: float, at_s: float) -> None:
        """Cue ``pose`` at ``effort`` (0-1) at stream time ``at_s``; see :meth:`Person.cue`.

        Raises
        ------
        ConfigError
            For a pose, effort or time the person refuses.
        """
        self._person.cue(pose, effort, at_s)

    def angles_deg(self, t_s: FloatArray) -> FloatArray:
        """Shape ``(n, 5)``: flexion at times ``t_s`` (any order), in degrees."""
        t = np.asarray(t_s, dtype=np.float64).reshape(-1)
        responses = self._person.responses
        if self._idle is None:
            return self._person.angles_deg(t)
        if not responses:
            return self._idle.angles_deg(t)
        first = responses[0]
        out = self._idle.angles_deg(t)
        after = t >= first.start_s
        if after.any():
            s = minimum_jerk((t[after] - first.start_s) / (first.end_s - first.start_s))
            person = self._person.angles_deg(t[after])
            out[after] = out[after] + s[:, None] * (person - out[after])
        return out


def build_wearer(idle: str, seed: int, sequence: Trajectory) -> CuedWearer:
    """The daemon's wearer for ``[simulation] wearer = idle`` (``sequence`` is used if asked)."""
    return CuedWearer(Person(seed, start_pose=REST), sequence if idle == IDLE_SEQUENCE else None)


def cue_source(source: object, pose: str, effort: float) -> bool:
    """Cue the wearer that ``source`` renders, at the source's current stream time.

    ``source`` is a :class:`~emgd.sim.prefetch.PrefetchedSource` (its ``cue`` rewinds the
    renderer to the consumer's position) or an in-process
    :class:`~emgd.sim.synthetic_emg.SyntheticEmg`. Returns False (and does nothing) when
    its trajectory takes no cues.

    Raises
    ------
    ConfigError
        For a pose or effort the person refuses.
    """
    prefetched_cue = getattr(source, "cue", None)
    if callable(prefetched_cue):
        return bool(prefetched_cue(pose, effort))
    trajectory = getattr(source, "trajectory", None)
    if not isinstance(trajectory, CuedWearer | Person):
        return False
    trajectory.cue(pose, effort, float(getattr(source, "time_s")))  # noqa: B009
    return True
