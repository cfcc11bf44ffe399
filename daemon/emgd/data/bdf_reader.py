"""Reader of emgd BDF+ session recordings into :class:`~emgd.data.recording.Recording` s.

This module owns turning a file written by :mod:`emgd.data.bdf_writer` (read with pyedflib)
into one Recording per cue, the way the public-dataset loaders do: label = gesture, pose
from :mod:`emgd.poses`, targets ``R + p·(G − R)`` at the cue's effort (a ramp ``a:b`` rises
linearly across the cue), ``rep`` from the cue, ``condition`` ``"hold"`` or ``"Ramp"``. It
checks the file against what the caller expects (channels, rate, device) and turns every
problem into one :class:`~emgd.errors.DatasetError` line naming the file. It must not
decide splits, filter the signal for training or write files.

Label alignment (reported per cue in :class:`CueAlignment`)
-----------------------------------------------------------
A wearer starts moving 0.2–0.5 s after a cue and ramps up, so each non-rest cue's samples
are shifted by the EMG onset delay detected for that cue:

1. envelope = mean over channels of ``|x − median of x over the baseline|``, smoothed by a
   :data:`ENVELOPE_WINDOW_S` moving average;
2. baseline = the :data:`BASELINE_S` before the cue (the preceding rest, clipped to the
   file start and to the previous cue's end); threshold = baseline mean
   + :data:`THRESHOLD_SD` × baseline standard deviation;
3. onset = the first sample in ``[cue start, cue start + MAX_DELAY_S]`` where the envelope
   stays above the threshold for :data:`HOLD_S`; if there is none, delay 0 (``found`` is
   false and the cue keeps its cue-time labels);
4. the cue's whole span (start and end) moves later by that delay, clipped to the file's
   real frames (the release lags the end cue as the onset lags the start cue).

Rest cues are not shifted. A cue that spans a ``gap`` annotation is cut at the gap into
pieces (the samples either side were not contiguous in time).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from emgd.data.bdf_annotations import (
    KIND_CUE,
    KIND_GAP,
    KIND_SESSION,
    MARKER_END,
    MARKER_START,
    Annotation,
    parse_annotation,
)
from emgd.data.bdf_writer import DEVICES, PHYSICAL_UNIT
from emgd.data.recording import Recording
from emgd.errors import DatasetError
from emgd.poses import POSE_NAMES, REST, proportional_targets_deg

FloatArray = npt.NDArray[np.float64]

DATASET_NAME = "wearer"
CONDITION_HOLD = "hold"
CONDITION_RAMP = "Ramp"  # what Recording.is_ramp looks for
ENVELOPE_WINDOW_S = 0.05
BASELINE_S = 1.0
THRESHOLD_SD = 5.0
HOLD_S = 0.05
MAX_DELAY_S = 1.0
MIN_CUE_SAMPLES = 2


@dataclass(frozen=True)
class CueAlignment:
    """What label alignment did to one cue (times in seconds from the file start)."""

    gesture: str
    effort: str
    rep: int
    cue_start_s: float
    cue_end_s: float
    delay_s: float
    found: bool


@dataclass(frozen=True)
class Gap:
    """Lost frames: ``frames`` were missing where the data join at ``onset_s``."""

    onset_s: float
    frames: int
    from_seq: int


@dataclass(frozen=True)
class BdfSession:
    """Everything read from one session file."""

    path: Path
    channel_labels: tuple[str, ...]
    sample_rate_hz: float
    device: str
    participant: str
    config: dict[str, str]
    n_frames: int
    finished: bool
    recordings: list[Recording] = field(default_factory=list)
    alignments: list[CueAlignment] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    dropped_cues: list[str] = field(default_factory=list)


def _open(path: Path) -> tuple[FloatArray, tuple[str, ...], float, str, list[tuple[float, str]]]:
    import pyedflib

    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable BDF+ file or cut short: {exc}") from None
    try:
        if reader.filetype != pyedflib.FILETYPE_BDFPLUS:
            raise DatasetError(f"{path}: not a BDF+ file (EDF/BDF type {reader.filetype})")
        n = reader.signals_in_file
        labels = tuple(reader.getLabel(i).strip() for i in range(n))
        rates = {float(reader.getSampleFrequency(i)) for i in range(n)}
        if len(rates) != 1:
            raise DatasetError(f"{path}: channels have different rates {sorted(rates)} Hz")
        units = {reader.getPhysicalDimension(i).strip() for i in range(n)}
        if units != {PHYSICAL_UNIT}:
            raise DatasetError(f"{path}: channel units {sorted(units)}, expected {PHYSICAL_UNIT}")
        emg = np.stack([reader.readSignal(i) for i in range(n)], axis=1).astype(np.float64)
        patient = reader.getPatientCode().strip() or "X"
        onsets, _, texts = reader.readAnnotations()
        annotations = [(float(o), str(t)) for o, t in zip(onsets, texts, strict=True)]
    finally:
        reader.close()
    return emg, labels, rates.pop(), patient, annotations


def _onset_delay_s(
    emg: FloatArray, fs: float, start: int, baseline_from: int
) -> tuple[float, bool]:
    """Detected EMG onset delay after sample ``start`` (rule in the module docstring)."""
    base_lo = max(baseline_from, start - round(BASELINE_S * fs))
    search_hi = min(emg.shape[0], start + round((MAX_DELAY_S + HOLD_S) * fs))
    if start - base_lo < round(ENVELOPE_WINDOW_S * fs) * 2 or search_hi <= start:
        return 0.0, False
    centre = np.median(emg[base_lo:start], axis=0)
    rect = np.abs(emg[base_lo:search_hi] - centre).mean(axis=1)
    width = max(1, round(ENVELOPE_WINDOW_S * fs))
    envelope = np.convolve(rect, np.ones(width) / width, mode="full")[: rect.shape[0]]
    n_base = start - base_lo
    baseline = envelope[width:n_base]
    threshold = float(baseline.mean() + THRESHOLD_SD * baseline.std())
    above = envelope[n_base:] > threshold
    hold = max(1, round(HOLD_S * fs))
    max_delay = round(MAX_DELAY_S * fs)
    run = np.convolve(above.astype(np.int64), np.ones(hold, dtype=np.int64), mode="valid")
    hits = np.flatnonzero(run[: max_delay + 1] >= hold)
    if hits.size == 0:
        return 0.0, False
    # The moving average lags the rectified signal by about half its window.
    delay = max(0, int(hits[0]) - width // 2)
    return delay / fs, True


def _effort(value: str, n: int, where: str) -> tuple[FloatArray, str]:
    try:
        if ":" in value:
            lo_text, hi_text = value.split(":", 1)
            lo, hi = float(lo_text), float(hi_text)
            condition = CONDITION_RAMP
        else:
            lo = hi = float(value)
            condition = CONDITION_HOLD
    except ValueError:
        raise DatasetError(f"{where}: effort {value!r} is not a number or a:b ramp") from None
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (lo, hi)):
        raise DatasetError(f"{where}: effort {value!r} is outside [0, 1]")
    ramp: FloatArray = np.linspace(lo, hi, n)
    return ramp, condition


def read_session(
    path: Path,
    *,
    expect_channels: Sequence[str] | int | None = None,
    expect_rate_hz: float | None = None,
    expect_device: str | None = None,
    allow_unfinished: bool = False,
    align: bool = True,
) -> BdfSession:
    """Read one session file into one :class:`Recording` per cue.

    Parameters
    ----------
    path:
        A file written by :class:`~emgd.data.bdf_writer.BdfSessionWriter`.
    expect_channels:
        The channel labels (or just their number) the caller's config has.
    expect_rate_hz:
        The sampling rate the caller's config has.
    expect_device:
        ``"ads1299"``, ``"mcp3008"`` or ``"simulated"``.
    allow_unfinished:
        Accept a file without ``session end`` (the writer was killed or the power cut):
        its whole seconds are used and a cue still open at the end is dropped.
    align:
        Shift non-rest cues to the detected EMG onset (module docstring).

    Raises
    ------
    DatasetError
        If the file is missing, cut short inside its header's records, not an emgd BDF+
        recording, differs from what was expected, or its annotations are missing, garbled
        or unpaired; or it is unfinished and ``allow_unfinished`` is false.
    """
    path = Path(path)
    emg, labels, fs, patient, raw_annotations = _open(path)
    parsed: list[tuple[float, Annotation]] = []
    for onset_s, text in raw_annotations:
        where = f"{path}: annotation at {onset_s:g} s"
        parsed.append((onset_s, parse_annotation(text, where)))
    starts = [a for _, a in parsed if a.kind == KIND_SESSION and a.marker == MARKER_START]
    if len(starts) != 1:
        raise DatasetError(f"{path}: expected one 'session start' annotation, found {len(starts)}")
    header = dict(starts[0].fields)
    device = header.get("device", "")
    if device not in DEVICES:
        raise DatasetError(f"{path}: session start names device {device!r}, not one of {DEVICES}")
    if header.get("rate_hz") != f"{fs:g}" or header.get("channels") != str(len(labels)):
        raise DatasetError(
            f"{path}: session start says rate_hz={header.get('rate_hz')} "
            f"channels={header.get('channels')}, the header {fs:g} Hz and {len(labels)} channels"
        )
    if expect_device is not None and device != expect_device:
        raise DatasetError(f"{path}: recorded with {device}, expected {expect_device}")
    if expect_rate_hz is not None and fs != float(expect_rate_hz):
        raise DatasetError(f"{path}: recorded at {fs:g} Hz, expected {expect_rate_hz:g} Hz")
    if isinstance(expect_channels, int):
        if len(labels) != expect_channels:
            raise DatasetError(f"{path}: has {len(labels)} channels, expected {expect_channels}")
    elif expect_channels is not None and tuple(expect_channels) != labels:
        raise DatasetError(
            f"{path}: channels {', '.join(labels)}, expected {', '.join(expect_channels)}"
        )
    ends = [a for _, a in parsed if a.kind == KIND_SESSION and a.marker == MARKER_END]
    finished = len(ends) == 1
    if finished:
        try:
            n_frames = int(ends[0].fields["frames"])
        except (KeyError, ValueError):
            raise DatasetError(f"{path}: 'session end' without a frames=<n> count") from None
        if not 0 < n_frames <= emg.shape[0]:
            raise DatasetError(
                f"{path}: session end says {n_frames} frames, the file holds {emg.shape[0]}"
            )
    elif len(ends) > 1:
        raise DatasetError(f"{path}: {len(ends)} 'session end' annotations")
    elif not allow_unfinished:
        raise DatasetError(
            f"{path}: no 'session end' (recording cut short after {emg.shape[0] / fs:g} s); "
            "pass allow_unfinished to use its whole seconds"
        )
    else:
        n_frames = emg.shape[0]
    emg = emg[:n_frames]
    gaps: list[Gap] = []
    for onset_s, a in parsed:
        if a.kind == KIND_GAP:
            try:
                gaps.append(Gap(onset_s, int(a.fields["frames"]), int(a.fields["from_seq"])))
            except (KeyError, ValueError):
                raise DatasetError(f"{path}: gap at {onset_s:g} s lacks frames/from_seq") from None
    session = BdfSession(
        path=path,
        channel_labels=labels,
        sample_rate_hz=fs,
        device=device,
        participant=patient.split()[0] if patient.split() else "X",
        config=header,
        n_frames=n_frames,
        finished=finished,
        gaps=gaps,
    )
    _cues_to_recordings(session, emg, parsed, align)
    return session


def _cue_key(a: Annotation, where: str) -> tuple[str, str, int]:
    try:
        return a.fields["gesture"], a.fields["effort"], int(a.fields["rep"])
    except (KeyError, ValueError):
        raise DatasetError(f"{where}: cue needs gesture=, effort= and rep=<int>") from None


def _cues_to_recordings(
    session: BdfSession, emg: FloatArray, parsed: list[tuple[float, Annotation]], align: bool
) -> None:
    path, fs = session.path, session.sample_rate_hz
    open_cue: tuple[float, tuple[str, str, int]] | None = None
    spans: list[tuple[float, float, tuple[str, str, int]]] = []
    for onset_s, a in sorted(
        ((o, a) for o, a in parsed if a.kind == KIND_CUE), key=lambda item: item[0]
    ):
        where = f"{path}: cue at {onset_s:g} s"
        key = _cue_key(a, where)
        if a.marker == MARKER_START:
            if open_cue is not None:
                raise DatasetError(f"{where}: starts while the cue from {open_cue[0]:g} s is open")
            open_cue = (onset_s, key)
        elif a.marker == MARKER_END:
            if open_cue is None or open_cue[1] != key:
                raise DatasetError(f"{where}: 'end' does not match an open cue start")
            spans.append((open_cue[0], onset_s, key))
            open_cue = None
        else:
            raise DatasetError(f"{where}: cue without a start/end marker")
    if open_cue is not None:
        if session.finished:
            raise DatasetError(f"{path}: the cue from {open_cue[0]:g} s never ends")
        session.dropped_cues.append(f"cue from {open_cue[0]:g} s open when the recording stopped")
    if not spans:
        raise DatasetError(f"{path}: no complete cue annotations")
    gap_samples = sorted(round(g.onset_s * fs) for g in session.gaps)
    previous_end = 0
    for start_s, end_s, (gesture, effort_text, rep) in spans:
        where = f"{path}: cue {gesture} rep {rep} at {start_s:g} s"
        if gesture not in POSE_NAMES:
            raise DatasetError(f"{where}: unknown gesture {gesture!r} ({', '.join(POSE_NAMES)})")
        start = round(start_s * fs)
        end = round(end_s * fs)
        delay_s, found = 0.0, False
        if align and gesture != REST:
            delay_s, found = _onset_delay_s(emg, fs, start, previous_end)
        shift = round(delay_s * fs)
        lo, hi = min(start + shift, emg.shape[0]), min(end + shift, emg.shape[0])
        session.alignments.append(
            CueAlignment(gesture, effort_text, rep, start_s, end_s, delay_s, found)
        )
        previous_end = end
        if hi - lo < MIN_CUE_SAMPLES:
            session.dropped_cues.append(f"{where}: fewer than {MIN_CUE_SAMPLES} frames in file")
            continue
        effort, condition = _effort(effort_text, hi - lo, where)
        cuts = [lo, *(g for g in gap_samples if lo < g < hi), hi]
        for piece_lo, piece_hi in itertools.pairwise(cuts):
            if piece_hi - piece_lo < MIN_CUE_SAMPLES:
                continue
            part = effort[piece_lo - lo : piece_hi - lo]
            session.recordings.append(
                Recording(
                    emg=emg[piece_lo:piece_hi],
                    sample_rate_hz=fs,
                    targets_deg=proportional_targets_deg(gesture, part),
                    effort=part,
                    label_names=(gesture,),
                    label_poses=(gesture,),
                    label_index=np.zeros(piece_hi - piece_lo, dtype=np.int64),
                    dataset=DATASET_NAME,
                    participant=session.participant,
                    session=path.stem,
                    rep=rep,
                    condition=condition,
                    source=f"{path.name}[{piece_lo}:{piece_hi}]",
                    emg_unit=PHYSICAL_UNIT,
                )
            )
