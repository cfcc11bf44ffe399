"""Cutting the stream into overlapping analysis windows: window and hop in seconds → samples.

This module owns the one rule that converts :class:`WindowSpec` seconds into whole samples
at a sampling rate, the one rule that says where windows fall (the first window ends at
sample ``n_window - 1``, then one every ``n_hop`` samples), and the :class:`Windower` that
applies that rule to a stream fed block by block, returning windows as read-only views into
its own :class:`~emgd.dsp.ring.RingBuffer`. :func:`sliding_windows` applies the same rule to
a whole recording (training and evaluation), so offline and online windows are identical.
It must not filter, normalise or run a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from emgd.dsp.ring import RingBuffer
from emgd.errors import ConfigError

IntArray = npt.NDArray[np.int64]

# Products window_s × fs within this relative distance of a half count as the half (so
# 0.0145 s × 1000 Hz = 14.499999999999998 still rounds up to 15).
HALF_TOLERANCE = 1e-9


def seconds_to_samples(duration_s: float, sample_rate_hz: float) -> int:
    """Convert a duration to a whole number of samples.

    Rule: nearest integer to ``duration_s × sample_rate_hz``, exact halves rounded up
    (e.g. 12.5 → 13, 12.4 → 12), with a relative tolerance of ``HALF_TOLERANCE`` for
    floating-point products that should have been a half.
    """
    product = duration_s * sample_rate_hz
    return math.floor(product + 0.5 + HALF_TOLERANCE * max(1.0, abs(product)))


def _finite_positive(name: str, value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} = {value!r}: must be a finite number > 0")
    return float(value)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Window length and hop in seconds.

    Attributes
    ----------
    window_s:
        Length of each analysis window, > 0.
    hop_s:
        Time between the newest samples of consecutive windows, > 0 and <= ``window_s``.
    """

    window_s: float
    hop_s: float

    def __post_init__(self) -> None:
        _finite_positive("WindowSpec.window_s", self.window_s)
        _finite_positive("WindowSpec.hop_s", self.hop_s)
        if self.window_s < self.hop_s:
            raise ConfigError(
                f"WindowSpec.window_s = {self.window_s!r}: must be >= hop_s = {self.hop_s!r} "
                "(windows would leave gaps)"
            )

    def n_window(self, sample_rate_hz: float) -> int:
        """Window length in samples (see :func:`seconds_to_samples`)."""
        return self._samples("window_s", self.window_s, sample_rate_hz)

    def n_hop(self, sample_rate_hz: float) -> int:
        """Hop in samples (see :func:`seconds_to_samples`)."""
        return self._samples("hop_s", self.hop_s, sample_rate_hz)

    def _samples(self, name: str, duration_s: float, sample_rate_hz: float) -> int:
        fs_hz = _finite_positive("sample_rate_hz", sample_rate_hz)
        n = seconds_to_samples(duration_s, fs_hz)
        if n < 1:
            raise ConfigError(
                f"WindowSpec.{name} = {duration_s!r}: is {duration_s * fs_hz:.3g} samples at "
                f"sample_rate_hz = {fs_hz:g}, which rounds to 0"
            )
        return n


class Window(NamedTuple):
    """One analysis window.

    Attributes
    ----------
    frames:
        Shape ``(n_window, n_channels)``, oldest sample first, read-only.
    newest_index:
        Stream index (count from the first sample ever fed, from 0) of ``frames[-1]``.
    """

    frames: npt.NDArray[np.generic]
    newest_index: int


def _check_hop(n_window: int, n_hop: int) -> None:
    for name, value in (("n_window", n_window), ("n_hop", n_hop)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} = {value!r}: must be an int >= 1")
    if n_window < n_hop:
        raise ConfigError(f"n_window = {n_window}: must be >= n_hop = {n_hop}")


def sliding_windows(
    samples: npt.NDArray[np.generic], n_window: int, n_hop: int
) -> tuple[npt.NDArray[np.generic], IntArray]:
    """All windows of a whole recording, by the same rule as :class:`Windower`.

    Parameters
    ----------
    samples:
        Shape ``(n_samples, n_channels)``.
    n_window, n_hop:
        Window length and hop in samples (``n_window >= n_hop >= 1``).

    Returns
    -------
    windows:
        Shape ``(n_windows, n_window, n_channels)``, a read-only strided view of
        ``samples`` (no copy); window ``k`` covers samples ``k·n_hop .. k·n_hop +
        n_window - 1``. ``n_windows`` is 0 when the recording is shorter than a window.
    newest_index:
        Shape ``(n_windows,)``, index of each window's newest sample.
    """
    _check_hop(n_window, n_hop)
    x = np.asarray(samples)
    if x.ndim != 2:
        raise ConfigError(f"sliding_windows samples shape {x.shape}: expected (n_samples, C)")
    if x.shape[0] < n_window:
        empty = np.empty((0, n_window, x.shape[1]), dtype=x.dtype)
        return empty, np.empty(0, dtype=np.int64)
    # sliding_window_view puts the window axis last: (n_samples - n_window + 1, C, n_window).
    view = np.lib.stride_tricks.sliding_window_view(x, n_window, axis=0)[::n_hop]
    windows = view.transpose(0, 2, 1)
    newest_index = np.arange(windows.shape[0], dtype=np.int64) * n_hop + (n_window - 1)
    return windows, newest_index


class Windower:
    """Cuts a stream fed in blocks of any size into windows at every hop boundary.

    The first window ends at stream index ``n_window - 1``, the next ones every ``n_hop``
    samples. A block of at most ``max_block_frames`` frames yields its windows as read-only
    views into the internal ring (no copy); a longer block costs one copy (the previous
    ``n_window - 1`` frames and the block, concatenated) and its windows are views into
    that copy. Either way, windows returned by :meth:`push` are valid only until the next
    :meth:`push`; copy what must be kept.

    Parameters
    ----------
    spec:
        Window and hop in seconds.
    sample_rate_hz:
        Sampling rate in Hz.
    n_channels:
        Columns of every block.
    max_block_frames:
        Largest block served without copying (default: one window length).
    dtype:
        Storage dtype of the ring (float32 by default).
    """

    def __init__(
        self,
        spec: WindowSpec,
        sample_rate_hz: float,
        n_channels: int,
        *,
        max_block_frames: int | None = None,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        self._spec = spec
        self._n_window = spec.n_window(sample_rate_hz)
        self._n_hop = spec.n_hop(sample_rate_hz)
        if max_block_frames is None:
            max_block_frames = self._n_window
        if (
            isinstance(max_block_frames, bool)
            or not isinstance(max_block_frames, int)
            or max_block_frames < 1
        ):
            raise ConfigError(f"Windower max_block_frames = {max_block_frames!r}: must be >= 1")
        self._max_block_frames = max_block_frames
        # Every window ending in a block of max_block_frames is still held after the write.
        self._ring = RingBuffer(self._n_window + max_block_frames - 1, n_channels, dtype)

    @property
    def spec(self) -> WindowSpec:
        return self._spec

    @property
    def n_window(self) -> int:
        return self._n_window

    @property
    def n_hop(self) -> int:
        return self._n_hop

    @property
    def n_channels(self) -> int:
        return self._ring.n_channels

    @property
    def max_block_frames(self) -> int:
        return self._max_block_frames

    @property
    def frames_seen(self) -> int:
        """Samples fed so far (the stream index of the next sample)."""
        return self._ring.frames_written

    def next_newest_index(self) -> int:
        """Stream index of the newest sample of the next window to be emitted."""
        first = self._n_window - 1
        seen = self._ring.frames_written
        if seen <= first:
            return first
        return first + -(-(seen - first) // self._n_hop) * self._n_hop

    def push(self, block: npt.ArrayLike) -> list[Window]:
        """Feed the next block; return every window completed by it, oldest first.

        Parameters
        ----------
        block:
            Shape ``(n_frames, n_channels)``, the samples following the previous block.

        Returns
        -------
        windows:
            The windows whose newest sample lies in this block (possibly none).
        """
        x = np.asarray(block)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ConfigError(
                f"Windower.push block shape {x.shape}: expected (n_frames, {self.n_channels})"
            )
        before = self._ring.frames_written
        newest = range(self.next_newest_index(), before + x.shape[0], self._n_hop)
        w = self._n_window
        if x.shape[0] <= self._max_block_frames:
            self._ring.write(x)
            return [Window(self._ring.frames(e - w + 1, w), e) for e in newest]
        tail = self._ring.latest(min(w - 1, before))
        joined = np.concatenate((tail, x.astype(self._ring.dtype, copy=False)), axis=0)
        joined.flags.writeable = False
        base = before - tail.shape[0]
        self._ring.write(x)
        return [Window(joined[e - w + 1 - base : e + 1 - base], e) for e in newest]
