"""Finger-angle trajectories: what the simulated wearer is doing at each instant.

This module owns the :class:`Trajectory` protocol (time in seconds → five finger-flexion
angles in degrees) and three implementations: a constant pose, explicit keyframes joined by
minimum-jerk transitions, and a seeded endless :class:`PoseSequence` of gestures at random
effort levels. Trajectories are pure functions of time (the same ``t`` always gives the same
angles, in any query order); they must not know about EMG, sampling rates or clocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from emgd.errors import ConfigError
from emgd.poses import (
    ANGLE_MAX_DEG,
    ANGLE_MIN_DEG,
    GESTURE_NAMES,
    N_FINGERS,
    POSE_NAMES,
    REST,
    pose_angles_deg,
    proportional_target_deg,
)

FloatArray = npt.NDArray[np.float64]

DEFAULT_HOLD_S: tuple[float, float] = (1.5, 3.0)
DEFAULT_TRANSITION_S: tuple[float, float] = (0.3, 0.8)
DEFAULT_EFFORT: tuple[float, float] = (0.3, 1.0)
DEFAULT_REST_PROBABILITY = 0.4
# PoseSequence keeps at most this many keyframes cached; older ones are regenerated on demand.
MAX_CACHED_KEYFRAMES = 4096


class Trajectory(Protocol):
    """Five finger-flexion angles as a function of time."""

    def angles_deg(self, t_s: FloatArray) -> FloatArray:
        """Angles at times ``t_s``.

        Parameters
        ----------
        t_s:
            Shape ``(n,)``, seconds since the start of the stream (any order).

        Returns
        -------
        numpy.ndarray
            Shape ``(n, 5)``, flexion in degrees, finger order thumb … little.
        """
        ...


def minimum_jerk(tau: FloatArray) -> FloatArray:
    """The minimum-jerk profile ``10τ³ − 15τ⁴ + 6τ⁵`` (0 → 1 with zero end velocity/accel).

    Parameters
    ----------
    tau:
        Shape ``(n,)``, normalised time; values outside ``[0, 1]`` are clamped.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, progress in ``[0, 1]``.
    """
    x = np.clip(tau, 0.0, 1.0)
    return x * x * x * (10.0 + x * (-15.0 + 6.0 * x))


def _as_times(t_s: npt.ArrayLike) -> FloatArray:
    t = np.asarray(t_s, dtype=np.float64).reshape(-1)
    if not np.isfinite(t).all():
        raise ConfigError("trajectory times must be finite numbers of seconds")
    return t


def _check_angles(angles_deg: npt.ArrayLike, where: str) -> FloatArray:
    a = np.array(angles_deg, dtype=np.float64)
    if a.shape[-1:] != (N_FINGERS,):
        raise ConfigError(f"{where}: angles must have {N_FINGERS} columns, got shape {a.shape}")
    bad = ~(np.isfinite(a) & (a >= ANGLE_MIN_DEG) & (a <= ANGLE_MAX_DEG))
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ConfigError(
            f"{where}: angle {float(a[index])!r} at index {index} is outside "
            f"[{ANGLE_MIN_DEG:g}, {ANGLE_MAX_DEG:g}] degrees"
        )
    return a


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    lo, hi = value
    if not (math.isfinite(lo) and math.isfinite(hi) and low <= lo <= hi <= high):
        raise ConfigError(f"{name} must be a range (lo, hi) with {low:g} <= lo <= hi <= {high:g}")


def _interpolate_keyframes(
    times_s: FloatArray, angles_deg: FloatArray, t_s: FloatArray
) -> FloatArray:
    """Minimum-jerk interpolation between keyframes, holding the ends."""
    n_keys = times_s.shape[0]
    if n_keys == 1:
        return np.repeat(angles_deg[:1], t_s.shape[0], axis=0)
    i = np.searchsorted(times_s, t_s, side="right") - 1
    i = np.clip(i, 0, n_keys - 2)
    t_from = times_s[i]
    tau = (t_s - t_from) / (times_s[i + 1] - t_from)
    s = minimum_jerk(tau)
    a_from = angles_deg[i]
    return a_from + s[:, None] * (angles_deg[i + 1] - a_from)


class ConstantPose:
    """A trajectory that holds one set of angles forever.

    Parameters
    ----------
    angles_deg:
        Shape ``(5,)``, flexion in degrees within ``[0, 180]``.
    """

    def __init__(self, angles_deg: npt.ArrayLike) -> None:
        self._angles_deg = _check_angles(angles_deg, "ConstantPose").reshape(N_FINGERS)

    @classmethod
    def from_pose(cls, pose: str, effort: float = 1.0) -> ConstantPose:
        """Hold ``pose`` at ``effort`` (the proportional target ``R + p·(G − R)``)."""
        return cls(proportional_target_deg(pose, effort))

    def angles_deg(self, t_s: FloatArray) -> FloatArray:
        t = _as_times(t_s)
        return np.repeat(self._angles_deg[None, :], t.shape[0], axis=0)


class KeyframeTrajectory:
    """Explicit keyframes joined by minimum-jerk transitions, holding the first/last frame.

    Two consecutive keyframes with equal angles make a hold.

    Parameters
    ----------
    times_s:
        Shape ``(k,)``, strictly increasing keyframe times in seconds (``k >= 1``).
    angles_deg:
        Shape ``(k, 5)``, the angles reached at each keyframe.
    """

    def __init__(self, times_s: Sequence[float] | FloatArray, angles_deg: npt.ArrayLike) -> None:
        times = np.array(times_s, dtype=np.float64).reshape(-1)
        angles = _check_angles(angles_deg, "KeyframeTrajectory")
        if angles.ndim != 2 or angles.shape[0] != times.shape[0] or times.shape[0] == 0:
            raise ConfigError(
                f"KeyframeTrajectory: need k >= 1 times and (k, {N_FINGERS}) angles, got "
                f"{times.shape[0]} times and angles of shape {angles.shape}"
            )
        if not np.isfinite(times).all():
            raise ConfigError("KeyframeTrajectory: keyframe times must be finite")
        steps = np.diff(times)
        if (steps <= 0.0).any():
            i = int(np.flatnonzero(steps <= 0.0)[0])
            raise ConfigError(
                f"KeyframeTrajectory: times must increase strictly, but time[{i + 1}] = "
                f"{float(times[i + 1])!r} follows time[{i}] = {float(times[i])!r}"
            )
        self._times_s = times
        self._angles_deg = angles

    @classmethod
    def from_pose_steps(
        cls, steps: Sequence[tuple[str, float, float, float]], *, start_hold_s: float = 1.0
    ) -> KeyframeTrajectory:
        """Build from ``(pose, effort, transition_s, hold_s)`` steps, starting at rest.

        The hand rests for ``start_hold_s``, then for each step moves to the proportional
        target of ``pose`` at ``effort`` in ``transition_s`` and holds it for ``hold_s``.
        """
        if not (math.isfinite(start_hold_s) and start_hold_s > 0.0):
            raise ConfigError(f"start_hold_s must be > 0, got {start_hold_s!r}")
        times: list[float] = [0.0, start_hold_s]
        rest = pose_angles_deg(REST)
        angles: list[FloatArray] = [rest, rest]
        t = start_hold_s
        for i, (pose, effort, transition_s, hold_s) in enumerate(steps):
            if not (transition_s > 0.0 and hold_s > 0.0):
                raise ConfigError(
                    f"pose step {i} ({pose!r}): transition_s and hold_s must be > 0, "
                    f"got {transition_s!r} and {hold_s!r}"
                )
            target = proportional_target_deg(pose, effort)
            t += transition_s
            times.append(t)
            angles.append(target)
            t += hold_s
            times.append(t)
            angles.append(target)
        return cls(times, np.array(angles))

    @property
    def times_s(self) -> FloatArray:
        """Shape ``(k,)``: the keyframe times (a copy)."""
        return self._times_s.copy()

    def angles_deg(self, t_s: FloatArray) -> FloatArray:
        return _interpolate_keyframes(self._times_s, self._angles_deg, _as_times(t_s))


class PoseSequence:
    """A seeded, endless sequence of gestures at random efforts with smooth transitions.

    The hand rests for one hold, then repeatedly moves (minimum jerk, ``transition_s``) to a
    new target and holds it (``hold_s``). A target is a gesture from ``poses`` other than
    the current one at an effort drawn from ``effort`` (the proportional target
    ``R + p·(G − R)``); after a gesture the hand returns to rest with probability
    ``rest_probability``. The same seed always gives the same trajectory, whatever the order
    or grouping of queries.

    Parameters
    ----------
    seed:
        Seed of the sequence.
    hold_s, transition_s:
        Ranges ``(lo, hi)`` in seconds, drawn uniformly per step.
    poses:
        Gestures to choose from (names from :data:`emgd.poses.POSE_NAMES`).
    effort:
        Range ``(lo, hi)`` within ``[0, 1]`` for the effort of each gesture.
    rest_probability:
        Probability of going back to rest after each gesture.
    """

    def __init__(
        self,
        seed: int,
        *,
        hold_s: tuple[float, float] = DEFAULT_HOLD_S,
        transition_s: tuple[float, float] = DEFAULT_TRANSITION_S,
        poses: Sequence[str] = GESTURE_NAMES,
        effort: tuple[float, float] = DEFAULT_EFFORT,
        rest_probability: float = DEFAULT_REST_PROBABILITY,
    ) -> None:
        _check_range("hold_s", hold_s, 1e-3, math.inf)
        _check_range("transition_s", transition_s, 1e-3, math.inf)
        _check_range("effort", effort, 0.0, 1.0)
        if not (0.0 <= rest_probability <= 1.0):
            raise ConfigError(f"rest_probability must be in [0, 1], got {rest_probability!r}")
        if len(poses) == 0:
            raise ConfigError("PoseSequence needs at least one pose")
        for pose in poses:
            if pose not in POSE_NAMES:
                raise ConfigError(f"unknown pose {pose!r}; known poses: {', '.join(POSE_NAMES)}")
        self._seed = seed
        self._hold_s = hold_s
        self._transition_s = transition_s
        self._poses = tuple(poses)
        self._effort = effort
        self._rest_probability = rest_probability
        self._rng = np.random.default_rng(seed)
        self._times: list[float] = []
        self._angles: list[FloatArray] = []
        self._labels: list[tuple[str, float]] = []
        self._times_arr = np.empty(0)
        self._angles_arr = np.empty((0, N_FINGERS))
        self._dirty = False
        self._restart()

    def _restart(self) -> None:
        self._rng = np.random.default_rng(self._seed)
        rest = pose_angles_deg(REST)
        hold = float(self._rng.uniform(*self._hold_s))
        self._times = [0.0, hold]
        self._angles = [rest, rest]
        self._labels = [(REST, 0.0), (REST, 0.0)]
        self._dirty = True

    def _append_step(self) -> None:
        current_pose = self._labels[-1][0]
        go_rest = current_pose != REST and self._rng.random() < self._rest_probability
        if go_rest:
            pose, effort = REST, 0.0
        else:
            choices = [p for p in self._poses if p != current_pose] or list(self._poses)
            pose = choices[int(self._rng.integers(len(choices)))]
            effort = float(self._rng.uniform(*self._effort)) if pose != REST else 0.0
        target = proportional_target_deg(pose, effort)
        transition = float(self._rng.uniform(*self._transition_s))
        hold = float(self._rng.uniform(*self._hold_s))
        t = self._times[-1] + transition
        self._times += [t, t + hold]
        self._angles += [target, target]
        self._labels += [(pose, effort), (pose, effort)]
        self._dirty = True

    def _cover(self, t_min_s: float, t_max_s: float) -> None:
        if t_min_s < self._times[0]:
            self._restart()
        while self._times[-1] <= t_max_s:
            self._append_step()
        # Forget old keyframes (they are regenerated from the seed if asked for again),
        # keeping those still needed for this query.
        if len(self._times) > MAX_CACHED_KEYFRAMES:
            keep_from = max(0, int(np.searchsorted(self._times, t_min_s, side="right")) - 2)
            keep_from = min(keep_from, len(self._times) - MAX_CACHED_KEYFRAMES // 2)
            keep_from -= keep_from % 2  # keyframes come in (arrive, leave) pairs
            if keep_from > 0:
                del self._times[:keep_from], self._angles[:keep_from], self._labels[:keep_from]
                self._dirty = True
        if self._dirty:
            self._times_arr = np.array(self._times)
            self._angles_arr = np.array(self._angles)
            self._dirty = False

    def angles_deg(self, t_s: FloatArray) -> FloatArray:
        t = _as_times(t_s)
        if t.shape[0] == 0:
            return np.empty((0, N_FINGERS))
        t = np.maximum(t, 0.0)
        self._cover(float(t.min()), float(t.max()))
        return _interpolate_keyframes(self._times_arr, self._angles_arr, t)

    def pose_at(self, t_s: float) -> tuple[str, float]:
        """The gesture and effort the hand is holding or moving towards at ``t_s``."""
        t = max(float(t_s), 0.0)
        self._cover(t, t)
        i = int(np.searchsorted(self._times_arr, t, side="right"))
        return self._labels[min(i, len(self._labels) - 1)]
