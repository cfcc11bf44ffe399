"""Tests of emgd.bench.flood against a real status server on a tmp_path Unix socket."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from emgd.bench.flood import Flooder
from emgd.service.status_limits import StatusLimits
from emgd.service.status_server import PeerCred, StatusServer

WAIT_S = 20.0


def test_10000_requests_never_read_are_cut_off_and_counted(tmp_path: Path) -> None:
    calls: list[int] = []

    def status(params: dict[str, Any], peer: PeerCred) -> object:
        calls.append(1)
        return {"state": "running"}

    path = tmp_path / "s.sock"
    limits = StatusLimits(max_requests_per_s=50.0)
    with StatusServer(path, {"status": status}, limits=limits) as srv:
        with Flooder(path, max_requests=10_000) as flooder:
            deadline = time.monotonic() + WAIT_S
            while not flooder.done and time.monotonic() < deadline:
                time.sleep(0.01)
        summary = flooder.summary()
        assert summary["requests_sent"] == 10_000
        assert summary["cut_offs"] >= 1
        # Every connection but perhaps the last (which ran out of requests) was cut off.
        assert summary["cut_offs"] <= summary["connections"] <= summary["cut_offs"] + 1
        counters = srv.counters()
        assert counters.rate_limited >= summary["cut_offs"]
        # Each connection got its burst (100 requests) handled; the rest never cost a call.
        assert len(calls) <= summary["connections"] * 110
        assert len(calls) < 10_000


def test_a_flooder_with_no_daemon_retries_and_stops(tmp_path: Path) -> None:
    flooder = Flooder(tmp_path / "absent.sock")
    with flooder:
        time.sleep(0.05)
    assert flooder.summary()["connect_refused"] >= 1
    assert flooder.summary()["requests_sent"] == 0
