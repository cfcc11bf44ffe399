"""Tests of process-tree CPU and memory figures, on a fake /proc and a fake clock."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from emgd.bench.procstat import TreeMonitor, process_tree, read_process

TICKS_PER_S = 100


def write_proc(
    root: Path,
    pid: int,
    ppid: int,
    name: str,
    *,
    ticks: tuple[int, int] = (0, 0),
    rss_kib: int = 0,
    hwm_kib: int = 0,
    pss_kib: int | None = None,
) -> None:
    folder = root / str(pid)
    folder.mkdir(parents=True, exist_ok=True)
    utime, stime = ticks
    # Fields after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
    # cmajflt utime stime ...; a comm with spaces and parentheses must not confuse the parser.
    rest = f"S {ppid} 1 1 0 -1 4194560 10 0 0 0 {utime} {stime} 0 0 20 0 3 0 100 0 0"
    (folder / "stat").write_text(f"{pid} ({name}) {rest}\n")
    (folder / "status").write_text(
        f"Name:\t{name}\nVmHWM:\t{hwm_kib} kB\nVmRSS:\t{rss_kib} kB\nThreads:\t3\n"
    )
    if pss_kib is not None:
        (folder / "smaps_rollup").write_text(f"Rss:\t{rss_kib} kB\nPss:\t{pss_kib} kB\n")


class StepClock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


def test_a_process_reads_back_with_a_tricky_name(tmp_path: Path) -> None:
    write_proc(tmp_path, 42, 1, "py (x) y", ticks=(7, 5), rss_kib=2048, hwm_kib=4096, pss_kib=900)
    r = read_process(42, tmp_path)
    assert r is not None
    assert (r.name, r.ppid, r.cpu_ticks) == ("py (x) y", 1, 12)
    assert (r.rss_kib, r.hwm_kib, r.pss_kib) == (2048, 4096, 900)


def test_a_vanished_process_reads_as_none(tmp_path: Path) -> None:
    assert read_process(99, tmp_path) is None


def test_the_tree_holds_the_root_and_all_descendants_only(tmp_path: Path) -> None:
    write_proc(tmp_path, 10, 1, "emgd")
    write_proc(tmp_path, 11, 10, "emgd-acquire")
    write_proc(tmp_path, 12, 11, "grandchild")
    write_proc(tmp_path, 20, 1, "stranger")
    (tmp_path / "self").mkdir()
    tree = process_tree(10, tmp_path)
    assert tree[0].pid == 10
    assert sorted(r.pid for r in tree) == [10, 11, 12]
    assert process_tree(77, tmp_path) == []


def test_cpu_percent_counts_ticks_since_start_over_wall_time(tmp_path: Path) -> None:
    clock = StepClock()
    write_proc(tmp_path, 10, 1, "emgd", ticks=(500, 100), rss_kib=80 * 1024, hwm_kib=90 * 1024)
    write_proc(tmp_path, 11, 10, "emgd-acquire", ticks=(50, 0), rss_kib=40 * 1024)
    monitor = TreeMonitor(10, clock, proc_root=tmp_path, ticks_per_s=TICKS_PER_S)
    monitor.start()  # start-up ticks (600 and 50) are not counted
    clock.now_ns = 10 * 10**9
    # In 10 s: the loop used 2 s of CPU (20 %), acquisition 9 s (90 %).
    write_proc(tmp_path, 10, 1, "emgd", ticks=(650, 150), rss_kib=70 * 1024, hwm_kib=95 * 1024)
    write_proc(tmp_path, 11, 10, "emgd-acquire", ticks=(950, 0), rss_kib=45 * 1024)
    # A child born during the window counts from zero: 1 s of CPU (10 %).
    write_proc(tmp_path, 12, 10, "emgd-wearer", ticks=(100, 0), rss_kib=30 * 1024, pss_kib=1)
    monitor.sample()
    summary = monitor.summary()
    by_name = {p["name"]: p for p in summary["processes"]}
    assert by_name["emgd"]["cpu_percent"] == pytest.approx(20.0)
    assert by_name["emgd-acquire"]["cpu_percent"] == pytest.approx(90.0)
    assert by_name["emgd-wearer"]["cpu_percent"] == pytest.approx(10.0)
    assert summary["cpu_percent"] == pytest.approx(120.0)
    assert summary["wall_s"] == pytest.approx(10.0)
    # Peak of the sum at one moment: 120 MiB at start, 145 MiB at the second sample.
    assert summary["peak_rss_sum_mib"] == pytest.approx(145.0)
    assert by_name["emgd"]["peak_rss_mib"] == pytest.approx(95.0)


def test_a_process_that_exits_keeps_its_last_figures(tmp_path: Path) -> None:
    clock = StepClock()
    write_proc(tmp_path, 10, 1, "emgd", ticks=(0, 0))
    write_proc(tmp_path, 11, 10, "child", ticks=(0, 0), hwm_kib=2048)
    monitor = TreeMonitor(10, clock, proc_root=tmp_path, ticks_per_s=TICKS_PER_S)
    monitor.start()
    clock.now_ns = 2 * 10**9
    write_proc(tmp_path, 11, 10, "child", ticks=(100, 0), hwm_kib=2048)
    monitor.sample()
    shutil.rmtree(tmp_path / "11")
    clock.now_ns = 4 * 10**9
    monitor.sample()
    child = next(p for p in monitor.summary()["processes"] if p["name"] == "child")
    assert child["cpu_percent"] == pytest.approx(25.0)  # 1 s of CPU in 4 s
    assert child["peak_rss_mib"] == pytest.approx(2.0)


def test_a_summary_needs_a_window(tmp_path: Path) -> None:
    write_proc(tmp_path, 10, 1, "emgd")
    monitor = TreeMonitor(10, StepClock(), proc_root=tmp_path, ticks_per_s=TICKS_PER_S)
    with pytest.raises(ValueError, match="start\\(\\) and a later sample\\(\\)"):
        monitor.summary()


def test_this_process_reads_from_the_real_proc() -> None:
    r = read_process(os.getpid())
    assert r is not None and r.rss_kib > 1000 and r.hwm_kib >= r.rss_kib


def test_groups_sum_cpu_and_memory_apart(tmp_path: Path) -> None:
    clock = StepClock()
    write_proc(tmp_path, 10, 1, "emgd", ticks=(0, 0), rss_kib=100 * 1024, pss_kib=60 * 1024)
    write_proc(tmp_path, 11, 10, "emgd-wearer", ticks=(0, 0), rss_kib=50 * 1024, pss_kib=30 * 1024)
    monitor = TreeMonitor(
        10,
        clock,
        group_of=lambda r: "simulator" if r.name == "emgd-wearer" else "daemon",
        proc_root=tmp_path,
        ticks_per_s=TICKS_PER_S,
    )
    monitor.start()
    clock.now_ns = 10**9
    write_proc(tmp_path, 10, 1, "emgd", ticks=(30, 0), rss_kib=90 * 1024, pss_kib=55 * 1024)
    write_proc(tmp_path, 11, 10, "emgd-wearer", ticks=(5, 0), rss_kib=70 * 1024, pss_kib=40 * 1024)
    monitor.sample()
    groups = monitor.summary()["groups"]
    assert groups["daemon"] == {
        "cpu_percent": pytest.approx(30.0),
        "peak_rss_sum_mib": 100.0,
        "peak_pss_sum_mib": 60.0,
    }
    assert groups["simulator"]["cpu_percent"] == pytest.approx(5.0)
    assert groups["simulator"]["peak_rss_sum_mib"] == 70.0
    assert monitor.summary()["peak_rss_sum_mib"] == 160.0  # 90 + 70 at the second sample
