"""The machine's real-time floor: how late a bare SCHED_FIFO loop wakes up here.

A frame of a FIFO-less ADC is lost when its reader wakes more than one sampling period
late. Whether that happens depends on the reader and on the machine: on a shared virtual
machine the hypervisor can stop a virtual CPU for milliseconds, whatever the guest's
priorities. This module owns measuring that floor, so a bench report can say which losses
are the machine's: a child process at the acquisition's SCHED_FIFO priority does nothing
but wake at every period boundary (sleeping, then spinning the last stretch, as the
simulated DRDY does) and counts how often it woke more than a period late. It runs no
driver and no daemon; the lateness arithmetic takes the timestamps as data so it is tested
without a real clock.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_DURATION_S = 10.0
DEFAULT_PRIORITY = 50
SPIN_NS = 300_000
SPIN_MAX_PERIOD_FRACTION = 0.6
NS_PER_S = 1_000_000_000
RESULT_TIMEOUT_S = 30.0


def lateness_summary(
    deadlines_ns: Sequence[int], woke_ns: Sequence[int], period_ns: int
) -> dict[str, Any]:
    """Figures of a wake-up series.

    Parameters
    ----------
    deadlines_ns, woke_ns:
        When each wake-up was due and when it happened.
    period_ns:
        The sampling period; a wake more than this late would have lost a frame.
    """
    late = np.asarray(woke_ns, dtype=np.int64) - np.asarray(deadlines_ns, dtype=np.int64)
    if late.size == 0:
        raise ValueError("lateness_summary: no wake-ups")
    return {
        "wakeups": int(late.size),
        "later_than_a_period": int(np.count_nonzero(late > period_ns)),
        "late_p50_us": float(np.percentile(late, 50) / 1e3),
        "late_p99_us": float(np.percentile(late, 99) / 1e3),
        "late_max_us": float(late.max() / 1e3),
    }


def _wake_loop(period_ns: int, duration_s: float, priority: int) -> tuple[list[int], list[int]]:
    if priority:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    spin_ns = min(SPIN_NS, int(SPIN_MAX_PERIOD_FRACTION * period_ns))
    start_ns = time.monotonic_ns()
    end_ns = start_ns + round(duration_s * NS_PER_S)
    deadlines: list[int] = []
    woke: list[int] = []
    due_ns = start_ns + period_ns
    while due_ns < end_ns:
        remaining_ns = due_ns - spin_ns - time.monotonic_ns()
        if remaining_ns > 0:
            time.sleep(remaining_ns / NS_PER_S)
        now_ns = time.monotonic_ns()
        while now_ns < due_ns:
            now_ns = time.monotonic_ns()
        deadlines.append(due_ns)
        woke.append(now_ns)
        due_ns += period_ns
        while due_ns <= now_ns:  # missed boundaries are not waited for again
            due_ns += period_ns
    return deadlines, woke


def _child(conn: Any, period_ns: int, duration_s: float, priority: int) -> None:
    try:
        conn.send(("ok", _wake_loop(period_ns, duration_s, priority)))
    except PermissionError as exc:
        conn.send(("error", f"SCHED_FIFO {priority} not permitted: {exc}"))
    finally:
        conn.close()


def measure_floor(
    sample_rate_hz: float,
    duration_s: float = DEFAULT_DURATION_S,
    priority: int = DEFAULT_PRIORITY,
) -> dict[str, Any]:
    """Run the bare wake-up loop in a child process; return :func:`lateness_summary` plus
    the settings, or ``{"error": ...}`` when SCHED_FIFO is not permitted."""
    period_ns = round(NS_PER_S / sample_rate_hz)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(child, period_ns, duration_s, priority))
    process.start()
    child.close()
    try:
        if not parent.poll(duration_s + RESULT_TIMEOUT_S):
            raise TimeoutError("the wake-up loop did not report")
        kind, payload = parent.recv()
    finally:
        process.join(5.0)
        parent.close()
    settings = {"sample_rate_hz": sample_rate_hz, "duration_s": duration_s, "priority": priority}
    if kind != "ok":
        return {**settings, "error": str(payload)}
    deadlines, woke = payload
    return {**settings, **lateness_summary(deadlines, woke, period_ns)}
