"""One recorded (or generated) stretch of EMG with its finger-angle targets: :class:`Recording`.

This module owns the in-memory form every dataset loader produces and every consumer
(baselines, training, evaluation) reads: EMG samples × channels at one sampling rate, the five
target angles and the effort at every sample, per-sample gesture labels with the pose each
label stands for, and where the data came from (dataset, participant, session, rep, file).
It also owns the one fast, strict CSV reader the loaders share, which turns every malformed
file into a :class:`~emgd.errors.DatasetError` naming the file and line. It must not know
dataset folder layouts, filter signals or compute features.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from emgd.errors import DatasetError
from emgd.poses import ANGLE_MAX_DEG, ANGLE_MIN_DEG, N_FINGERS, POSE_NAMES, proportional_targets_deg

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CSV_DELIMITER = ","
# Show at most this many characters of an offending cell in an error message.
MAX_CELL_CHARS_IN_MESSAGE = 40


def _frozen_copy(array: npt.ArrayLike, dtype: type[np.generic]) -> npt.NDArray[np.generic]:
    out = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Recording:
    """A stretch of multichannel EMG with its targets, labels and provenance.

    All arrays are copied on construction and made read-only.

    Attributes
    ----------
    emg:
        Shape ``(n, C)``, float64, in :attr:`emg_unit` (ADC counts, volts or µV: datasets
        differ, so consumers normalise per channel).
    sample_rate_hz:
        Sampling rate of every array below.
    targets_deg:
        Shape ``(n, 5)``: finger flexion targets in degrees (thumb … little, 0 open,
        180 flexed).
    effort:
        Shape ``(n,)``: the effort ``p`` in ``[0, 1]`` the targets were computed at.
    label_names:
        The gesture labels that occur in this recording (its own small vocabulary).
    label_poses:
        Same length as :attr:`label_names`: the pose (from :data:`emgd.poses.POSE_NAMES`)
        each label stands for.
    label_index:
        Shape ``(n,)``: index into :attr:`label_names` for every sample.
    dataset:
        ``"3dc"``, ``"contraction"``, ``"synthetic"`` …
    participant:
        Participant folder name (``"Participant1"``, ``"S2"``) or ``"seed<k>"``.
    session:
        ``"train"``/``"test"`` for 3DC, ``""`` where the dataset has no session folders.
    rep:
        Repetition number as written in the file name (3DC 0–3, ContractionIntensity 1–4).
    condition:
        The recording condition (ContractionIntensity level ``"20P"`` … ``"Ramp"``), or ``""``.
    source:
        File name (not the full path) or a description of the generator.
    emg_unit:
        Unit of :attr:`emg`: ``"counts"``, ``"V"`` or ``"uV"``.
    """

    emg: FloatArray
    sample_rate_hz: float
    targets_deg: FloatArray
    effort: FloatArray
    label_names: tuple[str, ...]
    label_poses: tuple[str, ...]
    label_index: IntArray
    dataset: str
    participant: str
    session: str = ""
    rep: int = 0
    condition: str = ""
    source: str = ""
    emg_unit: str = "uV"

    def __post_init__(self) -> None:
        where = f"recording {self.source or '<unnamed>'}"
        emg = np.array(self.emg, dtype=np.float64, copy=True)
        if emg.ndim != 2 or emg.shape[0] == 0 or emg.shape[1] == 0:
            raise DatasetError(f"{where}: emg must have shape (n >= 1, C >= 1), got {emg.shape}")
        n = emg.shape[0]
        if not np.isfinite(emg).all():
            row, col = (int(i) for i in np.argwhere(~np.isfinite(emg))[0])
            raise DatasetError(f"{where}: emg sample {row} channel {col} is not finite")
        fs = float(self.sample_rate_hz)
        if not (math.isfinite(fs) and fs > 0.0):
            raise DatasetError(f"{where}: sample_rate_hz must be > 0, got {self.sample_rate_hz!r}")
        targets = np.array(self.targets_deg, dtype=np.float64, copy=True)
        if targets.shape != (n, N_FINGERS):
            raise DatasetError(
                f"{where}: targets_deg must have shape ({n}, {N_FINGERS}), got {targets.shape}"
            )
        bad = ~(np.isfinite(targets) & (targets >= ANGLE_MIN_DEG) & (targets <= ANGLE_MAX_DEG))
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise DatasetError(
                f"{where}: target {float(targets[row, col])!r} at sample {row} finger {col} is "
                f"outside [{ANGLE_MIN_DEG:g}, {ANGLE_MAX_DEG:g}] degrees"
            )
        effort = np.array(self.effort, dtype=np.float64, copy=True)
        if effort.shape != (n,):
            raise DatasetError(f"{where}: effort must have shape ({n},), got {effort.shape}")
        bad_e = ~(np.isfinite(effort) & (effort >= 0.0) & (effort <= 1.0))
        if bad_e.any():
            row = int(np.flatnonzero(bad_e)[0])
            raise DatasetError(
                f"{where}: effort {float(effort[row])!r} at sample {row} is outside [0, 1]"
            )
        names = tuple(self.label_names)
        poses = tuple(self.label_poses)
        if len(names) == 0 or len(names) != len(poses):
            raise DatasetError(
                f"{where}: need one pose per label, got {len(names)} labels and {len(poses)} poses"
            )
        if len(set(names)) != len(names):
            raise DatasetError(f"{where}: label names repeat: {names}")
        for pose in poses:
            if pose not in POSE_NAMES:
                raise DatasetError(
                    f"{where}: unknown pose {pose!r}; known poses: {', '.join(POSE_NAMES)}"
                )
        index = np.array(self.label_index, copy=True)
        if index.shape != (n,) or not np.issubdtype(index.dtype, np.integer):
            raise DatasetError(
                f"{where}: label_index must be {n} integers, got {index.dtype} {index.shape}"
            )
        if index.min() < 0 or index.max() >= len(names):
            raise DatasetError(
                f"{where}: label_index values must be in [0, {len(names) - 1}], "
                f"got [{int(index.min())}, {int(index.max())}]"
            )
        object.__setattr__(self, "emg", _frozen_copy(emg, np.float64))
        object.__setattr__(self, "sample_rate_hz", fs)
        object.__setattr__(self, "targets_deg", _frozen_copy(targets, np.float64))
        object.__setattr__(self, "effort", _frozen_copy(effort, np.float64))
        object.__setattr__(self, "label_names", names)
        object.__setattr__(self, "label_poses", poses)
        object.__setattr__(self, "label_index", _frozen_copy(index, np.int64))

    @classmethod
    def single_gesture(
        cls,
        emg: npt.ArrayLike,
        sample_rate_hz: float,
        *,
        label: str,
        pose: str,
        effort: float | npt.ArrayLike,
        dataset: str,
        participant: str,
        session: str = "",
        rep: int = 0,
        condition: str = "",
        source: str = "",
        emg_unit: str = "uV",
    ) -> Recording:
        """A recording of one sustained gesture, targets ``R + p·(G − R)`` at each sample.

        Parameters
        ----------
        emg:
            Shape ``(n, C)``.
        effort:
            A scalar ``p`` for the whole file, or shape ``(n,)`` for a ramp.
        """
        emg_arr = np.asarray(emg, dtype=np.float64)
        n = emg_arr.shape[0] if emg_arr.ndim == 2 else 0
        p = np.asarray(effort, dtype=np.float64)
        p_n = np.full(n, float(p)) if p.ndim == 0 else p.reshape(-1)
        where = f"recording {source or '<unnamed>'}"
        if p_n.shape != (n,):
            raise DatasetError(f"{where}: effort must be a scalar or have shape ({n},)")
        if pose not in POSE_NAMES:
            raise DatasetError(f"{where}: unknown pose {pose!r}; known: {', '.join(POSE_NAMES)}")
        bad = ~(np.isfinite(p_n) & (p_n >= 0.0) & (p_n <= 1.0))
        if bad.any():
            raise DatasetError(f"{where}: effort must be in [0, 1], got {float(p_n[bad][0])!r}")
        return cls(
            emg=emg_arr,
            sample_rate_hz=sample_rate_hz,
            targets_deg=proportional_targets_deg(pose, p_n),
            effort=p_n,
            label_names=(label,),
            label_poses=(pose,),
            label_index=np.zeros(n, dtype=np.int64),
            dataset=dataset,
            participant=participant,
            session=session,
            rep=rep,
            condition=condition,
            source=source,
            emg_unit=emg_unit,
        )

    @property
    def n_samples(self) -> int:
        return int(self.emg.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.emg.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate_hz

    @property
    def is_ramp(self) -> bool:
        """True for a file whose effort ramps (ContractionIntensity ``Ramp``)."""
        return self.condition == "Ramp"

    def labels(self) -> npt.NDArray[np.str_]:
        """Shape ``(n,)``: the gesture label of every sample."""
        return np.asarray(self.label_names)[self.label_index]

    def poses(self) -> npt.NDArray[np.str_]:
        """Shape ``(n,)``: the pose of every sample."""
        return np.asarray(self.label_poses)[self.label_index]

    def piece(self, start: int, stop: int) -> Recording:
        """Samples ``start … stop − 1`` as a recording of their own (same provenance).

        Raises
        ------
        DatasetError
            If the range is empty or outside the recording.
        """
        if not 0 <= start < stop <= self.n_samples:
            raise DatasetError(
                f"recording {self.source or '<unnamed>'}: piece {start}:{stop} is empty or "
                f"outside its {self.n_samples} samples"
            )
        return replace(
            self,
            emg=self.emg[start:stop],
            targets_deg=self.targets_deg[start:stop],
            effort=self.effort[start:stop],
            label_index=self.label_index[start:stop],
            source=f"{self.source}[{start}:{stop}]",
        )


def check_same_layout(recordings: Sequence[Recording], where: str) -> tuple[int, float]:
    """Check that recordings share channel count and sampling rate; return them.

    Raises
    ------
    DatasetError
        If the list is empty or two recordings differ.
    """
    if len(recordings) == 0:
        raise DatasetError(f"{where}: no recordings")
    first = recordings[0]
    for rec in recordings[1:]:
        if rec.n_channels != first.n_channels or rec.sample_rate_hz != first.sample_rate_hz:
            raise DatasetError(
                f"{where}: {rec.source} has {rec.n_channels} channels at {rec.sample_rate_hz:g} Hz"
                f" but {first.source} has {first.n_channels} at {first.sample_rate_hz:g} Hz"
            )
    return first.n_channels, first.sample_rate_hz


def _describe_cell(cell: str) -> str:
    text = cell.strip()
    if len(text) > MAX_CELL_CHARS_IN_MESSAGE:
        text = text[:MAX_CELL_CHARS_IN_MESSAGE] + "…"
    return repr(text)


def _first_bad_line(path: Path, n_columns: int) -> str:
    """Scan a file line by line (slow path) and describe its first malformed line."""
    with path.open("r", encoding="utf-8", errors="replace", newline=None) as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if line.strip() == "":
                continue
            cells = line.split(CSV_DELIMITER)
            if len(cells) != n_columns:
                return (
                    f"{path}: line {line_no}: expected {n_columns} comma-separated columns, "
                    f"found {len(cells)}"
                )
            for col, cell in enumerate(cells):
                try:
                    value = float(cell)
                except ValueError:
                    return (
                        f"{path}: line {line_no} column {col + 1}: not a number: "
                        f"{_describe_cell(cell)}"
                    )
                if not math.isfinite(value):
                    return (
                        f"{path}: line {line_no} column {col + 1}: not a finite number: "
                        f"{_describe_cell(cell)}"
                    )
    return f"{path}: malformed CSV"


def read_csv_matrix(path: Path, n_columns: int) -> FloatArray:
    """Read a header-less numeric CSV with exactly ``n_columns`` columns.

    Blank lines are ignored. The fast path is :func:`numpy.loadtxt`; on any problem the file
    is scanned line by line so the error can name the line.

    Parameters
    ----------
    path:
        The file.
    n_columns:
        Required number of columns on every line.

    Returns
    -------
    numpy.ndarray
        Shape ``(rows, n_columns)``, float64, all finite.

    Raises
    ------
    DatasetError
        If the file is missing or unreadable, empty, has a line with another number of
        columns, or a cell that is not a finite number (message names file, line, column).
    """
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # loadtxt warns on empty input
            data = np.loadtxt(
                path, delimiter=CSV_DELIMITER, dtype=np.float64, ndmin=2, comments=None
            )
    except ValueError:
        raise DatasetError(_first_bad_line(path, n_columns)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from None
    if data.size == 0:
        raise DatasetError(f"{path}: file is empty (no samples)")
    if data.shape[1] != n_columns or not np.isfinite(data).all():
        raise DatasetError(_first_bad_line(path, n_columns))
    return data


def numbered_folders(
    dataset_dir: Path, pattern: re.Pattern[str], dataset: str, kind: str
) -> list[str]:
    """Names of the sub-folders of ``dataset_dir`` matching ``pattern`` (which has a
    ``number`` group), in numeric order; ``dataset`` and ``kind`` name them in errors.

    Raises
    ------
    DatasetError
        If the folder is missing or holds no matching sub-folder.
    """
    if not dataset_dir.is_dir():
        raise DatasetError(f"{dataset} dataset folder not found: {dataset_dir}")
    found = [
        (int(m["number"]), p.name)
        for p in dataset_dir.iterdir()
        if p.is_dir() and (m := pattern.match(p.name)) is not None
    ]
    if not found:
        raise DatasetError(f"{dataset_dir}: no {kind} folders")
    return [name for _, name in sorted(found)]
