"""Reader of emgd BDF+ session recordings into :class:`~emgd.data.recording.Recording` s.

This module owns turning a file written by :mod:`emgd.data.bdf_writer` (read with pyedflib)
into Recordings the way the public-dataset loaders do: one per cue (label = gesture, pose
from :mod:`emgd.poses`, targets ``R + p·(G − R)`` at the cue's effort; a ramp ``a:b`` rises
linearly across the cue; ``rep`` from the cue; ``condition`` ``"hold"`` or ``"Ramp"``) and
one rest Recording (``condition`` ``"rest"``) for every stretch between cues, in time order,
so the session is one stream again. It checks the file against what the caller expects
(channels, rate, device) and turns every problem into one
:class:`~emgd.errors.DatasetError` line naming the file. It must not decide splits, filter
the signal for training or write files.

Label alignment (reported per cue in :class:`CueAlignment`)
-----------------------------------------------------------
A wearer starts moving 0.2–0.5 s after a cue and ramps up, so each non-rest cue is moved to
the EMG it caused:

1. envelope = mean over channels of the rectified EMG, high-passed at :data:`HIGHPASS_HZ`
   (zero phase), each channel divided by its median over the baseline (step 2), smoothed
   by a centred :data:`ENVELOPE_WINDOW_S` moving average;
2. baseline = up to :data:`BASELINE_S` before the cue, after the previous cue's movement and
   after any gap; threshold = baseline median + :data:`THRESHOLD_SD` × its standard
   deviation;
3. onset = the first sample in ``[cue start, cue start + MAX_DELAY_S]`` from which the
   envelope stays above the threshold for :data:`HOLD_S`. None found (or under
   :data:`MIN_BASELINE_S` of baseline): delay 0, ``found`` false, cue-time labels;
4. rise = from the onset until a :data:`PLATEAU_WINDOW_S` envelope first reaches
   :data:`RISE_LEVEL` of the way from the baseline level to the level it holds over the
   rest of the cue (at most :data:`MAX_RISE_S`);
5. labels: rest until the onset, effort rising linearly to the cue's over the rise, the
   cue's effort until the cue end plus the same delay (the wearer reacts to the end cue as
   to the start), then falling linearly back to rest over the same rise time.

Rest cues are not shifted (an explicit rest cue, as ``emgd record`` writes between
gestures, is baseline for the next onset). Every Recording is cut at each ``gap``
annotation longer than :data:`JOINABLE_GAP_S` (the samples either side are not contiguous
in time), and the alignment never looks across such a gap.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
CONDITION_REST = "rest"
EQUIPMENT_PREFIX = "emgd "  # pyedflib shows the recording field's "emgd_<device>" so
HIGHPASS_HZ = 20.0
HIGHPASS_ORDER = 4
ENVELOPE_WINDOW_S = 0.05
PLATEAU_WINDOW_S = 0.2
BASELINE_S = 1.0
MIN_BASELINE_S = 0.3
THRESHOLD_SD = 5.0
DEPARTURE_SD = 1.0
HOLD_S = 0.05
MAX_DELAY_S = 1.0
MAX_RISE_S = 1.0
RISE_LEVEL = 0.8
MIN_CUE_SAMPLES = 2
#: Gaps up to this long (a few lost frames, common on a loaded board) neither cut a
#: Recording nor stop the onset search: training and scoring join recordings into one stream
#: anyway, and a hole of milliseconds does not move an onset. Longer gaps cut.
JOINABLE_GAP_S = 0.05
METHOD = (
    f"EMG onset per cue: rectified {HIGHPASS_HZ:g} Hz high-passed envelope, each channel "
    f"scaled by its baseline level ({ENVELOPE_WINDOW_S * 1e3:g} ms), above baseline median + "
    f"{THRESHOLD_SD:g} SD for "
    f"{HOLD_S * 1e3:g} ms within {MAX_DELAY_S:g} s of the cue; labels ramp linearly over the "
    f"rise to {RISE_LEVEL:.0%} of the held level ({PLATEAU_WINDOW_S * 1e3:g} ms envelope); "
    "the release lags the end cue by the same delay and ramps down over the same time; "
    f"gaps up to {JOINABLE_GAP_S * 1e3:g} ms are joined, longer ones cut"
)


@dataclass(frozen=True)
class CueAlignment:
    """What label alignment did to one cue (times in seconds from the file start)."""

    gesture: str
    effort: str
    rep: int
    cue_start_s: float
    cue_end_s: float
    delay_s: float
    rise_s: float
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

    @property
    def reps(self) -> list[int]:
        """The cue reps in the file, sorted."""
        return sorted({a.rep for a in self.alignments})


def _open(
    path: Path,
) -> tuple[FloatArray, tuple[str, ...], float, str, list[tuple[float, str]]]:
    import pyedflib

    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError as exc:
        reason = " ".join(str(exc).split())
        raise DatasetError(f"{path}: not a readable BDF+ file or cut short ({reason})") from None
    try:
        if reader.filetype != pyedflib.FILETYPE_BDFPLUS:
            kinds = {pyedflib.FILETYPE_EDF: "EDF", pyedflib.FILETYPE_EDFPLUS: "EDF+"}
            kind = kinds.get(reader.filetype, "BDF without annotations")
            raise DatasetError(f"{path}: a {kind} file, not an emgd BDF+ recording")
        equipment = reader.getEquipment().strip()
        if not equipment.startswith(EQUIPMENT_PREFIX):
            raise DatasetError(
                f"{path}: recorded by {equipment or 'an unnamed device'!r}, "
                "not an emgd BDF+ recording"
            )
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


def _rectified(emg: FloatArray, fs: float) -> FloatArray:
    """Per channel, the rectified EMG high-passed at :data:`HIGHPASS_HZ` (zero phase:
    labelling is offline, so no lag to undo)."""
    from scipy.signal import butter, sosfiltfilt

    x = emg - np.median(emg, axis=0)
    if emg.shape[0] > 3 * (2 * HIGHPASS_ORDER + 1) and fs / 2 > HIGHPASS_HZ:
        sos = butter(HIGHPASS_ORDER, HIGHPASS_HZ, btype="highpass", fs=fs, output="sos")
        x = sosfiltfilt(sos, x, axis=0)
    rect: FloatArray = np.abs(x)
    return rect


def _smooth(signal: FloatArray, fs: float, width_s: float) -> FloatArray:
    """A centred moving average of ``width_s``."""
    width = max(1, round(width_s * fs))
    smooth: FloatArray = np.convolve(signal, np.ones(width) / width, mode="same")
    return smooth


def _align_cue(
    emg: FloatArray, fs: float, span: tuple[int, int], *, baseline_from: int, search_to: int
) -> tuple[int, int, bool]:
    """(onset delay, rise length, found) in samples for the cue ``span`` = (start, end)
    samples (module docstring).

    ``baseline_from`` is the first sample the baseline may use (after the previous
    movement, after any gap); ``search_to`` the first sample the search must not reach (the
    next gap, the file end).
    """
    start, end = span
    base_lo = max(baseline_from, start - round(BASELINE_S * fs))
    hi = min(search_to, end + round(MAX_DELAY_S * fs), emg.shape[0])
    min_base = round(MIN_BASELINE_S * fs)
    if start - base_lo < min_base or hi - start < round(2 * HOLD_S * fs):
        return 0, 0, False
    n_base = start - base_lo
    # Each channel in units of its own baseline level, then the mean: a channel with more
    # noise or skin gain must not drown the one the gesture shows on.
    rect = _rectified(emg[base_lo:hi], fs)
    level = np.median(rect[:n_base], axis=0)
    relative = (rect / np.where(level > 0, level, 1.0)).mean(axis=1)
    onset_env = _smooth(relative, fs, ENVELOPE_WINDOW_S)
    baseline = onset_env[:n_base]
    threshold = float(np.median(baseline) + THRESHOLD_SD * baseline.std())
    departure = float(np.median(baseline) + DEPARTURE_SD * baseline.std())
    hold = max(1, round(HOLD_S * fs))
    above = onset_env[n_base:] > threshold
    run = np.convolve(above.astype(np.int64), np.ones(hold, dtype=np.int64), mode="valid")
    max_delay = min(round(MAX_DELAY_S * fs), end - start - 1)
    hits = np.flatnonzero(run[: max_delay + 1] >= hold)
    if hits.size == 0:
        return 0, 0, False
    # Walk back from the crossing to where the envelope left the baseline's spread.
    crossing = int(hits[0])
    quiet = np.flatnonzero(onset_env[n_base : n_base + crossing + 1] <= departure)
    onset = int(quiet[-1]) + 1 if quiet.size else 0
    # Rise: the slow envelope reaches RISE_LEVEL of the way from the baseline to the level
    # it holds over the rest of the cue.
    slow_all = _smooth(relative, fs, PLATEAU_WINDOW_S)
    slow_env = slow_all[n_base:]
    hold_end = end - start
    late = slow_env[min(onset + round(MAX_RISE_S * fs), hold_end - 1) : hold_end]
    if late.size == 0:
        return onset, 0, True
    base_level = float(np.median(slow_all[:n_base]))
    rise_to = base_level + RISE_LEVEL * (float(np.median(late)) - base_level)
    upto = min(onset + round(MAX_RISE_S * fs), hold_end)
    reached = np.flatnonzero(slow_env[onset:upto] >= rise_to)
    rise = int(reached[0]) if reached.size else upto - onset
    return onset, rise, True


def _effort(value: str, where: str) -> tuple[float, float, str]:
    """(effort at the cue start, at its end, condition) of an ``effort=`` value."""
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
    return lo, hi, condition


def read_session(
    path: Path,
    *,
    expect_channels: Sequence[str] | int | None = None,
    expect_rate_hz: float | None = None,
    expect_device: str | None = None,
    allow_unfinished: bool = False,
    align: bool = True,
    expected_by: str = "",
) -> BdfSession:
    """Read one session file into Recordings: one per cue, one per rest stretch between.

    Parameters
    ----------
    path:
        A file written by :class:`~emgd.data.bdf_writer.BdfSessionWriter`.
    expect_channels:
        The channel labels (or just their number) the caller's config or model has.
    expect_rate_hz:
        The sampling rate the caller's config or model has.
    expect_device:
        ``"ads1299"``, ``"mcp3008"`` or ``"simulated"``.
    allow_unfinished:
        Accept a file without ``session end`` (the writer was killed or the power cut):
        its whole seconds are used and a cue still open at the end is dropped.
    align:
        Move non-rest cues to the detected EMG onset (module docstring).
    expected_by:
        Who expects the values (``"model m.onnx"``, ``"the first file a.bdf"``), named in
        a mismatch.

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
    by = f" by {expected_by}" if expected_by else ""
    if expect_device is not None and device != expect_device:
        raise DatasetError(f"{path}: recorded with {device}, expected {expect_device}{by}")
    if expect_rate_hz is not None and fs != float(expect_rate_hz):
        raise DatasetError(f"{path}: recorded at {fs:g} Hz, expected {expect_rate_hz:g} Hz{by}")
    if isinstance(expect_channels, int):
        if len(labels) != expect_channels:
            raise DatasetError(
                f"{path}: has {len(labels)} channels, expected {expect_channels}{by}"
            )
    elif expect_channels is not None and tuple(expect_channels) != labels:
        raise DatasetError(
            f"{path}: channels {', '.join(labels)}, expected {', '.join(expect_channels)}{by}"
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
            "allow unfinished recordings (emgd --allow-unfinished) to use its whole seconds"
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


def _cue_spans(
    session: BdfSession, parsed: list[tuple[float, Annotation]]
) -> list[tuple[float, float, tuple[str, str, int]]]:
    """(start s, end s, (gesture, effort, rep)) of every complete cue, in time order."""
    path = session.path
    open_cue: tuple[float, tuple[str, str, int]] | None = None
    spans: list[tuple[float, float, tuple[str, str, int]]] = []
    cues = sorted(((o, a) for o, a in parsed if a.kind == KIND_CUE), key=lambda item: item[0])
    for onset_s, a in cues:
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
    return spans


def _cutting_gaps(session: BdfSession) -> list[int]:
    """Samples where a gap longer than :data:`JOINABLE_GAP_S` lies, in order."""
    fs = session.sample_rate_hz
    longest = JOINABLE_GAP_S * fs
    return sorted(round(g.onset_s * fs) for g in session.gaps if g.frames > longest)


def _cues_to_recordings(
    session: BdfSession, emg: FloatArray, parsed: list[tuple[float, Annotation]], align: bool
) -> None:
    path, fs, n = session.path, session.sample_rate_hz, emg.shape[0]
    spans = _cue_spans(session, parsed)
    gap_samples = _cutting_gaps(session)
    segments: list[_Segment] = []
    movement_end = 0
    for start_s, end_s, (gesture, effort_text, rep) in spans:
        where = f"{path}: cue {gesture} rep {rep} at {start_s:g} s"
        if gesture not in POSE_NAMES:
            raise DatasetError(f"{where}: unknown gesture {gesture!r} ({', '.join(POSE_NAMES)})")
        low, high, condition = _effort(effort_text, where)
        start, end = round(start_s * fs), round(end_s * fs)
        delay, rise, found = 0, 0, False
        if align and gesture != REST:
            before = [g for g in gap_samples if g <= start]
            after = [g for g in gap_samples if g > start]
            delay, rise, found = _align_cue(
                emg,
                fs,
                (start, end),
                baseline_from=max(movement_end, before[-1] if before else 0),
                search_to=after[0] if after else n,
            )
        session.alignments.append(
            CueAlignment(gesture, effort_text, rep, start_s, end_s, delay / fs, rise / fs, found)
        )
        lo = max(start + delay, segments[-1].hi if segments else 0)
        hold_end = max(lo, end + delay)
        if gesture != REST:  # an explicit rest cue is baseline for the next onset, not movement
            movement_end = hold_end + rise
        if min(movement_end, n) - lo < MIN_CUE_SAMPLES:
            session.dropped_cues.append(f"{where}: fewer than {MIN_CUE_SAMPLES} frames in file")
            continue
        segments.append(
            _Segment(lo, hold_end, movement_end, rise, gesture, low, high, condition, rep)
        )
    # A movement that runs into the next cue's onset is cut there.
    for i in range(len(segments) - 1):
        cut = segments[i + 1].lo
        segments[i] = replace(
            segments[i], hold_end=min(segments[i].hold_end, cut), hi=min(segments[i].hi, cut)
        )
    cursor = 0
    for seg in segments:
        if seg.lo > cursor:
            rest = np.zeros(seg.lo - cursor)
            _append(
                session, emg, (cursor, seg.lo), REST, rest, condition=CONDITION_REST, rep=seg.rep
            )
        hi_in_file = min(seg.hi, n)
        effort = seg.effort()[: hi_in_file - seg.lo]
        _append(
            session,
            emg,
            (seg.lo, hi_in_file),
            seg.gesture,
            effort,
            condition=seg.condition,
            rep=seg.rep,
        )
        cursor = hi_in_file
    if cursor < n and segments:
        rest = np.zeros(n - cursor)
        _append(
            session, emg, (cursor, n), REST, rest, condition=CONDITION_REST, rep=segments[-1].rep
        )


@dataclass(frozen=True)
class _Segment:
    """An aligned cue in samples: movement from ``lo``, held until ``hold_end``, back at
    rest by ``hi``; ``rise`` samples of ramp; efforts ``low`` → ``high`` across the hold."""

    lo: int
    hold_end: int
    hi: int
    rise: int
    gesture: str
    low: float
    high: float
    condition: str
    rep: int

    def effort(self) -> FloatArray:
        """Shape ``(hi − lo,)``: the effort of every sample (module docstring, step 5)."""
        n_hold = self.hold_end - self.lo
        n_release = self.hi - self.hold_end
        base = np.concatenate(
            [np.linspace(self.low, self.high, n_hold), np.full(n_release, self.high)]
        )
        ramp = np.ones(self.hi - self.lo)
        if self.rise > 0:
            up = np.arange(1, self.rise + 1) / self.rise
            ramp[: min(self.rise, n_hold)] = up[: min(self.rise, n_hold)]
            down = 1.0 - np.arange(1, n_release + 1) / (self.rise + 1)
            ramp[n_hold:] = np.minimum(ramp[n_hold:], down)
        out: FloatArray = np.clip(base * ramp, 0.0, 1.0)
        return out


def _append(
    session: BdfSession,
    emg: FloatArray,
    span: tuple[int, int],
    gesture: str,
    effort: FloatArray,
    *,
    condition: str,
    rep: int,
) -> None:
    """Add samples ``span`` = (lo, hi) as Recordings, cut at every gap inside them."""
    fs = session.sample_rate_hz
    lo, hi = span
    gap_samples = _cutting_gaps(session)
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
                session=session.path.stem,
                rep=rep,
                condition=condition,
                source=f"{session.path.name}[{piece_lo}:{piece_hi}]",
                emg_unit=PHYSICAL_UNIT,
            )
        )


def alignment_report(sessions: Sequence[BdfSession]) -> dict[str, Any]:
    """JSON-ready summary of how the labels of ``sessions`` were aligned (model card)."""
    moved = [a for s in sessions for a in s.alignments if a.gesture != REST]
    found = [a for a in moved if a.found]

    def spread(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
        }

    return {
        "method": METHOD,
        "cues": len(moved),
        "onsets_found": len(found),
        "delay_s": spread([a.delay_s for a in found]),
        "rise_s": spread([a.rise_s for a in found]),
    }


def recordings_card(sessions: Sequence[BdfSession]) -> dict[str, Any]:
    """JSON-ready description of the files a model was trained or scored on (model card)."""
    files = [
        {
            "file": s.path.name,
            "device": s.device,
            "sample_rate_hz": s.sample_rate_hz,
            "channels": len(s.channel_labels),
            "participant": s.participant,
            "seconds": s.n_frames / s.sample_rate_hz,
            "reps": s.reps,
            "cues": len(s.alignments),
            "frames_lost": sum(g.frames for g in s.gaps),
            "finished": s.finished,
            "dropped_cues": list(s.dropped_cues),
        }
        for s in sessions
    ]
    return {"files": files, "label_alignment": alignment_report(sessions)}
