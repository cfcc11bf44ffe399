"""Per-user, closed-loop training of the network (``emgd train``): :func:`train_model`.

This module owns the recipe's order of work: it turns one participant's training recordings
into a filtered, calibrated stream (:mod:`emgd.offline.stream`), holds out the last rep for
validation, sets the band-amplitude standardisation from the training stream
(:mod:`~emgd.training.features`), trains each member of the median ensemble from its own seed
with the epoch loop (:mod:`~emgd.training.fit`: rolled-out sequences fed the model's own
outputs, early stopping on the closed-loop validation MAE, a wall-time budget), picks the
head's class sharpness once for the median (:mod:`~emgd.training.sharpness`), and reports what
the history inputs do. It also saves and loads checkpoints. The settings and their defaults are
:mod:`~emgd.training.settings`; why they are what they are is ``docs/model.md``. It imports
torch and is imported only by the training CLI; the daemon must never import it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emgd.data.recording import Recording
from emgd.data.splits import Split
from emgd.dsp.filters import FilterSpec
from emgd.dsp.normalise import Normaliser
from emgd.errors import ConfigError, DatasetError, ModelError
from emgd.model.ensemble import MedianEnsemble, build_network, member_seed
from emgd.model.network import EmgNet
from emgd.model.spec import ModelSpec
from emgd.offline.stream import (
    build_stream,
    calibrate,
    contract_filter_spec,
    hop_ends,
)
from emgd.training.features import standardise_bands
from emgd.training.fit import (
    EpochStream,
    Prepared,
    as_recordings,
    fit,
    prepare,
    shuffled_pieces,
    split_validation,
)
from emgd.training.rollout import closed_loop_predict, score_predictions
from emgd.training.settings import (
    Network,
    TrainConfig,
    TrainResult,
    recipe_spec_for,
)
from emgd.training.sharpness import MAX_TORCH_THREADS, choose_sharpness, choose_sharpness_folds

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


def train_model(
    split_or_recordings: Split | Sequence[Recording],
    *,
    spec: ModelSpec | None = None,
    seed: int = 0,
    max_minutes: float = 10.0,
    config: TrainConfig | None = None,
    mains_hz: float | None = None,
    init: EmgNet | None = None,
) -> TrainResult:
    """Train one participant's network closed loop on their training session.

    Parameters
    ----------
    split_or_recordings:
        A :class:`~emgd.data.splits.Split` (its ``train`` side is used) or the training
        recordings.
    spec:
        The network; default :func:`recipe_spec` at the data's rate and channel count,
        over the data's gestures (:func:`recipe_gestures`).
    seed:
        Seeds the initialisation, the sampling and the augmentation (CPU runs repeat).
    max_minutes:
        Wall-time budget for the whole training (the best state so far is kept). The
        members of an ensemble train one after the other, each with an equal share of
        the time left when it starts.
    config:
        The recipe (default :class:`TrainConfig`).
    mains_hz:
        Mains notch; default 60 Hz for 3DC/ContractionIntensity, 50 Hz otherwise.
    init:
        Start every member from these weights (``emgd train --quick``,
        :mod:`~emgd.training.quick`) instead of from its seed; its spec must be the
        member's.

    Returns
    -------
    TrainResult
    """
    config = TrainConfig() if config is None else config
    recordings = as_recordings(split_or_recordings)
    if not recordings:
        raise DatasetError("train_model: no training recordings")
    fs = recordings[0].sample_rate_hz
    n_channels = recordings[0].n_channels
    spec = recipe_spec_for(recordings) if spec is None else spec
    if spec.sample_rate_hz != fs or spec.n_channels != n_channels:
        raise ConfigError(
            f"model spec is for {spec.n_channels} channels at {spec.sample_rate_hz:g} Hz, "
            f"the training data has {n_channels} at {fs:g} Hz"
        )
    if config.intensity_jitter > 0.0 and spec.graded_effort:
        raise ConfigError(
            f"intensity_jitter = {config.intensity_jitter:g} needs a head without graded "
            "effort (spec.graded_effort = false): the effort is learned from the amplitude"
        )
    if init is not None and init.spec != spec.member:
        raise ConfigError(
            "the starting network's spec differs from the one to train "
            "(a --set spec.KEY that changes the network cannot start from a model)"
        )
    if config.refit_all and spec.members > 1:
        raise ConfigError(
            f"refit_all trains one network again; the spec has members = {spec.members} "
            "(set spec.members=1 to refit)"
        )
    t_start = time.monotonic()
    deadline_s = t_start + 60.0 * max_minutes
    torch.set_num_threads(min(MAX_TORCH_THREADS, torch.get_num_threads()))
    filter_spec = contract_filter_spec(recordings[0].dataset, mains_hz)
    full_stream = build_stream(recordings, filter_spec)
    calibration = calibrate(full_stream)
    normaliser = calibration.normaliser
    rotate = config.rotate_validation and spec.members > 1
    fit_recs, val_recs = split_validation(full_stream.recordings, config.validation_reps)

    def epoch_stream(recs: Sequence[Recording]) -> EpochStream:
        """The training stream of every epoch: fixed in protocol order, or shuffled pieces."""
        if config.pieces_per_recording <= 0:
            fixed = prepare(build_stream(recs, filter_spec), normaliser, spec)
            return lambda _rng: fixed

        def shuffled(epoch_rng: np.random.Generator) -> Prepared:
            pieces = shuffled_pieces(
                recs,
                epoch_rng,
                pieces_per_recording=config.pieces_per_recording,
                min_piece_s=config.min_piece_s,
            )
            return prepare(build_stream(pieces, filter_spec, keep_order=True), normaliser, spec)

        return shuffled

    def fold_data(
        fit: Sequence[Recording], held: Sequence[Recording]
    ) -> tuple[Prepared | None, Prepared | None]:
        """(fit stream, validation stream); the fit stream only where band amplitudes need it."""
        val = prepare(build_stream(held, filter_spec), normaliser, spec) if held else None
        fit_prepared = None
        if spec.band_amplitude_s is not None:
            fit_prepared = prepare(build_stream(fit, filter_spec), normaliser, spec)
        return fit_prepared, val

    fit_data, val_data = fold_data(fit_recs, val_recs)
    member_vals: list[Prepared | None] = []
    history: list[dict[str, float]] = []
    fit_deadline_s = deadline_s
    if config.refit_all and val_data is not None:
        # The refit runs as many epochs over all the samples: give each fit its share.
        n_fit = sum(r.n_samples for r in fit_recs)
        fit_deadline_s = t_start + (deadline_s - t_start) * n_fit / (n_fit + full_stream.n_samples)
    members: list[EmgNet] = []
    member_reports: list[dict[str, Any]] = []
    for index in range(spec.members):
        # Each member gets an equal share of the time left, so one that stops early leaves
        # its time to those after it. Seeding here makes member i the same network as a
        # single-network run with its seed.
        share_deadline_s = time.monotonic() + (fit_deadline_s - time.monotonic()) / (
            spec.members - index
        )
        seed_i = member_seed(seed, index, spec.members)
        torch.manual_seed(seed_i)
        rng = np.random.default_rng(seed_i)
        member = EmgNet(spec.member, seed=seed_i)
        if init is not None:
            member.load_state_dict(init.state_dict())
        member_fit, member_held = fit_recs, val_recs
        member_fit_data, member_val = fit_data, val_data
        if rotate and index > 0:
            member_fit, member_held = split_validation(
                full_stream.recordings, config.validation_reps, fold=index
            )
            member_fit_data, member_val = fold_data(member_fit, member_held)
        member_vals.append(member_val)
        if member_fit_data is not None:
            standardise_bands(member, member_fit_data.emg)
        rows: list[dict[str, float]] = []
        t_member = time.monotonic()
        best_epoch, best_val = fit(
            member,
            epoch_stream(member_fit),
            member_val,
            config=config,
            rng=rng,
            deadline_s=share_deadline_s,
            epochs=config.max_epochs,
            history=rows,
        )
        history += [row | {"member": index} for row in rows] if spec.members > 1 else rows
        members.append(member)
        member_reports.append(
            {
                "seed": seed_i,
                "best_epoch": best_epoch,
                "best_val_mae_deg": best_val if math.isfinite(best_val) else None,
                "epochs_run": len(rows),
                "seconds": time.monotonic() - t_member,
                "validation_reps": sorted({r.rep for r in member_held}),
            }
        )
        log.info(
            "member %d of %d (seed %d): best epoch %d of %d, validation MAE %.2f deg, %.0f s",
            index + 1,
            spec.members,
            seed_i,
            best_epoch,
            len(rows),
            best_val,
            member_reports[-1]["seconds"],
        )
    net: Network = members[0] if spec.members == 1 else MedianEnsemble(members)
    val_report: dict[str, Any] | None = None
    history_effect: dict[str, float] | None = None
    sharpness_report: dict[str, Any] | None = None
    if rotate and all(v is not None for v in member_vals):
        folds = [v for v in member_vals if v is not None]
        net, sharpness_report, val_report, history_effect = choose_sharpness_folds(members, folds)
    elif val_data is not None:
        net, sharpness_report, val_report = choose_sharpness(net, val_data)
        if val_report is None:
            ends, pred = closed_loop_predict(net, val_data.emg_norm)
            val_report = score_predictions(val_data.stream, ends, pred)
        ends, pred_rest = closed_loop_predict(net, val_data.emg_norm, history_mode="rest")
        rest_report = score_predictions(val_data.stream, ends, pred_rest)
        history_effect = {
            "val_mae_own_history_deg": val_report["mae_mean_deg"],
            "val_mae_rest_history_deg": rest_report["mae_mean_deg"],
        }
    refit_epochs = 0
    best_epoch = int(member_reports[0]["best_epoch"])
    if config.refit_all and val_data is not None and time.monotonic() < deadline_s:
        net = EmgNet(net.spec, seed=seed)
        if spec.band_amplitude_s is not None:
            standardise_bands(net, prepare(full_stream, normaliser, spec).emg)
        refit_epochs = best_epoch
        fit(
            net,
            epoch_stream(full_stream.recordings),
            None,
            config=config,
            rng=rng,
            deadline_s=deadline_s,
            epochs=best_epoch,
            history=history,
        )
    net.eval()
    report: dict[str, Any] = {
        "seed": seed,
        "config": asdict(config),
        "spec": net.spec.to_dict(),
        "head": spec.head,
        "window_samples": spec.window_samples,
        "hop_samples": spec.hop_samples,
        "filter": asdict(filter_spec),
        "dataset": recordings[0].dataset,
        "participant": recordings[0].participant,
        "n_train_recordings": len(fit_recs),
        "n_val_recordings": len(val_recs),
        "validation_reps": sorted({r.rep for r in val_recs}),
        "train_hops": int(
            hop_ends(sum(r.n_samples for r in fit_recs), spec.window_samples, spec.hop_samples).size
        ),
        # One network: its best epoch and validation MAE; an ensemble: see "members".
        "best_epoch": best_epoch if spec.members == 1 else None,
        "best_val_mae_deg": member_reports[0]["best_val_mae_deg"] if spec.members == 1 else None,
        "members": member_reports,
        "refit_epochs": refit_epochs,
        "validation": val_report,
        "history_effect": history_effect,
        "class_sharpness": sharpness_report,
        "epochs_run": len(history),
        "training_seconds": time.monotonic() - t_start,
        "torch_threads": torch.get_num_threads(),
    }
    return TrainResult(net, net.spec, normaliser, filter_spec, history, report)


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(result: TrainResult, path: Path) -> None:
    """Write the network, spec, calibration, filter and report to one ``.pt`` file."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "spec": result.spec.to_dict(),
        "state_dict": result.net.state_dict(),
        "normaliser": {
            "offset": result.normaliser.offset.tolist(),
            "scale": result.normaliser.scale.tolist(),
        },
        "filter_spec": asdict(result.filter_spec),
        "history": result.history,
        "report": result.report,
    }
    torch.save(payload, path)


def load_checkpoint(path: Path) -> TrainResult:
    """Read a file written by :func:`save_checkpoint`.

    Raises
    ------
    ModelError
        If the file is missing, unreadable or of another format.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"{path}: cannot read checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path}: not an emgd checkpoint (format {CHECKPOINT_FORMAT})")
    spec = ModelSpec.from_dict(payload["spec"])
    net = build_network(spec)
    net.load_state_dict(payload["state_dict"])
    net.eval()
    normaliser = Normaliser(
        np.asarray(payload["normaliser"]["offset"]), np.asarray(payload["normaliser"]["scale"])
    )
    filter_spec = FilterSpec(**payload["filter_spec"])
    return TrainResult(net, spec, normaliser, filter_spec, payload["history"], payload["report"])
