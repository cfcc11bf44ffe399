"""Tests of process naming."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from emgd.procname import set_process_name


def _name_and_report(queue: multiprocessing.Queue[str], name: str) -> None:
    set_process_name(name)
    queue.put(Path("/proc/self/comm").read_text().strip())


def test_a_child_gets_the_name_truncated_to_15_bytes() -> None:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    child = ctx.Process(target=_name_and_report, args=(queue, "emgd-a-very-long-name"))
    child.start()
    try:
        assert queue.get(timeout=30) == "emgd-a-very-lon"
    finally:
        child.join(10)
