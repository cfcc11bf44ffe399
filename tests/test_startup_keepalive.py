"""Tests of the start-up watchdog keepalive on a stepping clock with a slow "import"."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from pathlib import Path

import pytest

from emgd.calibration.store import StoredCalibration
from emgd.clock import NS_PER_S, FakeClock
from emgd.config import load_config
from emgd.service.startup_keepalive import StartupKeepalive
from emgd.service.systemd import Notifier

STEP_NS = 50_000_000  # the slow import moves the clock 50 ms at a time


class RecordingNotifier(Notifier):
    """A notifier with a 2 s watchdog that records the clock time of every ping."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(env={"WATCHDOG_USEC": "2000000"})
        self.clock = clock
        self.sent: list[tuple[str, int]] = []

    def ready(self, status: str) -> bool:
        self.sent.append(("READY", self.clock.monotonic_ns()))
        return True

    def watchdog(self) -> bool:
        self.sent.append(("WATCHDOG", self.clock.monotonic_ns()))
        return True


def slow_import(clock: FakeClock, keepalive: StartupKeepalive, seconds: float) -> None:
    """Spend ``seconds`` of clock time in steps, letting the pinger look after each."""
    for _ in range(round(seconds * NS_PER_S / STEP_NS)):
        clock.advance_ns(STEP_NS)
        deadline = time.monotonic() + 5.0
        while keepalive.checked_ns < clock.monotonic_ns():
            assert time.monotonic() < deadline, "the keepalive thread stopped looking"
            time.sleep(0.0005)


def largest_gap_s(sent: list[tuple[str, int]]) -> float:
    times = [t for _, t in sent]
    return max(b - a for a, b in itertools.pairwise(times)) / NS_PER_S


@pytest.mark.parametrize("import_s", [1.6, 5.0])  # this machine's worst, a 3x slower Pi
def test_no_gap_between_ready_and_the_loop_reaches_the_watchdog(import_s: float) -> None:
    clock = FakeClock()
    notifier = RecordingNotifier(clock)
    notifier.ready("running")
    with StartupKeepalive(notifier, clock, poll_s=0.0005) as keepalive:
        slow_import(clock, keepalive, import_s)
    kinds = [k for k, _ in notifier.sent]
    assert kinds[:2] == ["READY", "WATCHDOG"]  # pinged with READY, at the same instant
    assert notifier.sent[1][1] == notifier.sent[0][1]
    assert notifier.sent[-1][1] == clock.monotonic_ns()  # and as the block ends
    gap_s = largest_gap_s(notifier.sent)
    print(f"import {import_s} s: {len(kinds) - 1} pings, largest gap {gap_s:.2f} s")
    # Half the 2 s watchdog plus one clock step; before, the gap was the whole import.
    assert gap_s <= 1.0 + STEP_NS / NS_PER_S
    assert keepalive.last_ping_ns == clock.monotonic_ns()


def test_a_hung_start_up_is_left_to_the_watchdog() -> None:
    clock = FakeClock()
    notifier = RecordingNotifier(clock)
    with StartupKeepalive(notifier, clock, max_s=3.0, poll_s=0.0005) as keepalive:
        slow_import(clock, keepalive, 3.2)
        pings = [t for k, t in notifier.sent if k == "WATCHDOG"]
        # No ping after max_s: systemd kills a start-up that hangs.
        assert (pings[-1] - pings[0]) / NS_PER_S <= 3.0


def test_without_a_watchdog_nothing_is_sent() -> None:
    clock = FakeClock()
    notifier = RecordingNotifier(clock)
    notifier.watchdog_usec = None
    with StartupKeepalive(notifier, clock) as keepalive:
        clock.advance_s(5.0)
    assert notifier.sent == [] and keepalive.last_ping_ns == 0


def test_the_daemon_pings_from_ready_to_its_first_hops(tmp_path: Path) -> None:
    """A real start on the simulated board with a 2 s watchdog: datagrams timed on arrival."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from emgd.dsp.filters import FilterSpec
    from emgd.model.contract import PreprocessContract
    from emgd.model.export import export_onnx
    from emgd.model.network import EmgNet
    from emgd.model.spec import ModelSpec
    from emgd.service.runner import Daemon

    spec = ModelSpec(sample_rate_hz=1000.0, n_channels=8, common_length=5, mlp=(16, 8))
    contract = PreprocessContract.for_spec(spec, FilterSpec(mains_hz=50.0))
    cal = StoredCalibration(offset=(0.0,) * 8, scale=(20.0,) * 8, sample_rate_hz=1000.0)
    model = tmp_path / "small.onnx"
    export_onnx(EmgNet(spec, seed=0), spec, contract, {"calibration": cal.to_dict()}, model)
    config = load_config(
        env={},
        overrides=[
            f"model.path={str(model)!r}",
            f"daemon.runtime_dir={str(tmp_path / 'run')!r}",
            f"daemon.state_dir={str(tmp_path / 'state')!r}",
            "daemon.realtime_priority=0",
            "daemon.loop_priority=0",
            "daemon.lock_memory=false",
        ],
    )
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.05)
    got: list[tuple[bytes, int]] = []
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                got.append((sock.recv(4096), time.monotonic_ns()))

    receiver = threading.Thread(target=receive)
    receiver.start()
    daemon = Daemon(config, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    try:
        daemon.start()
        daemon.run(lambda: False, duration_s=2.5)
    finally:
        daemon.shutdown()
        done.set()
        receiver.join()
        sock.close()
    ready = next(i for i, (data, _) in enumerate(got) if data.startswith(b"READY=1"))
    pings = [t for data, t in got[ready:] if data == b"WATCHDOG=1"]
    gaps_s = [(b - a) / NS_PER_S for a, b in itertools.pairwise([got[ready][1], *pings])]
    print(f"\nREADY → first ping {gaps_s[0] * 1e3:.1f} ms; largest gap {max(gaps_s):.2f} s")
    assert len(pings) >= 3  # at READY, after the filter design, then the loop's own
    assert gaps_s[0] < 0.5  # at once, not after the filter design
    assert max(gaps_s) < 1.5  # half the 2 s watchdog, with room for a loaded machine
