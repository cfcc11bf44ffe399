"""The acquisition process: the ADC driver alone in its own process, frames into shared memory.

The ADS1299 has no FIFO: a frame not read before the next DRDY is lost. In one Python
process, filtering, inference and socket handling hold the GIL (switch interval 5 ms) and
starve a reading thread, so the driver runs in a **spawned process** that does nothing
else: it asks for real-time scheduling, a CPU and locked memory where permitted (and says
so when not), freezes the garbage collector, then reads frame after frame into a
:class:`~emgd.service.shm_ring.SharedFrameRing`. On the simulated board the simulated chip and the
synthetic wearer live in that process too, and the wearer's intended angles travel with
each frame.

The parent talks to it through :class:`AcquisitionProcess`: start (waits for the chip to be
initialised, re-raising the child's error with its class and message), read new frames,
counters, liveness, stop. This module owns the process; the control loop owns the rest.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import logging
import math
import multiprocessing
import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event, Lock
from typing import Any

import numpy as np

from emgd import errors
from emgd.clock import SystemClock
from emgd.config import Config
from emgd.errors import ConfigError, EmgdError, HardwareIOError
from emgd.hw.interfaces import AcquisitionStats
from emgd.poses import pose_angles_deg
from emgd.service.shm_ring import (
    STATE_FAILED,
    STATE_RUNNING,
    STATE_STOPPED,
    RingBatch,
    RingLayout,
    SharedFrameRing,
)

log = logging.getLogger("emgd.acquisition")

#: Seconds of frames the ring holds: the control loop may stall this long without loss.
RING_SECONDS = 4.0
#: No sample for this long makes the child check the registers and re-initialise the chip.
RECOVER_AFTER_S = 0.25
#: How long the child may take to initialise the chip (ADS1299 needs ~0.3 s of delays).
START_TIMEOUT_S = 30.0
FRAME_TIMEOUT_S = 0.1
#: Counters and the liveness stamp are published every this many frames.
STATS_EVERY_FRAMES = 16
#: The simulated wearer's intent is sampled this often (frames in between reuse it): once
#: per 20 ms hop is all the loop reads, and one evaluation of the trajectory takes
#: 80-300 us here, more than a 4 kSPS period.
INTENT_EVERY_S = 0.02
ACQUISITION_PROCESS_NAME = "emgd-acquire"
MCL_CURRENT = 1
MCL_FUTURE = 2
#: Lock pages as they are first touched rather than every mapped page now (Linux 4.4+):
#: without it, mlockall pulls whole shared libraries into RAM (330 MiB instead of 100 MiB
#: for this process with numpy and scipy loaded), pages that the loop never touches.
MCL_ONFAULT = 4


@dataclass(frozen=True)
class RealtimeRequest:
    """What the acquisition process asks of the kernel (each is best effort)."""

    fifo_priority: int = 0  # SCHED_FIFO priority 1-99; 0 leaves the policy alone
    cpu: int | None = None  # pin to this CPU
    lock_memory: bool = False  # mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)


@dataclass(frozen=True)
class AcquisitionInfo:
    """What the child reports once the chip runs."""

    description: str
    n_channels: int
    sample_rate_hz: float
    realtime_notes: tuple[str, ...]
    pid: int


class AcquisitionProcess:
    """Owns the acquisition child process and the reading end of its ring.

    Parameters
    ----------
    config:
        The validated configuration (the ADC side is opened from it in the child).
    realtime:
        Scheduling requests for the child.
    """

    def __init__(self, config: Config, realtime: RealtimeRequest | None = None) -> None:
        self._config = config
        self._realtime = realtime or RealtimeRequest()
        capacity = max(64, round(config.adc.sample_rate_hz * RING_SECONDS))
        self._ring = SharedFrameRing(RingLayout(capacity, config.adc.channels))
        ctx = multiprocessing.get_context("spawn")
        self._stop: Event = ctx.Event()
        self._conn, child_conn = ctx.Pipe(duplex=False)
        cues_in, self._cues = ctx.Pipe(duplex=False)  # parent -> child: wearer cues
        self._process = ctx.Process(
            target=_child_main,
            args=(config, self._ring.handle(), self._stop, child_conn, self._realtime),
            kwargs={"cues": cues_in},
            name="emgd-acquisition",
        )
        self._child_conn = child_conn
        self._cues_in = cues_in
        self.info: AcquisitionInfo | None = None

    @property
    def ring(self) -> SharedFrameRing:
        return self._ring

    def start(self, timeout_s: float = START_TIMEOUT_S) -> AcquisitionInfo:
        """Start the child and wait until its chip streams; re-raise its error if it fails."""
        self.spawn()
        return self.wait_ready(timeout_s)

    def spawn(self) -> None:
        """Start the child without waiting (it imports and opens the chip meanwhile)."""
        self._process.start()
        self._child_conn.close()
        self._cues_in.close()

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> AcquisitionInfo:
        """Wait until the spawned child's chip streams; re-raise its error if it fails."""
        if not self._conn.poll(timeout_s):
            self.stop()
            raise HardwareIOError(f"acquisition process did not start within {timeout_s:g} s")
        try:
            message = self._conn.recv()
        except EOFError:
            self.stop()
            raise HardwareIOError(
                f"acquisition process exited during start-up (exit code {self._process.exitcode})"
            ) from None
        if message[0] == "error":
            self.stop()
            raise _rebuild_error(message[1], message[2])
        self.info = message[1]
        assert self.info is not None
        return self.info

    def cue(self, pose: str, effort: float) -> None:
        """Cue the simulated wearer (``pose`` at ``effort`` 0-1), from its current stream time.

        The child applies it between frames (within :data:`INTENT_EVERY_S`); a wearer that
        takes no cues, or real hardware, ignores it. A child that is gone is not an error
        here (the control loop notices that).

        Raises
        ------
        ConfigError
            An unknown pose or an effort outside ``[0, 1]``.
        """
        check_cue(pose, effort)
        with contextlib.suppress(OSError):
            self._cues.send((pose, float(effort)))

    def read_new(self, max_frames: int | None = None) -> RingBatch:
        """Frames published since the last call."""
        return self._ring.read_new(max_frames)

    def frames_pending(self) -> int:
        """Frames published and not read yet."""
        return self._ring.frames_pending

    def stats(self) -> AcquisitionStats:
        return self._ring.writer_stats()

    @property
    def recoveries(self) -> int:
        """How often the child re-initialised the chip after a fault."""
        return self._ring.recoveries

    def alive(self) -> bool:
        return self._process.is_alive() and self._ring.state == STATE_RUNNING

    def failure(self) -> EmgdError | None:
        """The child's error after it stopped on one, else None."""
        if self._conn.poll():
            try:
                message = self._conn.recv()
            except EOFError:
                return None
            if message[0] == "error":
                return _rebuild_error(message[1], message[2])
        return None

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the child to stop, wait, and free the ring."""
        self._stop.set()
        if self._process.pid is not None:
            self._process.join(timeout_s)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(1.0)
        self._conn.close()
        self._cues.close()
        self._ring.close()


def check_cue(pose: str, effort: float) -> None:
    """Raise :class:`ConfigError` naming a cue's unknown pose or out-of-range effort."""
    pose_angles_deg(pose)  # ConfigError naming an unknown pose
    if not (isinstance(effort, int | float) and math.isfinite(effort) and 0.0 <= effort <= 1.0):
        raise ConfigError(f"wearer cue {pose!r}: effort must be a number in [0, 1], got {effort!r}")


def _apply_cues(cues: Connection | None, wearer: object) -> None:
    """Hand every pending cue to the simulated wearer (never blocks; bad cues are logged)."""
    from emgd.sim.cued import cue_source

    while cues is not None and cues.poll():
        try:
            pose, effort = cues.recv()
        except (EOFError, OSError):
            return
        if wearer is None:
            continue  # real hardware: nothing to cue
        try:
            cue_source(wearer, pose, effort)
        except ConfigError as exc:
            log.warning("acquisition: wearer cue refused: %s", exc)


class _FaultSchedule:
    """Applies ``[simulation] fault`` to the simulated chip at its time (tests, demos)."""

    def __init__(self, config: Config, chip: object, start_ns: int) -> None:
        sim = config.simulation
        injectable = chip is not None and hasattr(chip, "inject_reset")
        self._kind = sim.fault if injectable else "none"
        if sim.fault != "none" and not injectable:
            log.warning("simulation.fault = %r needs the simulated ADS1299; ignored", sim.fault)
        self._chip: Any = chip
        self._begin_ns = start_ns + round(sim.fault_at_s * 1e9)
        self._end_ns = self._begin_ns + round(sim.fault_duration_s * 1e9)
        self._phase = 0  # 0 before, 1 during, 2 after

    def apply(self, now_ns: int) -> None:
        if self._kind == "none" or self._phase == 2:
            return
        if self._phase == 0 and now_ns >= self._begin_ns:
            self._phase = 1
            log.warning("simulation: injecting fault %r", self._kind)
            if self._kind == "no_drdy":
                self._chip.inject_no_drdy(True)
            elif self._kind == "garbage":
                rate = self._chip.sample_rate_hz or 1000.0
                self._chip.inject_garbage(max(1, round(rate * (self._end_ns - now_ns) / 1e9)))
            elif self._kind == "reset":
                self._chip.inject_reset()
                self._phase = 2
        elif self._phase == 1 and now_ns >= self._end_ns:
            self._phase = 2
            if self._kind == "no_drdy":
                self._chip.inject_no_drdy(False)
            elif self._kind == "garbage":
                self._chip.clear_garbage()


def _recover(adc: Any, ring: SharedFrameRing) -> None:
    """Stop, re-initialise (chip ID, every register read back) and restart the ADC."""
    ring.count_recovery()
    try:
        adc.stop()
    except EmgdError as exc:
        log.warning("acquisition: stop during recovery failed: %s", exc)
    if hasattr(adc, "initialize"):
        adc.initialize()
    adc.start()


def _rebuild_error(class_name: str, message: str) -> EmgdError:
    cls = getattr(errors, class_name, None)
    if isinstance(cls, type) and issubclass(cls, EmgdError):
        return cls(message)
    return HardwareIOError(message)


def apply_realtime(request: RealtimeRequest) -> tuple[str, ...]:
    """Apply what is permitted; return one note per request that was refused or skipped."""
    notes: list[str] = []
    if request.cpu is not None:
        try:
            os.sched_setaffinity(0, {request.cpu})
        except (OSError, ValueError) as exc:
            notes.append(f"could not pin to CPU {request.cpu}: {exc}")
    if request.fifo_priority:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(request.fifo_priority))
        except PermissionError:
            notes.append(
                f"SCHED_FIFO {request.fifo_priority} not permitted (needs CAP_SYS_NICE or "
                "LimitRTPRIO=; the systemd unit grants it): running at normal priority"
            )
        except OSError as exc:
            notes.append(f"SCHED_FIFO {request.fifo_priority} refused: {exc}")
    if request.lock_memory:
        libc = ctypes.CDLL(None, use_errno=True)
        locked = libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0
        if not locked and ctypes.get_errno() == errno.EINVAL:  # a kernel before 4.4
            locked = libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0
        if not locked:
            err = ctypes.get_errno()
            notes.append(
                f"mlockall failed ({os.strerror(err)}; needs LimitMEMLOCK=infinity): "
                "pages may be swapped"
            )
    return tuple(notes)


def _child_main(
    config: Config,
    handle: tuple[RingLayout, str, Lock],
    stop: Event,
    conn: Connection,
    realtime: RealtimeRequest,
    *,
    cues: Connection | None = None,
) -> None:
    """Entry point of the acquisition process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from emgd.logsetup import setup_logging
    from emgd.procname import set_process_name

    set_process_name(ACQUISITION_PROCESS_NAME)

    setup_logging()
    layout, name, lock = handle
    ring = SharedFrameRing(layout, name=name, lock=lock)
    clock = SystemClock()
    adc_side: Any = None
    try:
        from emgd.service.board import open_adc_side

        notes = apply_realtime(realtime)
        adc_side = open_adc_side(config, clock)
        adc = adc_side.adc
        wearer = adc_side.wearer
        if wearer is not None and hasattr(wearer, "wait_rendered"):
            wearer.wait_rendered()  # the simulated wearer's first samples, before the chip runs
        # Collect before the first conversion: a full collection here took ~40 ms, which
        # at 1 kSPS is 40 frames lost before the first read.
        gc.collect()
        gc.freeze()
        adc.start()
        ring.set_state(STATE_RUNNING)
        conn.send(
            (
                "ready",
                AcquisitionInfo(
                    description=adc_side.description,
                    n_channels=adc.n_channels,
                    sample_rate_hz=adc.sample_rate_hz,
                    realtime_notes=notes,
                    pid=os.getpid(),
                ),
            )
        )
        intent = None
        n = 0
        intent_every_frames = max(1, round(adc.sample_rate_hz * INTENT_EVERY_S))
        faults = _FaultSchedule(config, adc_side.chip, clock.monotonic_ns())
        quiet_since_ns: int | None = None
        while not stop.is_set():
            now_ns = clock.monotonic_ns()
            faults.apply(now_ns)
            reason = ""
            try:
                frame = adc.read_frame(FRAME_TIMEOUT_S)
            except HardwareIOError as exc:
                frame, reason = None, str(exc)
            if frame is not None:
                quiet_since_ns = None
                if n % intent_every_frames == 0:
                    _apply_cues(cues, wearer)
                if wearer is not None and n % intent_every_frames == 0:
                    intent = np.asarray(wearer.target_angles_deg(), dtype=np.float32)
                ring.write(frame, intent)
                n += 1
            elif not reason:
                quiet_since_ns = quiet_since_ns or now_ns
                quiet_s = (now_ns - quiet_since_ns) / 1e9
                if quiet_s >= RECOVER_AFTER_S:
                    mismatches: list[str] = getattr(adc, "verify_registers", list)()
                    reason = f"no samples for {quiet_s:.2f} s" + (
                        f" (registers: {'; '.join(mismatches)})" if mismatches else ""
                    )
            if reason:
                log.error("acquisition: %s; re-initialising the ADC", reason)
                try:
                    _recover(adc, ring)
                except EmgdError as exc:
                    log.error("acquisition: re-initialisation failed: %s; retrying", exc)
                    stop.wait(RECOVER_AFTER_S)
                quiet_since_ns = None
            if frame is None or n % STATS_EVERY_FRAMES == 0:
                ring.publish_stats(adc.stats, clock.monotonic_ns())
        ring.publish_stats(adc.stats, clock.monotonic_ns())
        ring.set_state(STATE_STOPPED)
    except BaseException as exc:  # report every failure to the parent, then exit non-zero
        ring.set_state(STATE_FAILED)
        text = str(exc) or type(exc).__name__
        with contextlib.suppress(OSError):
            conn.send(("error", type(exc).__name__, text))
        raise SystemExit(errors.exit_code_for(exc)) from None
    finally:
        if adc_side is not None:
            adc_side.close()
        ring.close()
        conn.close()
        if cues is not None:
            cues.close()
