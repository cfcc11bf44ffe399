"""A fixed-size ring of multichannel frames with one writer, one reader and zero-copy reads.

This module owns the storage between a producer of frames (acquisition, or the filter) and
its consumer: the newest ``capacity_frames`` frames, a monotonic count of frames written,
the reader's position, and an exact count of frames the reader lost because the writer
lapped it (never silent; the newest data always wins). The storage is mirrored (every frame
is stored twice, ``capacity_frames`` apart), so any run of up to ``capacity_frames``
consecutive frames is one contiguous slice: every read returns a read-only **view**, never
a copy. It must not filter, window or block, and it is not thread-safe beyond one writer and
one reader in one process (the writer stores the frames before it advances the count; a
reader that keeps a view while the writer runs must check :meth:`RingBuffer.holds`
afterwards). Sharing it across processes is the daemon's business.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from emgd.errors import ConfigError


class RingRead(NamedTuple):
    """The result of :meth:`RingBuffer.read_new`.

    Attributes
    ----------
    frames:
        Shape ``(n_frames, n_channels)``, read-only view of the frames not read before
        (at most ``capacity_frames``; possibly 0 rows).
    start_index:
        Index (count since the first frame ever written) of ``frames[0]``.
    missed_frames:
        Frames written since the previous read that were overwritten before this read.
    """

    frames: npt.NDArray[np.generic]
    start_index: int
    missed_frames: int


class RingBuffer:
    """Ring of the newest ``capacity_frames`` frames of ``n_channels`` channels.

    Frame indices count every frame ever written, from 0. Views returned by the read
    methods stay valid (unchanged) until the writer has written enough new frames to
    overwrite them, i.e. as long as :meth:`holds` says so for their index range.

    Parameters
    ----------
    capacity_frames:
        How many of the newest frames are kept (any integer >= 1).
    n_channels:
        Columns of every frame.
    dtype:
        Storage dtype (written blocks are cast to it), float32 by default.
    """

    def __init__(
        self, capacity_frames: int, n_channels: int, dtype: npt.DTypeLike = np.float32
    ) -> None:
        for name, value in (("capacity_frames", capacity_frames), ("n_channels", n_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"RingBuffer {name} = {value!r}: must be an int >= 1")
        self._capacity = capacity_frames
        self._n_channels = n_channels
        # Rows i and i + capacity always hold the same frame (the mirror).
        self._storage: npt.NDArray[np.generic] = np.zeros(
            (2 * capacity_frames, n_channels), dtype=dtype
        )
        self._frames_written = 0  # owned by the writer
        self._frames_read = 0  # owned by the reader: index of the next frame to read
        self._missed_counted = 0  # owned by the reader

    @property
    def capacity_frames(self) -> int:
        return self._capacity

    @property
    def n_channels(self) -> int:
        return self._n_channels

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return self._storage.dtype

    @property
    def frames_written(self) -> int:
        """Frames written since creation (monotonic; the index of the next frame)."""
        return self._frames_written

    @property
    def frames_read(self) -> int:
        """Index of the next frame the reader will get from :meth:`read_new`."""
        return self._frames_read

    @property
    def oldest_index(self) -> int:
        """Index of the oldest frame still held (equals ``frames_written`` when empty)."""
        return max(0, self._frames_written - self._capacity)

    @property
    def unread_frames(self) -> int:
        """Frames :meth:`read_new` would return now (at most ``capacity_frames``)."""
        return self._frames_written - max(self._frames_read, self.oldest_index)

    @property
    def overrun_frames(self) -> int:
        """Frames the reader has lost so far, including ones overwritten but not yet noticed."""
        return self._missed_counted + self._pending_missed()

    def _pending_missed(self) -> int:
        return max(0, self.oldest_index - self._frames_read)

    def write(self, block: npt.ArrayLike) -> None:
        """Append frames (writer side).

        Parameters
        ----------
        block:
            Shape ``(n_frames, n_channels)``, oldest first. A block longer than the capacity
            keeps only its newest ``capacity_frames`` frames (the rest count as written and,
            if unread, as overrun).
        """
        x = np.asarray(block)
        if x.ndim != 2 or x.shape[1] != self._n_channels:
            raise ConfigError(
                f"RingBuffer.write block shape {x.shape}: expected (n_frames, {self._n_channels})"
            )
        n_frames = x.shape[0]
        kept = x[-self._capacity :] if n_frames > self._capacity else x
        n_kept = kept.shape[0]
        cap = self._capacity
        start = (self._frames_written + n_frames - n_kept) % cap
        # First copy: rows start .. start + n_kept (< 2 cap), contiguous.
        self._storage[start : start + n_kept] = kept
        # Mirror copy: the part below cap goes to +cap, the part at or above cap to -cap.
        n_low = min(n_kept, cap - start)
        self._storage[start + cap : start + cap + n_low] = kept[:n_low]
        self._storage[: n_kept - n_low] = kept[n_low:]
        self._frames_written += n_frames

    def holds(self, start_index: int, n_frames: int) -> bool:
        """True when frames ``start_index .. start_index + n_frames - 1`` are all held."""
        return (
            n_frames >= 0
            and start_index >= self.oldest_index
            and start_index + n_frames <= self._frames_written
        )

    def frames(self, start_index: int, n_frames: int) -> npt.NDArray[np.generic]:
        """Read-only view of ``n_frames`` consecutive frames from ``start_index``.

        Does not move the reader's position.

        Returns
        -------
        frames:
            Shape ``(n_frames, n_channels)``, a view into the ring (never a copy).

        Raises
        ------
        ValueError
            When some of those frames are not (or no longer) held.
        """
        if not self.holds(start_index, n_frames):
            raise ValueError(
                f"RingBuffer frames {start_index}..{start_index + n_frames - 1} not held "
                f"(held: {self.oldest_index}..{self._frames_written - 1})"
            )
        row = start_index % self._capacity if n_frames else 0
        view = self._storage[row : row + n_frames]
        view.flags.writeable = False
        return view

    def latest(self, n_frames: int) -> npt.NDArray[np.generic]:
        """Read-only view of the newest ``n_frames`` frames, oldest first (a view, no copy).

        Does not move the reader's position.

        Raises
        ------
        ValueError
            When fewer than ``n_frames`` frames are held (or ``n_frames`` exceeds the
            capacity).
        """
        return self.frames(self._frames_written - n_frames, n_frames)

    def read_new(self) -> RingRead:
        """Return the frames not read yet and advance the reader (reader side).

        If the writer lapped the reader, the overwritten frames are reported in
        ``missed_frames`` and added to :attr:`overrun_frames`; the held frames are returned.
        """
        missed = self._pending_missed()
        self._missed_counted += missed
        start = self._frames_read + missed
        end = self._frames_written
        frames = self.frames(start, end - start)
        self._frames_read = end
        return RingRead(frames, start, missed)
