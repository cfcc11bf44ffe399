"""Timestamps for the Lab Streaming Layer outlets: sample index → DRDY clock → LSL clock.

Two mappings, both values in, values out:

- :class:`SampleClock` turns each frame's sample index (the driver's conversion counter,
  which jumps over lost frames) and its DRDY edge time into the time the conversion
  happened. With ``dejitter`` it fits a line, time = offset + index × period, by least
  squares through recent batches' mean (index, DRDY time) points, so the jitter of
  user-space edge stamps (tens of µs with RPi.GPIO) does not reach the file, while lost
  frames keep their gap; the stamps it returns never go backwards.
- :class:`LslClockMap` turns the acquisition's monotonic nanoseconds into seconds on LSL's
  clock (``pylsl.local_clock``). On Linux liblsl reads ``std::chrono::steady_clock``, which
  libstdc++ implements with CLOCK_MONOTONIC, the clock :class:`~emgd.clock.SystemClock`
  and the gpiod edge stamps use: the measured offset is then below a few µs, and it is
  measured rather than assumed so another platform still lines up.

This module imports no LSL library and owns no thread: the caller passes the clocks in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from emgd.clock import NS_PER_S

#: Batches whose mean point the line is fitted through (~5 s at one batch per 20 ms hop).
FIT_BATCHES = 256
#: The fit needs points spanning at least this long; before, the nominal period is used.
MIN_FIT_SPAN_S = 0.2
#: A frame this far from the line (or an index that goes back) starts a new fit: the chip
#: was re-initialised or the clock jumped.
RESET_AFTER_S = 0.05
#: The fitted period may differ from the nominal one by this fraction at most (the
#: ADS1299's clock is ±0.5 %; beyond is a bad fit, not a crystal).
MAX_PERIOD_ERROR = 0.02
#: Round trips taken when measuring the offset between two clocks.
OFFSET_READINGS = 9


class SampleClock:
    """Conversion times (ns, monotonic) of frames from their index and DRDY stamps.

    Parameters
    ----------
    sample_rate_hz:
        The ADC's nominal rate.
    dejitter:
        Fit a line through the DRDY times (True) or return each frame's own (False).
    """

    def __init__(self, sample_rate_hz: float, *, dejitter: bool = True) -> None:
        if not sample_rate_hz > 0:
            raise ValueError(f"sample clock: rate {sample_rate_hz!r} Hz must be positive")
        self.nominal_period_ns = NS_PER_S / sample_rate_hz
        self.dejitter = dejitter
        # Batch mean points (index, ns, relative to _ref), a ring of FIT_BATCHES.
        self._points = np.zeros((FIT_BATCHES, 2))
        self._n_points = 0
        self._next_point = 0
        self._ref: tuple[int, int] | None = None  # (index, ns) the points are relative to
        self._period_ns = self.nominal_period_ns
        self._offset_ns = 0.0  # line value at the reference index, relative to its ns
        self._last_index: int | None = None
        self._last_stamp_ns: float | None = None
        self.resets = 0

    @property
    def period_ns(self) -> float:
        """The fitted sample period (the nominal one until the fit spans MIN_FIT_SPAN_S)."""
        return self._period_ns

    def stamps_ns(
        self, index: npt.NDArray[np.int64], drdy_ns: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """The conversion time of each frame of one batch, in order.

        Parameters
        ----------
        index:
            (n,) sample indices, increasing (gaps where frames were lost).
        drdy_ns:
            (n,) DRDY edge times of the same frames, monotonic ns.

        Returns
        -------
        (n,) float64 ns, strictly increasing across calls.
        """
        n = int(index.shape[0])
        if n == 0:
            return np.zeros(0)
        stamps = self._fitted(index, drdy_ns) if self.dejitter else drdy_ns.astype(np.float64)
        # Strictly increasing (by >= 1 ns), across batches too: a refit may move the line
        # by a fraction of the jitter, and raw edges may come out of order by as much.
        floor = -np.inf if self._last_stamp_ns is None else self._last_stamp_ns
        step = np.arange(1, n + 1, dtype=np.float64)
        stamps = np.maximum.accumulate(np.maximum(stamps - step, floor)) + step
        self._last_stamp_ns = float(stamps[-1])
        self._last_index = int(index[-1])
        return stamps

    def _fitted(
        self, index: npt.NDArray[np.int64], drdy_ns: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        if self._ref is None or self._needs_reset(index, drdy_ns):
            if self._ref is not None:
                self.resets += 1
            self._ref = (int(index[0]), int(drdy_ns[0]))
            self._n_points = self._next_point = 0
            self._period_ns = self.nominal_period_ns
        i_ref, t_ref = self._ref
        rel_i = (index - i_ref).astype(np.float64)
        rel_t = (drdy_ns - t_ref).astype(np.float64)
        self._points[self._next_point] = (rel_i.mean(), rel_t.mean())
        self._next_point = (self._next_point + 1) % FIT_BATCHES
        self._n_points = min(self._n_points + 1, FIT_BATCHES)
        self._refit()
        return t_ref + self._offset_ns + rel_i * self._period_ns

    def _needs_reset(self, index: npt.NDArray[np.int64], drdy_ns: npt.NDArray[np.int64]) -> bool:
        assert self._ref is not None
        if self._last_index is not None and int(index[0]) <= self._last_index:
            return True
        i_ref, t_ref = self._ref
        predicted = t_ref + self._offset_ns + (index - i_ref) * self._period_ns
        return bool(np.max(np.abs(drdy_ns - predicted)) > RESET_AFTER_S * NS_PER_S)

    def _refit(self) -> None:
        pts = self._points[: self._n_points]
        x, y = pts[:, 0], pts[:, 1]
        span_ns = (x.max() - x.min()) * self.nominal_period_ns
        period = self.nominal_period_ns
        if self._n_points >= 2 and span_ns >= MIN_FIT_SPAN_S * NS_PER_S:
            dx = x - x.mean()
            slope = float(dx @ (y - y.mean()) / (dx @ dx))
            if abs(slope / self.nominal_period_ns - 1.0) <= MAX_PERIOD_ERROR:
                period = slope
        self._period_ns = period
        self._offset_ns = float(np.mean(y - x * period))


class LslClockMap:
    """Monotonic ns (the acquisition's clock) → seconds on LSL's clock.

    Parameters
    ----------
    monotonic_ns:
        The acquisition's clock (``time.monotonic_ns`` on the daemon).
    lsl_clock_s:
        LSL's clock (``pylsl.local_clock``).
    """

    def __init__(self, monotonic_ns: Callable[[], int], lsl_clock_s: Callable[[], float]) -> None:
        self.offset_s, self.uncertainty_s = measure_offset_s(monotonic_ns, lsl_clock_s)

    def to_lsl_s(self, t_ns: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """LSL seconds of monotonic ns values (any shape)."""
        return np.asarray(t_ns, dtype=np.float64) / NS_PER_S + self.offset_s

    def scalar_to_lsl_s(self, t_ns: float) -> float:
        """One monotonic ns value in LSL seconds."""
        return t_ns / NS_PER_S + self.offset_s


def measure_offset_s(
    monotonic_ns: Callable[[], int], other_s: Callable[[], float]
) -> tuple[float, float]:
    """``other − monotonic`` in seconds, from the tightest of a few bracketed readings.

    Returns
    -------
    (offset_s, uncertainty_s): the offset, and half the round trip it was read in.
    """
    best: tuple[float, float] | None = None
    for _ in range(OFFSET_READINGS):
        before = monotonic_ns()
        other = other_s()
        after = monotonic_ns()
        half_s = (after - before) / 2 / NS_PER_S
        offset = other - (before + after) / 2 / NS_PER_S
        if best is None or half_s < best[1]:
            best = (offset, half_s)
    assert best is not None
    return best
