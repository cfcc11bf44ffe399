"""A session as one continuous stream, prepared by the preprocessing contract (no torch).

This module owns the data side of training and closed-loop replay: the protocol order of a
split's recordings (3DC rep-major with classes in recorded order; ContractionIntensity
sorted by rep, then level, then class; synthetic in time order), their concatenation into
one stream, the causal :class:`~emgd.dsp.filters.StreamingFilter` run over it in time order
(started with ``reset(None)``; mains 60 Hz for the Canadian datasets, else the board's),
each sample's gesture class (:func:`gestures_of`, :func:`class_index`),
the wearer's calibration (rest = samples labelled "no motion" / C1 / rest, effort = every
other sample of the training split), and the hop grid (one window every ``hop_samples``, the
first ending at sample ``window_samples − 1``), and the ramp correlation of each ramp
recording of a scored stream. It is plain NumPy so the daemon side may use
it too; it must not import torch, read files or hold state between calls.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from emgd.data.recording import Recording, check_same_layout
from emgd.dsp.filters import FilterSpec, StreamingFilter
from emgd.dsp.normalise import Calibration, compute_calibration
from emgd.errors import DatasetError
from emgd.offline.metrics import mean_ignoring_nan, ramp_correlation
from emgd.poses import POSE_NAMES, REST

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# --- the contract's signal chain --------------------------------------------------------
FILTER_LOW_HZ = 20.0
FILTER_HIGH_HZ = 450.0
FILTER_ORDER = 4
# Mains of the datasets' recording sites (both recorded in Canada); other data: the board's.
MAINS_OF_DATASET_HZ: dict[str, float] = {"3dc": 60.0, "contraction": 60.0}
DEFAULT_MAINS_HZ = 50.0
# Labels meaning "the hand relaxed, no effort" (3DC class 0, ContractionIntensity C1, synthetic).
REST_LABELS: frozenset[str] = frozenset({"no_motion", "no_movement", REST})
CONTRACTION = "contraction"
# Recorded sessions are calibrated without the live check that effort exceeds rest noise.
CALIBRATION_MIN_EFFORT_TO_REST = 0.0
CONTRACTION_CLASS_PATTERN = re.compile(r"_(C\d+)_")


def protocol_order(recordings: Sequence[Recording]) -> list[Recording]:
    """The recordings in the order the session was recorded.

    ContractionIntensity is sorted by rep, then level (condition), then class (label);
    every other dataset keeps the loader's order (3DC: rep-major, classes in order;
    synthetic: time order).
    """
    if all(rec.dataset == CONTRACTION for rec in recordings):
        return sorted(recordings, key=lambda r: (r.rep, r.condition, _class_of(r)))
    return list(recordings)


def _class_of(rec: Recording) -> str:
    """The ContractionIntensity class (``"C6"``) from the file name, else the label."""
    match = CONTRACTION_CLASS_PATTERN.search(rec.source)
    return match.group(1) if match else rec.label_names[0]


def contract_filter_spec(dataset: str, mains_hz: float | None = None) -> FilterSpec:
    """The contract's filter: 20–450 Hz order 4, notch at the dataset's (or given) mains."""
    mains = MAINS_OF_DATASET_HZ.get(dataset, DEFAULT_MAINS_HZ) if mains_hz is None else mains_hz
    return FilterSpec(
        low_hz=FILTER_LOW_HZ, high_hz=FILTER_HIGH_HZ, order=FILTER_ORDER, mains_hz=mains
    )


@dataclass(frozen=True, eq=False)
class SessionStream:
    """A split side concatenated in protocol order and filtered.

    Attributes
    ----------
    emg_uv:
        Shape ``(n, C)``: the filtered stream (recording units; not normalised).
    sample_rate_hz:
        Sampling rate.
    targets_deg:
        Shape ``(n, 5)``.
    pose_index:
        Shape ``(n,)``: index into :data:`emgd.poses.POSE_NAMES` of each sample's pose.
    rest_mask:
        Shape ``(n,)``: True where the wearer is at rest with no effort (calibration rest).
    file_index:
        Shape ``(n,)``: which recording (in protocol order) each sample comes from.
    file_starts:
        Shape ``(n_files + 1,)``: first sample of each recording, then ``n``.
    recordings:
        The recordings in protocol order.
    filter_spec:
        The filter that was run.
    """

    emg_uv: FloatArray
    sample_rate_hz: float
    targets_deg: FloatArray
    pose_index: IntArray
    rest_mask: BoolArray
    file_index: IntArray
    file_starts: IntArray
    recordings: tuple[Recording, ...]
    filter_spec: FilterSpec

    @property
    def n_samples(self) -> int:
        return int(self.emg_uv.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.emg_uv.shape[1])


def build_stream(
    recordings: Sequence[Recording],
    filter_spec: FilterSpec | None = None,
    *,
    keep_order: bool = False,
) -> SessionStream:
    """Concatenate recordings in protocol order and run the streaming filter over them.

    Parameters
    ----------
    recordings:
        One side of a split (same channels and rate).
    filter_spec:
        The filter; default :func:`contract_filter_spec` of the recordings' dataset.
    keep_order:
        Join the recordings in the order given instead of protocol order (training joins
        shuffled pieces).

    Returns
    -------
    SessionStream
    """
    n_channels, fs = check_same_layout(recordings, "session stream")
    ordered = list(recordings) if keep_order else protocol_order(recordings)
    spec = contract_filter_spec(ordered[0].dataset) if filter_spec is None else filter_spec
    raw = np.concatenate([rec.emg for rec in ordered], axis=0)
    chain = StreamingFilter(spec, fs, n_channels)
    chain.reset(None)
    emg = chain.process(raw)
    pose_of = {name: i for i, name in enumerate(POSE_NAMES)}
    pose_index = np.concatenate(
        [
            np.array([pose_of[p] for p in rec.label_poses], dtype=np.int64)[rec.label_index]
            for rec in ordered
        ]
    )
    rest_mask = np.concatenate(
        [
            np.array([n in REST_LABELS for n in rec.label_names], dtype=bool)[rec.label_index]
            for rec in ordered
        ]
    )
    lengths = np.array([rec.n_samples for rec in ordered], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SessionStream(
        emg_uv=np.asarray(emg, dtype=np.float64),
        sample_rate_hz=fs,
        targets_deg=np.concatenate([rec.targets_deg for rec in ordered], axis=0),
        pose_index=pose_index,
        rest_mask=rest_mask,
        file_index=np.repeat(np.arange(len(ordered), dtype=np.int64), lengths),
        file_starts=starts,
        recordings=tuple(ordered),
        filter_spec=spec,
    )


def gestures_of(recordings: Sequence[Recording]) -> tuple[tuple[str, str], ...]:
    """Every ``(label, pose)`` pair of the recordings, in protocol order of first appearance.

    Raises
    ------
    DatasetError
        If one label stands for two different poses.
    """
    pose_of: dict[str, str] = {}
    for rec in protocol_order(recordings):
        for label, pose in zip(rec.label_names, rec.label_poses, strict=True):
            if pose_of.setdefault(label, pose) != pose:
                raise DatasetError(
                    f"{rec.source}: label {label!r} is pose {pose!r} here but "
                    f"{pose_of[label]!r} in an earlier recording"
                )
    return tuple(pose_of.items())


def class_index(stream: SessionStream, gestures: Sequence[tuple[str, str]]) -> IntArray:
    """Each sample's class for a pose-mixture softmax over ``gestures`` (empty: the poses).

    Raises
    ------
    DatasetError
        If a recording holds a label that is not one of ``gestures``.
    """
    if not gestures:
        return stream.pose_index
    index_of = {label: i for i, (label, _) in enumerate(gestures)}
    parts: list[IntArray] = []
    for rec in stream.recordings:
        missing = [name for name in rec.label_names if name not in index_of]
        if missing:
            raise DatasetError(
                f"{rec.source}: gesture {missing[0]!r} is not one the model was built for "
                f"({', '.join(index_of)})"
            )
        lookup = np.array([index_of[name] for name in rec.label_names], dtype=np.int64)
        parts.append(lookup[rec.label_index])
    return np.concatenate(parts)


def calibrate(stream: SessionStream) -> Calibration:
    """The wearer's calibration from a (training) stream: rest samples versus all others.

    The effort-to-rest check of :func:`~emgd.dsp.normalise.compute_calibration` is off
    (``min_effort_to_rest = 0``): a recorded session cannot be redone, and a channel that
    barely moves for the recorded gestures (ContractionIntensity S2 channel 3: 1.7 × its
    rest noise) is still information, not a fault. Flat and non-finite channels still fail.

    Raises
    ------
    DatasetError
        If the stream has no rest samples or no effort samples.
    """
    rest = stream.emg_uv[stream.rest_mask]
    effort = stream.emg_uv[~stream.rest_mask]
    if rest.shape[0] == 0 or effort.shape[0] == 0:
        side = "rest (no motion)" if rest.shape[0] == 0 else "effort (gesture)"
        raise DatasetError(f"calibration: the training stream has no {side} samples")
    return compute_calibration(
        rest, effort, stream.sample_rate_hz, min_effort_to_rest=CALIBRATION_MIN_EFFORT_TO_REST
    )


def hop_ends(n_samples: int, window_samples: int, hop_samples: int) -> IntArray:
    """Newest-sample index of every complete window: ``W − 1, W − 1 + hop, …`` below ``n``."""
    if n_samples < window_samples:
        return np.zeros(0, dtype=np.int64)
    return np.arange(window_samples - 1, n_samples, hop_samples, dtype=np.int64)


def ramp_scores(
    stream: SessionStream, file_of_hop: IntArray, predicted: FloatArray, target: FloatArray
) -> tuple[float | None, dict[str, float]]:
    """Mean and per-file ramp correlation over the hops that fall in ramp recordings."""
    ramps: dict[str, float] = {}
    for i, rec in enumerate(stream.recordings):
        hops = file_of_hop == i
        if rec.is_ramp and int(hops.sum()) >= 2:
            r = ramp_correlation(predicted[hops], target[hops])
            if math.isfinite(r):
                ramps[rec.source] = r
    return (mean_ignoring_nan(list(ramps.values())) if ramps else None), ramps
