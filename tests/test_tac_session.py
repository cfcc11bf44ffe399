"""The daemon-side TAC test on a fake clock with a scripted hand trace."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from emgd.clock import NS_PER_S, FakeClock
from emgd.errors import InvalidParams
from emgd.model.spec import ModelSpec
from emgd.model.store import ModelStore, sha256_of
from emgd.service.tac_session import TacService, protocol_for, store_report

HOP_NS = NS_PER_S // 100
SPEC = ModelSpec(
    head="pose_mixture", graded_effort=False, gestures=(("rest", "rest"), ("fist", "power"))
)


@dataclass
class FakeModel:
    path: Path
    spec: ModelSpec = SPEC
    identity: str = "model-a"


@dataclass
class Harness:
    service: TacService
    clock: FakeClock
    model: FakeModel
    queue: list[Callable[[], None]] = field(default_factory=list)
    cues: list[tuple[str, float | None]] = field(default_factory=list)

    def hops(self, n: int, hand: Callable[[float], float]) -> None:
        """Run ``n`` hops; ``hand(t_s)`` gives all five commanded angles at time t."""
        for _ in range(n):
            while self.queue:
                self.queue.pop(0)()
            self.clock.advance_ns(HOP_NS)
            t_s = self.clock.monotonic_ns() / NS_PER_S
            self.service.tick(self.clock.monotonic_ns(), np.full(5, hand(t_s)))


def harness(tmp_path: Path) -> Harness:
    model_file = tmp_path / "m.onnx"
    model_file.write_bytes(b"not really onnx")
    clock = FakeClock()
    h = Harness(service=None, clock=clock, model=FakeModel(model_file))  # type: ignore[arg-type]
    h.service = TacService(
        tmp_path / "state",
        clock,
        submit=h.queue.append,
        model=lambda: h.model,
        on_cue=lambda pose, effort: h.cues.append((pose, effort)),
    )
    return h


def start(h: Harness, **params: object) -> None:
    h.service.handlers()["tac.start"]({"rest_s": 1.0, "limit_s": 3.0, **params}, None)


def test_protocol_follows_the_model() -> None:
    assert [t.pose for t in protocol_for(SPEC, 2)] == ["rest", "power", "rest", "power"]
    graded = protocol_for(ModelSpec(), 1)
    assert ("power", 0.5) in [(t.pose, t.effort) for t in graded]
    half = next(t for t in graded if t.pose == "power" and t.effort == 0.5)
    assert half.angles_deg == (105.0,) * 5  # rest 30 + 0.5 * (180 - 30)


def test_scripted_hand_completes_rest_and_reaches_power(tmp_path: Path) -> None:
    h = harness(tmp_path)
    start(h)
    h.hops(1, lambda t: 30.0)
    # rest 1 s, rest target (held from the start), rest 1 s, then power reached 1 s after
    # its onset by a ramp 30 -> 180.
    power_onset: dict[str, float | None] = {"t": None}

    def hand(t: float) -> float:
        snap = h.service.snapshot["progress"]
        if snap and snap["phase"] == "target" and snap["pose"] == "power":
            onset = power_onset["t"]
            if onset is None:
                onset = power_onset["t"] = t
            return min(180.0, 30.0 + 150.0 * (t - onset))
        return 30.0

    h.hops(700, hand)
    result = h.service.snapshot["result"]
    assert result is not None and result["outcome"] == "stored"
    report = result["report"]
    assert not report["partial"] and report["n_planned"] == 2
    rest, power = report["targets"]
    assert rest["completed"] and rest["completion_time_s"] == pytest.approx(0.0, abs=0.011)
    assert power["completed"]
    # 15 deg tolerance: 165 deg is reached 0.9 s after onset of the ramp (one hop late).
    assert power["completion_time_s"] == pytest.approx(0.9, abs=0.025)
    assert power["path_efficiency"] == pytest.approx(1.0)
    assert report["completion_rate"] == 1.0
    assert h.cues == [("rest", None), ("rest", None), ("rest", None), ("power", None)]
    stored = tmp_path / "state" / "tac" / f"{sha256_of(h.model.path)[:12]}.json"
    assert result["stored_in"] == str(stored)
    assert json.loads(stored.read_text())["completion_rate"] == 1.0


def test_hand_that_never_moves_fails_power_at_the_limit(tmp_path: Path) -> None:
    h = harness(tmp_path)
    start(h, tolerance_deg=10.0)
    h.hops(320, lambda t: 30.0)  # 1 s rest, rest target (1 s dwell), 1 s rest: power
    prog = h.service.snapshot["progress"]
    assert prog["pose"] == "power" and prog["phase"] == "target"
    assert 0.0 < prog["time_left_s"] <= 3.0 and prog["dwell_fraction"] == 0.0
    h.hops(400, lambda t: 30.0)
    report = h.service.snapshot["result"]["report"]
    assert [t["completed"] for t in report["targets"]] == [True, False]
    assert report["per_target"]["power"]["completion_rate"] == 0.0
    assert report["overall"]["completion_rate"] == 0.5


def test_stop_gives_a_partial_report_that_is_not_stored(tmp_path: Path) -> None:
    h = harness(tmp_path)
    start(h)
    h.hops(150, lambda t: 30.0)
    assert h.service.snapshot["progress"]["dwell_fraction"] > 0.0
    h.service.handlers()["tac.stop"]({}, None)
    h.hops(1, lambda t: 30.0)
    result = h.service.snapshot["result"]
    assert result["outcome"] == "stopped" and result["report"]["partial"]
    assert not (tmp_path / "state" / "tac").exists()


def test_silent_client_and_model_swap_end_the_test(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.service.client_timeout_s = 0.5
    start(h)
    h.hops(100, lambda t: 30.0)
    assert "no word from the client" in h.service.snapshot["result"]["reason"]
    start(h)
    h.hops(5, lambda t: 30.0)
    h.model.identity = "model-b"
    h.hops(1, lambda t: 30.0)
    assert "model changed" in h.service.snapshot["result"]["reason"]


def test_bad_parameters_are_refused(tmp_path: Path) -> None:
    h = harness(tmp_path)
    start_handler = h.service.handlers()["tac.start"]
    with pytest.raises(InvalidParams, match="reps"):
        start_handler({"reps": 0}, None)
    with pytest.raises(InvalidParams, match="tolerance_deg"):
        start_handler({"tolerance_deg": "wide"}, None)
    with pytest.raises(InvalidParams, match="dwell_s"):
        start_handler({"dwell_s": 5.0, "limit_s": 2.0}, None)
    start(h)
    start(h)
    h.hops(1, lambda t: 30.0)
    assert "already running" in str(h.service.snapshot["outcomes"]["2"])


def test_report_of_the_active_installed_model_goes_into_its_entry(tmp_path: Path) -> None:
    state = tmp_path / "state"
    folder = state / "models"
    folder.mkdir(parents=True)
    onnx = folder / "0001-aaaaaaaaaaaa.onnx"
    onnx.write_bytes(b"model bytes")
    sha = sha256_of(onnx)
    entry = {
        "format": 1,
        "version": 1,
        "file": onnx.name,
        "sha256": sha,
        "installed": "2026-12-07T10:00:00+00:00",
        "source": "x.onnx",
        "sample_rate_hz": 1000.0,
        "n_channels": 8,
        "card_file": None,
        "tac_test": None,
    }
    onnx.with_suffix(".json").write_text(json.dumps(entry))
    (folder / "active.json").write_text(
        json.dumps({"version": 1, "file": onnx.name, "sha256": sha})
    )
    where = store_report(state, onnx, {"completion_rate": 0.75})
    assert where == str(onnx.with_suffix(".json"))
    active = ModelStore(state).active()
    assert active is not None and active.tac_test == {"completion_rate": 0.75}
