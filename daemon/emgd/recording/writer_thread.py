"""A BDF+ session writer running in its own thread behind a bounded queue.

This module owns the hand-over between the control loop and the disk: the loop calls
:meth:`ThreadedWriter.put_frames` and :meth:`~ThreadedWriter.put_annotation` each hop and
never waits (no write, no ``fdatasync`` in its hop); one thread drains the queue into a
:class:`~emgd.data.bdf_writer.BdfSessionWriter`. When the queue is full the block is not
queued: its frames are counted as dropped, and since the next block's sequence number jumps,
the file gets a ``gap`` annotation at the join (a drop at the very end is annotated at
:meth:`~ThreadedWriter.close`); annotations are never dropped (they wait in the loop's
backlog for room). A write failure (a full disk) stops the writing, keeps the file readable
up to its last whole second (the writer's guarantee) and is reported by
:attr:`~ThreadedWriter.error`. It must not know protocols, cues or the daemon.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from emgd.data.bdf_annotations import KIND_GAP, format_annotation
from emgd.data.bdf_writer import BdfSessionWriter
from emgd.errors import RecordingError

#: Blocks the queue holds (one per hop: 500 hops of 20 ms = 10 s of frames).
QUEUE_BLOCKS = 500
#: How long the thread waits for an item before looking at the close flag again.
POLL_S = 0.05
#: Longest wait in :meth:`ThreadedWriter.join` for the last records to reach the disk.
JOIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class _Frames:
    emg_uv: npt.NDArray[np.float64]  # (n, C)
    first_seq: int


@dataclass(frozen=True)
class _Annotation:
    onset_s: float
    duration_s: float | None
    text: str


class ThreadedWriter:
    """Feed a :class:`BdfSessionWriter` from the loop thread without ever blocking it.

    Parameters
    ----------
    writer:
        An open writer (header written); this object closes it.
    queue_blocks:
        Capacity of the queue in blocks.

    Notes
    -----
    Threads: ``put_*``, :meth:`close` and the counters are for the loop thread; the writer
    is touched only by the thread this object starts (until :meth:`done` is true).
    """

    def __init__(self, writer: BdfSessionWriter, queue_blocks: int = QUEUE_BLOCKS) -> None:
        self.writer = writer
        self._queue: queue.Queue[_Frames | _Annotation] = queue.Queue(maxsize=queue_blocks)
        self._backlog: deque[_Annotation] = deque()
        self._closing = threading.Event()
        self._end_seq: int | None = None
        self._next_seq: int | None = None  # writer thread: the seq the writer expects next
        #: Frames not queued because the queue was full (loop thread).
        self.frames_dropped = 0
        #: Frames queued (loop thread).
        self.frames_queued = 0
        #: Frames the file lacks at the end (dropped after the last block written).
        self.frames_missing_at_end = 0
        #: The write failure that stopped the file (None while all is well).
        self.error: RecordingError | None = None
        self._thread = threading.Thread(target=self._run, name="emgd-record-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ loop thread
    def put_frames(self, emg_uv: npt.ArrayLike, first_seq: int) -> bool:
        """Queue a block of consecutive frames; False (and counted) when the queue is full."""
        self._flush_backlog()
        block = np.array(emg_uv, dtype=np.float64, copy=True)
        if block.shape[0] == 0:
            return True
        if self._closing.is_set():
            raise RecordingError(f"{self.writer.path}: frames after close")
        try:
            self._queue.put_nowait(_Frames(block, int(first_seq)))
        except queue.Full:
            self.frames_dropped += block.shape[0]
            return False
        self.frames_queued += block.shape[0]
        return True

    def put_annotation(self, onset_s: float, duration_s: float | None, text: str) -> None:
        """Queue an annotation (kept in a backlog until the queue has room)."""
        self._backlog.append(_Annotation(onset_s, duration_s, text))
        self._flush_backlog()

    def close(self, end_seq: int | None) -> None:
        """Ask the thread to write what is queued, then close the file.

        ``end_seq`` is the sequence number after the last frame the acquisition delivered;
        frames dropped after the last block written become a ``gap`` at the end.
        """
        self._end_seq = end_seq
        self._flush_backlog()
        self._closing.set()

    def done(self) -> bool:
        """True once the thread has closed the file (or stopped on an error)."""
        return not self._thread.is_alive()

    def join(self, timeout_s: float = JOIN_TIMEOUT_S) -> bool:
        """Wait for the thread; True when it finished."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def queued_blocks(self) -> int:
        return self._queue.qsize() + len(self._backlog)

    def _flush_backlog(self) -> None:
        while self._backlog:
            try:
                self._queue.put_nowait(self._backlog[0])
            except queue.Full:
                return
            self._backlog.popleft()

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=POLL_S)
                except queue.Empty:
                    if not self._closing.is_set():
                        continue
                    # Closed: the loop no longer touches the backlog; write what it kept.
                    while self._backlog and self.error is None:
                        self._handle(self._backlog.popleft())
                    break
                if self.error is None:
                    self._handle(item)
            self._finish()
        except RecordingError as exc:
            self.error = exc
        finally:
            try:
                self.writer.close()  # a no-op when closed already
            except RecordingError as exc:
                self.error = self.error or exc

    def _handle(self, item: _Frames | _Annotation) -> None:
        try:
            if isinstance(item, _Frames):
                self.writer.write_frames(item.emg_uv, item.first_seq)
                self._next_seq = item.first_seq + item.emg_uv.shape[0]
            else:
                self.writer.annotate(item.onset_s, item.duration_s, item.text)
        except RecordingError as exc:
            self.error = exc
        except ValueError as exc:  # a block the writer refuses: stop rather than skip it
            self.error = RecordingError(str(exc))

    def _finish(self) -> None:
        if self.error is not None:
            return
        end, next_seq = self._end_seq, self._next_seq
        if end is not None and next_seq is not None and end > next_seq:
            self.frames_missing_at_end = end - next_seq
            self.writer.annotate(
                self.writer.elapsed_s,
                None,
                format_annotation(KIND_GAP, {"frames": end - next_seq, "from_seq": next_seq}),
            )
        self.writer.close()
