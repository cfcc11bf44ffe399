"""Tests of the loop's latency bookkeeping: recent percentiles and whole-run histograms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.service.latency import RECENT_HOPS, RELATIVE_ERROR, LatencyRecorder, RunHistogram


@settings(max_examples=40, deadline=None)
@given(
    durations=st.lists(st.integers(1_000, 50_000_000), min_size=1, max_size=400),
    q=st.sampled_from([50.0, 90.0, 99.0, 100.0]),
)
def test_a_percentile_is_within_half_a_bin_of_the_exact_one(durations: list[int], q: float) -> None:
    hist = RunHistogram()
    for d in durations:
        hist.add(d)
    exact = float(np.percentile(durations, q, method="inverted_cdf"))
    assert hist.percentile_ns(q) == pytest.approx(exact, rel=RELATIVE_ERROR * 1.001)
    assert hist.max_ns == max(durations)
    assert hist.count == len(durations)


def test_known_durations_read_back_in_milliseconds() -> None:
    hist = RunHistogram()
    for _ in range(99):
        hist.add(2_000_000)  # 2 ms
    hist.add(30_000_000)  # one 30 ms outlier
    summary = hist.summary_ms()
    assert summary["p50"] == pytest.approx(2.0, rel=0.013)
    assert summary["p99"] == pytest.approx(2.0, rel=0.013)
    assert summary["max"] == 30.0
    assert summary["mean"] == pytest.approx(2.28)
    assert summary["count"] == 100


def test_a_percentile_never_reads_above_the_maximum() -> None:
    hist = RunHistogram()
    hist.add(1_234_567)
    assert hist.percentile_ns(50.0) <= 1_234_567


def test_durations_outside_the_range_land_in_the_end_bins() -> None:
    hist = RunHistogram()
    hist.add(-5)
    hist.add(10**15)
    assert hist.counts[0] == 1 and hist.counts[-1] == 1
    assert hist.max_ns == 10**15


def test_an_empty_histogram_has_no_percentile() -> None:
    with pytest.raises(ValueError, match="no durations recorded"):
        RunHistogram().percentile_ns(50.0)


def test_the_recorder_keeps_recent_hops_and_the_whole_run() -> None:
    rec = LatencyRecorder()
    for _ in range(RECENT_HOPS):
        rec.add("infer", 9_000_000)  # an early slow stretch
    for _ in range(RECENT_HOPS):
        rec.add("infer", 1_000_000)
    assert rec.summary()["infer"] == {"p50": 1.0, "p99": 1.0, "max": 1.0}
    run = rec.run_summary()["infer"]
    assert run["max"] == 9.0 and run["count"] == 2 * RECENT_HOPS
    assert "filter" not in rec.summary() and "filter" not in rec.run_summary()
    assert rec.count("infer") == 2 * RECENT_HOPS and rec.count("filter") == 0
