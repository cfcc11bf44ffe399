"""Choosing the pose-mixture head's class sharpness on validation, after training.

Owns scoring each candidate sharpness in closed loop on the validation stream (or folds of it)
and the rule that picks one (:func:`pick_sharpness`). It must not train.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from emgd.errors import ModelError
from emgd.model.ensemble import MedianEnsemble, build_network
from emgd.model.network import EmgNet
from emgd.model.spec import HEAD_POSE_MIXTURE
from emgd.training.rollout import closed_loop_predict, score_predictions
from emgd.training.settings import HistoryMode, Network

if TYPE_CHECKING:  # fit imports this module (the sharpest head's check)
    from emgd.training.fit import Prepared

log = logging.getLogger(__name__)

MAX_TORCH_THREADS = 2
# Class sharpness of the pose-mixture head tried after training (docs/model.md), and how far
# the validation ramp correlation may fall below sharpness 1's for a candidate to count.
SHARPNESS_CANDIDATES: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
SHARPNESS_RAMP_TOLERANCE = 0.02


# ----------------------------------------------------------------------------- sharpness


def with_sharpness(net: Network, sharpness: float) -> Network:
    """A copy of a pose-mixture network (every member) whose head uses ``sharpness``."""
    spec = replace(net.spec, class_sharpness=float(sharpness))
    # Building a module draws its default init from torch's global generator; restore it,
    # so scoring a sharpness mid-training does not change the dropout masks that follow.
    with torch.random.fork_rng():
        copy_net = build_network(spec)
    copy_net.load_state_dict(net.state_dict())
    return copy_net.eval()


def pick_sharpness(rows: Sequence[Mapping[str, Any]]) -> float:
    """The rule of :func:`choose_sharpness` on its scored candidates.

    ``rows`` hold ``sharpness``, ``val_mae_deg`` and ``val_ramp_r`` (``None`` without
    ramps), the first at sharpness 1. Lowest MAE among the candidates whose ramp
    correlation is at least the first's minus :data:`SHARPNESS_RAMP_TOLERANCE`.
    """
    base_ramp = rows[0]["val_ramp_r"]
    eligible = [
        row
        for row in rows
        if base_ramp is None
        or (
            row["val_ramp_r"] is not None
            and row["val_ramp_r"] >= base_ramp - SHARPNESS_RAMP_TOLERANCE
        )
    ]
    return float(min(eligible, key=lambda row: float(row["val_mae_deg"]))["sharpness"])


def choose_sharpness(
    net: Network, val: Prepared
) -> tuple[Network, dict[str, Any] | None, dict[str, Any] | None]:
    """The network with the class sharpness of lowest closed-loop validation MAE.

    Candidates are :data:`SHARPNESS_CANDIDATES`. Where the validation data has effort
    ramps, a candidate whose ramp correlation falls more than
    :data:`SHARPNESS_RAMP_TOLERANCE` below that at sharpness 1 is not eligible:
    committing to a gesture must not cost proportional control. Other heads come back
    unchanged with no report.

    Returns
    -------
    (net, report, scores):
        The chosen network (eval mode), ``{"chosen", "candidates": [{"sharpness",
        "val_mae_deg", "val_ramp_r"}, …]}`` and its full validation scores
        (:func:`score_predictions`); ``(net, None, None)`` for other heads.
    """
    if net.spec.head != HEAD_POSE_MIXTURE:
        return net, None, None
    rows: list[dict[str, Any]] = []
    scored: dict[float, tuple[Network, dict[str, Any]]] = {}
    for sharpness in SHARPNESS_CANDIDATES:
        candidate = with_sharpness(net, sharpness)
        ends, pred = closed_loop_predict(candidate, val.emg_norm)
        scores = score_predictions(val.stream, ends, pred)
        scored[sharpness] = (candidate, scores)
        rows.append(
            {
                "sharpness": sharpness,
                "val_mae_deg": scores["mae_mean_deg"],
                "val_ramp_r": scores.get("ramp_r"),
            }
        )
    chosen = pick_sharpness(rows)
    chosen_net, chosen_scores = scored[chosen]
    return chosen_net, {"chosen": chosen, "candidates": rows}, chosen_scores


def choose_sharpness_folds(
    members: Sequence[EmgNet], folds: Sequence[Prepared]
) -> tuple[Network, dict[str, Any] | None, dict[str, Any], dict[str, float]]:
    """The median ensemble of ``members`` at the sharpness chosen on their own held-out reps.

    For members trained with rotated validation reps (``rotate_validation``) no rep is held
    out from all of them, so the median cannot be scored out of sample. Each member alone
    is replayed closed loop on its own held-out reps (``folds[i]``), and a candidate
    sharpness scores the mean of those MAEs (and ramp correlations), under the rule of
    :func:`pick_sharpness`.

    Returns
    -------
    (net, report, scores, history_effect):
        The ensemble at the chosen sharpness, the candidates' report, the members' mean
        validation scores (``mae_mean_deg`` and ``ramp_r``) and their mean validation MAE with
        own and with rest history. A head other than the pose mixture keeps sharpness 1
        (report ``None``).
    """
    if len(members) != len(folds):
        raise ModelError(f"{len(members)} members but {len(folds)} held-out folds")

    def mean_scores(nets: Sequence[Network], history_mode: HistoryMode = "own") -> dict[str, Any]:
        maes, ramps = [], []
        for net, fold in zip(nets, folds, strict=True):
            ends, pred = closed_loop_predict(net, fold.emg_norm, history_mode=history_mode)
            scores = score_predictions(fold.stream, ends, pred)
            maes.append(float(scores["mae_mean_deg"]))
            if scores.get("ramp_r") is not None:
                ramps.append(float(scores["ramp_r"]))
        return {
            "mae_mean_deg": float(np.mean(maes)),
            "ramp_r": float(np.mean(ramps)) if ramps else None,
            "member_mae_deg": maes,
        }

    ensemble = MedianEnsemble(list(members))
    report: dict[str, Any] | None = None
    if ensemble.spec.head == HEAD_POSE_MIXTURE:
        scored = {
            s: mean_scores([with_sharpness(m, s) for m in members]) for s in SHARPNESS_CANDIDATES
        }
        rows = [
            {"sharpness": s, "val_mae_deg": sc["mae_mean_deg"], "val_ramp_r": sc["ramp_r"]}
            for s, sc in scored.items()
        ]
        chosen = pick_sharpness(rows)
        own = scored[chosen]
        report = {"chosen": chosen, "candidates": rows, "scored_on": "each member's own reps"}
    else:
        chosen = 1.0
        own = mean_scores(members)
    sharp = [with_sharpness(m, chosen) for m in members] if report is not None else members
    rest = mean_scores(sharp, history_mode="rest")
    effect = {
        "val_mae_own_history_deg": own["mae_mean_deg"],
        "val_mae_rest_history_deg": rest["mae_mean_deg"],
    }
    net = with_sharpness(ensemble, chosen) if report is not None else ensemble.eval()
    return net, report, own, effect
