"""Latency bookkeeping of the control loop: recent percentiles and whole-run histograms.

This module owns how the daemon remembers how long each stage of a hop took. Two views per
stage: the last ``RECENT_HOPS`` durations exactly (what ``emgd status`` shows: the present),
and a log-binned histogram of every duration since start (what ``emgd bench`` reads: a
10-minute run's p99 and max, in constant memory). The histogram has ``BINS_PER_DECADE``
bins per factor of ten from ``MIN_DURATION_NS`` up, so a percentile read from it is within
``±RELATIVE_ERROR`` of the true value; the maximum is exact. Values in, numbers out: no
clock and no threads (the loop thread adds, readers take a summary dict).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

#: The stages of one hop, in order, plus the whole loop and the hop's compute time.
STAGES = (
    "acquire",
    "filter",
    "window",
    "infer",
    "safety",
    "i2c_write",
    "end_to_end",
    "compute",
)
RECENT_HOPS = 2000
MIN_DURATION_NS = 100  # everything shorter lands in the first bin
BINS_PER_DECADE = 100
DECADES = 9  # 100 ns .. 100 s
N_BINS = BINS_PER_DECADE * DECADES + 1  # the last bin takes everything longer
RELATIVE_ERROR = 10 ** (0.5 / BINS_PER_DECADE) - 1  # half a bin: ±1.2 %


class RunHistogram:
    """Every duration since start, log-binned; exact count, sum and maximum."""

    def __init__(self) -> None:
        self.counts: npt.NDArray[np.int64] = np.zeros(N_BINS, dtype=np.int64)
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0

    @staticmethod
    def bin_of(duration_ns: int) -> int:
        if duration_ns <= MIN_DURATION_NS:
            return 0
        index = int(BINS_PER_DECADE * math.log10(duration_ns / MIN_DURATION_NS))
        return min(index, N_BINS - 1)

    @staticmethod
    def bin_centre_ns(index: int) -> float:
        """Geometric centre of bin ``index`` (the value a percentile in it reads as)."""
        return float(MIN_DURATION_NS * 10 ** ((index + 0.5) / BINS_PER_DECADE))

    def add(self, duration_ns: int) -> None:
        duration_ns = max(0, int(duration_ns))
        self.counts[self.bin_of(duration_ns)] += 1
        self.count += 1
        self.total_ns += duration_ns
        self.max_ns = max(self.max_ns, duration_ns)

    def percentiles_ns(self, qs: tuple[float, ...]) -> list[float]:
        """The ``q``-th percentiles (0-100), each within ``RELATIVE_ERROR``, never above the max.

        Raises
        ------
        ValueError
            When nothing was added.
        """
        if not self.count:
            raise ValueError("RunHistogram.percentile_ns: no durations recorded")
        cumulative = np.cumsum(self.counts)
        ranks = [max(1, math.ceil(q / 100.0 * self.count)) for q in qs]
        indices = np.searchsorted(cumulative, ranks)
        return [min(self.bin_centre_ns(int(i)), float(self.max_ns)) for i in indices]

    def percentile_ns(self, q: float) -> float:
        """The ``q``-th percentile (0-100); see :meth:`percentiles_ns`."""
        return self.percentiles_ns((q,))[0]

    def summary_ms(self) -> dict[str, float]:
        p50_ns, p99_ns = self.percentiles_ns((50.0, 99.0))
        return {
            "p50": p50_ns / 1e6,
            "p99": p99_ns / 1e6,
            "max": self.max_ns / 1e6,
            "mean": self.total_ns / self.count / 1e6,
            "count": float(self.count),
        }


class LatencyRecorder:
    """Per stage: the last ``RECENT_HOPS`` durations (exact) and a whole-run histogram.

    Recent durations live in one preallocated array per stage (a ring), so adding is a
    store and a summary is one ``np.percentile`` call per stage: the loop publishes status
    every few hops and must not spend milliseconds on its own bookkeeping.
    """

    def __init__(self) -> None:
        self._recent = {s: np.zeros(RECENT_HOPS) for s in STAGES}
        self._added = dict.fromkeys(STAGES, 0)
        self._run: dict[str, RunHistogram] = {s: RunHistogram() for s in STAGES}

    def add(self, stage: str, duration_ns: int) -> None:
        n = self._added[stage]
        self._recent[stage][n % RECENT_HOPS] = duration_ns / 1e6
        self._added[stage] = n + 1
        self._run[stage].add(duration_ns)

    def count(self, stage: str) -> int:
        """How many durations of ``stage`` were added since start."""
        return self._added[stage]

    def summary(self) -> dict[str, dict[str, float]]:
        """Recent hops: ``{stage: {"p50", "p99", "max"}}`` in ms (stages seen so far)."""
        out: dict[str, dict[str, float]] = {}
        for stage, ring in self._recent.items():
            n = min(self._added[stage], RECENT_HOPS)
            if n:
                # Nearest-rank percentiles by partial sort: a tenth of np.percentile's cost.
                k50, k99 = math.ceil(0.50 * n) - 1, math.ceil(0.99 * n) - 1
                part = np.partition(ring[:n], (k50, k99, n - 1))
                out[stage] = {
                    "p50": float(part[k50]),
                    "p99": float(part[k99]),
                    "max": float(part[-1]),
                }
        return out

    def run_summary(self) -> dict[str, dict[str, float]]:
        """Since start: ``{stage: {"p50", "p99", "max", "mean", "count"}}`` in ms."""
        return {s: h.summary_ms() for s, h in self._run.items() if h.count}
