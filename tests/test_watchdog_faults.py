"""The watchdog under faults: a lasting fault keeps the pings (the gate is in charge of the
hand), and a dead acquisition process ends the run at the safe pose, never by a kill."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from emgd.clock import NS_PER_S
from emgd.config import Config, load_config
from emgd.errors import HardwareIOError

pytest.importorskip("torch")
pytest.importorskip("onnx")


@contextlib.contextmanager
def notify_socket(path: Path) -> Iterator[list[tuple[bytes, int]]]:
    """A datagram socket standing in for systemd's, every message timed on arrival."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.05)
    got: list[tuple[bytes, int]] = []
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                got.append((sock.recv(4096), time.monotonic_ns()))

    receiver = threading.Thread(target=receive)
    receiver.start()
    try:
        yield got
    finally:
        done.set()
        receiver.join()
        sock.close()


def largest_ping_gap_s(got: list[tuple[bytes, int]]) -> float:
    ready = next(i for i, (data, _) in enumerate(got) if data.startswith(b"READY=1"))
    pings = [t for data, t in got[ready:] if data == b"WATCHDOG=1"]
    assert len(pings) >= 3
    return max((b - a) / NS_PER_S for a, b in itertools.pairwise([got[ready][1], *pings]))


def config_for(model: Path, tmp_path: Path, *extra: str) -> Config:
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


WATCHDOG_ENV = {"WATCHDOG_USEC": "2000000"}  # the shipped unit's WatchdogSec=2s


def test_a_lasting_adc_fault_keeps_the_watchdog_fed(small_model: Path, tmp_path: Path) -> None:
    """3 s without DRDY (longer than WatchdogSec): before, the pings stopped at the fault
    and systemd would have killed the daemon mid-walk; now the gate stays in charge."""
    from emgd.service.runner import Daemon

    config = config_for(
        small_model,
        tmp_path,
        "simulation.fault=no_drdy",
        "simulation.fault_at_s=1.0",
        "simulation.fault_duration_s=3.0",
    )
    states: list[str] = []
    with notify_socket(tmp_path / "notify") as got:
        daemon = Daemon(config, env={"NOTIFY_SOCKET": str(tmp_path / "notify"), **WATCHDOG_ENV})
        try:
            daemon.start()

            def watch() -> bool:
                states.append(daemon.status()["state"])
                return False

            daemon.run(watch, duration_s=4.0)
        finally:
            daemon.shutdown()
    assert "fault" in states  # the fault was seen, and lasted
    assert largest_ping_gap_s(got) < 1.5  # half the 2 s watchdog, with room for load


def test_a_dead_acquisition_process_ends_the_run_at_the_safe_pose(
    small_model: Path, tmp_path: Path
) -> None:
    from emgd.service.runner import Daemon

    config = config_for(small_model, tmp_path)
    with notify_socket(tmp_path / "notify") as got:
        daemon = Daemon(config, env={"NOTIFY_SOCKET": str(tmp_path / "notify"), **WATCHDOG_ENV})
        try:
            daemon.start()
            assert daemon._acq is not None
            pid = daemon._acq._process.pid
            assert pid is not None
            started = time.monotonic()
            killed: list[float] = []

            def kill_at_1s() -> bool:
                if not killed and time.monotonic() - started > 1.0:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(time.monotonic())
                return False

            with pytest.raises(HardwareIOError, match="acquisition process stopped"):
                daemon.run(kill_at_1s, duration_s=15.0)
            assert daemon._safety is not None
            safe = daemon._safety.safe_pose_deg
            assert np.all(np.abs(daemon._safety.commanded_deg - safe) < 0.5)
            # Ended by the daemon itself, well before the 15 s run would have ended.
            assert time.monotonic() - killed[0] < 6.0
        finally:
            daemon.shutdown()
    assert largest_ping_gap_s(got) < 1.5
