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
from collections import deque

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

    def percentile_ns(self, q: float) -> float:
        """The ``q``-th percentile (0-100), within ``RELATIVE_ERROR``, never above the max.

        Raises
        ------
        ValueError
            When nothing was added.
        """
        if not self.count:
            raise ValueError("RunHistogram.percentile_ns: no durations recorded")
        rank = max(1, math.ceil(q / 100.0 * self.count))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        return min(self.bin_centre_ns(index), float(self.max_ns))

    def summary_ms(self) -> dict[str, float]:
        return {
            "p50": self.percentile_ns(50.0) / 1e6,
            "p99": self.percentile_ns(99.0) / 1e6,
            "max": self.max_ns / 1e6,
            "mean": self.total_ns / self.count / 1e6,
            "count": float(self.count),
        }


class LatencyRecorder:
    """Per stage: the last ``RECENT_HOPS`` durations (exact) and a whole-run histogram."""

    def __init__(self) -> None:
        self._recent: dict[str, deque[float]] = {s: deque(maxlen=RECENT_HOPS) for s in STAGES}
        self._run: dict[str, RunHistogram] = {s: RunHistogram() for s in STAGES}

    def add(self, stage: str, duration_ns: int) -> None:
        self._recent[stage].append(duration_ns / 1e6)
        self._run[stage].add(duration_ns)

    def summary(self) -> dict[str, dict[str, float]]:
        """Recent hops: ``{stage: {"p50", "p99", "max"}}`` in ms (stages seen so far)."""
        out: dict[str, dict[str, float]] = {}
        for stage, values in self._recent.items():
            if values:
                arr = np.fromiter(values, dtype=np.float64)
                out[stage] = {
                    "p50": float(np.percentile(arr, 50)),
                    "p99": float(np.percentile(arr, 99)),
                    "max": float(arr.max()),
                }
        return out

    def run_summary(self) -> dict[str, dict[str, float]]:
        """Since start: ``{stage: {"p50", "p99", "max", "mean", "count"}}`` in ms."""
        return {s: h.summary_ms() for s, h in self._run.items() if h.count}
