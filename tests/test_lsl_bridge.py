"""Tests of the LSL bridge: stamping, markers, and a stalled consumer under the daemon."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emgd.config import Config, load_config
from emgd.service.lsl_bridge import LslBridge, open_bridge
from emgd.service.lsl_outlets import StreamSpec, stream_specs
from emgd.service.lsl_time import LslClockMap

BOARD = "ADS1299 (ID 0x3E, 8-channel part, 8 used, 1000 Hz, gain 24) on simulated SPI"
WAIT_S = 5.0


class Collecting:
    """Keeps every push; ``wait(n)`` blocks until n pushes arrived."""

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.stamps: list[float] = []
        self._cond = threading.Condition()

    def push_chunk(self, samples: Any, timestamps_s: Sequence[float]) -> None:
        with self._cond:
            self.rows += list(samples)
            self.stamps += list(timestamps_s)
            self._cond.notify_all()

    def wait(self, n: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.rows) >= n, WAIT_S), self.rows


def bridge(capacity: int = 256, offset_s: float = 100.0) -> tuple[LslBridge, dict[str, Collecting]]:
    cfg = load_config(env={}, overrides=["lsl.enabled=true", "adc.channels=2"])
    specs = stream_specs(cfg, BOARD, 0.02, "sid")
    outlets = {s.key: Collecting() for s in specs}
    # LSL's clock 100 s ahead of the monotonic one: the bridge must add the offset.
    cmap = LslClockMap(lambda: 0, lambda: offset_s)
    return (
        LslBridge(specs, outlets, sample_rate_hz=1000.0, clock_map=cmap, capacity_chunks=capacity),
        outlets,
    )


def test_frames_are_stamped_by_their_sample_clock_on_lsls_clock() -> None:
    b, out = bridge()
    index = np.array([10, 11, 12, 15], dtype=np.int64)  # 13 and 14 were lost
    drdy = 7_000_000_000 + index * 1_000_000
    emg = np.array([[1.5, -2.0]] * 4, dtype=np.float32)
    b.on_frames(index, drdy, emg)
    b.on_frames(index[:0], drdy[:0], emg[:0])  # nothing new: nothing pushed
    time.sleep(0.1)
    assert out["emg"].rows == []  # queued mid-hop; the publisher sleeps until the hop ends
    b.on_hop(7_020_000_000, [0.0] * 5, [0.0] * 5, "running", [])
    out["emg"].wait(4)
    b.close()
    assert out["emg"].stamps == pytest.approx([107.010, 107.011, 107.012, 107.015], abs=1e-9)
    assert np.array(out["emg"].rows).tolist() == [[1.5, -2.0]] * 4


def test_hops_push_commanded_then_model_angles_and_mark_state_and_fault_changes() -> None:
    b, out = bridge()
    cmd, model = [10.0, 20, 30, 40, 50], [11.0, 21, 31, 41, 51]
    b.on_hop(1_000_000_000, cmd, model, "running", [])
    b.on_hop(1_020_000_000, cmd, model, "running", [])
    b.on_hop(1_040_000_000, cmd, [np.nan] * 5, "fault", ["stale", "railed"])
    b.on_hop(1_060_000_000, cmd, model, "fault", ["stale"])
    b.on_hop(1_080_000_000, cmd, model, "running", [])
    out["angles"].wait(5)
    out["markers"].wait(7)
    b.close()
    assert np.array(out["angles"].rows[0]).tolist() == cmd + model
    assert np.isnan(out["angles"].rows[2][5:]).all()
    assert out["angles"].stamps == pytest.approx([101.0, 101.02, 101.04, 101.06, 101.08])
    assert [r[0] for r in out["markers"].rows] == [
        "state running",
        "state fault (was running)",
        "fault railed",
        "fault stale",
        "fault cleared railed",
        "state running (was fault)",
        "fault cleared stale",
    ]
    assert out["markers"].stamps[:3] == pytest.approx([101.0, 101.04, 101.04])


def test_a_wrong_number_of_angles_is_refused() -> None:
    b, _ = bridge()
    with pytest.raises(ValueError, match="9 values, the outlet has 10"):
        b.on_hop(0, [0.0] * 5, [0.0] * 4, "running", [])
    b.close()


def test_cues_are_marked_when_the_pose_or_the_effort_step_changes() -> None:
    b, out = bridge()
    b.cue("record", 1_000_000_000, "power", 0.30)
    b.cue("record", 1_020_000_000, "power", 0.35)  # a ramp: same cue
    b.cue("record", 1_040_000_000, "power", 0.41)
    b.cue("record", 1_060_000_000, "rest", 0.41)
    b.cue("test", 1_080_000_000, "pinch", None)
    b.publisher.wake()
    out["markers"].wait(4)
    b.close()
    assert [r[0] for r in out["markers"].rows] == [
        "cue record power effort 0.30",
        "cue record power effort 0.41",
        "cue record rest effort 0.41",
        "cue test pinch",
    ]


def test_status_shows_streams_counters_and_the_clock() -> None:
    b, _ = bridge()
    b.marker(0, "start")
    b.close()
    s = b.status()
    assert s["streams"]["emg"] == {"name": "emgd EMG", "source_id": "sid:emg"}
    assert s["offered_chunks"] == 1 and s["pushed_chunks"] == 1 and s["dropped_chunks"] == 0
    assert s["clock_offset_s"] == pytest.approx(100.0)


def test_open_bridge_takes_an_outlet_factory_and_derives_the_source_id() -> None:
    cfg = load_config(env={}, overrides=["lsl.enabled=true", "lsl.source_id=rig"])
    seen: list[StreamSpec] = []

    def factory(spec: StreamSpec) -> Collecting:
        seen.append(spec)
        return Collecting()

    b = open_bridge(cfg, BOARD, 0.02, outlet_factory=factory)
    b.close()
    assert [s.key for s in seen] == ["emg", "angles", "markers"]
    assert all(s.source_id.startswith("rig-") for s in seen)
    assert abs(b.clock_map.offset_s) < 1e-3


# --- under the daemon: a consumer that never returns ---------------------------------------


class Stalled:
    """An outlet whose push blocks until the test ends (forever, as far as the loop knows)."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.calls = 0

    def push_chunk(self, samples: Any, timestamps_s: Sequence[float]) -> None:
        self.calls += 1
        self.release.wait()


def daemon_config(model: Path, tmp_path: Path, *extra: str) -> Config:
    return load_config(
        env={},
        overrides=[
            f"model.path={str(model)!r}",
            f"daemon.runtime_dir={str(tmp_path / 'run')!r}",
            f"daemon.state_dir={str(tmp_path / 'state')!r}",
            "daemon.realtime_priority=0",
            "daemon.loop_priority=0",
            "daemon.lock_memory=false",
            *extra,
        ],
    )


def run_daemon(cfg: Config, duration_s: float, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    from emgd.service.runner import Daemon

    daemon = Daemon(cfg, env={}, **kwargs)
    daemon.start()
    try:
        daemon.run(lambda: False, duration_s=duration_s)
        lsl = None if daemon._lsl is None else daemon._lsl.status()
        status = {**daemon.status(since_start=True), "hops": daemon.hops}
        print("hops", daemon.hops, "compute ms", status["latency_run_ms"]["compute"], "lsl", lsl)
        return status, lsl
    finally:
        daemon.shutdown()


def test_a_stalled_consumer_leaves_the_hop_time_alone_and_its_drops_are_counted(
    small_model: Path, tmp_path: Path
) -> None:
    release = threading.Event()
    outlets: list[Stalled] = []

    def stalled(spec: StreamSpec) -> Stalled:
        outlets.append(Stalled(release))
        return outlets[-1]

    try:
        off, _ = run_daemon(daemon_config(small_model, tmp_path / "off"), 3.0)
        on, lsl = run_daemon(
            daemon_config(small_model, tmp_path / "on", "lsl.enabled=true", "lsl.queue_chunks=16"),
            3.0,
            lsl_outlets=stalled,
        )
    finally:
        release.set()
    assert lsl is not None
    # The loop kept its cadence and its compute time with the publisher stuck.
    assert on["hops"] >= 0.9 * off["hops"] > 60
    off_ms, on_ms = off["latency_run_ms"]["compute"], on["latency_run_ms"]["compute"]
    assert on_ms["p50"] < 1.5 * off_ms["p50"] + 0.3, (off_ms, on_ms)
    assert on_ms["p99"] < 2.0 * off_ms["p99"] + 1.0, (off_ms, on_ms)
    # One chunk is stuck in the first push; the queue holds 16; everything else dropped.
    assert sum(o.calls for o in outlets) == 1
    assert lsl["pushed_chunks"] == 0 and lsl["queued_chunks"] == 16
    assert lsl["dropped_chunks"] == lsl["offered_chunks"] - 17
    assert lsl["dropped_chunks"] > 2 * on["hops"] - 50  # frames and angles every hop
    assert set(lsl["dropped_by_stream"]) >= {"emg", "angles"}
    # ...and `emgd status` shows them.
    assert on["lsl"]["dropped_chunks"] > 0
    assert off["lsl"] is None


def test_the_daemon_publishes_every_frame_the_hop_angles_and_markers_of_a_recording(
    small_model: Path, tmp_path: Path
) -> None:
    from emgd.service.runner import Daemon

    outlets: dict[str, Collecting] = {}

    def collecting(spec: StreamSpec) -> Collecting:
        outlets[spec.key] = Collecting()
        return outlets[spec.key]

    cfg = daemon_config(small_model, tmp_path, "lsl.enabled=true", "simulation.wearer='rest'")
    daemon = Daemon(cfg, env={}, lsl_outlets=collecting)
    daemon.start()
    assert daemon._record is not None
    stop = threading.Event()
    loop = threading.Thread(target=daemon.run, args=(stop.is_set,))
    loop.start()
    handlers = daemon._record.handlers()
    protocol = {"gestures": ["power"], "reps": 1, "hold_s": 0.5, "rest_s": 0.5, "lead_in_s": 1.0}
    try:
        handlers["record.start"]({"protocol": protocol}, None)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            snap: Any = handlers["record.progress"]({}, None)
            if not snap.get("active") and snap.get("result"):
                break
            time.sleep(0.1)
    finally:
        stop.set()
        loop.join()
        frames, hops = daemon._frames, daemon.hops
        daemon.shutdown()
    markers = [row[0] for row in outlets["markers"].rows]
    assert markers[0] == "start emgd 0.1.0" and markers[-1] == "stop"
    # A recording holds the hand (from its first hop here), cues rest, power, rest, and
    # hands it back when it ends.
    hold = next(i for i, m in enumerate(markers) if m.startswith("state hold"))
    power = markers.index("cue record power effort 1.00")
    assert markers.index("cue record rest effort 0.00") < power
    assert hold < power < markers.index("state running (was hold)")
    assert len(outlets["emg"].rows) == frames  # every frame the loop read, none twice
    emg_stamps = np.array(outlets["emg"].stamps)
    assert np.all(np.diff(emg_stamps) > 0)
    assert np.median(np.diff(emg_stamps)) == pytest.approx(1e-3, rel=1e-3)
    assert len(outlets["angles"].rows) == hops
    assert all(len(row) == 10 for row in outlets["angles"].rows)
    # Both are on one clock: the last angles come after the last EMG sample they reflect.
    assert 0 < outlets["angles"].stamps[-1] - emg_stamps[-1] < 0.1
