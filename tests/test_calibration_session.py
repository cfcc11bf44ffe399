"""Tests of the daemon side of ``emgd calibrate``: the session, the service and the handlers,
first on their own (fake clock, signals made here), then in a real daemon on the simulated
board behind a real socket."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emgd.calibration import store as calibration_store
from emgd.calibration.session import (
    SETTLE_S,
    CalibrationService,
    CalibrationSession,
)
from emgd.clock import FakeClock
from emgd.command_ledger import CLIENT_TIMEOUT_S
from emgd.dsp.filters import FilterSpec
from emgd.dsp.normalise import Normaliser
from emgd.errors import InvalidParams, ModelError

FS_HZ = 1000.0
HOP = 20  # frames per hop at 1 kHz
REST_SD_UV = 2.0
EFFORT_SD_UV = 50.0
# White noise through the 20-450 Hz band-pass of a 1 kHz stream keeps 430/500 of its power:
# RMS × sqrt(0.86) = 0.927. The 95th percentile of a 100 ms moving RMS of band-limited
# noise (~86 independent samples per window, relative spread 1/sqrt(2·86) = 7.6 %) sits
# 1.645 spreads above the mean: × 1.125. So a 50 µV effort gives a scale near 52 µV and a
# 2 µV rest a noise floor near 1.85 µV.
EXPECTED_SCALE_UV = (45.0, 60.0)
EXPECTED_NOISE_UV = (1.6, 2.1)


# --------------------------------------------------------------------------- on their own


class Host:
    """The daemon's side of the callbacks, recording what the service asked for."""

    def __init__(self, tmp_path: Path, n_channels: int = 4) -> None:
        self.clock = FakeClock()
        self.queue: list[Any] = []
        self.events: list[str] = []
        self.applied: list[calibration_store.StoredCalibration] = []
        self.state_dir = tmp_path / "state"
        self.service = CalibrationService(
            FilterSpec(mains_hz=50.0),
            FS_HZ,
            n_channels,
            self.state_dir,
            self.clock,
            submit=self.queue.append,
            hold=lambda: self.events.append("hold"),
            release=lambda: self.events.append("release"),
            apply=self.applied.append,
        )
        self.handlers = self.service.handlers()
        self.rng = np.random.default_rng(1)
        self.n_channels = n_channels

    def call(self, method: str, **params: Any) -> Any:
        result = self.handlers[method](params, None)
        self.run_queue()
        return result

    def run_queue(self) -> None:
        while self.queue:
            self.queue.pop(0)()

    def hops(self, n: int, sd_uv: float, flat: int | None = None) -> None:
        for _ in range(n):
            block = self.rng.normal(0.0, sd_uv, (HOP, self.n_channels)) + 300.0
            if flat is not None:
                block[:, flat] = 300.0
            self.service.on_frames(block, np.zeros(HOP, dtype=np.uint32))
            self.clock.advance_s(HOP / FS_HZ)
            self.service.tick(self.clock.monotonic_ns())

    def outcome(self, reply: dict[str, int]) -> str | None:
        outcomes: dict[str, str | None] = self.service.snapshot["outcomes"]
        assert self.service.snapshot["applied_seq"] >= reply["seq"]
        return outcomes[str(reply["seq"])]

    def session(self, flat: int | None = None) -> dict[str, Any]:
        """A whole session: rest 1 s, two gestures of 0.5 s; returns the result."""
        assert self.outcome(self.call("calibrate.start")) is None
        self.hops(20, REST_SD_UV, flat)  # settle
        assert self.outcome(self.call("calibrate.record", phase="rest", seconds=1.0)) is None
        self.hops(55, REST_SD_UV, flat)
        for gesture in ("open", "power"):
            assert self.outcome(self.call("calibrate.record", phase=gesture, seconds=0.5)) is None
            self.hops(30, EFFORT_SD_UV, flat)
        assert self.outcome(self.call("calibrate.finish")) is None
        result: dict[str, Any] = self.service.snapshot["result"]
        return result


def test_a_session_saves_applies_and_resumes(tmp_path: Path) -> None:
    host = Host(tmp_path)
    result = host.session()
    assert result["outcome"] == "saved"
    assert host.events == ["hold", "release"]
    stored = calibration_store.load(host.state_dir)
    assert stored is not None and stored.identity() == result["identity"]
    assert host.applied == [stored]
    assert stored.source == "emgd calibrate" and stored.sample_rate_hz == FS_HZ
    assert all(EXPECTED_SCALE_UV[0] < s < EXPECTED_SCALE_UV[1] for s in stored.scale)
    assert all(abs(o - 0.0) < 1.0 for o in stored.offset)  # the 300 µV DC is filtered out
    summary = result["summary"]
    assert summary["bad_channels"] == []
    assert summary["phases"] == {"rest": 1.0, "open": 0.5, "power": 0.5}
    for ch in summary["channels"]:
        assert EXPECTED_NOISE_UV[0] < ch["noise_floor_uv"] < EXPECTED_NOISE_UV[1]
        # 20·log10(52 / 1.85) ≈ 29 dB
        assert 26.0 < ch["snr_db"] < 32.0
        assert ch["problem"] is None
    assert not host.service.active


def test_a_flat_channel_is_refused_naming_it_and_the_old_file_stays(tmp_path: Path) -> None:
    host = Host(tmp_path)
    old = calibration_store.StoredCalibration(
        offset=(0.0,) * 4, scale=(9.0,) * 4, sample_rate_hz=FS_HZ, source="old"
    )
    path = calibration_store.save(host.state_dir, old)
    before = path.read_bytes()
    result = host.session(flat=2)
    assert result["outcome"] == "refused"
    assert result["reason"].startswith("calibration refused: ch3: flat during effort")
    assert result["summary"]["bad_channels"] == [3]
    assert result["summary"]["channels"][2]["effort_level_uv"] < 1e-6
    assert path.read_bytes() == before
    assert host.applied == []
    assert host.events == ["hold", "release"]


def test_the_settling_time_is_not_recorded() -> None:
    session = CalibrationSession(FilterSpec(mains_hz=50.0), FS_HZ, 2)
    session.start_recording("rest", 0.5)
    settle = round(SETTLE_S * FS_HZ)
    zeros = np.zeros(1, dtype=np.uint32)
    for _ in range(settle + 499):
        session.feed(np.ones((1, 2)), zeros)
    assert session.recording and session.fraction == pytest.approx(499 / 500)
    session.feed(np.ones((1, 2)), zeros)
    assert (session.recording, session.recorded_s()) == (False, {"rest": 0.5})


def test_commands_out_of_order_are_refused_with_the_reason(tmp_path: Path) -> None:
    host = Host(tmp_path)
    assert "no calibration session" in str(host.outcome(host.call("calibrate.finish")))
    host.call("calibrate.start")
    assert "already running" in str(host.outcome(host.call("calibrate.start")))
    host.call("calibrate.record", phase="rest", seconds=1.0)
    assert "still recording 'rest'" in str(
        host.outcome(host.call("calibrate.record", phase="open", seconds=1.0))
    )
    assert "still recording" in str(host.outcome(host.call("calibrate.finish")))
    assert host.service.active


def test_finishing_without_gestures_is_refused_and_resumes(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.call("calibrate.start")
    host.hops(20, REST_SD_UV)
    host.call("calibrate.record", phase="rest", seconds=0.2)
    host.hops(11, REST_SD_UV)
    host.call("calibrate.finish")
    result = host.service.snapshot["result"]
    assert result["outcome"] == "refused" and "no gesture recording" in result["reason"]
    assert host.events == ["hold", "release"]


def test_bad_params_are_refused_at_once(tmp_path: Path) -> None:
    host = Host(tmp_path)
    for params in (
        {"phase": "Rest!", "seconds": 1},
        {"phase": "rest", "seconds": 0},
        {"phase": "rest", "seconds": 500},
        {"phase": "rest", "seconds": True},
        {"phase": 3, "seconds": 1},
    ):
        with pytest.raises(InvalidParams):
            host.handlers["calibrate.record"](params, None)
    assert host.queue == []


def test_a_silent_client_ends_the_session(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.call("calibrate.start")
    # Polling progress keeps it alive past the time-out...
    for _ in range(3):
        host.clock.advance_s(CLIENT_TIMEOUT_S * 0.6)
        host.call("calibrate.progress")
        host.service.tick(host.clock.monotonic_ns())
    assert host.service.active and host.events == ["hold"]
    # ...silence does not.
    host.clock.advance_s(CLIENT_TIMEOUT_S + 0.1)
    host.service.tick(host.clock.monotonic_ns())
    assert (host.service.active, host.events) == (False, ["hold", "release"])
    assert host.service.snapshot["result"]["outcome"] == "timed_out"


def test_progress_reports_fraction_and_live_rms(tmp_path: Path) -> None:
    host = Host(tmp_path, n_channels=2)
    host.call("calibrate.start")
    host.hops(20, 0.0)
    host.call("calibrate.record", phase="open", seconds=1.0)
    for _ in range(25):  # 0.5 s of a 10 µV-amplitude 100 Hz sine on channel 0
        t = np.arange(HOP) / FS_HZ
        block = np.full((HOP, 2), 300.0)  # the same DC as before: no step
        block[:, 0] += 10.0 * np.sin(2 * np.pi * 100.0 * t)
        host.service.on_frames(block, np.zeros(HOP, dtype=np.uint32))
    snap: Any = host.handlers["calibrate.progress"]({}, None)
    assert snap["recording"] and snap["phase"] == "open"
    assert snap["fraction"] == pytest.approx(0.5)
    # A 10 µV sine has an RMS of 10/√2 = 7.07 µV (100 Hz passes the band-pass unchanged).
    assert snap["rms_uv"][0] == pytest.approx(7.07, abs=0.3)
    assert snap["rms_uv"][1] < 0.05


def test_end_without_resume_for_a_daemon_resuming_anyway(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.call("calibrate.start")
    host.service.end("resumed")
    assert not host.service.active and host.events == ["hold"]
    assert host.service.snapshot["result"] == {"outcome": "cancelled", "reason": "resumed"}


def test_the_pipeline_swaps_its_normaliser() -> None:
    from emgd.model.contract import PreprocessContract
    from emgd.model.spec import ModelSpec
    from emgd.pipeline import InferencePipeline

    spec = ModelSpec(sample_rate_hz=1000.0, n_channels=2, common_length=5, mlp=(4,))
    contract = PreprocessContract.for_spec(spec, FilterSpec(mains_hz=0.0))

    class Zero:
        def infer(self, window: Any, history_deg: Any) -> Any:
            return np.zeros(5)

    pipeline = InferencePipeline(contract, Normaliser.identity(2), Zero())
    x = np.ones((contract.window_samples, 2))
    first = pipeline.windows(x)[-1].frames.copy()
    pipeline.reset()
    pipeline.set_normaliser(Normaliser(np.zeros(2), np.array([2.0, 4.0])))
    second = pipeline.windows(x)[-1].frames
    np.testing.assert_allclose(
        np.asarray(second, dtype=np.float64), first / np.array([2.0, 4.0]), rtol=1e-6, atol=1e-9
    )
    with pytest.raises(ModelError, match="3 channels"):
        pipeline.set_normaliser(Normaliser.identity(3))


# --------------------------------------------------------------------------- in a daemon


torch_available = True
try:  # the daemon tests need a small exported model
    import onnx  # noqa: F401
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    torch_available = False
needs_model = pytest.mark.skipif(not torch_available, reason="torch and onnx export the model")


class Wearer:
    """Replaces the simulated EMG read from the ring: quiet unless a gesture is recorded."""

    def __init__(self) -> None:
        self.flat_channel: int | None = None
        self.rng = np.random.default_rng(7)

    def install(self, daemon: Any) -> None:
        read_new = daemon._acq.read_new
        service = daemon._calibrate

        def read(max_frames: int | None = None) -> Any:
            batch = read_new(max_frames)
            phase = service.snapshot.get("phase")
            sd_uv = EFFORT_SD_UV if phase not in (None, "rest") else REST_SD_UV
            emg = self.rng.normal(0.0, sd_uv, batch.emg_uv.shape).astype(np.float32)
            if self.flat_channel is not None:
                emg[:, self.flat_channel] = 0.0
            return dataclasses.replace(batch, emg_uv=emg)

        daemon._acq.read_new = read


@pytest.fixture(scope="module")
def live(
    small_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Wearer]]:
    """A daemon on the simulated board, its loop in a thread, the EMG under test control."""
    from emgd.config import load_config
    from emgd.service.runner import Daemon

    tmp = tmp_path_factory.mktemp("daemon")
    config = load_config(
        env={},
        overrides=[
            f"model.path={str(small_model)!r}",
            f"daemon.runtime_dir={str(tmp / 'run')!r}",
            f"daemon.state_dir={str(tmp / 'state')!r}",
            "daemon.realtime_priority=0",
            "daemon.loop_priority=0",
            "daemon.lock_memory=false",
        ],
    )
    daemon = Daemon(config, env={})
    daemon.start()
    wearer = Wearer()
    wearer.install(daemon)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop.is_set,), daemon=True)
    thread.start()
    try:
        yield daemon, wearer
    finally:
        stop.set()
        thread.join(5.0)
        daemon.shutdown()


def wait_for(client: Any, predicate: Any, timeout_s: float = 10.0) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        progress = client.call("calibrate.progress")
        if predicate(progress):
            return dict(progress)
        assert time.monotonic() < deadline, f"timed out; last progress {progress}"
        time.sleep(0.02)


def drive_session(client: Any, gestures: tuple[str, ...] = ("open", "power")) -> dict[str, Any]:
    """start → rest 0.6 s → gestures 0.4 s each → finish, over the socket."""
    reply = client.call("calibrate.start")
    wait_for(client, lambda p: p["applied_seq"] >= reply["seq"])
    for phase, seconds in (("rest", 0.6), *((g, 0.4) for g in gestures)):
        reply = client.call("calibrate.record", {"phase": phase, "seconds": seconds})
        wait_for(client, lambda p, s=reply["seq"], ph=phase: p["applied_seq"] >= s)
        wait_for(client, lambda p, ph=phase: ph in p["recorded_s"] and p["phase"] != ph)
    reply = client.call("calibrate.finish")
    done = wait_for(client, lambda p: not p["active"] and p["result"] is not None)
    return dict(done["result"])


def wait_status(daemon: Any, predicate: Any, timeout_s: float = 5.0) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate(daemon.status()):
        assert time.monotonic() < deadline, f"status never matched: {daemon.status()['state']}"
        time.sleep(0.02)
    return dict(daemon.status())


@needs_model
def test_daemon_session_saves_applies_and_shows_it(live: tuple[Any, Wearer]) -> None:
    from emgd.client.status_client import StatusClient

    daemon, wearer = live
    wearer.flat_channel = None
    with StatusClient(daemon.socket_path) as client:
        reply: Any = client.call("calibrate.start")
        wait_for(client, lambda p: p["applied_seq"] >= reply["seq"])
        assert wait_status(daemon, lambda s: s["state"] == "hold")["state"] == "hold"
        client.call("calibrate.cancel")
        wait_for(client, lambda p: not p["active"])
        result = drive_session(client)
    assert result["outcome"] == "saved", result
    status = wait_status(daemon, lambda s: s["calibration"]["identity"] == result["identity"])
    assert status["calibration"]["source"] == "emgd calibrate"
    stored = calibration_store.load(daemon.state_dir)
    assert stored is not None and stored.identity() == result["identity"]
    assert all(EXPECTED_SCALE_UV[0] < s < EXPECTED_SCALE_UV[1] for s in stored.scale)
    np.testing.assert_allclose(daemon._pipeline.normaliser.scale, stored.scale)
    assert not daemon._safety.paused


@needs_model
def test_daemon_refuses_a_flat_channel_and_keeps_the_old_one(live: tuple[Any, Wearer]) -> None:
    from emgd.client.status_client import StatusClient

    daemon, wearer = live
    path = daemon.state_dir / calibration_store.FILE_NAME
    old = calibration_store.StoredCalibration(
        offset=(0.0,) * 8, scale=(11.0,) * 8, sample_rate_hz=1000.0, source="previous"
    )
    calibration_store.save(daemon.state_dir, old)
    before = path.read_bytes()
    identity_before = daemon.status()["calibration"]["identity"]
    wearer.flat_channel = 5
    try:
        with StatusClient(daemon.socket_path) as client:
            result = drive_session(client, ("pinch",))
    finally:
        wearer.flat_channel = None
    assert result["outcome"] == "refused"
    assert "ch6: flat during effort" in result["reason"]
    assert result["summary"]["bad_channels"] == [6]
    assert path.read_bytes() == before
    assert daemon.status()["calibration"]["identity"] == identity_before
    assert not daemon._safety.paused


@needs_model
def test_daemon_cancel_and_resume_end_the_session(live: tuple[Any, Wearer]) -> None:
    from emgd.client.status_client import StatusClient

    daemon, _ = live
    with StatusClient(daemon.socket_path) as client:
        for ending in ("calibrate.cancel", "resume"):
            reply: Any = client.call("calibrate.start")
            wait_for(client, lambda p, s=reply["seq"]: p["applied_seq"] >= s and p["active"])
            assert daemon._safety.paused
            client.call(ending)
            done = wait_for(client, lambda p: not p["active"])
            assert done["result"]["outcome"] == "cancelled"
            wait_status(daemon, lambda s: s["state"] != "hold")
            assert not daemon._safety.paused
