"""Closed-loop replay in torch: the network fed its own previous outputs, hop by hop.

Owns :func:`closed_loop_predict` (the rollout the daemon runs, in torch) and the scores of a
replay (:func:`evaluate_closed_loop`). It must not change weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from emgd.data.recording import Recording
from emgd.errors import ConfigError, DatasetError
from emgd.model.ensemble import MedianEnsemble, median_angles
from emgd.model.network import EmgNet
from emgd.offline.metrics import summarise
from emgd.offline.stream import (
    SessionStream,
    build_stream,
    hop_ends,
    ramp_scores,
)
from emgd.poses import REST, pose_angles_deg
from emgd.training.features import features_at
from emgd.training.settings import FloatArray, HistoryMode, IntArray, Network, TrainResult

log = logging.getLogger(__name__)

# Hops whose features are computed together in replay (bounds memory: ~C·8000 floats each).
REPLAY_CHUNK_HOPS = 256


# ----------------------------------------------------------------------------- rollout


def _rollout(
    net: EmgNet, projection: Tensor, history_deg: Tensor, *, detach: bool
) -> tuple[Tensor, Tensor]:
    """Run the history-dependent part step by step, feeding back the outputs.

    Parameters
    ----------
    projection:
        Shape ``(B, L, H)`` from :meth:`EmgNet.project_features`.
    history_deg:
        Shape ``(B, history·5)``: the commanded history before the first step.

    Returns
    -------
    (angles, logits):
        Shapes ``(B, L, 5)`` and ``(B, L, head_inputs)``.
    """
    n_out = net.spec.n_outputs
    angles: list[Tensor] = []
    logits: list[Tensor] = []
    history = history_deg
    for step in range(projection.shape[1]):
        z = net.logits_from_projection(projection[:, step], history)
        y = net.angles_from_logits(z, sharpness=1.0)
        angles.append(y)
        logits.append(z)
        fed = y.detach() if detach else y
        history = torch.cat([fed, history[:, : history.shape[1] - n_out]], dim=1)
    return torch.stack(angles, dim=1), torch.stack(logits, dim=1)


@torch.no_grad()
def closed_loop_predict(
    net: Network,
    emg_norm: FloatArray,
    *,
    history_mode: HistoryMode = "own",
    targets_deg: FloatArray | None = None,
) -> tuple[IntArray, FloatArray]:
    """Replay a normalised stream closed loop, one inference per hop, as the daemon would.

    An ensemble's members each see the same window and history, and the history fed back
    is their median (the ensemble's output), as in the exported model.

    Parameters
    ----------
    emg_norm:
        Shape ``(n, C)``: filtered, normalised stream.
    history_mode:
        ``"own"``: the model's previous outputs (closed loop; both rest at the start);
        ``"rest"``: always the rest pose (history ignored); ``"target"``: the true targets
        at the previous hops (open loop, needs ``targets_deg``).

    Returns
    -------
    (ends, predicted_deg):
        Shapes ``(K,)`` (newest sample of each window) and ``(K, 5)``.
    """
    spec = net.spec
    nets = net.nets if isinstance(net, MedianEnsemble) else (net,)
    was_training = net.training
    net.eval()
    window, hop = spec.window_samples, spec.hop_samples
    ends = hop_ends(emg_norm.shape[0], window, hop)
    rest = torch.tensor(pose_angles_deg(REST), dtype=torch.float32)
    history = rest.repeat(spec.history).reshape(1, -1)
    preds: list[Tensor] = []
    signal = torch.from_numpy(np.ascontiguousarray(emg_norm.T, dtype=np.float32))
    for first in range(0, ends.size, REPLAY_CHUNK_HOPS):
        chunk = ends[first : first + REPLAY_CHUNK_HOPS]
        start = int(chunk[0]) - window + 1
        segment = signal[:, start : int(chunk[-1]) + 1].unsqueeze(0)
        offsets = (chunk - start).tolist()
        projections = [m.project_features(features_at(m, segment, offsets)[0]) for m in nets]
        for i in range(chunk.size):
            if history_mode == "target":
                if targets_deg is None:
                    raise ConfigError("closed_loop_predict: history_mode 'target' needs targets")
                k = first + i
                prev = [
                    ends[max(k - j, 0)] if k - j >= 0 else -1 for j in range(1, spec.history + 1)
                ]
                history = torch.cat(
                    [
                        rest if p < 0 else torch.tensor(targets_deg[p], dtype=torch.float32)
                        for p in prev
                    ]
                ).reshape(1, -1)
            outs = [
                m.angles_from_logits(m.logits_from_projection(p[i : i + 1], history))
                for m, p in zip(nets, projections, strict=True)
            ]
            y = median_angles(torch.stack(outs))  # of one network: its own output
            preds.append(y[0])
            if history_mode == "own":
                history = torch.cat([y, history[:, : history.shape[1] - spec.n_outputs]], dim=1)
    net.train(was_training)
    if not preds:
        return ends, np.zeros((0, spec.n_outputs))
    return ends, torch.stack(preds).double().numpy()


def score_predictions(
    stream: SessionStream, ends: IntArray, predicted_deg: FloatArray
) -> dict[str, Any]:
    """Metrics of a replay: MAE/R² (``emgd.offline.metrics.summarise``) and ramp r per ramp file."""
    if ends.size == 0:
        raise DatasetError("the stream is shorter than one window: nothing to score")
    target = stream.targets_deg[ends]
    report = summarise(predicted_deg, target)
    report["ramp_r"], report["ramp_r_per_file"] = ramp_scores(
        stream, stream.file_index[ends], predicted_deg, target
    )
    return report


def evaluate_closed_loop(
    result: TrainResult, recordings: Sequence[Recording], history_mode: HistoryMode = "own"
) -> dict[str, Any]:
    """Score a trained model closed loop on recordings (e.g. the test split).

    The stream is built and filtered by the contract and normalised with the training
    calibration (as a wearer's device would).
    """
    stream = build_stream(recordings, result.filter_spec)
    emg = result.normaliser.apply(stream.emg_uv)
    ends, pred = closed_loop_predict(
        result.net, emg, history_mode=history_mode, targets_deg=stream.targets_deg
    )
    return score_predictions(stream, ends, pred)
