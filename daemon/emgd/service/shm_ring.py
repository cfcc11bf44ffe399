"""A frame ring in shared memory: one writer process (acquisition), one reader (control).

The acquisition process owns the ADC and must never wait for the control loop, so frames
go into a fixed ring in a :class:`multiprocessing.shared_memory.SharedMemory` block: µV
per channel (float32), DRDY timestamp, frame index, railed and lead-off bits, and an
optional row of the simulated wearer's intended angles. The writer publishes a running
frame count after the rows are written, under a lock shared with the reader so the count is
never seen before the rows (a full barrier on weakly ordered CPUs such as the Pi's). The
reader keeps its own position; if the writer laps it, the frames it missed are counted as
overrun, never silently skipped. Counters the writer keeps (lost, stale, railed, invalid
frames, timeouts) live in the same block so the control process can report them.

This module moves bytes; it starts no process and knows nothing of drivers.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory
from multiprocessing.synchronize import Lock

import numpy as np
import numpy.typing as npt

from emgd.hw.interfaces import AcquisitionStats, Frame

N_INTENT = 5

#: Header slots (int64).
H_WRITTEN = 0
H_FRAMES_LOST = 1
H_FRAMES_STALE = 2
H_FRAMES_RAILED = 3
H_FRAMES_INVALID = 4
H_TIMEOUTS = 5
H_WRITER_ALIVE_NS = 6
H_STATE = 7
H_RECOVERIES = 8
HEADER_SLOTS = 9

#: Writer states in ``H_STATE``.
STATE_STARTING = 0
STATE_RUNNING = 1
STATE_STOPPED = 2
STATE_FAILED = 3


@dataclass(frozen=True)
class RingLayout:
    """Sizes of the shared block; both sides build the same views from it."""

    capacity_frames: int
    n_channels: int

    def __post_init__(self) -> None:
        if self.capacity_frames < 2 or self.n_channels < 1:
            raise ValueError(f"ring layout {self}: need capacity >= 2 and channels >= 1")

    def offsets(self) -> dict[str, tuple[int, tuple[int, ...], np.dtype[np.generic]]]:
        """Name → (byte offset, shape, dtype) of each array, 8-byte aligned."""
        cap, ch = self.capacity_frames, self.n_channels
        parts: list[tuple[str, tuple[int, ...], npt.DTypeLike]] = [
            ("header", (HEADER_SLOTS,), np.int64),
            ("index", (cap,), np.int64),
            ("timestamp_ns", (cap,), np.int64),
            ("railed", (cap,), np.uint32),
            ("lead_off", (cap,), np.uint32),
            ("emg_uv", (cap, ch), np.float32),
            ("intent_deg", (cap, N_INTENT), np.float32),
        ]
        out = {}
        offset = 0
        for name, shape, dtype in parts:
            dt = np.dtype(dtype)
            out[name] = (offset, shape, dt)
            size = int(np.prod(shape)) * dt.itemsize
            offset += (size + 7) // 8 * 8
        return out

    def size_bytes(self) -> int:
        last = list(self.offsets().values())[-1]
        return last[0] + int(np.prod(last[1])) * last[2].itemsize


@dataclass(frozen=True)
class RingBatch:
    """Frames read in one call (copies; safe to keep)."""

    index: npt.NDArray[np.int64]  # (n,)
    timestamp_ns: npt.NDArray[np.int64]  # (n,)
    emg_uv: npt.NDArray[np.float32]  # (n, C)
    railed: npt.NDArray[np.uint32]  # (n,)
    lead_off: npt.NDArray[np.uint32]  # (n,)
    intent_deg: npt.NDArray[np.float32]  # (n, 5), NaN when not simulated
    overrun_frames: int  # frames the writer overwrote before this reader saw them

    @property
    def n_frames(self) -> int:
        return int(self.index.shape[0])


class SharedFrameRing:
    """Both ends of the ring; create it in the parent, pass :meth:`handle` to the child.

    Parameters
    ----------
    layout:
        Capacity and channel count.
    name:
        Attach to an existing block of this name (the child); ``None`` creates one.
    lock:
        The publish lock (created with the block; pass the same one to the child).
    """

    def __init__(
        self, layout: RingLayout, *, name: str | None = None, lock: Lock | None = None
    ) -> None:
        self.layout = layout
        self._owner = name is None
        if name is None:
            self._shm = SharedMemory(create=True, size=layout.size_bytes())
        else:
            self._shm = SharedMemory(name=name)
        # The acquisition process is spawned (safe after threads exist), so the lock must
        # come from the spawn context to be handed over.
        self.lock: Lock = lock if lock is not None else multiprocessing.get_context("spawn").Lock()
        views: dict[str, npt.NDArray[np.generic]] = {}
        for key, (offset, shape, dtype) in layout.offsets().items():
            count = int(np.prod(shape))
            views[key] = np.ndarray(shape, dtype=dtype, buffer=self._shm.buf, offset=offset)
            assert views[key].size == count
        self._header: npt.NDArray[np.int64] = views["header"]  # type: ignore[assignment]
        self._index: npt.NDArray[np.int64] = views["index"]  # type: ignore[assignment]
        self._stamp: npt.NDArray[np.int64] = views["timestamp_ns"]  # type: ignore[assignment]
        self._railed: npt.NDArray[np.uint32] = views["railed"]  # type: ignore[assignment]
        self._lead_off: npt.NDArray[np.uint32] = views["lead_off"]  # type: ignore[assignment]
        self._emg: npt.NDArray[np.float32] = views["emg_uv"]  # type: ignore[assignment]
        self._intent: npt.NDArray[np.float32] = views["intent_deg"]  # type: ignore[assignment]
        if self._owner:
            self._header[:] = 0
        self._read_count = 0
        self._written_local = int(self._header[H_WRITTEN])
        self.overrun_total = 0

    @property
    def name(self) -> str:
        return self._shm.name

    def handle(self) -> tuple[RingLayout, str, Lock]:
        """What a child process needs to attach: ``SharedFrameRing(*handle)``."""
        return self.layout, self._shm.name, self.lock

    # ---------------------------------------------------------------- writer side
    def write(self, frame: Frame, intent_deg: npt.ArrayLike | None = None) -> None:
        """Store one frame and publish it."""
        slot = self._written_local % self.layout.capacity_frames
        self._index[slot] = frame.index
        self._stamp[slot] = frame.timestamp_ns
        self._railed[slot] = frame.railed
        self._lead_off[slot] = frame.lead_off_p | frame.lead_off_n
        self._emg[slot] = frame.emg_uv
        self._intent[slot] = np.nan if intent_deg is None else intent_deg
        self._written_local += 1
        with self.lock:
            self._header[H_WRITTEN] = self._written_local

    def publish_stats(self, stats: AcquisitionStats, alive_ns: int) -> None:
        """Copy the driver's counters into the block (cheap; call every few frames)."""
        h = self._header
        h[H_FRAMES_LOST] = stats.frames_lost
        h[H_FRAMES_STALE] = stats.frames_stale
        h[H_FRAMES_RAILED] = stats.frames_railed
        h[H_FRAMES_INVALID] = stats.frames_invalid
        h[H_TIMEOUTS] = stats.timeouts
        h[H_WRITER_ALIVE_NS] = alive_ns

    def count_recovery(self) -> None:
        """The writer re-initialised the chip after a fault."""
        self._header[H_RECOVERIES] += 1

    @property
    def recoveries(self) -> int:
        return int(self._header[H_RECOVERIES])

    def set_state(self, state: int) -> None:
        with self.lock:
            self._header[H_STATE] = state

    # ---------------------------------------------------------------- reader side
    @property
    def frames_written(self) -> int:
        with self.lock:
            return int(self._header[H_WRITTEN])

    @property
    def frames_pending(self) -> int:
        """Frames published and not read yet (overwritten ones included).

        Read without the publish lock, so that a loop polling it never holds up the
        writer: the count is one aligned 8-byte word, and a read that races a publish
        only sees the count before it (the frames are then counted at the next poll).
        """
        return int(self._header[H_WRITTEN]) - self._read_count

    @property
    def state(self) -> int:
        return int(self._header[H_STATE])

    def writer_stats(self) -> AcquisitionStats:
        """The writer's counters as last published."""
        h = self._header
        return AcquisitionStats(
            frames_read=int(h[H_WRITTEN]),
            frames_lost=int(h[H_FRAMES_LOST]),
            frames_stale=int(h[H_FRAMES_STALE]),
            frames_railed=int(h[H_FRAMES_RAILED]),
            frames_invalid=int(h[H_FRAMES_INVALID]),
            timeouts=int(h[H_TIMEOUTS]),
        )

    def writer_alive_ns(self) -> int:
        return int(self._header[H_WRITER_ALIVE_NS])

    def read_new(self, max_frames: int | None = None) -> RingBatch:
        """Copy out the frames published since the last call (oldest first)."""
        written = self.frames_written
        cap = self.layout.capacity_frames
        start = self._read_count
        overrun = 0
        if written - start > cap:
            overrun = written - start - cap
            start = written - cap
        end = written if max_frames is None else min(written, start + max_frames)
        slots = np.arange(start, end) % cap
        batch = RingBatch(
            index=self._index[slots].copy(),
            timestamp_ns=self._stamp[slots].copy(),
            emg_uv=self._emg[slots].copy(),
            railed=self._railed[slots].copy(),
            lead_off=self._lead_off[slots].copy(),
            intent_deg=self._intent[slots].copy(),
            overrun_frames=overrun,
        )
        # A slot may have been overwritten while it was copied: re-check and drop those.
        after = self.frames_written
        if after - start > cap:
            dropped = min(end - start, after - start - cap)
            overrun += dropped
            batch = RingBatch(
                index=batch.index[dropped:],
                timestamp_ns=batch.timestamp_ns[dropped:],
                emg_uv=batch.emg_uv[dropped:],
                railed=batch.railed[dropped:],
                lead_off=batch.lead_off[dropped:],
                intent_deg=batch.intent_deg[dropped:],
                overrun_frames=overrun,
            )
        self._read_count = end
        self.overrun_total += overrun
        return batch

    # ---------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Detach; the creator also frees the block."""
        # Views into the buffer must go before the mapping can close.
        for attr in ("_header", "_index", "_stamp", "_railed", "_lead_off", "_emg", "_intent"):
            setattr(self, attr, np.zeros(0))
        self._shm.close()
        if self._owner:
            self._shm.unlink()
