"""The hand-off between the control loop and the Lab Streaming Layer outlets.

The loop must never wait for a network library: :meth:`ChunkPublisher.offer` appends a
chunk to a bounded queue and returns at once; when the queue is full it drops the
**oldest** chunk and counts it. One publisher thread at normal scheduling drains the queue
and pushes each chunk to its outlet with its explicit timestamps. An outlet that blocks
(a stalled network stack, a stuck consumer) stalls only this thread: the queue fills, the
drops are counted and shown by ``emgd status``, and the hand goes on being driven.

This module owns the queue, the thread and the counters; it knows nothing of pylsl (the
outlets are injected), of stream layouts or of the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

log = logging.getLogger("emgd.lsl")

#: A failing outlet is logged on its first failure and then once per this many.
LOG_EVERY_FAILURES = 500
PUBLISHER_THREAD_NAME = "emgd-lsl"


class Outlet(Protocol):
    """What the publisher needs of an outlet (pylsl's, or a test's)."""

    def push_chunk(self, samples: Any, timestamps_s: Sequence[float]) -> None:
        """Push ``samples`` (n rows) stamped with ``timestamps_s`` (n LSL seconds)."""
        ...


@dataclass(frozen=True, slots=True)
class Chunk:
    """Samples for one outlet: numeric (n, channels) or rows of strings, one stamp each."""

    stream: str
    samples: npt.NDArray[np.float32] | list[list[str]]
    timestamps_s: npt.NDArray[np.float64]


@dataclass
class PublisherCounters:
    """What the publisher did since start (read under the publisher's lock)."""

    offered: int = 0
    pushed: int = 0
    dropped: int = 0
    failed: int = 0
    dropped_by_stream: dict[str, int] = field(default_factory=dict)

    def as_dict(self, queued: int) -> dict[str, Any]:
        return {
            "offered_chunks": self.offered,
            "pushed_chunks": self.pushed,
            "dropped_chunks": self.dropped,
            "failed_chunks": self.failed,
            "queued_chunks": queued,
            "dropped_by_stream": dict(self.dropped_by_stream),
        }


class ChunkPublisher:
    """A bounded drop-oldest queue drained into outlets by one thread.

    Parameters
    ----------
    outlets:
        Stream name → outlet; every offered chunk names one of them.
    capacity_chunks:
        Chunks the queue holds; one more offered drops the oldest.
    """

    def __init__(self, outlets: Mapping[str, Outlet], capacity_chunks: int) -> None:
        if capacity_chunks < 1:
            raise ValueError(f"LSL queue: capacity {capacity_chunks} must be at least 1")
        self._outlets = dict(outlets)
        self.capacity_chunks = capacity_chunks
        self._queue: deque[Chunk] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._counters = PublisherCounters()
        self._thread = threading.Thread(target=self._run, name=PUBLISHER_THREAD_NAME, daemon=True)

    def start(self) -> None:
        """Start the publisher thread."""
        self._thread.start()

    def offer(self, chunk: Chunk, *, wake: bool = True) -> bool:
        """Queue ``chunk`` without waiting; False when the oldest had to be dropped for it.

        ``wake=False`` leaves the publisher asleep until a later offer or :meth:`wake`: the
        loop queues during its hop and wakes the thread once its servos are written, so
        the thread's turn with the GIL falls in the loop's idle time.
        """
        if chunk.stream not in self._outlets:
            raise KeyError(f"LSL queue: no outlet named {chunk.stream!r}")
        with self._cond:
            self._counters.offered += 1
            room = True
            if len(self._queue) >= self.capacity_chunks:
                old = self._queue.popleft()
                self._counters.dropped += 1
                by_stream = self._counters.dropped_by_stream
                by_stream[old.stream] = by_stream.get(old.stream, 0) + 1
                room = False
            self._queue.append(chunk)
            if wake:
                self._cond.notify()
        return room

    def wake(self) -> None:
        """Let the publisher push what is queued."""
        with self._cond:
            self._cond.notify()

    def counters(self) -> dict[str, Any]:
        """Counters and the queue's length, as plain values (any thread)."""
        with self._cond:
            return self._counters.as_dict(len(self._queue))

    def stop(self, timeout_s: float = 1.0) -> bool:
        """Push what is queued (within ``timeout_s``) and end the thread.

        Returns False when the thread is stuck in an outlet's push: it is a daemon thread,
        so it does not keep the process alive, and what it still holds is lost.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        stuck = self._thread.is_alive()
        if stuck:
            log.warning(
                "LSL publisher still inside an outlet's push after %.1f s; left behind "
                "with %d chunk(s) queued",
                timeout_s,
                len(self._queue),
            )
        return not stuck

    def _run(self) -> None:
        _normal_scheduling()
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                chunk = self._queue.popleft()
            self._push(chunk)

    def _push(self, chunk: Chunk) -> None:
        try:
            self._outlets[chunk.stream].push_chunk(chunk.samples, chunk.timestamps_s.tolist())
        except Exception as exc:  # any outlet failure: count it, keep publishing
            with self._cond:
                self._counters.failed += 1
                failed = self._counters.failed
            if failed % LOG_EVERY_FAILURES == 1:
                log.error("LSL push to %s failed (%d so far): %s", chunk.stream, failed, exc)
            return
        with self._cond:
            self._counters.pushed += 1


def _normal_scheduling() -> None:
    """A thread started by a SCHED_FIFO thread inherits its policy: give it back."""
    if hasattr(os, "sched_setscheduler"):
        with contextlib.suppress(OSError):
            if os.sched_getscheduler(0) != os.SCHED_OTHER:
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
