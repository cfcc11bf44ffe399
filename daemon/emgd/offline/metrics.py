"""Accuracy metrics of finger-angle predictions: MAE, R² and ramp correlation.

This module owns the numbers every evaluation report quotes, so the network and the
baselines are scored by the same code: mean absolute error per finger and its mean (degrees),
the coefficient of determination R² per finger and its mean, and for effort ramps the Pearson
correlation of predicted mean flexion with the target's mean flexion (which on a ramp is an
affine function of effort, rising for a flexing gesture and falling for hand open, so a
perfect proportional controller scores 1 on both); the same MAE broken down by time since a
recording began and by gesture; and the zero-order hold that reads an output updated now and
then at the instants it is scored at. It must not know models, windows or files: predictions,
targets, labels and times come in as arrays.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from emgd.errors import ConfigError
from emgd.poses import FINGERS, N_FINGERS

FloatArray = npt.NDArray[np.float64]

# A series whose spread is below this (degrees) counts as constant.
CONSTANT_SPREAD_DEG = 1e-9
# Bin edges (seconds since a recording began) of :func:`mae_by_time_since_start`: the
# reaction and onset (first second) apart from the steady hold that follows.
SINCE_START_EDGES_S: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, math.inf)
# Seconds after a gesture began from which :func:`mae_by_gesture` counts its steady hold.
STEADY_FROM_S = 1.0


def _pair(predicted_deg: npt.ArrayLike, target_deg: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    pred = np.asarray(predicted_deg, dtype=np.float64)
    target = np.asarray(target_deg, dtype=np.float64)
    if pred.ndim != 2 or pred.shape[1] != N_FINGERS or pred.shape != target.shape:
        raise ConfigError(
            f"metrics: predictions and targets must both have shape (n, {N_FINGERS}), "
            f"got {pred.shape} and {target.shape}"
        )
    if pred.shape[0] == 0:
        raise ConfigError("metrics: need at least one prediction")
    if not (np.isfinite(pred).all() and np.isfinite(target).all()):
        raise ConfigError("metrics: predictions and targets must be finite")
    return pred, target


def mae_per_finger_deg(predicted_deg: npt.ArrayLike, target_deg: npt.ArrayLike) -> FloatArray:
    """Mean absolute error of each finger.

    Parameters
    ----------
    predicted_deg, target_deg:
        Shape ``(n, 5)``, degrees.

    Returns
    -------
    numpy.ndarray
        Shape ``(5,)``, degrees.
    """
    pred, target = _pair(predicted_deg, target_deg)
    out: FloatArray = np.abs(pred - target).mean(axis=0)
    return out


def r2_per_finger(predicted_deg: npt.ArrayLike, target_deg: npt.ArrayLike) -> FloatArray:
    """Coefficient of determination ``1 − SS_res / SS_tot`` of each finger.

    Parameters
    ----------
    predicted_deg, target_deg:
        Shape ``(n, 5)``, degrees.

    Returns
    -------
    numpy.ndarray
        Shape ``(5,)``; ``nan`` for a finger whose target never changes (R² undefined).
    """
    pred, target = _pair(predicted_deg, target_deg)
    ss_res = ((pred - target) ** 2).sum(axis=0)
    centred = target - target.mean(axis=0)
    ss_tot = (centred**2).sum(axis=0)
    spread = target.max(axis=0) - target.min(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - ss_res / ss_tot
    out: FloatArray = np.where(spread > CONSTANT_SPREAD_DEG, r2, np.nan)
    return out


def mean_ignoring_nan(values: npt.ArrayLike) -> float:
    """Mean of the finite entries, ``nan`` if there is none."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    return float(finite.mean()) if finite.size else math.nan


def pearson_r(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Pearson correlation of two series of equal length.

    Returns ``nan`` when either series is constant (the correlation is undefined).
    """
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    b = np.asarray(y, dtype=np.float64).reshape(-1)
    if a.shape != b.shape or a.size < 2:
        raise ConfigError(
            f"pearson_r: need two series of equal length >= 2, got {a.size}, {b.size}"
        )
    da = a - a.mean()
    db = b - b.mean()
    na = math.sqrt(float(da @ da))
    nb = math.sqrt(float(db @ db))
    if na == 0.0 or nb == 0.0:
        return math.nan
    return float(np.clip((da @ db) / (na * nb), -1.0, 1.0))


def ramp_correlation(predicted_deg: npt.ArrayLike, target_deg: npt.ArrayLike) -> float:
    """Correlation of predicted mean flexion with target mean flexion over one ramp.

    On a ramp the target is ``R + p·(G − R)``, so its mean flexion is affine in effort ``p``;
    this is therefore the correlation of the prediction with effort, signed so that moving
    towards the gesture counts as positive for both flexing gestures and hand open.

    Parameters
    ----------
    predicted_deg, target_deg:
        Shape ``(n, 5)``, the predictions and targets along one ramp recording, in time order.

    Returns
    -------
    float
        In ``[-1, 1]``; ``0.0`` if the prediction never changes (it carries no effort);
        ``nan`` if the target's mean flexion is constant (a rest "ramp": not scored).
    """
    pred, target = _pair(predicted_deg, target_deg)
    target_mean = target.mean(axis=1)
    if np.ptp(target_mean) <= CONSTANT_SPREAD_DEG:
        return math.nan
    pred_mean = pred.mean(axis=1)
    if np.ptp(pred_mean) <= CONSTANT_SPREAD_DEG:
        return 0.0
    return pearson_r(pred_mean, target_mean)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def summarise(predicted_deg: npt.ArrayLike, target_deg: npt.ArrayLike) -> dict[str, Any]:
    """MAE and R² per finger and their means, as a JSON-ready dict.

    Returns
    -------
    dict
        ``{"mae_deg": {finger: float}, "mae_mean_deg": float, "r2": {finger: float | None},
        "r2_mean": float | None, "n": int}``; undefined R² values are ``None``.
    """
    mae = mae_per_finger_deg(predicted_deg, target_deg)
    r2 = r2_per_finger(predicted_deg, target_deg)
    return {
        "mae_deg": {f: float(v) for f, v in zip(FINGERS, mae, strict=True)},
        "mae_mean_deg": float(mae.mean()),
        "r2": {f: _finite_or_none(float(v)) for f, v in zip(FINGERS, r2, strict=True)},
        "r2_mean": _finite_or_none(mean_ignoring_nan(r2)),
        "n": int(np.asarray(predicted_deg).shape[0]),
    }


def since_start_label(lo_s: float, hi_s: float) -> str:
    """The key of one bin of :func:`mae_by_time_since_start`: ``"0.5-1s"``, ``"2s+"``."""
    return f"{lo_s:g}s+" if math.isinf(hi_s) else f"{lo_s:g}-{hi_s:g}s"


def mae_by_time_since_start(
    predicted_deg: npt.ArrayLike,
    target_deg: npt.ArrayLike,
    since_start_s: npt.ArrayLike,
    edges_s: tuple[float, ...] = SINCE_START_EDGES_S,
) -> dict[str, float | None]:
    """Mean MAE (over fingers and predictions) in each bin of time since the recording began.

    Parameters
    ----------
    since_start_s:
        Shape ``(n,)``: seconds from the start of each prediction's recording to it.
    edges_s:
        Increasing bin edges; bin ``i`` holds ``edges[i] <= t < edges[i + 1]``.

    Returns
    -------
    dict
        ``{since_start_label(lo, hi): MAE or None}`` in bin order; ``None`` for an empty bin.
    """
    pred, target = _pair(predicted_deg, target_deg)
    since = np.asarray(since_start_s, dtype=np.float64)
    if since.shape != (pred.shape[0],) or not np.isfinite(since).all():
        raise ConfigError(
            f"metrics: need one finite time since start per prediction ({pred.shape[0]}), "
            f"got shape {since.shape}"
        )
    if len(edges_s) < 2 or any(b <= a for a, b in itertools.pairwise(edges_s)):
        raise ConfigError(f"metrics: time bin edges {edges_s} must increase")
    error = np.abs(pred - target).mean(axis=1)
    out: dict[str, float | None] = {}
    for lo, hi in itertools.pairwise(edges_s):
        inside = (since >= lo) & (since < hi)
        out[since_start_label(lo, hi)] = float(error[inside].mean()) if inside.any() else None
    return out


def mae_by_gesture(
    predicted_deg: npt.ArrayLike,
    target_deg: npt.ArrayLike,
    gestures: Sequence[str],
    held_s: npt.ArrayLike,
    steady_from_s: float = STEADY_FROM_S,
) -> dict[str, dict[str, float | int | None]]:
    """Mean MAE (over fingers and predictions) per gesture, over all of it and its steady hold.

    Which gesture a session confuses with which is what a mean hides: a wrist flexion read
    as a power grip costs the whole pose for as long as it is held.

    Parameters
    ----------
    gestures:
        ``(n,)`` labels: the gesture of each prediction's target sample.
    held_s:
        Shape ``(n,)``: seconds from the start of each prediction's gesture to it (from the
        recording's start for a one-gesture recording).
    steady_from_s:
        Predictions this long or longer after their gesture began make its steady hold.

    Returns
    -------
    dict
        ``{gesture: {"n", "mae_deg", "steady_n", "steady_mae_deg"}}`` in label order;
        ``steady_mae_deg`` is ``None`` for a gesture never held that long.
    """
    pred, target = _pair(predicted_deg, target_deg)
    labels = np.asarray(gestures, dtype=object)
    since = np.asarray(held_s, dtype=np.float64)
    n = pred.shape[0]
    if labels.shape != (n,) or since.shape != (n,) or not np.isfinite(since).all():
        raise ConfigError(
            f"metrics: need one gesture and one finite hold time per prediction ({n}), "
            f"got {labels.shape[0] if labels.ndim else 0} gestures and shape {since.shape}"
        )
    error = np.abs(pred - target).mean(axis=1)
    steady = since >= steady_from_s
    out: dict[str, dict[str, float | int | None]] = {}
    for name in sorted(set(labels.tolist())):
        mine = labels == name
        held = mine & steady
        out[str(name)] = {
            "n": int(mine.sum()),
            "mae_deg": float(error[mine].mean()),
            "steady_n": int(held.sum()),
            "steady_mae_deg": float(error[held].mean()) if held.any() else None,
        }
    return out


def held_at(
    instants: npt.ArrayLike,
    update_index: npt.ArrayLike,
    values: npt.ArrayLike,
    initial: npt.ArrayLike,
) -> FloatArray:
    """What an output held between updates shows at each instant (zero-order hold).

    Parameters
    ----------
    instants:
        Shape ``(m,)``: sample indices at which to read the output.
    update_index:
        Shape ``(n,)``, increasing: the sample index of each update.
    values:
        Shape ``(n, k)``: the value of each update.
    initial:
        Shape ``(k,)``: what is shown before the first update.

    Returns
    -------
    numpy.ndarray
        Shape ``(m, k)``: the latest update at or before each instant, else ``initial``.
    """
    at = np.asarray(instants, dtype=np.int64)
    updates = np.asarray(update_index, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    first = np.asarray(initial, dtype=np.float64).reshape(-1)
    latest = np.searchsorted(updates, at, side="right") - 1
    held = np.repeat(first[None, :], at.size, axis=0)
    known = latest >= 0
    held[known] = vals[latest[known]]
    return held
