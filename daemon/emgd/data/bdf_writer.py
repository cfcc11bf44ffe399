"""Incremental, crash-safe BDF+ writer for a recording session: :class:`BdfSessionWriter`.

This module owns the bytes of an emgd recording file. It takes blocks of µV frames with the
sequence number of their first frame, cues and other annotations, and appends 1-second data
records as they fill. It must not know protocols, cue timing or the daemon: the ``emgd
record`` command calls :meth:`BdfSessionWriter.write_frames`, :meth:`~BdfSessionWriter.cue`
and :meth:`~BdfSessionWriter.close` from the acquisition consumer.

File layout (EDF+/BDF+ spec, edfplus.info)
------------------------------------------
* Header: ``0xFF "BIOSEMI"``, reserved field ``BDF+C``; patient field ``<participant> X X
  X``; recording field ``Startdate DD-MMM-YYYY <session> X emgd_<device>``; every header
  character is printable ASCII (spaces inside a subfield become ``_``).
* One data record = **1 s**: ``rate_hz`` samples of each EMG channel, then the
  ``BDF Annotations`` signal (:attr:`SessionHeader.annotation_samples` 3-byte samples, by
  default :data:`ANNOTATION_SAMPLES_PER_RECORD` = 600 bytes of TALs). Samples are 24-bit
  little-endian two's complement.
* EMG channels: label from the config, physical dimension ``uV``, transducer
  ``AgAgCl electrode``. ADS1299: digital −2²³ … 2²³−1, physical = code · 2·VREF/gain/2²⁴
  µV (the limits rounded to the header's 8 characters, so a stored step is within 1e-7
  of the LSB: every code comes back within one code, every µV within one LSB). MCP3008:
  digital 0 … 1023 in the 24-bit container, physical = code·VREF/1024/gain − offset/gain (in µV).
* Each record's annotation signal opens with the time-keeping TAL ``+<k>\\x14\\x14\\x00``,
  then the annotations queued since the previous record, each
  ``+<onset>[\\x15<duration>]\\x14<text>\\x14\\x00`` (onset and duration in seconds from
  the file start); the rest is zero. Texts follow :mod:`emgd.data.bdf_annotations`::

      session start device=ads1299 rate_hz=250 channels=8 <config key=value ...>
      cue gesture=power effort=0.5 rep=2 start       (duration empty: the end comes later)
      cue gesture=power effort=0.5 rep=2 end
      gap frames=12 from_seq=1234                    (onset = where the data join)
      session end frames=7513                        (real frames; the rest is padding)

* Lost frames are never joined silently: the file stays ``BDF+C`` (the samples after the
  gap follow those before it) and a ``gap`` annotation at the join says how many frames are
  missing. :meth:`~BdfSessionWriter.close` pads the last record with its last sample and
  writes ``session end frames=<n>`` so a reader can trim the padding.

Crash safety
------------
pyedflib (EDFlib) keeps the record count at ``-1`` and the annotations in memory until
``close()``: after ``kill -9`` its file has no annotations and pyedflib itself refuses it
(checked with pyedflib 0.1.42). So this writer lays out the same BDF+ bytes itself (pyedflib
and MNE read them back; see the tests) and, for every record, (1) appends the whole record,
(2) ``fdatasync``, (3) rewrites the 8-byte record count in the header, (4) ``fdatasync``. At
any moment the header count names only records that are wholly on disk; a record cut in
half by a crash lies beyond the count, and pyedflib and MNE ignore it. A failed write
(``ENOSPC``) raises :class:`~emgd.errors.RecordingError` naming the file; the records
before it stay readable.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from emgd.data.bdf_annotations import (
    KIND_CUE,
    KIND_GAP,
    KIND_SESSION,
    MARKER_END,
    MARKER_START,
    format_annotation,
)
from emgd.errors import ConfigError, RecordingError, describe_os_error

FloatArray = npt.NDArray[np.float64]

RECORD_DURATION_S = 1
BDF_DIGITAL_MIN = -(1 << 23)
BDF_DIGITAL_MAX = (1 << 23) - 1
BYTES_PER_SAMPLE = 3
ANNOTATION_SAMPLES_PER_RECORD = 200  # 600 bytes of TALs per second (the default)
MIN_ANNOTATION_SAMPLES = 100  # room for the session start text
MAX_ANNOTATION_SAMPLES = 100_000
ANNOTATION_LABEL = "BDF Annotations"
RECORD_COUNT_OFFSET = 236  # byte offset of the "number of data records" header field
PHYSICAL_UNIT = "uV"
TRANSDUCER = "AgAgCl electrode"
UV_PER_V = 1e6
ADS1299_CODE_SPAN = 1 << 24
MCP3008_CODE_COUNT = 1024
DEVICES: tuple[str, ...] = ("ads1299", "mcp3008", "simulated")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

PwriteFn = Callable[[int, bytes, int], int]
SyncFn = Callable[[int], None]


def _number_text(value: float, width: int, what: str) -> str:
    """The most precise decimal text of ``value`` that fits ``width`` characters."""
    for digits in range(10, -1, -1):
        text = f"{value:.{digits}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        if len(text) <= width:
            return text
    raise ConfigError(f"BDF header {what} {value!r} does not fit in {width} characters")


@dataclass(frozen=True)
class PhysicalRange:
    """How one channel's µV map to the digital values stored in the file.

    ``uv = physical_min_uv + (digital − digital_min)·(physical_max_uv − physical_min_uv) /
    (digital_max − digital_min)`` (the EDF rule). The physical limits are rounded on
    construction to the 8 characters the header holds, so the writer quantises with exactly
    the scale every reader will use (an ADS1299 step is then within 1e-7 of the ADC's LSB).
    """

    physical_min_uv: float
    physical_max_uv: float
    digital_min: int
    digital_max: int

    def __post_init__(self) -> None:
        if not (BDF_DIGITAL_MIN <= self.digital_min < self.digital_max <= BDF_DIGITAL_MAX):
            raise ConfigError(
                f"BDF digital range {self.digital_min}..{self.digital_max} must be increasing "
                f"within {BDF_DIGITAL_MIN}..{BDF_DIGITAL_MAX}"
            )
        lo, hi = self.physical_min_uv, self.physical_max_uv
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(f"BDF physical range {lo!r}..{hi!r} uV must be finite, increasing")
        object.__setattr__(self, "physical_min_uv", float(_number_text(lo, 8, "physical min")))
        object.__setattr__(self, "physical_max_uv", float(_number_text(hi, 8, "physical max")))

    @classmethod
    def ads1299(cls, gain: int, vref_v: float) -> PhysicalRange:
        """24-bit codes, one code = 2·VREF/gain/2²⁴ (the ADS1299 LSB)."""
        if gain <= 0 or not (math.isfinite(vref_v) and vref_v > 0):
            raise ConfigError(f"ADS1299 range: gain {gain!r} and vref_v {vref_v!r} must be > 0")
        lsb_uv = 2.0 * vref_v / gain / ADS1299_CODE_SPAN * UV_PER_V
        return cls(
            BDF_DIGITAL_MIN * lsb_uv, BDF_DIGITAL_MAX * lsb_uv, BDF_DIGITAL_MIN, BDF_DIGITAL_MAX
        )

    @classmethod
    def mcp3008(cls, vref_v: float, frontend_gain: float, offset_v: float) -> PhysicalRange:
        """10-bit codes 0 … 1023: ``uv = (code·VREF/1024 − offset)/gain · 1e6``."""
        if not (vref_v > 0 and frontend_gain > 0 and 0 <= offset_v <= vref_v):
            raise ConfigError(
                f"MCP3008 range: vref_v {vref_v!r}, frontend_gain {frontend_gain!r} must be > 0 "
                f"and offset_v {offset_v!r} within 0..vref_v"
            )
        uv_per_code = vref_v / MCP3008_CODE_COUNT / frontend_gain * UV_PER_V
        offset_uv = offset_v / frontend_gain * UV_PER_V
        top = MCP3008_CODE_COUNT - 1
        return cls(-offset_uv, top * uv_per_code - offset_uv, 0, top)

    @property
    def uv_per_digit(self) -> float:
        """Size of one stored step (one LSB) in µV."""
        span = self.digital_max - self.digital_min
        return (self.physical_max_uv - self.physical_min_uv) / span

    def to_digital(self, emg_uv: FloatArray) -> npt.NDArray[np.int64]:
        """Nearest digital values of ``emg_uv`` (any shape), clipped to the digital range."""
        digits = np.rint((emg_uv - self.physical_min_uv) / self.uv_per_digit) + self.digital_min
        clipped: npt.NDArray[np.int64] = np.clip(digits, self.digital_min, self.digital_max).astype(
            np.int64
        )
        return clipped


@dataclass(frozen=True)
class SessionHeader:
    """What goes into the header and the ``session start`` annotation.

    Attributes
    ----------
    channel_labels:
        One label per EMG channel (≤ 16 printable ASCII characters each).
    sample_rate_hz:
        Frames per second; must be a whole number (a record is one second).
    device:
        One of :data:`DEVICES`.
    ranges:
        One :class:`PhysicalRange` for all channels, or one per channel.
    start:
        Wall-clock time of the first frame (header start date and time).
    participant:
        Wearer code for the patient field (``X`` when unknown).
    session:
        Session code for the recording field's admin-code subfield (``X`` when unknown).
    config:
        ``key=value`` pairs describing the device and protocol (gain, vref, protocol name …),
        written in full into the ``session start`` annotation.
    annotation_samples:
        Size of each record's ``BDF Annotations`` signal in 3-byte samples (room for about
        ``3·n/30`` gap or cue texts per second; annotations beyond it spill into the next
        records, and at close into padding seconds).
    """

    channel_labels: tuple[str, ...]
    sample_rate_hz: float
    device: str
    ranges: PhysicalRange | tuple[PhysicalRange, ...]
    start: dt.datetime
    participant: str = "X"
    session: str = "X"
    config: Mapping[str, object] = field(default_factory=dict)
    annotation_samples: int = ANNOTATION_SAMPLES_PER_RECORD

    def channel_ranges(self) -> tuple[PhysicalRange, ...]:
        """One range per channel."""
        if isinstance(self.ranges, PhysicalRange):
            return (self.ranges,) * len(self.channel_labels)
        return tuple(self.ranges)


def _ascii_field(text: str, width: int, what: str) -> bytes:
    raw = text.encode("ascii", errors="strict") if text.isascii() else b""
    if not text.isascii() or any(not 32 <= b <= 126 for b in raw):
        raise ConfigError(f"BDF header {what} {text!r} must be printable ASCII")
    if len(raw) > width:
        raise ConfigError(f"BDF header {what} {text!r} is longer than {width} characters")
    return raw.ljust(width, b" ")


def _subfield(text: str) -> str:
    return "_".join(text.split()) or "X"


def _number_field(value: float, width: int, what: str) -> bytes:
    return _ascii_field(_number_text(value, width, what), width, what)


def _seconds_text(value_s: float) -> str:
    text = f"{value_s:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def build_header(header: SessionHeader, where: str) -> bytes:
    """The BDF+ header bytes of a file with 0 data records (see the module docstring).

    Raises
    ------
    ConfigError
        If a label or field is too long or not printable ASCII, the device is unknown, the
        rate is not a whole number of Hz, or the number of ranges differs from the labels.
    """
    labels = header.channel_labels
    fs = header.sample_rate_hz
    if not labels:
        raise ConfigError(f"{where}: at least one channel label is needed")
    if header.device not in DEVICES:
        raise ConfigError(f"{where}: device {header.device!r} is not one of {', '.join(DEVICES)}")
    if not (math.isfinite(fs) and fs >= 1 and float(fs).is_integer()):
        raise ConfigError(f"{where}: sample_rate_hz {fs!r} must be a whole number of Hz >= 1")
    ranges = header.channel_ranges()
    if len(ranges) != len(labels):
        raise ConfigError(f"{where}: {len(ranges)} physical ranges for {len(labels)} channels")
    if not MIN_ANNOTATION_SAMPLES <= header.annotation_samples <= MAX_ANNOTATION_SAMPLES:
        raise ConfigError(
            f"{where}: annotation_samples {header.annotation_samples!r} must be "
            f"{MIN_ANNOTATION_SAMPLES}-{MAX_ANNOTATION_SAMPLES}"
        )
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: channel labels repeat: {labels}")
    start = header.start
    n_signals = len(labels) + 1
    date_plus = f"{start.day:02d}-{_MONTHS[start.month - 1]}-{start.year:04d}"
    patient = f"{_subfield(header.participant)} X X X"
    recording = f"Startdate {date_plus} {_subfield(header.session)} X emgd_{header.device}"
    out = bytearray(b"\xffBIOSEMI")
    out += _ascii_field(patient, 80, "patient field")
    out += _ascii_field(recording, 80, "recording field")
    out += _ascii_field(start.strftime("%d.%m.%y"), 8, "start date")
    out += _ascii_field(start.strftime("%H.%M.%S"), 8, "start time")
    out += _ascii_field(str(256 * (n_signals + 1)), 8, "header size")
    out += _ascii_field("BDF+C", 44, "reserved field")
    out += _ascii_field("0", 8, "number of data records")
    out += _ascii_field(str(RECORD_DURATION_S), 8, "record duration")
    out += _ascii_field(str(n_signals), 4, "number of signals")
    all_labels = [*labels, ANNOTATION_LABEL]
    for i, label in enumerate(all_labels):
        out += _ascii_field(label, 16, f"label of channel {i}")
    for label in all_labels:
        out += _ascii_field(TRANSDUCER if label != ANNOTATION_LABEL else "", 80, "transducer")
    for label in all_labels:
        out += _ascii_field(PHYSICAL_UNIT if label != ANNOTATION_LABEL else "", 8, "unit")
    phys_min = [r.physical_min_uv for r in ranges] + [-1.0]
    phys_max = [r.physical_max_uv for r in ranges] + [1.0]
    for value in phys_min:
        out += _number_field(value, 8, "physical minimum")
    for value in phys_max:
        out += _number_field(value, 8, "physical maximum")
    for r in ranges:
        out += _ascii_field(str(r.digital_min), 8, "digital minimum")
    out += _ascii_field(str(BDF_DIGITAL_MIN), 8, "digital minimum")
    for r in ranges:
        out += _ascii_field(str(r.digital_max), 8, "digital maximum")
    out += _ascii_field(str(BDF_DIGITAL_MAX), 8, "digital maximum")
    for _ in all_labels:
        out += _ascii_field("None", 80, "prefiltering")
    for _ in labels:
        out += _ascii_field(str(int(fs) * RECORD_DURATION_S), 8, "samples per record")
    out += _ascii_field(str(header.annotation_samples), 8, "samples per record")
    for _ in all_labels:
        out += b" " * 32
    return bytes(out)


def _tal(onset_s: float, duration_s: float | None, text: str) -> bytes:
    head = "+" + _seconds_text(onset_s)
    if duration_s is not None:
        head += "\x15" + _seconds_text(duration_s)
    return (head + "\x14" + text + "\x14\x00").encode("utf-8")


def _int24_bytes(digits: npt.NDArray[np.int64]) -> bytes:
    """Little-endian 3-byte two's complement of a 1-D integer array."""
    as_u32 = digits.astype("<i4").view(np.uint8).reshape(-1, 4)
    return as_u32[:, :BYTES_PER_SAMPLE].tobytes()


class BdfSessionWriter:
    """Append a session's frames and annotations to a BDF+ file, one second at a time.

    Parameters
    ----------
    path:
        The file to create (an existing file is an error: nothing is overwritten).
    header:
        Labels, rate, device, ranges and config.
    sync:
        Whether to ``fdatasync`` around each record (on by default; tests of the byte layout
        may turn it off).
    pwrite, fdatasync:
        The OS calls, injectable so a test can make the disk fill up.

    Raises
    ------
    ConfigError
        If the header is invalid.
    RecordingError
        If the file exists or cannot be created or written.
    """

    def __init__(
        self,
        path: Path,
        header: SessionHeader,
        *,
        sync: bool = True,
        pwrite: PwriteFn = os.pwrite,
        fdatasync: SyncFn = os.fdatasync,
    ) -> None:
        self.path = Path(path)
        self.header = header
        self._ranges = header.channel_ranges()
        header_bytes = build_header(header, str(self.path))
        self._n_channels = len(header.channel_labels)
        self._samples_per_record = int(header.sample_rate_hz) * RECORD_DURATION_S
        self._annotation_bytes = header.annotation_samples * BYTES_PER_SAMPLE
        self._header_size = len(header_bytes)
        self._record_size = (
            self._n_channels * self._samples_per_record * BYTES_PER_SAMPLE + self._annotation_bytes
        )
        self._sync = sync
        self._pwrite = pwrite
        self._fdatasync = fdatasync
        self._pending_uv = np.empty((0, self._n_channels), dtype=np.float64)
        self._pending_tals: list[bytes] = []
        self._last_frame_uv = np.zeros(self._n_channels, dtype=np.float64)
        self._records_written = 0
        self._frames_received = 0
        self._next_seq: int | None = None
        self.frames_lost = 0
        self.clipped_samples = 0
        self._failed: RecordingError | None = None
        self._closed = False
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot create: {describe_os_error(exc)}") from None
        self._write_at(header_bytes, 0, "the header")
        self._sync_now("the header")
        fields: dict[str, object] = {
            "device": header.device,
            "rate_hz": int(header.sample_rate_hz),
            "channels": self._n_channels,
        }
        fields.update(header.config)
        self._queue(0.0, None, format_annotation(KIND_SESSION, fields, MARKER_START))

    # -- public API ---------------------------------------------------------------------

    @property
    def records_written(self) -> int:
        """Whole 1-second records on disk (and named by the header)."""
        return self._records_written

    @property
    def frames_written(self) -> int:
        """Frames received so far (written or waiting for their record to fill)."""
        return self._frames_received

    @property
    def elapsed_s(self) -> float:
        """Time in the file of the next frame, in seconds."""
        return self._frames_received / self.header.sample_rate_hz

    def write_frames(self, emg_uv: npt.ArrayLike, first_seq: int) -> None:
        """Append a block of frames; a jump in sequence numbers becomes a ``gap`` annotation.

        Parameters
        ----------
        emg_uv:
            Shape ``(n, C)``, µV.
        first_seq:
            Sequence number of the block's first frame (frames are numbered consecutively).

        Raises
        ------
        ValueError
            If the block has the wrong shape or a non-finite value, or the sequence number
            goes backwards (nothing is written then).
        RecordingError
            If the file cannot be written.
        """
        self._check_open()
        block = np.asarray(emg_uv, dtype=np.float64)
        if block.ndim != 2 or block.shape[1] != self._n_channels:
            raise ValueError(
                f"{self.path}: frames must have shape (n, {self._n_channels}), got {block.shape}"
            )
        if not np.isfinite(block).all():
            raise ValueError(f"{self.path}: frames from seq {first_seq} hold a non-finite value")
        if block.shape[0] == 0:
            return
        if self._next_seq is not None and first_seq != self._next_seq:
            if first_seq < self._next_seq:
                raise ValueError(
                    f"{self.path}: frame seq {first_seq} goes back (expected {self._next_seq})"
                )
            lost = first_seq - self._next_seq
            self.frames_lost += lost
            text = format_annotation(KIND_GAP, {"frames": lost, "from_seq": self._next_seq})
            self._queue(self.elapsed_s, None, text)
        self._next_seq = first_seq + block.shape[0]
        self._frames_received += block.shape[0]
        self._pending_uv = np.concatenate([self._pending_uv, block])
        self._last_frame_uv = block[-1].copy()
        while self._pending_uv.shape[0] >= self._samples_per_record:
            record_uv = self._pending_uv[: self._samples_per_record]
            self._pending_uv = self._pending_uv[self._samples_per_record :]
            self._write_record(record_uv)

    def annotate(self, onset_s: float, duration_s: float | None, text: str) -> None:
        """Queue an annotation for the next record written.

        Parameters
        ----------
        onset_s:
            Seconds from the file start (≥ 0).
        duration_s:
            Seconds, or ``None`` for none.
        text:
            One line; use :func:`emgd.data.bdf_annotations.format_annotation` for texts the
            reader understands.

        Raises
        ------
        ValueError
            If the onset or duration is negative or not finite, or the text holds a control
            character or does not fit one record's annotation space.
        """
        self._check_open()
        if not (math.isfinite(onset_s) and onset_s >= 0):
            raise ValueError(f"{self.path}: annotation onset {onset_s!r} s must be >= 0")
        if duration_s is not None and not (math.isfinite(duration_s) and duration_s >= 0):
            raise ValueError(f"{self.path}: annotation duration {duration_s!r} s must be >= 0")
        if any(ord(c) < 32 for c in text):
            raise ValueError(f"{self.path}: annotation {text!r} holds a control character")
        self._queue(onset_s, duration_s, text)

    def cue(self, onset_s: float, gesture: str, effort: str | float, rep: int, marker: str) -> None:
        """Queue ``cue gesture=<g> effort=<e> rep=<r> start|end`` (``effort`` ``"0.2:0.8"``
        for a ramp)."""
        fields = {"gesture": gesture, "effort": effort, "rep": rep}
        if marker not in (MARKER_START, MARKER_END):
            raise ValueError(f"{self.path}: cue marker {marker!r} must be start or end")
        self.annotate(onset_s, None, format_annotation(KIND_CUE, fields, marker))

    def close(self) -> None:
        """Pad and write the last partial second, write ``session end``, close the file.

        The ``session end`` annotation needs a record: when the frames filled whole seconds,
        one more second of padding (the last frame repeated) carries it.

        Safe to call twice; after a write failure it only closes the descriptor.
        """
        if self._closed:
            return
        try:
            if self._failed is None:
                frames = self._frames_received
                self._queue(
                    self.elapsed_s, None, format_annotation(KIND_SESSION, {"frames": frames}, "end")
                )
                while self._pending_uv.shape[0] > 0 or self._pending_tals:
                    n = self._pending_uv.shape[0]
                    fill = self._pending_uv[-1] if n else self._last_frame_uv
                    pad = np.repeat(fill[None, :], self._samples_per_record - n, axis=0)
                    record_uv = np.concatenate([self._pending_uv, pad])
                    self._pending_uv = self._pending_uv[:0]
                    self._write_record(record_uv)
        finally:
            self._closed = True
            os.close(self._fd)

    def __enter__(self) -> BdfSessionWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._closed:
            raise ValueError(f"{self.path}: the recording is closed")

    def _queue(self, onset_s: float, duration_s: float | None, text: str) -> None:
        tal = _tal(onset_s, duration_s, text)
        room = self._annotation_bytes - len(self._timekeeping(10**6)) - 1
        if len(tal) > room:
            raise ValueError(
                f"{self.path}: annotation {text[:40]!r}… is {len(tal)} bytes; a record holds {room}"
            )
        self._pending_tals.append(tal)

    @staticmethod
    def _timekeeping(record_index: int) -> bytes:
        return f"+{record_index * RECORD_DURATION_S}\x14\x14\x00".encode("ascii")

    def _annotation_block(self) -> bytes:
        block = bytearray(self._timekeeping(self._records_written))
        while self._pending_tals and len(block) + len(self._pending_tals[0]) <= (
            self._annotation_bytes
        ):
            block += self._pending_tals.pop(0)
        return bytes(block.ljust(self._annotation_bytes, b"\x00"))

    def _write_record(self, record_uv: FloatArray) -> None:
        parts: list[bytes] = []
        for ch, rng in enumerate(self._ranges):
            digits = rng.to_digital(record_uv[:, ch])
            outside = (record_uv[:, ch] < rng.physical_min_uv) | (
                record_uv[:, ch] > rng.physical_max_uv
            )
            self.clipped_samples += int(np.count_nonzero(outside))
            parts.append(_int24_bytes(digits))
        kept = list(self._pending_tals)
        parts.append(self._annotation_block())
        record = b"".join(parts)
        offset = self._header_size + self._records_written * self._record_size
        what = f"data record {self._records_written} ({self._records_written} s)"
        try:
            self._write_at(record, offset, what)
            self._sync_now(what)
            count = _ascii_field(str(self._records_written + 1), 8, "number of data records")
            self._write_at(count, RECORD_COUNT_OFFSET, f"the record count after {what}")
            self._sync_now(what)
        except RecordingError:
            self._pending_tals = kept
            raise
        self._records_written += 1

    def _write_at(self, data: bytes, offset: int, what: str) -> None:
        view = memoryview(data)
        try:
            while view:
                done = self._pwrite(self._fd, bytes(view), offset)
                view, offset = view[done:], offset + done
        except OSError as exc:
            self._fail(exc, what)

    def _sync_now(self, what: str) -> None:
        if not self._sync:
            return
        try:
            self._fdatasync(self._fd)
        except OSError as exc:
            self._fail(exc, what)

    def _fail(self, exc: OSError, what: str) -> None:
        self._failed = RecordingError(
            f"{self.path}: {describe_os_error(exc)} writing {what}; the file holds the "
            f"{self._records_written} whole seconds before it"
        )
        raise self._failed from None


def default_labels(n_channels: int) -> tuple[str, ...]:
    """``("EMG1", …, "EMG<n>")``."""
    return tuple(f"EMG{i + 1}" for i in range(n_channels))
