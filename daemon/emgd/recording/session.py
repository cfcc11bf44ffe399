"""The daemon side of ``emgd record``: one guided, labelled recording at a time.

This module owns the recording session that lives in the control loop's thread: it holds
the hand (the daemon's ``hold``/``release`` callbacks) while it records, runs the protocol's
cue schedule on the daemon's clock, hands every frame of each hop's acquisition batch (raw
µV, before any filtering) to a :class:`~emgd.recording.writer_thread.ThreadedWriter` whose
own thread writes the BDF+ file, writes the cues as annotations, splits a batch wherever its
frame index jumps (lost frames, ring overruns) so the file gets a ``gap`` annotation there,
tallies the end-of-session figures (:mod:`emgd.recording.summary`), and publishes a snapshot
for ``record.progress``. It also owns the ``record.*`` socket handlers: they run in the
status server's thread, where ``record.start`` validates the protocol and creates the file
(so a bad protocol or an unwritable path is the error reply), then submit commands to the
loop and otherwise only read the snapshot. It must not touch the servos, the safety gate or
the pipeline: the daemon passes callbacks in, and ``on_cue(pose, effort)`` (None today) is
the seam through which the daemon will let a simulated wearer follow the cues.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from emgd.clock import NS_PER_S, Clock
from emgd.command_ledger import CLIENT_TIMEOUT_S, CommandLedger
from emgd.data.bdf_annotations import KIND_CUE, MARKER_END, MARKER_START, format_annotation
from emgd.data.bdf_writer import BdfSessionWriter, SessionHeader
from emgd.dsp.filters import FilterSpec
from emgd.errors import InvalidParams, RecordingError
from emgd.recording import protocol as protocol_mod
from emgd.recording.header import session_header
from emgd.recording.protocol import Cue, Protocol
from emgd.recording.summary import SessionTally
from emgd.recording.writer_thread import ThreadedWriter

#: Frames of a cue's first this many seconds count for no label in the summary: the
#: wearer is still moving from the previous cue (they are recorded all the same).
TRANSITION_S = 0.5
RECORDINGS_DIR = "recordings"
FILE_SUFFIX = ".bdf"
PARTICIPANT_RULE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")

Handler = Callable[[dict[str, Any], object], object]
OnCue = Callable[[str, float], None]


def default_file_name(start: dt.datetime) -> str:
    """``emgd-YYYYmmdd-HHMMSS.bdf`` for a session started at ``start``."""
    return start.strftime("emgd-%Y%m%d-%H%M%S") + FILE_SUFFIX


def consecutive_runs(index: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """``(start, stop)`` slices of ``index`` in which each frame number follows the last."""
    if index.shape[0] == 0:
        return []
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    edges = [0, *breaks.tolist(), int(index.shape[0])]
    return list(itertools.pairwise(edges))


class RecordingSession:
    """One recording (loop thread only).

    Parameters
    ----------
    protocol:
        What to cue.
    writer:
        The threaded writer of the session's file.
    tally:
        The summary's running sums.
    start_ns:
        The daemon clock's time at the start of the session (cue times count from here).
    on_cue:
        Called with ``(pose, effort)`` whenever the cued pose or effort changes (every hop
        during a ramp); ``None`` for none.
    """

    def __init__(
        self,
        protocol: Protocol,
        writer: ThreadedWriter,
        tally: SessionTally,
        start_ns: int,
        on_cue: OnCue | None = None,
    ) -> None:
        self.protocol = protocol
        self.cues: list[Cue] = protocol_mod.schedule(protocol)
        self.total_s = self.cues[-1].end_s
        self.writer = writer
        self.tally = tally
        self.start_ns = start_ns
        self.on_cue = on_cue
        self.sample_rate_hz = writer.writer.header.sample_rate_hz
        self.cue_index = -1  # no cue started yet
        self.elapsed_s = 0.0
        self.next_seq: int | None = None  # acquisition frame number expected next
        # The writer's frame numbers are the acquisition's plus this (which grows only
        # when the acquisition's count goes back), so they never go back.
        self._seq_offset = 0
        self.index_resets = 0
        self.frames_before_start = 0  # frames of the first batch older than the session
        self.frames_received = 0
        self.acquisition_lost_frames = 0  # frame-number jumps the acquisition left
        self.overrun_frames = 0  # of which the ring overwrote
        self.gaps = 0
        self.non_finite_samples = 0
        self._file_s_before_hop = 0.0
        self._last_onset_s = 0.0
        self._last_cued: tuple[str, float] | None = None
        self.stopping = False

    # -- time in the file ----------------------------------------------------------------
    @property
    def file_s(self) -> float:
        """Seconds of frames queued to the file (a dropped block takes no file time)."""
        return self.writer.frames_queued / self.sample_rate_hz

    def _onset_s(self, at_elapsed_s: float) -> float:
        """File time of the moment ``at_elapsed_s`` of the session, seen at this hop."""
        late_s = max(0.0, self.elapsed_s - at_elapsed_s)
        onset = min(self.file_s, max(self._file_s_before_hop, self.file_s - late_s))
        onset = max(onset, self._last_onset_s)
        self._last_onset_s = onset
        return onset

    @property
    def cue(self) -> Cue | None:
        return self.cues[self.cue_index] if 0 <= self.cue_index < len(self.cues) else None

    def _label(self) -> str | None:
        cue = self.cue
        if cue is None or self.elapsed_s - cue.onset_s < TRANSITION_S:
            return None
        return cue.pose

    # -- each hop ------------------------------------------------------------------------
    def feed(
        self,
        index: npt.NDArray[np.int64],
        emg_uv: npt.ArrayLike,
        railed: npt.NDArray[np.uint32],
        lead_off: npt.NDArray[np.uint32],
        *,
        overrun_frames: int = 0,
        timestamp_ns: npt.NDArray[np.int64] | None = None,
    ) -> None:
        """Queue every frame of one batch, split where the frame number jumps.

        Until the first frame is queued, frames stamped (``timestamp_ns``, the daemon's
        clock) before the session started are not part of it: the first hop's batch may
        hold the frames that waited in the ring before ``record.start``.
        """
        self._file_s_before_hop = self.file_s
        if self.next_seq is None and timestamp_ns is not None:
            first = int(np.searchsorted(np.asarray(timestamp_ns), self.start_ns))
            index, emg_uv = index[first:], np.asarray(emg_uv)[first:]
            railed, lead_off = railed[first:], lead_off[first:]
            self.frames_before_start += first
        else:
            self.overrun_frames += int(overrun_frames)
        x = np.asarray(emg_uv, dtype=np.float64)
        finite = np.isfinite(x)
        if not finite.all():
            # The writer refuses non-finite µV: store 0 and count them (summary).
            self.non_finite_samples += int(np.count_nonzero(~finite))
            x = np.where(finite, x, 0.0)
        idx = np.asarray(index, dtype=np.int64)
        label = self._label()
        for start, stop in consecutive_runs(idx):
            first = int(idx[start])
            jump = 0 if self.next_seq is None else first - self.next_seq
            if jump > 0:
                self.acquisition_lost_frames += jump
                self.gaps += 1
            elif jump < 0:
                # The frame number went back (the acquisition restarted its count): the
                # file's numbering carries on without a gap, and the reset is counted.
                self.index_resets += 1
                self._seq_offset -= jump
            self.writer.put_frames(x[start:stop], first + self._seq_offset)
            self.next_seq = first + (stop - start)
            self.frames_received += stop - start
            self.tally.feed(x[start:stop], railed[start:stop], lead_off[start:stop], label)

    def advance(self, now_ns: int) -> bool:
        """Start the cues that are due; True when the schedule is over."""
        self.elapsed_s = (now_ns - self.start_ns) / NS_PER_S
        while self.cue_index + 1 < len(self.cues) and (
            self.cues[self.cue_index + 1].onset_s <= self.elapsed_s
        ):
            nxt = self.cues[self.cue_index + 1]
            onset = self._onset_s(nxt.onset_s)
            if self.cue is not None:
                self._annotate_cue(self.cue, onset, MARKER_END)
            self.cue_index += 1
            self._annotate_cue(nxt, onset, MARKER_START)
        cue = self.cue
        if cue is not None and self.on_cue is not None:
            cued = (cue.pose, cue.effort_at(self.elapsed_s))
            if cued != self._last_cued:
                self._last_cued = cued
                self.on_cue(*cued)
        return self.elapsed_s >= self.total_s

    def end(self) -> None:
        """Close the current cue and ask the writer to finish the file."""
        if self.stopping:
            return
        self.stopping = True
        cue = self.cue
        if cue is not None:
            self._annotate_cue(cue, self._onset_s(min(self.elapsed_s, cue.end_s)), MARKER_END)
        self.writer.close(None if self.next_seq is None else self.next_seq + self._seq_offset)

    def _annotate_cue(self, cue: Cue, onset_s: float, marker: str) -> None:
        fields = {"gesture": cue.pose, "effort": cue.effort_text(), "rep": cue.rep}
        self.writer.put_annotation(onset_s, None, format_annotation(KIND_CUE, fields, marker))

    # -- what the client sees --------------------------------------------------------------
    def progress(self) -> dict[str, Any]:
        cue = self.cue
        nxt = self.cues[self.cue_index + 1] if self.cue_index + 1 < len(self.cues) else None
        return {
            "elapsed_s": self.elapsed_s,
            "total_s": self.total_s,
            "fraction": min(1.0, max(0.0, self.elapsed_s / self.total_s)),
            "cue_index": self.cue_index,
            "cues_total": len(self.cues),
            "cue": None if cue is None else _cue_dict(cue, self.elapsed_s),
            "next_cue": None if nxt is None else _cue_dict(nxt, self.elapsed_s),
            "frames": self.frames_received,
            "lost_frames": self.acquisition_lost_frames + self.writer.frames_dropped,
            "seconds_written": self.writer.writer.records_written,
            "rms_uv": list(self.tally.live_rms_uv),
            "stopping": self.stopping,
        }

    def summary(self) -> dict[str, Any]:
        """The end-of-session figures (once the writer is done)."""
        w = self.writer
        out = self.tally.summary(w.writer.header.channel_labels)
        out |= {
            "path": str(w.writer.path),
            "protocol": self.protocol.name,
            "seconds": w.frames_queued / self.sample_rate_hz,
            "records_written": w.writer.records_written,
            "frames": self.frames_received,
            "frames_written": w.writer.frames_written,
            "lost_frames": self.acquisition_lost_frames + w.frames_dropped,
            "acquisition_lost_frames": self.acquisition_lost_frames,
            "overrun_frames": self.overrun_frames,
            "writer_dropped_frames": w.frames_dropped,
            "gaps": self.gaps,
            "writer_gaps": w.writer.frames_lost,
            "clipped_samples": w.writer.clipped_samples,
            "non_finite_samples": self.non_finite_samples,
            "index_resets": self.index_resets,
            "frames_before_start": self.frames_before_start,
            "cues_done": max(0, self.cue_index + 1),
            "cues_total": len(self.cues),
        }
        return out


def _cue_dict(cue: Cue, elapsed_s: float) -> dict[str, Any]:
    return {
        "pose": cue.pose,
        "effort": cue.effort_at(elapsed_s),
        "effort_text": cue.effort_text(),
        "ramp": cue.is_ramp,
        "rep": cue.rep,
        "onset_s": cue.onset_s,
        "duration_s": cue.duration_s,
        "remaining_s": max(0.0, cue.end_s - elapsed_s),
        "starts_in_s": max(0.0, cue.onset_s - elapsed_s),
    }


class RecordingService:
    """Hosts recording sessions for the daemon.

    Parameters
    ----------
    filter_spec:
        The model contract's filter (for the summary's figures only: the file is raw).
    header:
        The device's header (:func:`emgd.recording.header.device_header`); each session
        gets its start time, wearer and protocol added.
    recordings_dir:
        Where a session without a client-given path is written (created when needed).
    clock:
        The loop's clock (cue schedule, client time-out).
    submit:
        Runs a callable in the loop thread at the next hop (``Daemon.submit``).
    hold, release:
        Pause and resume the daemon's output (loop thread).
    on_cue:
        Passed to each session (see :class:`RecordingSession`); None today.
    busy:
        Returns why a recording cannot start now (e.g. a calibration runs), or None.
    wall:
        Wall-clock time for the file's header and name.
    make_writer:
        Opens the file (the default is :class:`~emgd.data.bdf_writer.BdfSessionWriter`;
        tests inject one whose disk fills up).

    Notes
    -----
    Threads: :meth:`handlers` run in the status server thread; they create the file, read
    :attr:`snapshot` and :func:`submit`. Everything else runs in the loop thread.
    """

    def __init__(
        self,
        filter_spec: FilterSpec,
        header: SessionHeader,
        recordings_dir: Path,
        clock: Clock,
        *,
        submit: Callable[[Callable[[], None]], None],
        hold: Callable[[], None],
        release: Callable[[], None],
        on_cue: OnCue | None = None,
        busy: Callable[[], str | None] | None = None,
        wall: Callable[[], dt.datetime] = dt.datetime.now,
        make_writer: Callable[[Path, SessionHeader], BdfSessionWriter] = BdfSessionWriter,
        client_timeout_s: float = CLIENT_TIMEOUT_S,
    ) -> None:
        self._filter_spec = filter_spec
        self._header = header
        self._recordings_dir = recordings_dir
        self._clock = clock
        self._submit = submit
        self._hold = hold
        self._release = release
        self._on_cue = on_cue
        self._busy = busy or (lambda: None)
        self._wall = wall
        self._make_writer = make_writer
        self.client_timeout_s = client_timeout_s
        self._session: RecordingSession | None = None
        self._closing: list[tuple[RecordingSession, str, str | None]] = []
        self._commands = CommandLedger(submit, clock, self._publish)
        self._session_number = 0
        self._result: dict[str, Any] | None = None
        self.snapshot: Mapping[str, Any] = {}
        self._publish()

    # ------------------------------------------------------------------ loop thread
    @property
    def active(self) -> bool:
        """True while a session records or its file is still being closed."""
        return self._session is not None or bool(self._closing)

    def on_frames(
        self,
        index: npt.NDArray[np.int64],
        emg_uv: npt.ArrayLike,
        railed: npt.NDArray[np.uint32],
        lead_off: npt.NDArray[np.uint32],
        *,
        overrun_frames: int = 0,
        timestamp_ns: npt.NDArray[np.int64] | None = None,
    ) -> None:
        """Hand one hop's batch to the session (loop thread); a no-op without one."""
        if self._session is not None:
            self._session.feed(
                index,
                emg_uv,
                railed,
                lead_off,
                overrun_frames=overrun_frames,
                timestamp_ns=timestamp_ns,
            )

    def tick(self, now_ns: int) -> None:
        """Cues, the end of the schedule, a failed disk, a vanished client (every hop)."""
        if self._session is None and not self._closing:
            return  # idle: nothing to do, and the snapshot stands
        s = self._session
        if s is not None:
            over = s.advance(now_ns)
            silent_s = self._commands.silent_s(now_ns)
            if s.writer.error is not None:
                self._stop("failed", str(s.writer.error), release=True)
            elif over:
                self._stop("complete", None, release=True)
            elif silent_s > self.client_timeout_s:
                reason = f"no word from the client for {silent_s:.0f} s: recording stopped"
                self._stop("timed_out", reason, release=True)
        self._collect_closed()
        self._publish()

    def end(self, reason: str) -> None:
        """Stop the session without resuming (the daemon resumes already)."""
        if self._session is not None:
            self._stop("stopped", reason, release=False)
            self._publish()

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop any session and wait for its file to be closed (daemon shutdown)."""
        self.end("the daemon is stopping")
        for session, _, _ in self._closing:
            session.writer.join(timeout_s)
        self._collect_closed()
        self._publish()

    def _stop(self, outcome: str, reason: str | None, *, release: bool) -> None:
        s = self._session
        assert s is not None
        s.end()
        self._session = None
        self._closing.append((s, outcome, reason))
        if release:
            self._release()

    def _collect_closed(self) -> None:
        still: list[tuple[RecordingSession, str, str | None]] = []
        for session, outcome, reason in self._closing:
            if not session.writer.done():
                still.append((session, outcome, reason))
                continue
            error = session.writer.error
            result: dict[str, Any] = {"outcome": outcome, "summary": session.summary()}
            if error is not None:
                result["outcome"] = "failed"
            why = str(error) if error is not None else reason
            if why:
                result["reason"] = why
            self._result = result
        self._closing = still

    def _start(self, protocol: Protocol, writer: BdfSessionWriter) -> None:
        why = "a recording is running" if self.active else self._busy()
        if why is not None:
            writer.close()
            with contextlib.suppress(OSError):
                writer.path.unlink()
            raise RecordingError(f"record.start: {why}")
        tally = SessionTally(
            self._filter_spec, writer.header.sample_rate_hz, len(writer.header.channel_labels)
        )
        threaded = ThreadedWriter(writer)
        self._session = RecordingSession(
            protocol, threaded, tally, self._clock.monotonic_ns(), self._on_cue
        )
        self._session_number += 1
        self._result = None
        self._hold()

    def _stop_command(self) -> None:
        if self._session is None:
            raise RecordingError("record.stop: no recording running")
        self._stop("stopped", "stopped by the client", release=True)

    def _publish(self) -> None:
        s = self._session
        closing = self._closing[-1][0] if self._closing else None
        shown = s or closing
        self.snapshot = {
            "active": self.active,
            "recording": s is not None,
            "session": self._session_number,
            **self._commands.fields(),
            "path": None if shown is None else str(shown.writer.writer.path),
            "progress": None if shown is None else shown.progress(),
            "result": self._result,
        }

    # ------------------------------------------------------------------ server thread
    def handlers(self) -> dict[str, Handler]:
        """The ``record.*`` socket handlers (run in the status server thread)."""
        return {
            "record.start": self._handle_start,
            "record.progress": self._handle_progress,
            "record.stop": lambda params, peer: self._commands.queue(self._stop_command),
        }

    def _handle_start(self, params: dict[str, Any], peer: object) -> dict[str, Any]:
        """``record.start {"protocol"?, "path"?, "participant"?}``: check, create the file,
        then let the loop start the session."""
        if self.snapshot.get("active"):
            raise RecordingError("record.start: a recording is running (record.stop first)")
        raw = params.get("protocol", {})
        if not isinstance(raw, dict):
            raise InvalidParams(f"record.start protocol {raw!r}: expected an object")
        protocol = protocol_mod.from_mapping(raw, "record.start protocol")
        participant = params.get("participant", "X")
        if not isinstance(participant, str) or not PARTICIPANT_RULE.match(participant):
            raise InvalidParams(
                f"record.start participant {participant!r}: expected 1-32 letters, digits, "
                "'.', '_' or '-'"
            )
        start = self._wall()
        path = self._path(params.get("path"), start)
        header = session_header(self._header, protocol, start, participant)
        writer = self._make_writer(path, header)
        reply = self._commands.queue(lambda: self._start(protocol, writer))
        return {**reply, "path": str(path), "total_s": protocol.total_s}

    def _path(self, given: object, start: dt.datetime) -> Path:
        if given is None:
            folder = self._recordings_dir
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RecordingError(
                    f"{folder}: cannot create the recordings folder: {exc}"
                ) from None
            return folder / default_file_name(start)
        if not isinstance(given, str) or not given:
            raise InvalidParams(f"record.start path {given!r}: expected a file path")
        path = Path(given)
        if not path.is_absolute():
            raise InvalidParams(
                f"record.start path {given!r}: must be absolute (the daemon writes it, "
                "from its own working folder)"
            )
        if path.suffix.lower() != FILE_SUFFIX:
            raise InvalidParams(f"record.start path {given!r}: must end in {FILE_SUFFIX}")
        if not path.parent.is_dir():
            raise RecordingError(f"{path.parent}: no such folder for the recording")
        return path

    def _handle_progress(self, params: dict[str, Any], peer: object) -> Mapping[str, Any]:
        snapshot = self.snapshot
        self._commands.poll(bool(snapshot.get("active")))  # polling is the heartbeat
        return snapshot
