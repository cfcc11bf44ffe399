"""Tests of ``emgd bench`` end to end (a short real run) and of its READY wait."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pytest

from emgd.bench.daemon_run import BenchError, _wait_ready
from emgd.cli import main


class SteppingClock:
    """Moves 50 ms every time it is read."""

    def __init__(self) -> None:
        self.now_ns = 0

    def monotonic_ns(self) -> int:
        self.now_ns += 50_000_000
        return self.now_ns

    def sleep_until_ns(self, deadline_ns: int) -> None:
        self.now_ns = max(self.now_ns, deadline_ns)


class FakeProc:
    def __init__(self, returncode: int | None) -> None:
        self.returncode = returncode

    def poll(self) -> int | None:
        return self.returncode


def test_ready_is_the_moment_ready_1_arrives() -> None:
    receiver, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with receiver, sender:
        sender.send(b"STATUS=starting")
        sender.send(b"STATUS=running\nREADY=1")
        clock = SteppingClock()
        ready_ns = _wait_ready(receiver, FakeProc(None), clock, 5.0)  # type: ignore[arg-type]
        # deadline read, then one read per message: READY came with the second message.
        assert ready_ns == 3 * 50_000_000


def test_a_daemon_that_exits_before_ready_is_reported() -> None:
    receiver, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with receiver, sender, pytest.raises(BenchError, match="exited with status 4 before READY"):
        _wait_ready(receiver, FakeProc(4), SteppingClock(), 5.0)  # type: ignore[arg-type]


def test_a_daemon_that_never_says_ready_times_out() -> None:
    receiver, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with receiver, sender, pytest.raises(BenchError, match="no READY=1 within 1 s"):
        _wait_ready(receiver, FakeProc(None), SteppingClock(), 1.0)  # type: ignore[arg-type]


def test_a_short_bench_writes_the_documented_json(tmp_path: Path) -> None:
    out, path = io.StringIO(), tmp_path / "bench.json"
    argv = ["bench", "--duration", "2", "--search", "0", "--runs", "5", "--floor", "0.5"]
    argv += ["--json", str(path)]
    assert main(argv, stdout=out) == 0
    result = json.loads(path.read_text())
    assert {"plan", "machine", "inference", "filter", "run", "targets"} <= set(result)
    run = result["run"]
    assert run["exit_code"] == 0 and run["state"] in ("running", "fault")
    assert 0 < run["ready_s"] < 60 and run["measured_s"] >= 2.0
    # On a loaded two-core machine a 2 s run can see few frames, but never a faster chip.
    assert run["samples"]["frames"] > 0
    assert 0 < run["samples"]["achieved_rate_hz"] <= 1000.0 * 1.02
    e2e = run["latency_ms"]["end_to_end"]
    assert 0 < e2e["p50"] <= e2e["p99"] <= e2e["max"]
    assert set(run["latency_ms"]) >= {"acquire", "filter", "window", "i2c_write", "end_to_end"}
    assert 0 < run["compute_fraction_of_hop"]["p50"] < 1
    groups = {p["name"]: p["group"] for p in run["processes"]}
    assert groups["emgd-acquire"] == "daemon" and groups["emgd-wearer"] == "simulator"
    assert run["memory_mib"]["daemon_peak_pss_sum"] > 10
    assert result["inference"]["runs"] == 5 and result["filter"]["runs"] == 5
    assert len(result["targets"]) == 8
    assert all(set(t) == {"name", "target", "measured", "met", "note"} for t in result["targets"])
    assert result["machine"]["onnxruntime"]
    floor = result["machine_floor"]
    assert floor["sample_rate_hz"] == 1000 and 0 < floor["wakeups"] <= 500
