"""Target-achievement control (TAC) test figures from a hand's angle trace.

This module owns the arithmetic of the TAC test (after Simon et al., JRRD 48(6), 2011): for
one target pose it reads the commanded finger angles over time and says whether the hand
reached the target within a tolerance and held it for a dwell time inside the time limit,
how long that took, how directly the hand travelled and how much it overshot; it also
averages per target kind and overall. It is pure: no clock, no I/O, no daemon state.

Definitions (all angles in degrees, 5-D space thumb..little):

* *in tolerance*: every finger within ``tolerance_deg`` of the target (a box, not a ball).
* *completed*: some run of consecutive in-tolerance samples spans at least ``dwell_s``
  (from the run's first sample to a later one) and ends no later than ``limit_s`` after
  the target's onset.
* *completion time*: end of the successful dwell minus the onset minus the dwell, i.e. the
  time of the successful run's first sample after onset (Simon et al. subtract the dwell).
* *path efficiency* (completed targets only): Euclidean distance from the first sample to
  the sample where the successful run began, divided by the path length travelled between
  the two (1 = straight there; a hand already on target scores 1).
* *overshoot*: ``overshoot_count`` is how many times the hand left the tolerance box
  after first entering it, before completing (or before the limit); ``overshoot_deg`` is the
  largest distance past the box boundary (worst finger, degrees) after first entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from emgd.errors import InvalidParams
from emgd.poses import N_FINGERS

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TacParams:
    """The pass criteria of one target: tolerance, dwell and time limit."""

    tolerance_deg: float = 15.0
    dwell_s: float = 1.0
    limit_s: float = 15.0

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("tolerance_deg", self.tolerance_deg, 0.1, 90.0),
            ("dwell_s", self.dwell_s, 0.0, 60.0),
            ("limit_s", self.limit_s, 0.1, 600.0),
        ):
            if not (isinstance(value, int | float) and low <= value <= high):
                raise InvalidParams(f"TAC {name} {value!r}: expected {low:g}-{high:g}")
        if self.dwell_s >= self.limit_s:
            raise InvalidParams(
                f"TAC dwell_s {self.dwell_s:g} must be shorter than limit_s {self.limit_s:g}"
            )


@dataclass(frozen=True)
class TargetResult:
    """The figures of one presented target."""

    pose: str
    effort: float | None
    completed: bool
    completion_time_s: float | None
    path_efficiency: float | None
    overshoot_count: int
    overshoot_deg: float
    n_samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_trace(times_s: npt.ArrayLike, angles_deg: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    t = np.asarray(times_s, dtype=np.float64).reshape(-1)
    a = np.asarray(angles_deg, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != N_FINGERS or a.shape[0] != t.shape[0]:
        raise InvalidParams(
            f"TAC trace: expected times (N,) and angles (N, {N_FINGERS}), "
            f"got {t.shape} and {a.shape}"
        )
    if t.size and (not np.all(np.isfinite(t)) or not np.all(np.isfinite(a))):
        raise InvalidParams("TAC trace: times and angles must be finite")
    if t.size > 1 and np.any(np.diff(t) < 0):
        raise InvalidParams("TAC trace: times must not go backwards")
    return t, a


def score_target(
    pose: str,
    effort: float | None,
    target_deg: npt.ArrayLike,
    *,
    onset_s: float,
    times_s: npt.ArrayLike,
    angles_deg: npt.ArrayLike,
    params: TacParams,
) -> TargetResult:
    """Score one target from the hand's trace.

    Parameters
    ----------
    pose, effort:
        What was asked (carried into the result; effort ``None`` for a classifier model).
    target_deg:
        Shape ``(5,)``, the target angles.
    onset_s:
        When the target was shown (same time base as ``times_s``).
    times_s, angles_deg:
        The commanded angles, shape ``(N,)`` and ``(N, 5)``; samples before the onset or
        after ``onset_s + limit_s`` are ignored.
    params:
        Tolerance, dwell and limit.

    Returns
    -------
    TargetResult
        See the module docstring for the definitions.

    Raises
    ------
    InvalidParams
        For a trace of the wrong shape, non-finite or going back in time.
    """
    target = np.asarray(target_deg, dtype=np.float64).reshape(-1)
    if target.shape != (N_FINGERS,):
        raise InvalidParams(f"TAC target {pose!r}: expected {N_FINGERS} angles")
    t, a = _as_trace(times_s, angles_deg)
    keep = (t >= onset_s) & (t <= onset_s + params.limit_s + 1e-9)
    t, a = t[keep], a[keep]
    # Worst-finger distance past the tolerance box (<= 0 inside).
    excess = np.max(np.abs(a - target), axis=1) - params.tolerance_deg if t.size else t
    inside = excess <= 1e-9
    run_start: int | None = None
    entered = False
    exits = 0
    worst = 0.0
    done_at: int | None = None
    for i in range(t.size):
        if inside[i]:
            if run_start is None:
                run_start = i
            entered = True
            if t[i] - t[run_start] >= params.dwell_s - 1e-9:
                done_at = run_start
                break
        else:
            if run_start is not None:
                exits += 1
            run_start = None
            if entered:
                worst = max(worst, float(excess[i]))
    if done_at is None:
        return TargetResult(pose, effort, False, None, None, exits, worst, int(t.size))
    steps = np.linalg.norm(np.diff(a[: done_at + 1], axis=0), axis=1)
    path = float(np.sum(steps))
    straight = float(np.linalg.norm(a[done_at] - a[0]))
    efficiency = 1.0 if path <= 1e-9 else min(1.0, straight / path)
    return TargetResult(
        pose,
        effort,
        True,
        float(t[done_at] - onset_s),
        efficiency,
        exits,
        worst,
        int(t.size),
    )


def _mean(values: Sequence[float]) -> float | None:
    return None if not values else float(sum(values) / len(values))


def _aggregate(results: Sequence[TargetResult]) -> dict[str, Any]:
    done = [r for r in results if r.completed]
    return {
        "n_targets": len(results),
        "n_completed": len(done),
        "completion_rate": None if not results else len(done) / len(results),
        "mean_completion_time_s": _mean([r.completion_time_s or 0.0 for r in done]),
        "mean_path_efficiency": _mean([r.path_efficiency or 0.0 for r in done]),
        "mean_overshoot_count": _mean([float(r.overshoot_count) for r in results]),
        "max_overshoot_deg": max((r.overshoot_deg for r in results), default=None),
    }


def target_key(pose: str, effort: float | None) -> str:
    """The name of a target kind: ``power`` or ``power@0.5``."""
    return pose if effort is None else f"{pose}@{effort:g}"


def summarise(results: Sequence[TargetResult]) -> dict[str, Any]:
    """Per target kind (pose and effort, over reps) and overall figures.

    Means of completion time and path efficiency cover completed targets only (``None``
    when none completed); completion rate and overshoot cover every target presented.
    """
    kinds: dict[str, list[TargetResult]] = {}
    for r in results:
        kinds.setdefault(target_key(r.pose, r.effort), []).append(r)
    return {
        "per_target": {k: _aggregate(v) for k, v in kinds.items()},
        "overall": _aggregate(results),
    }
