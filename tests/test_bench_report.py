"""Tests of the bench report: machine description, targets, table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emgd.bench.report import cpu_model, judge_targets, machine_info, render_table


def test_cpu_model_on_x86_and_on_a_pi(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
    )
    assert cpu_model(tmp_path) == "AMD EPYC 7B13"
    (tmp_path / "cpuinfo").write_text(
        "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\n"
        "Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
    )
    assert cpu_model(tmp_path) == "Raspberry Pi 4 Model B Rev 1.4"


def test_machine_info_names_versions_and_cpus() -> None:
    info = machine_info()
    assert info["onnxruntime"] and info["python"].count(".") == 2
    assert 1 <= len(info["cpus_used"]) <= (info["cpus_online"] or 1)


def bench_result(**run: Any) -> dict[str, Any]:
    return {
        "plan": {"sample_rate_hz": 1000, "channels": 8},
        "run": {
            "measured_s": 60.0,
            "ready_s": 2.5,
            "samples": {"lost": 0, "frames": 60000},
            "latency_ms": {"end_to_end": {"p50": 3.0, "p99": 5.2, "max": 9.0}},
            "compute_fraction_of_hop": {"p50": 0.02, "p99": 0.049, "max": 0.1},
            "memory_mib": {"daemon_peak_pss_sum": 140.0},
            **run,
        },
        "inference": {"speedup_p50": 4.9, "torch_skipped": None},
        "filter": {"ratio_p50": 10.0},
    }


def test_each_target_is_judged_at_its_own_settings() -> None:
    targets = {t["name"]: t for t in judge_targets(bench_result())}
    assert targets["end-to-end latency p99"]["met"] is False  # 5.2 > 5
    assert targets["compute per hop p99"]["met"] is True  # 4.9 % <= 5 %
    assert targets["onnxruntime vs PyTorch eager"]["met"] is False  # 4.9x < 5x
    assert targets["streaming filter vs filtfilt"]["met"] is True  # exactly 10x
    assert targets["start-up to READY"]["met"] is False
    # 140 MiB = 146.8 MB <= 150 MB
    assert targets["peak memory of the daemon"]["measured"] == pytest.approx(146.8, abs=0.05)
    assert targets["peak memory of the daemon"]["met"] is True
    assert targets["lost samples"]["met"] is None  # not 2 kSPS for 10 min
    assert targets["highest sustained rate"]["met"] is None  # no search ran


def test_the_table_shows_figures_and_verdicts() -> None:
    result = bench_result()
    result["machine"] = {"cpu_model": "Test CPU", "cpus_used": [0], "cpus_online": 2}
    result["targets"] = judge_targets(result)
    table = render_table(result)
    assert "Test CPU, 1 of 2 CPUs" in table
    assert "end_to_end" in table and "5.20" in table
    assert "end-to-end latency p99" in table and "MISSED" in table
    assert "not measured" in table
