"""Tests of the bench's plan and arithmetic, with scripted daemon runs (nothing started)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from emgd.bench.daemon_run import DaemonRunResult
from emgd.bench.suite import BenchPlan, run_bench, search_sustained_rate, summarise_run


def status(
    *, lost: int = 0, overrun: int = 0, rate_hz: float = 1000.0, compute_p99_ms: float = 0.6
) -> dict[str, Any]:
    stage = {"p50": 1.0, "p99": 2.0, "max": 3.0, "mean": 1.1, "count": 3000.0}
    return {
        "state": "running",
        "faults": [],
        "hop_ms": 20.0,
        "acquisition": {
            "sample_rate_hz": rate_hz,
            "achieved_rate_hz": rate_hz,
            "frames": 60_000,
            "lost": lost,
            "stale": 0,
            "railed": 0,
            "invalid": 0,
            "timeouts": 0,
            "overrun": overrun,
            "windows_late": 2,
        },
        "latency_run_ms": {
            "infer": stage,
            "end_to_end": {**stage, "p99": 4.5},
            "compute": {"p50": 0.3, "p99": compute_p99_ms, "max": 1.0, "mean": 0.35, "count": 3e3},
        },
        "hardware": {"adc": "sim"},
        "model": {"identity": "m@1"},
    }


PROCESSES = {
    "wall_s": 60.0,
    "cpu_percent": 55.0,
    "peak_rss_sum_mib": 300.0,
    "peak_pss_sum_mib": 200.0,
    "hwm_sum_mib": 310.0,
    "groups": {
        "daemon": {"cpu_percent": 50.0, "peak_rss_sum_mib": 250.0, "peak_pss_sum_mib": 140.0},
        "simulator": {"cpu_percent": 5.0, "peak_rss_sum_mib": 50.0, "peak_pss_sum_mib": 60.0},
    },
    "processes": [],
}


def result(
    snapshot: dict[str, Any], overrides: Sequence[str] = (), measured_s: float = 60.0
) -> DaemonRunResult:
    return DaemonRunResult(
        overrides=tuple(overrides),
        ready_s=1.5,
        measured_s=measured_s,
        status=snapshot,
        processes=PROCESSES,
        exit_code=0,
        log_tail=(),
    )


def test_a_run_summary_takes_lost_latency_and_compute_fraction() -> None:
    summary = summarise_run(result(status(lost=3, overrun=2, compute_p99_ms=0.8)))
    assert summary["samples"]["lost"] == 5  # at the chip plus overrun in the ring
    assert summary["samples"]["lost_at_chip"] == 3
    assert summary["samples"]["windows_late"] == 2
    assert "compute" not in summary["latency_ms"]
    assert summary["compute_fraction_of_hop"] == {
        "p50": pytest.approx(0.015),
        "p99": pytest.approx(0.04),
        "max": pytest.approx(0.05),
    }
    assert summary["cpu_percent"] == {"total": 55.0, "daemon": 50.0, "simulator": 5.0}
    assert summary["memory_mib"]["daemon_peak_pss_sum"] == 140.0
    assert summary["memory_mib"]["simulator_peak_rss_sum"] == 50.0


def test_the_search_climbs_while_runs_keep_up() -> None:
    tried: list[int] = []
    # 60 000 frames per run; 7 lost keeps up (jitter), 5 % lost does not (a backlog).
    lost_at = {1000: 0, 2000: 7, 4000: 0, 8000: 3000, 16000: 0}

    def run_at(rate_hz: int) -> DaemonRunResult:
        tried.append(rate_hz)
        return result(status(lost=lost_at[rate_hz], rate_hz=rate_hz))

    found = search_sustained_rate((1000, 2000, 4000, 8000, 16000), 60.0, run_at)
    assert tried == [1000, 2000, 4000, 8000]
    assert found["highest_sustained_hz"] == 4000  # the highest that lost nothing
    assert found["highest_keeping_up_hz"] == 4000
    assert [r["keeps_up"] for r in found["runs"]] == [True, True, True, False]


def test_a_ring_overrun_or_a_slow_rate_is_falling_behind() -> None:
    found = search_sustained_rate((1000, 2000), 5.0, lambda rate: result(status(overrun=1)))
    assert found["highest_sustained_hz"] is None and found["highest_keeping_up_hz"] is None
    assert len(found["runs"]) == 1
    slow = status(rate_hz=1000.0)
    slow["acquisition"]["achieved_rate_hz"] = 950.0
    found = search_sustained_rate((1000,), 5.0, lambda rate: result(slow))
    assert found["runs"][0]["keeps_up"] is False


def test_run_bench_runs_the_plan_and_returns_plain_json() -> None:
    calls: list[tuple[tuple[str, ...], float]] = []

    def run(overrides: Sequence[str], duration_s: float) -> DaemonRunResult:
        calls.append((tuple(overrides), duration_s))
        rate = int(overrides[0].split("=")[1])
        lost = 5000 if rate == 4000 else 0  # 4000 falls behind
        return result(status(lost=lost, rate_hz=rate), overrides, duration_s)

    plan = BenchPlan(duration_s=600.0, sample_rate_hz=2000, search_s=60.0, model_path="/m.onnx")
    lines: list[str] = []
    out = run_bench(
        plan,
        run=run,
        inference=lambda: {"speedup_p50": 7.0},
        filters=lambda: {"ratio_p50": 12.0},
        machine=lambda: {"cpu_model": "test", "load_average_1m": 0.5},
        progress=lines.append,
    )
    assert calls[0] == (
        ("adc.sample_rate_hz=2000", "adc.channels=8", "model.path=/m.onnx"),
        600.0,
    )
    assert [c[1] for c in calls[1:]] == [60.0, 60.0, 60.0]  # 1000, 2000, then 4000 loses
    assert json.loads(json.dumps(out)) == out
    assert set(out) == {
        "plan",
        "machine",
        "inference",
        "filter",
        "run",
        "rate_search",
        "load_average_1m_after",
        "targets",
    }
    assert out["rate_search"]["highest_sustained_hz"] == 2000
    verdicts = {t["name"]: t["met"] for t in out["targets"]}
    assert verdicts["lost samples"] is True  # 2000 SPS x 8 ch for 600 s, none lost
    assert verdicts["highest sustained rate"] is False  # 2000 < 4000
    assert verdicts["end-to-end latency p99"] is None  # a 1 kSPS target, this ran 2 kSPS
    assert verdicts["onnxruntime vs PyTorch eager"] is True
    assert verdicts["start-up to READY"] is True
    assert any("rate search: 4000 SPS" in line for line in lines)


def test_run_bench_without_search_or_micro_benchmarks() -> None:
    out = run_bench(
        BenchPlan(duration_s=5.0, search_s=0.0),
        run=lambda overrides, duration_s: result(status()),
    )
    assert "rate_search" not in out and "inference" not in out
    verdicts = {t["name"]: t["met"] for t in out["targets"]}
    assert verdicts["highest sustained rate"] is None
    assert verdicts["end-to-end latency p99"] is True  # 4.5 ms at 1 kSPS
    assert verdicts["compute per hop p99"] is True  # 0.6 / 20 = 3 %
    assert verdicts["lost samples"] is None  # 5 s at 1 kSPS is not the lossless target's run


def test_a_flood_run_is_compared_with_the_quiet_run() -> None:
    flooded = status(lost=3)
    flooded["latency_run_ms"]["end_to_end"]["p99"] = 5.0
    flooded["socket"] = {"cpu_s": 0.9, "cpu_peak_ms_per_s": 48.0, "rate_limited": 70}
    runs: list[str] = []

    def quiet_run(overrides: Sequence[str], duration_s: float) -> DaemonRunResult:
        runs.append("quiet")
        return result(status())

    def flood_run(overrides: Sequence[str], duration_s: float) -> DaemonRunResult:
        runs.append("flood")
        run = result(flooded, overrides)
        return DaemonRunResult(**{**run.__dict__, "load": {"requests_sent": 12_000}})

    out = run_bench(BenchPlan(duration_s=5.0, search_s=0.0), run=quiet_run, flood_run=flood_run)
    assert runs == ["quiet", "flood"]
    flood = out["flood"]
    assert flood["without"]["lost"] == 0 and flood["with"]["lost"] == 3
    assert flood["extra_lost"] == 3
    assert flood["end_to_end_p99_change_ms"] == pytest.approx(0.5)
    assert flood["with"]["status_server_cpu_peak_ms_per_s"] == 48.0
    assert flood["flooder"] == {"requests_sent": 12_000}
    assert flood["socket"]["rate_limited"] == 70
    json.dumps(out)
