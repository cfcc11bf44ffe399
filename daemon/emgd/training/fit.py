"""The epoch loop: one member trained on rolled-out sequences until validation stops improving.

Owns preparing a stream for training, the shuffled pieces rebuilt every epoch, the augmentations
(per-channel gain, map dropout, electrode shift), the loss, the learning-rate schedule and early
stopping on the closed-loop validation MAE within a wall-time budget (:func:`fit`). It must not
choose the head's sharpness or write files.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.nn import functional

from emgd.data.recording import Recording
from emgd.data.splits import Split
from emgd.dsp.normalise import Normaliser
from emgd.errors import ConfigError, DatasetError
from emgd.model.network import EmgNet
from emgd.model.spec import HEAD_POSE_MIXTURE, ModelSpec
from emgd.offline.stream import (
    SessionStream,
    class_index,
    hop_ends,
)
from emgd.poses import REST, pose_angles_deg
from emgd.training.features import features_at
from emgd.training.rollout import _rollout, closed_loop_predict
from emgd.training.settings import FloatArray, IntArray, Network, TrainConfig
from emgd.training.sharpness import SHARPNESS_CANDIDATES, with_sharpness

log = logging.getLogger(__name__)

# Loss: L1 + MSE on (prediction − target) / LOSS_SCALE_DEG (pure L1 stalls at "always rest").
LOSS_SCALE_DEG = 30.0


# ----------------------------------------------------------------------------- training


def _loss(pred: Tensor, target: Tensor) -> Tensor:
    err = (pred - target) / LOSS_SCALE_DEG
    return err.abs().mean() + err.square().mean()


@dataclass(frozen=True, eq=False)
class Prepared:
    emg: Tensor  # (C, n) float32 normalised
    ends: IntArray  # (K,) hop ends
    targets: Tensor  # (K, 5) at each hop end
    classes: Tensor  # (K,) pose-mixture class at each hop end (spec.class_labels)
    stream: SessionStream
    emg_norm: FloatArray  # (n, C)


def prepare(stream: SessionStream, normaliser: Normaliser, spec: ModelSpec) -> Prepared:
    emg_norm = normaliser.apply(stream.emg_uv)
    ends = hop_ends(stream.n_samples, spec.window_samples, spec.hop_samples)
    return Prepared(
        emg=torch.from_numpy(np.ascontiguousarray(emg_norm.T, dtype=np.float32)),
        ends=ends,
        targets=torch.from_numpy(stream.targets_deg[ends].astype(np.float32)),
        classes=torch.from_numpy(class_index(stream, spec.gestures)[ends]),
        stream=stream,
        emg_norm=emg_norm,
    )


def _train_epoch(
    net: EmgNet,
    data: Prepared,
    *,
    optimiser: torch.optim.Optimizer,
    config: TrainConfig,
    rng: np.random.Generator,
    deadline_s: float,
) -> float:
    """One pass over the stream in shuffled rolled-out sequences; returns the mean loss."""
    spec = net.spec
    window, hop, length = spec.window_samples, spec.hop_samples, config.sequence_hops
    n_hops = data.ends.size
    if n_hops < length:
        raise DatasetError(
            f"training stream has {n_hops} hops, fewer than one sequence of {length}"
        )
    offset = int(rng.integers(0, length))
    starts = np.arange(offset, n_hops - length + 1, length)
    if starts.size == 0:
        starts = np.array([0])
    rng.shuffle(starts)
    local_ends = (window - 1 + hop * np.arange(length)).tolist()
    seg_len = window + hop * (length - 1)
    rest = torch.tensor(pose_angles_deg(REST), dtype=torch.float32)
    mixture = spec.head == HEAD_POSE_MIXTURE
    n_classes = len(spec.class_poses)
    losses: list[float] = []
    net.train()
    for first in range(0, starts.size, config.batch_sequences):
        if time.monotonic() > deadline_s:
            break
        batch = starts[first : first + config.batch_sequences]
        seg_starts = data.ends[batch] - window + 1
        segments = torch.stack([data.emg[:, s : s + seg_len] for s in seg_starts.tolist()])
        segments = segments * sequence_gains(rng, batch.size, spec.n_channels, config)
        if config.electrode_shift > 0.0:
            shift = rng.uniform(-config.electrode_shift, config.electrode_shift, batch.size)
            segments = shift_electrodes(segments, shift)
        feats = features_at(net, segments, local_ends)  # (B, L, F)
        if config.map_dropout > 0.0 and spec.band_feature_count:
            feats = drop_maps(feats, spec.map_feature_count, config.map_dropout, rng)
        projection = net.project_features(feats.reshape(-1, feats.shape[-1]))
        projection = projection.reshape(batch.size, length, -1)
        hop_index = batch[:, None] + np.arange(length)[None, :]
        target = data.targets[torch.from_numpy(hop_index)]
        prev = [np.maximum(batch - j, -1) for j in range(1, spec.history + 1)]
        history_parts = [
            torch.where(
                torch.from_numpy(p < 0)[:, None],
                rest,
                data.targets[torch.from_numpy(np.maximum(p, 0))],
            )
            for p in prev
        ]
        history = torch.cat(history_parts, dim=1)
        noise = torch.from_numpy(rng.normal(0.0, config.history_noise_deg, history.shape)).float()
        lo, hi = spec.angle_range_deg
        history = (history + noise).clamp(lo, hi)
        angles, logits = _rollout(net, projection, history, detach=config.detach_history)
        loss = _loss(angles, target)
        if mixture and config.pose_loss_weight > 0.0:
            classes = data.classes[torch.from_numpy(hop_index)]
            loss = loss + config.pose_loss_weight * functional.cross_entropy(
                logits[..., :n_classes].reshape(-1, n_classes), classes.reshape(-1)
            )
        optimiser.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimiser.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses)) if losses else math.nan


def drop_maps(
    feats: Tensor, n_map_features: int, probability: float, rng: np.random.Generator
) -> Tensor:
    """``feats`` with the first ``n_map_features`` zeroed in each sequence with ``probability``.

    ``feats`` has shape ``(B, L, F)``, one draw per sequence; kept maps are not rescaled.
    """
    keep = torch.from_numpy(rng.random(feats.shape[0]) >= probability).to(feats.dtype)
    scale = torch.ones(feats.shape[0], 1, feats.shape[2], dtype=feats.dtype)
    scale[:, 0, :n_map_features] = keep[:, None]
    return feats * scale


def sequence_gains(
    rng: np.random.Generator, n_sequences: int, n_channels: int, config: TrainConfig
) -> Tensor:
    """The gain augmentation of a batch: shape ``(n_sequences, n_channels, 1)``.

    Each channel of each sequence gets ``exp(N(0, gain_jitter))``; with ``intensity_jitter``
    every channel of a sequence is also multiplied by one ``exp(N(0, intensity_jitter))``.
    """
    log_gains = rng.normal(0.0, config.gain_jitter, (n_sequences, n_channels, 1))
    if config.intensity_jitter > 0.0:
        log_gains = log_gains + rng.normal(0.0, config.intensity_jitter, (n_sequences, 1, 1))
    return torch.from_numpy(np.exp(log_gains)).float()


def shift_electrodes(segments: Tensor, shift: npt.ArrayLike) -> Tensor:
    """Each sequence's channels as if the electrode ring had turned by a fraction ``shift``.

    Channel ``c`` becomes ``(1 − |s|)·x_c + |s|·x_{c+1}`` for ``s > 0`` and
    ``(1 − |s|)·x_c + |s|·x_{c−1}`` for ``s < 0``, channels taken as a ring (an armband),
    with one ``s`` per sequence.

    Parameters
    ----------
    segments:
        Shape ``(B, C, L)``.
    shift:
        Shape ``(B,)``, each in ``[−1, 1]``.
    """
    s = torch.as_tensor(np.asarray(shift, dtype=np.float32)).reshape(-1, 1, 1)
    if s.shape[0] != segments.shape[0] or bool((s.abs() > 1.0).any()):
        raise ConfigError(
            "electrode shift needs one value in [-1, 1] per sequence, "
            f"got {np.asarray(shift).tolist()}"
        )
    toward = torch.where(s > 0, segments.roll(-1, dims=1), segments.roll(1, dims=1))
    return (1.0 - s.abs()) * segments + s.abs() * toward


def as_recordings(split_or_recordings: Split | Sequence[Recording]) -> list[Recording]:
    if isinstance(split_or_recordings, Split):
        return list(split_or_recordings.train)
    return list(split_or_recordings)


def shuffled_pieces(
    recordings: Sequence[Recording],
    rng: np.random.Generator,
    *,
    pieces_per_recording: int,
    min_piece_s: float,
) -> list[Recording]:
    """Each recording cut into pieces at random points, all pieces in a random order.

    A recording shorter than ``pieces_per_recording · min_piece_s`` is cut into fewer
    pieces (whole if it is shorter than two). Every sample appears exactly once.
    """
    pieces: list[Recording] = []
    for rec in recordings:
        min_len = max(1, round(min_piece_s * rec.sample_rate_hz))
        k = max(1, min(pieces_per_recording, rec.n_samples // min_len))
        # k − 1 cuts, each piece at least min_len: spread the slack at random.
        slack = rec.n_samples - k * min_len
        extra = np.sort(rng.integers(0, slack + 1, k - 1)) if k > 1 else np.zeros(0, np.int64)
        cuts = [0, *(min_len * (i + 1) + int(e) for i, e in enumerate(extra)), rec.n_samples]
        pieces.extend(rec.piece(a, b) for a, b in itertools.pairwise(cuts))
    order = rng.permutation(len(pieces))
    return [pieces[i] for i in order]


def split_validation(
    recordings: Sequence[Recording], n_reps: int, fold: int = 0
) -> tuple[list[Recording], list[Recording]]:
    """(fit, held out): the last ``n_reps`` reps held out, or for ``fold`` k the block of
    ``n_reps`` reps k blocks before them, counted cyclically over the reps."""
    reps = sorted({rec.rep for rec in recordings})
    if n_reps <= 0 or len(reps) <= n_reps:
        return list(recordings), []
    first = (len(reps) - n_reps * (fold + 1)) % len(reps)
    held = {reps[(first + j) % len(reps)] for j in range(n_reps)}
    return [r for r in recordings if r.rep not in held], [r for r in recordings if r.rep in held]


EpochStream = Callable[[np.random.Generator], Prepared]


def closed_loop_mae(net: Network, data: Prepared) -> float:
    """Mean absolute angle error (deg) of a closed-loop replay of ``data``."""
    ends, pred = closed_loop_predict(net, data.emg_norm)
    return float(np.abs(pred - data.stream.targets_deg[ends]).mean())


def fit(
    net: EmgNet,
    train: EpochStream,
    val: Prepared | None,
    *,
    config: TrainConfig,
    rng: np.random.Generator,
    deadline_s: float,
    epochs: int,
    history: list[dict[str, float]],
) -> tuple[int, float]:
    """Train up to ``epochs`` epochs; keep the best validation state; return (epoch, MAE).

    ``train`` gives each epoch's training stream (drawing from ``rng`` when it shuffles).
    """
    optimiser = torch.optim.AdamW(
        [p for p in net.parameters() if p.requires_grad],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )
    best_state = copy.deepcopy(net.state_dict())
    best_epoch, best_mae, stale = 0, math.inf, 0
    drop_scale = 1.0  # the lr_drop_factor drops so far; epoch 1 trains at the full rate
    for epoch in range(1, epochs + 1):
        t0 = time.monotonic()
        loss = _train_epoch(
            net, train(rng), optimiser=optimiser, config=config, rng=rng, deadline_s=deadline_s
        )
        row: dict[str, float] = {"epoch": epoch, "train_loss": loss}
        if val is not None:
            mae = row["val_mae_deg"] = closed_loop_mae(net, val)
            if config.stop_on_sharpest and net.spec.head == HEAD_POSE_MIXTURE:
                sharpest = with_sharpness(net, max(SHARPNESS_CANDIDATES))
                row["val_mae_sharpest_deg"] = closed_loop_mae(sharpest, val)
                mae = min(mae, row["val_mae_sharpest_deg"])
            if mae < best_mae:
                best_epoch, best_mae, stale = epoch, mae, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                stale += 1
                if config.lr_drop_factor < 1.0 and stale % config.lr_drop_after_epochs == 0:
                    drop_scale *= config.lr_drop_factor
        else:
            best_epoch, best_state = epoch, copy.deepcopy(net.state_dict())
        for group in optimiser.param_groups:
            group["lr"] = epoch_learning_rate(config, epoch + 1, drop_scale)
        row["learning_rate"] = float(optimiser.param_groups[0]["lr"])
        row["seconds"] = time.monotonic() - t0
        history.append(row)
        if stale >= config.patience_epochs or time.monotonic() > deadline_s:
            break
    net.load_state_dict(best_state)
    return best_epoch, best_mae


def epoch_learning_rate(config: TrainConfig, epoch: int, drop_scale: float = 1.0) -> float:
    """The learning rate of ``epoch`` (from 1): the recipe's rate times ``drop_scale``
    (the ``lr_drop_factor`` drops so far), on a half cosine over ``max_epochs`` when
    ``cosine_decay`` is set."""
    rate = config.learning_rate * drop_scale
    if config.cosine_decay:
        progress = min(max(epoch - 1, 0), config.max_epochs) / config.max_epochs
        rate *= 0.5 * (1.0 + math.cos(math.pi * progress))
    return rate
