"""``emgd test`` against a real daemon on the simulated board, and its text helpers."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from emgd.client.status_client import StatusClient
from emgd.client.tac_cli import display_lines, report_table, tac_main
from emgd.clock import SystemClock
from emgd.model.store import sha256_of
from emgd.poses import proportional_target_deg
from tests.test_calibration_session import Wearer, live, needs_model

__all__ = ["live"]  # a module fixture shared with the daemon-side tests (small_model: conftest)

SHORT = ["--poses", "rest,open", "--limit-s", "1", "--dwell-s", "0.3", "--rest-s", "0.2"]


def test_display_shows_the_band_and_the_dwell() -> None:
    lines = display_lines(
        {
            "phase": "target",
            "index": 1,
            "n_targets": 3,
            "pose": "power",
            "effort": 0.5,
            "time_left_s": 4.25,
            "dwell_fraction": 0.5,
            "target_deg": [105.0] * 5,
            "hand_deg": [100.0, 80.0, 130.0, 105.0, 105.0],
        },
        15.0,
    )
    assert lines[0].startswith("target 2/3: power at 50 % effort") and "4.2 s left" in lines[0]
    assert "[" + "#" * 10 + "." * 10 + "]" in lines[0]
    assert [line.split()[-1] for line in lines[1:]] == ["ok", "flex", "open", "ok", "ok"]


def _hold(daemon: Any) -> np.ndarray:
    daemon.submit(daemon.pause)
    deadline = time.monotonic() + 3.0
    while daemon.state != "hold":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return np.array(daemon._safety.commanded_deg, dtype=float)


@needs_model
def test_a_held_hand_completes_exactly_the_targets_it_is_within(
    live: tuple[Any, Wearer],
) -> None:
    from emgd.cli import main

    daemon, _ = live
    held = _hold(daemon)
    try:
        out = io.StringIO()
        t0 = time.monotonic()
        code = main(["test", "--socket", str(daemon.socket_path), *SHORT, "--json"], stdout=out)
        assert time.monotonic() - t0 < 15.0
    finally:
        daemon.submit(daemon.resume)
    result = json.loads(out.getvalue())
    assert code == 0 and result["outcome"] == "stored"
    report = result["report"]
    assert not report["partial"] and report["n_planned"] == 3
    wanted = [("rest", None), ("open", 0.5), ("open", 1.0)]
    assert [(t["pose"], t["effort"]) for t in report["targets"]] == wanted
    for t in report["targets"]:
        target = proportional_target_deg(t["pose"], 1.0 if t["effort"] is None else t["effort"])
        within = float(np.max(np.abs(held - target))) <= 15.0
        assert t["completed"] == within, (t, held)
        assert (t["completion_time_s"] is None) == (not within)
        if within:  # held from the onset: done at once, along a path of length 0
            assert t["completion_time_s"] < 0.05 and t["path_efficiency"] == 1.0
    n_done = sum(t["completed"] for t in report["targets"])
    assert report["completion_rate"] == n_done / 3
    stored = Path(result["stored_in"])
    assert stored.name == f"{sha256_of(Path(daemon._model.path))[:12]}.json"
    assert json.loads(stored.read_text())["targets"] == report["targets"]


class _InterruptAfter:
    """A client whose n-th ``tac.progress`` raises KeyboardInterrupt (a Ctrl-C)."""

    def __init__(self, client: StatusClient, n: int) -> None:
        self.client, self.n = client, n

    def call(self, method: str, params: Any = None) -> object:
        if method == "tac.progress":
            self.n -= 1
            if self.n == 0:
                raise KeyboardInterrupt
        return self.client.call(method, params)


@needs_model
def test_ctrl_c_stops_the_test_with_a_partial_report(live: tuple[Any, Wearer]) -> None:
    daemon, _ = live
    out = io.StringIO()
    with StatusClient(daemon.socket_path) as client:
        code = tac_main(
            _InterruptAfter(client, 8),
            SystemClock(),
            out,
            poses=["rest", "open"],
            limit_s=5.0,
            rest_s=0.2,
        )
    text = out.getvalue()
    assert code == 130
    assert "PARTIAL (" in text and "of 3 targets)" in text
    assert "not stored: stopped by the client" in text
    assert not daemon._tac.active


def test_report_table_marks_missing_figures() -> None:
    agg = {
        "n_targets": 1,
        "n_completed": 0,
        "completion_rate": 0.0,
        "mean_completion_time_s": None,
        "mean_path_efficiency": None,
        "mean_overshoot_count": 0.0,
        "max_overshoot_deg": 0.0,
    }
    text = report_table(
        {
            "model": "m",
            "tolerance_deg": 15.0,
            "dwell_s": 1.0,
            "limit_s": 15.0,
            "partial": False,
            "n_planned": 1,
            "per_target": {"power": agg},
            "overall": agg,
        }
    )
    assert "power             0/1       0 %       -         -" in text
    assert "PARTIAL" not in text
