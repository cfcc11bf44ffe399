"""Tests of the machine-floor measurement."""

from __future__ import annotations

import pytest

from emgd.bench.floor import lateness_summary, measure_floor


def test_lateness_counts_wakes_later_than_a_period() -> None:
    deadlines = [1_000, 2_000, 3_000, 4_000]
    woke = [1_010, 2_000, 4_500, 4_900]  # 10 ns, 0, 1500 (a lost frame), 900
    summary = lateness_summary(deadlines, woke, period_ns=1_000)
    assert summary["wakeups"] == 4
    assert summary["later_than_a_period"] == 1
    assert summary["late_max_us"] == pytest.approx(1.5)
    assert summary["late_p50_us"] == pytest.approx(0.455)


def test_no_wakeups_is_an_error() -> None:
    with pytest.raises(ValueError, match="no wake-ups"):
        lateness_summary([], [], 1_000)


def test_a_short_real_floor_run_reports_its_figures() -> None:
    floor = measure_floor(1000.0, duration_s=0.3, priority=0)
    assert floor["sample_rate_hz"] == 1000.0
    # At most one wake-up per 1 ms boundary; a loaded machine skips the ones it missed.
    assert 0 < floor["wakeups"] <= 300
    assert 0 <= floor["late_p50_us"] <= floor["late_p99_us"] <= floor["late_max_us"]
