"""CPU time and memory of a whole process tree, read from ``/proc``.

The daemon is several processes (the control loop, the acquisition process, on the
simulated board the wearer's renderer, multiprocessing helpers), so "its" CPU and memory
are sums over the tree under one pid. This module owns reading them: per process the CPU
ticks (``stat`` fields utime + stime), the resident set (``status`` VmRSS), its peak
(VmHWM) and the proportional set (``smaps_rollup`` Pss: shared pages split between the
processes that map them, so a sum over the tree counts a shared library once). It reads
files under an injected ``/proc`` root and takes timestamps from an injected clock, so it is
tested on a fake tree; it never signals or waits for a process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC_ROOT = Path("/proc")
KIB_PER_MIB = 1024.0
#: Fields of /proc/<pid>/stat after the command name: state is field 3, utime 14, stime 15.
STAT_UTIME_AFTER_COMM = 11
STAT_STIME_AFTER_COMM = 12
STAT_PPID_AFTER_COMM = 1
CMDLINE_CHARS = 200


@dataclass(frozen=True)
class ProcReading:
    """One process at one moment."""

    pid: int
    ppid: int
    name: str
    cpu_ticks: int
    rss_kib: int
    hwm_kib: int
    pss_kib: int | None
    cmdline: str = ""


def _parse_stat(text: str) -> tuple[str, int, int]:
    """``(comm, ppid, utime + stime)`` from a ``/proc/<pid>/stat`` line."""
    open_paren, close_paren = text.index("("), text.rindex(")")
    name = text[open_paren + 1 : close_paren]
    fields = text[close_paren + 2 :].split()
    ticks = int(fields[STAT_UTIME_AFTER_COMM]) + int(fields[STAT_STIME_AFTER_COMM])
    return name, int(fields[STAT_PPID_AFTER_COMM]), ticks


def _kib_field(text: str, key: str) -> int:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def read_process(pid: int, proc_root: Path = PROC_ROOT) -> ProcReading | None:
    """One process's figures, or None when it is gone (or unreadable)."""
    folder = proc_root / str(pid)
    try:
        name, ppid, ticks = _parse_stat((folder / "stat").read_text())
        status = (folder / "status").read_text()
    except (OSError, ValueError, IndexError):
        return None
    try:
        pss: int | None = _kib_field((folder / "smaps_rollup").read_text(), "Pss")
    except OSError:
        pss = None
    try:
        cmdline = (folder / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmdline = ""
    return ProcReading(
        pid=pid,
        ppid=ppid,
        name=name,
        cpu_ticks=ticks,
        rss_kib=_kib_field(status, "VmRSS"),
        hwm_kib=_kib_field(status, "VmHWM"),
        pss_kib=pss,
        cmdline=cmdline.strip()[:CMDLINE_CHARS],
    )


def process_tree(root_pid: int, proc_root: Path = PROC_ROOT) -> list[ProcReading]:
    """``root_pid`` and all its descendants that can be read now (root first)."""
    readings: dict[int, ProcReading] = {}
    for entry in proc_root.iterdir():
        if entry.name.isdigit():
            reading = read_process(int(entry.name), proc_root)
            if reading is not None:
                readings[reading.pid] = reading
    if root_pid not in readings:
        return []
    tree, frontier = [readings[root_pid]], [root_pid]
    while frontier:
        parent = frontier.pop()
        for reading in readings.values():
            if reading.ppid == parent and reading.pid != root_pid:
                tree.append(reading)
                frontier.append(reading.pid)
    return tree


@dataclass
class _Track:
    name: str
    group: str
    first_ticks: int
    last_ticks: int
    hwm_kib: int = 0
    pss_kib: int | None = None


def _one_group(reading: ProcReading) -> str:
    return "all"


class TreeMonitor:
    """Samples a process tree; sums CPU since :meth:`start` and the peaks of memory.

    Parameters
    ----------
    root_pid:
        The daemon's pid.
    clock_ns:
        Monotonic nanoseconds (wall time for CPU percentages).
    group_of:
        Puts each process in a named group (e.g. the daemon proper versus the simulator);
        CPU and the peaks of memory are also summed per group.
    proc_root, ticks_per_s:
        Where ``/proc`` is and its clock tick (``SC_CLK_TCK``).
    """

    def __init__(
        self,
        root_pid: int,
        clock_ns: Callable[[], int],
        *,
        group_of: Callable[[ProcReading], str] = _one_group,
        proc_root: Path = PROC_ROOT,
        ticks_per_s: int | None = None,
    ) -> None:
        self.root_pid = root_pid
        self._clock_ns = clock_ns
        self._proc_root = proc_root
        self._group_of = group_of
        self._peak_rss_kib: dict[str, int] = {}
        self._peak_pss_kib: dict[str, int] = {}
        self._ticks_per_s = ticks_per_s or os.sysconf("SC_CLK_TCK")
        self._tracks: dict[int, _Track] = {}
        self._start_ns: int | None = None
        self._last_ns: int | None = None
        self.peak_rss_sum_kib = 0
        self.peak_pss_sum_kib = 0
        self.samples = 0
        self._taking_baseline = False

    def start(self) -> None:
        """Begin the CPU window now (e.g. at READY): earlier ticks are not counted."""
        self._tracks.clear()
        self._start_ns = self._clock_ns()
        self._taking_baseline = True
        try:
            self.sample()
        finally:
            self._taking_baseline = False

    def sample(self) -> list[ProcReading]:
        """Read the tree once; return what was read."""
        tree = process_tree(self.root_pid, self._proc_root)
        now_ns = self._clock_ns()
        self._last_ns = now_ns
        self.samples += 1
        rss_now: dict[str, int] = {}
        pss_now: dict[str, int] = {}
        for r in tree:
            track = self._tracks.get(r.pid)
            if track is None:
                # A process first seen after start() was born since: it counts from zero.
                first_ticks = r.cpu_ticks if self._taking_baseline else 0
                track = _Track(r.name, self._group_of(r), first_ticks, r.cpu_ticks)
                self._tracks[r.pid] = track
            rss_now[track.group] = rss_now.get(track.group, 0) + r.rss_kib
            pss_now[track.group] = pss_now.get(track.group, 0) + (r.pss_kib or 0)
            track.name, track.last_ticks = r.name, r.cpu_ticks
            track.hwm_kib = max(track.hwm_kib, r.hwm_kib)
            if r.pss_kib is not None:
                track.pss_kib = max(track.pss_kib or 0, r.pss_kib)
        for group, rss_kib in rss_now.items():
            self._peak_rss_kib[group] = max(self._peak_rss_kib.get(group, 0), rss_kib)
            self._peak_pss_kib[group] = max(self._peak_pss_kib.get(group, 0), pss_now[group])
        self.peak_rss_sum_kib = max(self.peak_rss_sum_kib, sum(rss_now.values()))
        self.peak_pss_sum_kib = max(self.peak_pss_sum_kib, sum(pss_now.values()))
        return tree

    def summary(self) -> dict[str, Any]:
        """CPU % (of one core) and memory in MiB, totals and per process.

        Raises
        ------
        ValueError
            Before :meth:`start`, or when no time has passed since it.
        """
        if self._start_ns is None or self._last_ns is None or self._last_ns <= self._start_ns:
            raise ValueError("TreeMonitor.summary: start() and a later sample() come first")
        wall_s = (self._last_ns - self._start_ns) / 1e9

        def cpu_percent(ticks: int) -> float:
            return 100.0 * ticks / self._ticks_per_s / wall_s

        processes = [
            {
                "pid": pid,
                "name": t.name,
                "group": t.group,
                "cpu_percent": cpu_percent(t.last_ticks - t.first_ticks),
                "peak_rss_mib": t.hwm_kib / KIB_PER_MIB,
                "peak_pss_mib": None if t.pss_kib is None else t.pss_kib / KIB_PER_MIB,
            }
            for pid, t in self._tracks.items()
        ]
        return {
            "wall_s": wall_s,
            "cpu_percent": sum(p["cpu_percent"] for p in processes),
            "peak_rss_sum_mib": self.peak_rss_sum_kib / KIB_PER_MIB,
            "peak_pss_sum_mib": self.peak_pss_sum_kib / KIB_PER_MIB,
            "hwm_sum_mib": sum(t.hwm_kib for t in self._tracks.values()) / KIB_PER_MIB,
            "groups": {
                group: {
                    "cpu_percent": sum(p["cpu_percent"] for p in processes if p["group"] == group),
                    "peak_rss_sum_mib": self._peak_rss_kib[group] / KIB_PER_MIB,
                    "peak_pss_sum_mib": self._peak_pss_kib[group] / KIB_PER_MIB,
                }
                for group in sorted(self._peak_rss_kib)
            },
            "processes": processes,
        }
