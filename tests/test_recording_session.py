"""Tests of the daemon side of ``emgd record`` on a fake clock: the service fed batches as
the control loop feeds them, the file read back in MNE and pyedflib."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyedflib
import pytest

from emgd.clock import FakeClock
from emgd.config import load_config
from emgd.data.bdf_writer import BdfSessionWriter, SessionHeader
from emgd.dsp.filters import FilterSpec
from emgd.errors import ConfigError, InvalidParams, RecordingError
from emgd.recording.header import device_header
from emgd.recording.session import RecordingService, consecutive_runs
from emgd.recording.writer_thread import ThreadedWriter

FS_HZ = 1000
HOP = 20  # frames per hop at 1 kHz
N_CH = 4
START = dt.datetime(2026, 12, 7, 9, 30, 0)
#: lead-in 1 s rest, power 1 s, rest 1 s: 3 s in all.
SHORT = {"gestures": ["power"], "reps": 1, "hold_s": 1.0, "rest_s": 1.0, "lead_in_s": 1.0}
REST_SD_UV = 3.0
EFFORT_SD_UV = 60.0


def header(backend: str = "ads1299", channels: int = N_CH) -> SessionHeader:
    config = load_config(env={}, overrides=[f"adc.backend={backend!r}", f"adc.channels={channels}"])
    return device_header(config, START)


def file_annotations(path: Path) -> list[tuple[float, str]]:
    with pyedflib.EdfReader(str(path)) as reader:
        onsets, _, texts = reader.readAnnotations()
    return [(round(float(o), 3), str(t)) for o, t in zip(onsets, texts, strict=True)]


class Host:
    """The daemon's side: a fake clock, a command queue, hold/release, the batches."""

    def __init__(self, tmp_path: Path, hdr: SessionHeader | None = None, **kw: Any) -> None:
        self.clock = FakeClock()
        self.queue: list[Any] = []
        self.events: list[str] = []
        self.cued: list[tuple[str, float]] = []
        self.header = hdr or header()
        self.n_channels = len(self.header.channel_labels)
        self.service = RecordingService(
            FilterSpec(mains_hz=50.0),
            self.header,
            tmp_path / "state" / "recordings",
            self.clock,
            submit=self.queue.append,
            hold=lambda: self.events.append("hold"),
            release=lambda: self.events.append("release"),
            on_cue=lambda pose, effort: self.cued.append((pose, effort)),
            wall=lambda: START,
            **kw,
        )
        self.handlers = self.service.handlers()
        self.rng = np.random.default_rng(3)
        self.next_index = 5000
        self.fed: list[np.ndarray] = []  # every frame handed over, in order

    def call(self, method: str, **params: Any) -> Any:
        return self.handlers[method](params, None)

    def outcome(self, reply: dict[str, Any]) -> str | None:
        outcomes: dict[str, str | None] = self.service.snapshot["outcomes"]
        return outcomes[str(reply["seq"])]

    def hop(self, skip_frames: int = 0, overrun: int = 0) -> None:
        """One control-loop hop: commands, the batch, then the tick."""
        while self.queue:
            self.queue.pop(0)()
        self.next_index += skip_frames
        cue = (self.service.snapshot.get("progress") or {}).get("cue") or {}
        sd = EFFORT_SD_UV if cue.get("pose") not in (None, "rest") else REST_SD_UV
        emg = self.rng.normal(0.0, sd, (HOP, self.n_channels)) + 400.0
        if self.header.device == "mcp3008":
            emg = np.clip(emg - 400.0, -1600.0, 1600.0)
        index = np.arange(self.next_index, self.next_index + HOP, dtype=np.int64)
        self.next_index += HOP
        railed = np.zeros(HOP, dtype=np.uint32)
        railed[:3] = 0b10  # channel 2 railed for 3 frames each hop
        lead_off = np.zeros(HOP, dtype=np.uint32)
        if self.service.snapshot.get("recording"):
            self.fed.append(emg)
        self.service.on_frames(
            index, emg.astype(np.float32), railed, lead_off, overrun_frames=overrun
        )
        self.clock.advance_s(HOP / FS_HZ)
        self.service.tick(self.clock.monotonic_ns())

    def until_result(self, timeout_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while self.service.snapshot.get("result") is None:
            assert time.monotonic() < deadline, "the writer never finished"
            time.sleep(0.01)
            self.service.tick(self.clock.monotonic_ns())
        result: dict[str, Any] = self.service.snapshot["result"]
        return result


def test_every_frame_is_written_with_the_cues_and_mne_reads_it(tmp_path: Path) -> None:
    import mne  # type: ignore[import-untyped]

    host = Host(tmp_path)
    reply = host.call("record.start", protocol=SHORT)
    path = Path(reply["path"])
    assert path == tmp_path / "state" / "recordings" / "emgd-20261207-093000.bdf"
    assert reply["total_s"] == pytest.approx(3.0)
    while host.service.snapshot.get("result") is None and len(host.fed) < 400:
        host.hop()
        assert host.service.snapshot.get("progress") is not None or host.fed
    result = host.until_result()
    assert host.events == ["hold", "release"]
    assert result["outcome"] == "complete", result
    fed = np.concatenate(host.fed).astype(np.float32).astype(np.float64)
    assert fed.shape[0] == 3 * FS_HZ  # 150 hops of 20 frames
    summary = result["summary"]
    assert summary["frames"] == summary["frames_written"] == fed.shape[0]
    assert summary["lost_frames"] == 0 and summary["gaps"] == 0

    raw = mne.io.read_raw_bdf(path, verbose="error")
    assert raw.info["sfreq"] == FS_HZ and raw.ch_names == ["EMG1", "EMG2", "EMG3", "EMG4"]
    data_uv = raw.get_data().T * 1e6
    lsb_uv = host.header.channel_ranges()[0].uv_per_digit
    assert np.abs(data_uv[: fed.shape[0]] - fed).max() <= lsb_uv
    texts = [(round(float(a["onset"]), 2), a["description"]) for a in raw.annotations]
    cues = [t for t in texts if t[1].startswith("cue")]
    assert cues == [
        (0.0, "cue gesture=rest effort=0 rep=0 start"),
        (1.0, "cue gesture=rest effort=0 rep=0 end"),
        (1.0, "cue gesture=power effort=1 rep=1 start"),
        (2.0, "cue gesture=power effort=1 rep=1 end"),
        (2.0, "cue gesture=rest effort=0 rep=1 start"),
        (3.0, "cue gesture=rest effort=0 rep=1 end"),
    ]
    start = next(t for _, t in texts if t.startswith("session start"))
    for word in ("device=ads1299", "rate_hz=1000", "gain=24", "vref_v=4.5", "protocol=default"):
        assert word in start
    assert any(t == f"session end frames={fed.shape[0]}" for _, t in texts)
    # Summary: RMS of the band-passed signal at rest and in the gesture, SNR, railed counts.
    assert summary["labels"] == ["rest", "power"]
    for ch in summary["channels"]:
        assert 1.5 < ch["rms_uv"]["rest"] < REST_SD_UV
        assert 35.0 < ch["rms_uv"]["power"] < EFFORT_SD_UV
        assert 20.0 < ch["snr_db"] < 30.0
        assert ch["lead_off_frames"] == 0
    assert [ch["railed_frames"] for ch in summary["channels"]] == [0, 450, 0, 0]
    # The wearer's seam: every change of the cued pose, in order.
    assert host.cued == [("rest", 0.0), ("power", 1.0), ("rest", 0.0)]


def test_an_index_jump_is_a_gap_annotation_and_nothing_is_joined_silently(
    tmp_path: Path,
) -> None:
    host = Host(tmp_path)
    path = Path(host.call("record.start", protocol=SHORT)["path"])
    for k in range(150):
        host.hop(skip_frames=12 if k == 30 else 0, overrun=12 if k == 30 else 0)
    result = host.until_result()
    summary = result["summary"]
    assert summary["lost_frames"] == 12 and summary["gaps"] == 1
    assert summary["overrun_frames"] == 12 and summary["writer_gaps"] == 12
    gap = [a for a in file_annotations(path) if a[1].startswith("gap")]
    # Hop 30's frames follow hops 0-29 (600 frames, from frame number 5000): the join is
    # at 0.6 s of the file, and the missing frames are numbered as the acquisition did.
    assert gap == [(0.6, "gap frames=12 from_seq=5600")]
    with pyedflib.EdfReader(str(path)) as reader:
        assert reader.getNSamples()[0] >= summary["frames"] == 150 * HOP


def test_a_jump_inside_one_batch_is_split_there() -> None:
    index = np.array([10, 11, 12, 20, 21, 5, 6], dtype=np.int64)
    assert consecutive_runs(index) == [(0, 3), (3, 5), (5, 7)]
    assert consecutive_runs(np.array([], dtype=np.int64)) == []


def test_stop_closes_the_file_with_the_cue_ended_and_releases(tmp_path: Path) -> None:
    host = Host(tmp_path)
    path = Path(host.call("record.start", protocol=SHORT)["path"])
    for _ in range(70):  # 1.4 s: inside the power cue
        host.hop()
    reply = host.call("record.stop")
    host.hop()
    assert host.outcome(reply) is None
    result = host.until_result()
    assert result["outcome"] == "stopped" and host.events == ["hold", "release"]
    texts = file_annotations(path)
    assert (1.4, "cue gesture=power effort=1 rep=1 end") in texts
    assert result["summary"]["frames"] == 71 * HOP - HOP  # the stop hop's batch is not fed
    assert "stopped by the client" in result["reason"]


def test_a_silent_client_stops_the_recording_and_keeps_the_file(tmp_path: Path) -> None:
    host = Host(tmp_path, client_timeout_s=0.5)
    path = Path(host.call("record.start", protocol={**SHORT, "hold_s": 10.0})["path"])
    for _ in range(40):
        host.hop()
    result = host.until_result()
    assert result["outcome"] == "timed_out" and "no word from the client" in result["reason"]
    with pyedflib.EdfReader(str(path)) as reader:
        assert reader.datarecords_in_file >= 1


def test_a_full_disk_fails_in_one_line_releases_and_the_file_so_far_reads(
    tmp_path: Path,
) -> None:
    import mne

    limit: dict[str, int] = {}

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        if "bytes" in limit and offset + len(data) > limit["bytes"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.pwrite(fd, data, offset)

    def make(path: Path, hdr: SessionHeader) -> BdfSessionWriter:
        writer = BdfSessionWriter(path, hdr, pwrite=pwrite)
        # Room for the header and one whole second (4 ch x 1000 x 3 bytes + annotations).
        record_bytes = (N_CH * FS_HZ + hdr.annotation_samples) * 3
        limit["bytes"] = os.path.getsize(path) + record_bytes
        return writer

    host = Host(tmp_path, make_writer=make)
    path = Path(host.call("record.start", protocol=SHORT)["path"])
    for _ in range(150):
        host.hop()
        if host.service.snapshot.get("result"):
            break
    result = host.until_result()
    assert result["outcome"] == "failed"
    assert "\n" not in result["reason"] and str(path) in result["reason"]
    assert "ENOSPC" in result["reason"] and "holds the 1 whole seconds" in result["reason"]
    assert host.events == ["hold", "release"]
    raw = mne.io.read_raw_bdf(path, verbose="error")
    assert raw.n_times == FS_HZ
    fed = np.concatenate(host.fed)[:FS_HZ].astype(np.float32).astype(np.float64)
    lsb_uv = host.header.channel_ranges()[0].uv_per_digit
    assert np.abs(raw.get_data().T * 1e6 - fed).max() <= lsb_uv


def test_mcp3008_records_in_its_range(tmp_path: Path) -> None:
    host = Host(tmp_path, header("mcp3008", channels=2))
    path = Path(host.call("record.start", protocol=SHORT)["path"])
    for _ in range(150):
        host.hop()
    assert host.until_result()["outcome"] == "complete"
    rng = host.header.channel_ranges()[0]
    fed = np.concatenate(host.fed).astype(np.float32).astype(np.float64)
    with pyedflib.EdfReader(str(path)) as reader:
        assert reader.getDigitalMaximum(0) == 1023 and reader.getDigitalMinimum(0) == 0
        assert reader.getPhysicalDimension(0) == "uV"
        back = reader.readSignal(0)[: fed.shape[0]]
    # Stored as the nearest 10-bit code: within half a code (3.2 µV) of what was fed.
    assert np.abs(back - fed[:, 0]).max() <= 0.5 * rng.uv_per_digit + 1e-6
    texts = [t for _, t in file_annotations(path)]
    assert any("device=mcp3008" in t and "frontend_gain=1000" in t for t in texts)


def test_bad_requests_are_one_line_and_leave_no_file(tmp_path: Path) -> None:
    host = Host(tmp_path)
    folder = tmp_path / "state" / "recordings"
    with pytest.raises(ConfigError, match=r"^record.start protocol: unknown key 'repz'"):
        host.call("record.start", protocol={"repz": 2})
    with pytest.raises(InvalidParams, match="must be absolute"):
        host.call("record.start", path="rel.bdf")
    with pytest.raises(InvalidParams, match=r"must end in \.bdf"):
        host.call("record.start", path=str(tmp_path / "x.txt"))
    with pytest.raises(RecordingError, match="no such folder"):
        host.call("record.start", path=str(tmp_path / "nope" / "x.bdf"))
    existing = tmp_path / "taken.bdf"
    existing.write_bytes(b"keep me")
    with pytest.raises(RecordingError, match="cannot create"):
        host.call("record.start", path=str(existing))
    assert existing.read_bytes() == b"keep me"
    assert not folder.exists() or not any(folder.iterdir())
    assert host.queue == [] and host.events == []


def test_a_second_start_is_refused_and_its_file_removed(tmp_path: Path) -> None:
    host = Host(tmp_path)
    first = host.call("record.start", protocol=SHORT, path=str(tmp_path / "a.bdf"))
    second = host.call("record.start", protocol=SHORT, path=str(tmp_path / "b.bdf"))
    host.hop()  # both commands applied in order
    assert host.outcome(first) is None
    assert "a recording is running" in str(host.outcome(second))
    assert not (tmp_path / "b.bdf").exists()
    with pytest.raises(RecordingError, match="a recording is running"):
        host.call("record.start", protocol=SHORT)
    host.call("record.stop")
    host.hop()
    assert host.until_result()["outcome"] == "stopped"


def test_busy_refuses_a_start(tmp_path: Path) -> None:
    host = Host(tmp_path, busy=lambda: "a calibration is running")
    reply = host.call("record.start", protocol=SHORT, path=str(tmp_path / "c.bdf"))
    host.hop()
    assert "a calibration is running" in str(host.outcome(reply))
    assert not (tmp_path / "c.bdf").exists() and host.events == []


def test_a_ramp_cues_the_wearer_every_hop_from_start_to_end(tmp_path: Path) -> None:
    host = Host(tmp_path)
    protocol = {**SHORT, "efforts": [], "ramps": [[0.2, 0.8]]}
    host.call("record.start", protocol=protocol)
    for _ in range(150):
        host.hop()
    assert host.until_result()["outcome"] == "complete"
    ramp = [e for pose, e in host.cued if pose == "power"]
    assert len(ramp) >= 45 and ramp == sorted(ramp)
    assert ramp[0] == pytest.approx(0.2, abs=0.03) and ramp[-1] == pytest.approx(0.8, abs=0.03)


def test_a_full_queue_drops_a_block_as_a_gap_never_silently(tmp_path: Path) -> None:
    gate = threading.Event()
    gate.set()

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        gate.wait(10.0)
        return os.pwrite(fd, data, offset)

    hdr = header(channels=2)
    path = tmp_path / "q.bdf"
    writer = BdfSessionWriter(path, hdr, pwrite=pwrite, sync=False)
    gate.clear()  # the disk stalls: nothing reaches it until the gate opens
    threaded = ThreadedWriter(writer, queue_blocks=3)
    x = np.random.default_rng(0).normal(0.0, 50.0, (1500, 2))
    accepted = [threaded.put_frames(x[k : k + 100], k) for k in range(0, 1500, 100)]
    # The thread took the first block (stalled writing it) or not: 3-4 queued, the rest
    # dropped; the annotation queued meanwhile waits and is not lost.
    threaded.put_annotation(0.05, None, "cue gesture=power effort=1 rep=1 start")
    assert not all(accepted) and threaded.frames_dropped == 100 * accepted.count(False)
    gate.set()
    first_kept = accepted.index(False)
    resumed = next(k for k in range(first_kept, 15) if not accepted[k]) * 100
    threaded.close(end_seq=1500)
    assert threaded.join(10.0) and threaded.error is None
    texts = file_annotations(path)
    gaps = [t for _, t in texts if t.startswith("gap")]
    assert sum(int(t.split()[1].split("=")[1]) for t in gaps) == threaded.frames_dropped
    assert f"from_seq={resumed}" in gaps[0]
    assert ("cue gesture=power effort=1 rep=1 start") in [t for _, t in texts]


def test_a_frame_count_going_back_is_counted_and_the_file_carries_on(tmp_path: Path) -> None:
    host = Host(tmp_path)
    path = Path(host.call("record.start", protocol=SHORT)["path"])
    for k in range(150):
        host.hop(skip_frames=-1000 if k == 50 else 0)
    result = host.until_result()
    summary = result["summary"]
    assert result["outcome"] == "complete" and summary["index_resets"] == 1
    assert summary["lost_frames"] == 0 and summary["frames_written"] == 150 * HOP
    assert not [t for _, t in file_annotations(path) if t.startswith("gap")]


# --------------------------------------------------------------------------- in a daemon

E2E_PROTOCOL = {"gestures": ["power"], "reps": 1, "hold_s": 1.0, "rest_s": 0.5, "lead_in_s": 1.0}
E2E_TOTAL_S = 2.5


def daemon_overrides(tmp: Path, *extra: str) -> list[str]:
    return [
        f"daemon.runtime_dir={str(tmp / 'run')!r}",
        f"daemon.state_dir={str(tmp / 'state')!r}",
        "daemon.realtime_priority=0",
        "daemon.loop_priority=0",
        "daemon.lock_memory=false",
        *extra,
    ]


def gap_frames(texts: list[str]) -> int:
    return sum(int(t.split()[1].removeprefix("frames=")) for t in texts if t.startswith("gap "))


@pytest.mark.parametrize("backend", ["ads1299", "mcp3008"])
def test_a_daemon_on_the_simulated_board_records_a_short_protocol(
    tmp_path: Path, backend: str
) -> None:
    """The real loop, acquisition process and socket: every frame is in the file or in a gap
    annotation, the cues are there, and the hand is released at the end."""
    import io

    import mne

    from emgd.client.record_cli import GuidedRecording
    from emgd.client.status_client import StatusClient
    from emgd.clock import SystemClock
    from emgd.service.runner import Daemon

    config = load_config(env={}, overrides=daemon_overrides(tmp_path, f"adc.backend={backend!r}"))
    daemon = Daemon(config, env={})
    daemon.start()
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop.is_set,), daemon=True)
    thread.start()
    try:
        with StatusClient(daemon.socket_path) as client:
            session = GuidedRecording(client, SystemClock(), io.StringIO())
            result = session.run(from_protocol(E2E_PROTOCOL))
        assert result["outcome"] == "complete", result
        deadline = time.monotonic() + 5.0
        while daemon.status()["state"] == "hold":
            assert time.monotonic() < deadline, "the hand was never released"
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(5.0)
        daemon.shutdown()
    summary = result["summary"]
    path = Path(summary["path"])
    assert path.parent == tmp_path / "state" / "recordings"
    raw = mne.io.read_raw_bdf(path, verbose="error")
    assert raw.info["sfreq"] == config.adc.sample_rate_hz and len(raw.ch_names) == 8
    texts = [str(d) for d in raw.annotations.description]
    assert f"session end frames={summary['frames']}" in texts
    assert any(f"device={backend}" in t for t in texts if t.startswith("session start"))
    cues = [t for t in texts if t.startswith("cue")]
    assert cues[0] == "cue gesture=rest effort=0 rep=0 start" and len(cues) == 6
    # Nothing joined silently: each missing frame is counted in a gap annotation.
    assert gap_frames(texts) == summary["lost_frames"]
    span = summary["frames"] + summary["lost_frames"]
    assert abs(span - E2E_TOTAL_S * config.adc.sample_rate_hz) < 0.25 * FS_HZ


def from_protocol(data: dict[str, Any]) -> Any:
    from emgd.recording.protocol import from_mapping

    return from_mapping(data, "test")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def test_kill_9_of_the_daemon_mid_recording_leaves_a_readable_file(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    import mne

    from emgd.client.status_client import RemoteError, StatusClient

    sets = [a for o in daemon_overrides(tmp_path) for a in ("--set", o)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "daemon")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emgd", "run", "--simulate", *sets, "--duration", "60"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: list[int] = []
    try:
        sock = tmp_path / "run" / "emgd.sock"
        deadline = time.monotonic() + 20.0
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the daemon never came up"
            time.sleep(0.05)
        path = tmp_path / "killed.bdf"
        with StatusClient(sock) as client:
            long = {**E2E_PROTOCOL, "hold_s": 30.0}
            client.call("record.start", {"protocol": long, "path": str(path)})
            deadline = time.monotonic() + 10.0
            while True:
                progress: Any = client.call("record.progress")
                if (progress.get("progress") or {}).get("seconds_written", 0) >= 2:
                    break
                assert time.monotonic() < deadline, f"nothing written: {progress}"
                time.sleep(0.05)
            status: Any = client.call("status")
            assert status["state"] == "hold"  # the hand holds while the recording runs
            with pytest.raises(RemoteError, match=r"calibrate\.start: a recording is running"):
                client.call("calibrate.start")
        children = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5.0)
        for child in children:  # the acquisition process, if it outlived its parent
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
    with pyedflib.EdfReader(str(path)) as reader:
        records = reader.datarecords_in_file
        texts = list(reader.readAnnotations()[2])
    assert records >= 2
    assert "cue gesture=rest effort=0 rep=0 start" in texts
    raw = mne.io.read_raw_bdf(path, verbose="error")
    assert raw.n_times >= records * FS_HZ and raw.n_times % FS_HZ == 0


def test_frames_that_waited_in_the_ring_before_the_start_are_not_recorded(
    tmp_path: Path,
) -> None:
    host = Host(tmp_path)
    path = Path(host.call("record.start", protocol=SHORT)["path"])
    host.queue.pop(0)()  # the loop applies record.start: the session starts now
    start_ns = host.clock.monotonic_ns()
    ms = 1_000_000
    stamps = start_ns + (np.arange(HOP, dtype=np.int64) - 10) * ms  # 10 before the start
    index = np.arange(HOP, dtype=np.int64)
    emg = np.arange(HOP * N_CH, dtype=np.float64).reshape(HOP, N_CH)
    zeros = np.zeros(HOP, dtype=np.uint32)
    host.service.on_frames(index, emg, zeros, zeros, overrun_frames=5, timestamp_ns=stamps)
    later = np.arange(HOP, 2 * HOP, dtype=np.int64)
    host.service.on_frames(later, emg, zeros, zeros, timestamp_ns=stamps - 50 * ms)
    host.call("record.stop")
    while host.queue:
        host.queue.pop(0)()
    host.service.tick(host.clock.monotonic_ns())
    summary = host.until_result()["summary"]
    assert summary["frames_before_start"] == 10 and summary["overrun_frames"] == 0
    assert summary["frames_written"] == 10 + HOP and summary["lost_frames"] == 0
    with pyedflib.EdfReader(str(path)) as reader:
        first = reader.readSignal(0)[:2]
    np.testing.assert_allclose(first, emg[10:12, 0], atol=0.03)
