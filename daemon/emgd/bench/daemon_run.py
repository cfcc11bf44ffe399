"""One measured run of the real daemon: spawn, wait for READY, watch, ask status, stop.

This module owns running ``emgd run --simulate`` as systemd would, as a separate process
with ``$NOTIFY_SOCKET`` pointing at a datagram socket of ours: start-up time is the time
from spawning it to its ``READY=1``, through the same sd_notify path the service uses.
While it runs, a :class:`~emgd.bench.procstat.TreeMonitor` samples CPU and memory of all
its processes; at the end the daemon's own ``status`` (whole-run latency histograms,
sample counters) is read over its real Unix socket, then SIGTERM stops it as systemd
would. Runtime and state folders are temporary; nothing outside them is touched. It does
not compute percentiles, judge targets or print anything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emgd.bench.flood import Flooder
from emgd.bench.procstat import ProcReading, TreeMonitor
from emgd.client.status_client import StatusClient
from emgd.clock import NS_PER_S, Clock
from emgd.errors import EmgdError

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
STATUS_TIMEOUT_S = 10.0
DEFAULT_POLL_S = 0.5
LOG_TAIL_LINES = 12
NOTIFY_READ_BYTES = 4096
SIMULATOR_PROCESS_NAMES = frozenset({"emgd-wearer"})
#: multiprocessing's fork server exists only to start the simulated wearer's renderer.
SIMULATOR_CMDLINE_MARK = "multiprocessing.forkserver"


class BenchError(EmgdError, RuntimeError):
    """The daemon under test did not start, answer or stop."""


@dataclass(frozen=True)
class DaemonRunResult:
    """What one run measured.

    Attributes
    ----------
    ready_s:
        Spawn to ``READY=1``.
    measured_s:
        READY to the final status (the window of the CPU figures).
    status:
        The daemon's final ``status`` snapshot.
    processes:
        :meth:`TreeMonitor.summary` over the measured window.
    exit_code:
        The daemon's exit status after SIGTERM.
    log_tail:
        Its last journal lines.
    load:
        What the load client did during the run (:meth:`Flooder.summary`), if one ran.
    """

    overrides: tuple[str, ...]
    ready_s: float
    measured_s: float
    status: dict[str, Any]
    processes: dict[str, Any]
    exit_code: int
    log_tail: tuple[str, ...]
    load: dict[str, Any] | None = None


def process_group(reading: ProcReading) -> str:
    """``"simulator"`` for processes that exist only on the simulated board, else ``"daemon"``.

    The acquisition process stays ``"daemon"`` although on the simulated board it also
    runs the simulated chip: that part cannot be told apart from outside.
    """
    if reading.name in SIMULATOR_PROCESS_NAMES or SIMULATOR_CMDLINE_MARK in reading.cmdline:
        return "simulator"
    return "daemon"


def daemon_command(overrides: Sequence[str], runtime_dir: Path, state_dir: Path) -> list[str]:
    """``python -m emgd run --simulate`` with the bench's folders and ``--set`` overrides."""
    argv = [sys.executable, "-m", "emgd", "run", "--simulate"]
    for item in (f"daemon.runtime_dir={runtime_dir}", f"daemon.state_dir={state_dir}"):
        argv += ["--set", item]
    for item in overrides:
        argv += ["--set", item]
    return argv


def _tail(path: Path) -> tuple[str, ...]:
    with contextlib.suppress(OSError):
        return tuple(path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
    return ()


def _wait_ready(
    notify: socket.socket, proc: subprocess.Popen[bytes], clock: Clock, timeout_s: float
) -> int:
    """Monotonic ns when ``READY=1`` arrived; raises if the daemon exits or times out."""
    deadline_ns = clock.monotonic_ns() + round(timeout_s * NS_PER_S)
    notify.settimeout(0.1)
    while True:
        try:
            message = notify.recv(NOTIFY_READ_BYTES)
        except TimeoutError:
            message = b""
        if b"READY=1" in message.split(b"\n"):
            return clock.monotonic_ns()
        if proc.poll() is not None:
            raise BenchError(f"the daemon exited with status {proc.returncode} before READY")
        if clock.monotonic_ns() >= deadline_ns:
            raise BenchError(f"the daemon sent no READY=1 within {timeout_s:g} s")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def run_daemon(
    overrides: Sequence[str],
    duration_s: float,
    clock: Clock,
    *,
    poll_s: float = DEFAULT_POLL_S,
    ready_timeout_s: float = READY_TIMEOUT_S,
    load: Callable[[Path], Flooder] | None = None,
) -> DaemonRunResult:
    """Run the daemon for ``duration_s`` after READY and measure it.

    Parameters
    ----------
    overrides:
        ``SECTION.KEY=VALUE`` options (e.g. ``adc.sample_rate_hz=2000``).
    duration_s:
        How long to let it run after READY.
    clock:
        Times start-up and the run.
    poll_s:
        How often CPU and memory are sampled.
    load:
        Makes a client that loads the status socket (given its path) for the measured
        window, started at READY and stopped before the final status.

    Notes
    -----
    The daemon inherits this process's CPU affinity (``emgd bench --cores``).

    Raises
    ------
    BenchError
        The daemon did not start, answer status or stop; the message quotes its last log line.
    """
    with tempfile.TemporaryDirectory(prefix="emgd-bench-") as folder:
        base = Path(folder)
        runtime_dir, state_dir, log_path = base / "run", base / "state", base / "daemon.log"
        argv = daemon_command(overrides, runtime_dir, state_dir)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify_path = base / "notify"
        notify.bind(str(notify_path))
        env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_USEC", "WATCHDOG_PID")}
        env["NOTIFY_SOCKET"] = str(notify_path)

        with notify, log_path.open("wb") as log_file:
            spawned_ns = clock.monotonic_ns()
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env
            )
            flooder: Flooder | None = None
            try:
                ready_ns = _wait_ready(notify, proc, clock, ready_timeout_s)
                monitor = TreeMonitor(proc.pid, clock.monotonic_ns, group_of=process_group)
                monitor.start()
                if load is not None:
                    flooder = load(runtime_dir / "emgd.sock")
                    flooder.__enter__()
                end_ns = ready_ns + round(duration_s * NS_PER_S)
                poll_ns = round(poll_s * NS_PER_S)
                while (now_ns := clock.monotonic_ns()) < end_ns:
                    if proc.poll() is not None:
                        raise BenchError(f"the daemon exited with status {proc.returncode}")
                    clock.sleep_until_ns(min(end_ns, now_ns + poll_ns))
                    monitor.sample()
                if flooder is not None:
                    flooder.stop()
                with StatusClient(runtime_dir / "emgd.sock", STATUS_TIMEOUT_S) as client:
                    status = client.call("status", {"since_start": True})
                measured_ns = clock.monotonic_ns()
                monitor.sample()
                if not isinstance(status, dict):
                    raise BenchError(f"status answered {type(status).__name__}, not an object")
            except BaseException as exc:
                if flooder is not None:
                    flooder.stop()
                _stop(proc)
                if isinstance(exc, BenchError | EmgdError):
                    tail = _tail(log_path)
                    last = f"; its last line: {tail[-1]}" if tail else ""
                    raise BenchError(f"{exc}{last}") from exc
                raise
            exit_code = _stop(proc)
        return DaemonRunResult(
            overrides=tuple(overrides),
            ready_s=(ready_ns - spawned_ns) / NS_PER_S,
            measured_s=(measured_ns - ready_ns) / NS_PER_S,
            status=status,
            processes=monitor.summary(),
            exit_code=exit_code,
            log_tail=_tail(log_path),
            load=None if flooder is None else flooder.summary(),
        )
