"""Synthetic EMG rendered ahead of time in a child process, served by copying (a SignalSource).

This module owns :class:`PrefetchedSource`: a :class:`~emgd.sim.synthetic_emg.SyntheticEmg`
that lives in a separate process (started with ``forkserver`` or ``spawn``, both safe once
threads exist), renders the stream a configurable lead ahead of the consumer into a ring of
shared-memory slots, so that ``generate`` in the acquisition thread only copies samples that
are already made (no system call unless it has to wait). Output is bit-identical to an
in-process generator built from the same :class:`SyntheticEmgSpec` and fed the same sequence
of ``generate`` calls, rate changes included: the child pickles the generator before each
chunk, and on a rate change it rewinds to the consumer's exact position and goes on at the
new rate. It must not render anything in the parent, know about ADC chips or buses, or read
a clock: every wait is a bounded semaphore or pipe wait.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import pickle
import signal
import struct
import sys
import weakref
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Semaphore
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from emgd.errors import ConfigError, HardwareInitError, HardwareIOError
from emgd.hw.interfaces import FloatArray
from emgd.procname import set_process_name
from emgd.sim.motor_units import DEFAULT_CO_CONTRACTION, DEFAULT_UNITS_PER_MUSCLE
from emgd.sim.synthetic_emg import (
    BLOCK_S,
    DEFAULT_ARTEFACT_RATE_HZ,
    DEFAULT_ARTEFACT_UV,
    DEFAULT_DC_OFFSET_UV,
    DEFAULT_FULL_EFFORT_RMS_UV,
    DEFAULT_MAINS_HZ,
    DEFAULT_MAINS_UV,
    DEFAULT_N_CHANNELS,
    DEFAULT_NOISE_RMS_UV,
    MAX_SAMPLE_RATE_HZ,
    SyntheticEmg,
)
from emgd.sim.trajectory import Trajectory

# --- defaults -----------------------------------------------------------------------------
RENDERER_PROCESS_NAME = "emgd-wearer"  # the simulated wearer's EMG renderer
DEFAULT_LEAD_S = 0.5  # how far ahead of the consumer the child renders
DEFAULT_CHUNK_S = BLOCK_S  # one ring slot = one internal render block of the generator
MIN_SLOTS = 2  # so the child refills one slot while the parent drains another
#: Slots hold ``chunk_s`` of stream up to this rate; above it chunks (and the lead) shrink.
RING_SIZING_RATE_HZ = 16_000.0
DEFAULT_TIMEOUT_S = 5.0  # longest wait for one chunk before generate gives up
DEFAULT_STARTUP_TIMEOUT_S = 60.0  # interpreter start + numpy/scipy import on a slow Pi
WAIT_SLICE_S = 0.05  # a waiting parent checks on the child this often
CHILD_POLL_S = 0.02  # a child with a full ring looks for commands this often
CLOSE_JOIN_TIMEOUT_S = 2.0
KILL_JOIN_TIMEOUT_S = 1.0
START_METHODS: Final = ("forkserver", "spawn")  # "fork" is unsafe once threads exist

# --- shared ring ----------------------------------------------------------------------------
# samples: float64[n_slots, slot_samples, n_channels], µV; slot k holds one chunk in rows
#          0 .. n-1 (row-major, so a chunk is one contiguous block).
# headers: int64[n_slots, 3] = (epoch, index of the chunk's first sample in its epoch, n).
# Semaphores: `free` counts slots the child may fill (starts at n_slots), `filled` counts
# slots the parent may read (starts at 0). Both sides walk the slots in order 0, 1, ...
HEADER_EPOCH, HEADER_START, HEADER_N = 0, 1, 2
HEADER_FIELDS = 3

# --- pipe messages (rare: start-up, rate changes, errors, stop) --------------------------------
# Parent -> child, one send_bytes of 26 bytes:
#   [0]      u8     command (CMD_SEEK or CMD_STOP)
#   [1:9]    i64 LE CMD_SEEK: the new epoch
#   [9:17]   i64 LE CMD_SEEK: samples the consumer took in the old epoch
#   [17:25]  f64 LE CMD_SEEK: the new sample rate (Hz)
#   [25]     u8     CMD_SEEK: 1 if the consumer called generate at the old epoch's rate
#                   (only the first epoch, started from the rate hint, may have 0 here)
_COMMAND = struct.Struct("<Bqqd?")
CMD_SEEK: Final = 1
CMD_STOP: Final = 2
# CMD_CUE: the 26 bytes of a seek to the epoch's own rate, then f64 LE effort, f64 LE the
# cue's stream time (s), and the pose name in UTF-8: rewind, cue the trajectory, go on.
CMD_CUE: Final = 3
_CUE = struct.Struct("<dd")
# Child -> parent, one send_bytes: [0] u8 message (MSG_READY or MSG_ERROR), then for
# MSG_ERROR the UTF-8 text "ExceptionClass\nmessage".
MSG_READY: Final = 1
MSG_ERROR: Final = 2


@dataclass(frozen=True)
class SyntheticEmgSpec:
    """Picklable parameters of a :class:`~emgd.sim.synthetic_emg.SyntheticEmg`.

    The fields are the generator's constructor arguments (see its docstring); the
    trajectory must be picklable (all trajectories in :mod:`emgd.sim.trajectory` are).
    """

    trajectory: Trajectory
    n_channels: int = DEFAULT_N_CHANNELS
    seed: int = 0
    mains_hz: float = DEFAULT_MAINS_HZ
    mains_uv: float = DEFAULT_MAINS_UV
    noise_rms_uv: float = DEFAULT_NOISE_RMS_UV
    dc_offset_uv: float = DEFAULT_DC_OFFSET_UV
    artefact_rate_hz: float = DEFAULT_ARTEFACT_RATE_HZ
    artefact_uv: float = DEFAULT_ARTEFACT_UV
    full_effort_rms_uv: float = DEFAULT_FULL_EFFORT_RMS_UV
    units_per_muscle: tuple[int, int] = DEFAULT_UNITS_PER_MUSCLE
    co_contraction: float = DEFAULT_CO_CONTRACTION
    donning: int = 0

    def build(self) -> SyntheticEmg:
        """A fresh in-process generator with these parameters (at stream time 0)."""
        return SyntheticEmg(
            self.trajectory,
            n_channels=self.n_channels,
            seed=self.seed,
            mains_hz=self.mains_hz,
            mains_uv=self.mains_uv,
            noise_rms_uv=self.noise_rms_uv,
            dc_offset_uv=self.dc_offset_uv,
            artefact_rate_hz=self.artefact_rate_hz,
            artefact_uv=self.artefact_uv,
            full_effort_rms_uv=self.full_effort_rms_uv,
            units_per_muscle=self.units_per_muscle,
            co_contraction=self.co_contraction,
            donning=self.donning,
        )


@dataclass(frozen=True)
class _Ring:
    """The shared slots and their semaphores (picklable only while starting the child)."""

    samples_raw: Any  # ctypes c_double array in shared memory
    headers_raw: Any  # ctypes c_longlong array in shared memory
    n_slots: int
    slot_samples: int
    n_channels: int
    free: Semaphore
    filled: Semaphore

    def views(self) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        """Views: samples ``(n_slots, slot_samples, n_channels)``, headers ``(n_slots, 3)``."""
        samples = np.frombuffer(self.samples_raw, dtype=np.float64).reshape(
            self.n_slots, self.slot_samples, self.n_channels
        )
        headers = np.frombuffer(self.headers_raw, dtype=np.int64).reshape(
            self.n_slots, HEADER_FIELDS
        )
        return samples, headers


@dataclass(frozen=True)
class _ChildJob:
    """Everything the child process starts from."""

    spec: SyntheticEmgSpec
    ring: _Ring
    first_rate_hz: float  # 0.0: wait for the first seek
    chunk_s: float
    background: bool


def _check_rate(where: str, sample_rate_hz: float) -> float:
    fs = float(sample_rate_hz)
    if not (math.isfinite(fs) and 0.0 < fs <= MAX_SAMPLE_RATE_HZ):
        raise ConfigError(
            f"{where}: sample_rate_hz must be in (0, {MAX_SAMPLE_RATE_HZ:g}], "
            f"got {sample_rate_hz!r}"
        )
    return fs


def _check_positive(where: str, name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise ConfigError(f"{where}: {name} must be a finite number > 0, got {value!r}")


class PrefetchedSource:
    """A synthetic wearer rendered in a child process, a lead ahead of the consumer.

    Implements ``SignalSource`` plus :attr:`time_s`, :meth:`target_angles_deg` and
    :meth:`close`, with results bit-identical to ``spec.build()`` used in-process.

    Parameters
    ----------
    spec:
        The generator's parameters (pickled to the child).
    sample_rate_hz:
        The rate the first ``generate`` call is expected to use, so the child starts
        rendering at once; ``None`` waits for the first call. A wrong guess costs a rewind.
    lead_s:
        How far ahead of the consumer the child renders (seconds of stream; the ring has
        ``max(2, ceil(lead_s / chunk_s))`` slots).
    chunk_s:
        Seconds of stream per slot, up to :data:`RING_SIZING_RATE_HZ` (or
        ``sample_rate_hz`` if higher); faster rates get proportionally shorter chunks.
    timeout_s:
        Longest wait for one chunk in ``generate`` before :class:`HardwareIOError`.
    startup_timeout_s:
        Longest wait for the child to import and build the generator.
    start_method:
        ``"forkserver"`` (default where available) or ``"spawn"``.
    background:
        Run the child under Linux's ``SCHED_BATCH`` policy: waking up to render, it never
        preempts the acquisition thread on a shared core, yet it keeps its fair share of a
        busy CPU (a high nice value or ``SCHED_IDLE`` starved it on a loaded 2-core box).

    Raises
    ------
    ConfigError
        Bad parameters (including those the child's generator refuses), or a spec that
        cannot be pickled.
    HardwareInitError
        The child did not come up within ``startup_timeout_s`` or failed while starting.
    """

    def __init__(
        self,
        spec: SyntheticEmgSpec,
        *,
        sample_rate_hz: float | None = None,
        lead_s: float = DEFAULT_LEAD_S,
        chunk_s: float = DEFAULT_CHUNK_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
        start_method: str | None = None,
        background: bool = True,
    ) -> None:
        where = "PrefetchedSource"
        for name, value in (
            ("lead_s", lead_s),
            ("chunk_s", chunk_s),
            ("timeout_s", timeout_s),
            ("startup_timeout_s", startup_timeout_s),
        ):
            _check_positive(where, name, value)
        hint_hz = 0.0 if sample_rate_hz is None else _check_rate(where, sample_rate_hz)
        n_channels = spec.n_channels
        if not (isinstance(n_channels, int) and n_channels >= 1):
            raise ConfigError(f"{where}: n_channels must be an integer >= 1, got {n_channels!r}")
        ctx = _context(start_method)
        self._trajectory = spec.trajectory
        self._n_channels = n_channels
        self._lead_s = lead_s
        self._wait_slices = max(1, math.ceil(timeout_s / WAIT_SLICE_S))
        self._timeout_s = timeout_s
        self._closed = False
        # Mirror of the in-process generator's stream time (same arithmetic, same floats).
        self._fs_hz = 0.0
        self._seg_start_s = 0.0
        self._seg_served = 0
        # Protocol state: an epoch is a run of chunks at one rate, numbered by the parent.
        self._epoch = 0
        self._epoch_fs_hz = hint_hz
        self._epoch_received = 0  # samples of this epoch taken out of the ring
        self._rate_changes = 0
        self._slot = 0  # next slot to read
        self._chunk_slot = -1  # slot being copied from, -1 if none
        self._chunk_n = 0
        self._chunk_pos = 0

        n_slots = max(MIN_SLOTS, math.ceil(lead_s / chunk_s - 1e-9))
        slot_samples = max(1, round(chunk_s * max(hint_hz, RING_SIZING_RATE_HZ)))
        ring = _Ring(
            samples_raw=ctx.RawArray("d", n_slots * slot_samples * n_channels),
            headers_raw=ctx.RawArray("q", n_slots * HEADER_FIELDS),
            n_slots=n_slots,
            slot_samples=slot_samples,
            n_channels=n_channels,
            free=ctx.Semaphore(n_slots),
            filled=ctx.Semaphore(0),
        )
        self._ring = ring
        self._samples, self._headers = ring.views()

        parent_conn, child_conn = ctx.Pipe(duplex=True)
        process = ctx.Process(
            target=_child_main,
            args=(child_conn, _ChildJob(spec, ring, hint_hz, chunk_s, background)),
            name="emgd-prefetch",
            daemon=True,
        )
        try:
            process.start()
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            parent_conn.close()
            child_conn.close()
            raise ConfigError(
                f"{where}: the generator spec cannot be sent to the child process ({exc})"
            ) from None
        child_conn.close()  # so the parent sees EOF when the child dies
        self._process: BaseProcess = process
        self._conn: Connection = parent_conn
        self._finalizer = weakref.finalize(self, _shutdown, process, parent_conn)
        try:
            self._wait_ready(startup_timeout_s)
        except BaseException:
            self.close()
            raise

    # --- properties -----------------------------------------------------------------------

    @property
    def n_channels(self) -> int:
        return self._n_channels

    @property
    def time_s(self) -> float:
        """Stream time of the next sample to be generated (seconds)."""
        if self._fs_hz == 0.0:
            return self._seg_start_s
        return self._seg_start_s + self._seg_served / self._fs_hz

    @property
    def lead_s(self) -> float:
        return self._lead_s

    @property
    def child_pid(self) -> int | None:
        """Process id of the generator process (``None`` once closed)."""
        return None if self._closed else self._process.pid

    @property
    def rate_changes(self) -> int:
        """How many times the child was rewound to a new sample rate."""
        return self._rate_changes

    def cue(self, pose: str, effort: float) -> bool:
        """Cue the wearer at the consumer's stream time :attr:`time_s`.

        The trajectory (this process's copy and the child's) must have a
        ``cue(pose, effort, at_s)`` method (:class:`~emgd.sim.cued.CuedWearer`,
        :class:`~emgd.sim.person.Person`); the child rewinds to the consumer's exact sample
        and renders on with the cue applied, so the output stays bit-identical to an
        in-process generator whose trajectory is cued at the same sample. Returns False (and
        does nothing) when the trajectory takes no cues.

        Raises
        ------
        ConfigError
            A pose, effort or time the trajectory refuses (nothing is sent).
        HardwareIOError
            The source is closed or the child is gone.
        """
        cue = getattr(self._trajectory, "cue", None)
        if not callable(cue):
            return False
        if self._closed:
            raise HardwareIOError("PrefetchedSource.cue: the source is closed")
        at_s = self.time_s
        cue(pose, effort, at_s)
        self._seek(self._epoch_fs_hz, _CUE.pack(float(effort), at_s) + pose.encode())
        return True

    def target_angles_deg(self) -> FloatArray:
        """Shape ``(5,)``: the trajectory's angles at :attr:`time_s`."""
        angles: FloatArray = self._trajectory.angles_deg(np.array([self.time_s]))[0]
        return angles

    # --- streaming -------------------------------------------------------------------------

    def generate(self, n_samples: int, sample_rate_hz: float) -> FloatArray:
        """Next ``n_samples`` of the stream at ``sample_rate_hz`` (copied, never rendered).

        Blocks while the child has not yet rendered them (at most ``timeout_s`` per chunk).

        Returns
        -------
        numpy.ndarray
            Shape ``(n_samples, n_channels)``, µV at the electrodes.

        Raises
        ------
        ConfigError
            Bad ``n_samples`` or ``sample_rate_hz``.
        HardwareIOError
            The source is closed, or the child died, failed or fell ``timeout_s`` behind.
        """
        where = "PrefetchedSource.generate"
        if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer):
            raise ConfigError(f"{where}: n_samples must be an int, got {n_samples!r}")
        if n_samples < 0:
            raise ConfigError(f"{where}: n_samples must be >= 0, got {n_samples}")
        fs = _check_rate(where, sample_rate_hz)
        if self._closed:
            raise HardwareIOError(f"{where}: the source is closed")
        n = int(n_samples)
        if fs != self._fs_hz:
            if fs != self._epoch_fs_hz:
                self._seek(fs)
            self._seg_start_s = self.time_s
            self._fs_hz = fs
            self._seg_served = 0
        out = np.empty((n, self._n_channels))
        filled = 0
        while filled < n:
            if self._chunk_slot < 0:
                self._take_chunk()
            pos = self._chunk_pos
            take = min(n - filled, self._chunk_n - pos)
            out[filled : filled + take] = self._samples[self._chunk_slot, pos : pos + take]
            filled += take
            self._chunk_pos = pos + take
            self._seg_served += take
            if self._chunk_pos == self._chunk_n:
                self._release_chunk()
        return out

    def close(self) -> None:
        """Stop the child process and release the pipe (idempotent)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> PrefetchedSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- protocol ------------------------------------------------------------------------

    def _seek(self, fs: float, cue: bytes = b"") -> None:
        """Start a new epoch at ``fs`` from exactly where the consumer is (with a cue)."""
        self._epoch += 1
        consumed = self._epoch_received
        if self._chunk_slot >= 0:
            consumed -= self._chunk_n - self._chunk_pos
        try:
            entered = self._fs_hz != 0.0 and self._fs_hz == self._epoch_fs_hz
            kind = CMD_CUE if cue else CMD_SEEK
            command = _COMMAND.pack(kind, self._epoch, consumed, fs, entered)
            self._conn.send_bytes(command + cue)
        except OSError:
            raise self._died() from None
        if self._chunk_slot >= 0:
            self._release_chunk()
        self._epoch_fs_hz = fs
        self._epoch_received = 0
        if not cue:
            self._rate_changes += 1

    def _release_chunk(self) -> None:
        self._chunk_slot = -1
        self._ring.free.release()

    def wait_rendered(self) -> None:
        """Block until the child has rendered the whole lead, consuming nothing.

        Call it before the first real-time read: otherwise the first reads wait for the
        child's start-up rendering and a simulated ADC counts the conversions that pass
        meanwhile as lost frames. Each slot wait is bounded by ``timeout_s``.

        Raises
        ------
        HardwareIOError
            The source is closed, or the child died, failed or is too slow.
        """
        if self._closed:
            raise HardwareIOError("PrefetchedSource.wait_rendered: the source is closed")
        ring = self._ring
        held = 0
        try:
            for _ in range(ring.n_slots - (1 if self._chunk_slot >= 0 else 0)):
                self._wait_filled()
                held += 1
        finally:
            for _ in range(held):
                ring.filled.release()

    def _take_chunk(self) -> None:
        """Wait for the next slot of the current epoch; slots of older epochs are dropped."""
        ring = self._ring
        while True:
            self._wait_filled()
            slot = self._slot
            self._slot = (slot + 1) % ring.n_slots
            epoch, start, n = (int(v) for v in self._headers[slot])
            if epoch != self._epoch:
                ring.free.release()
                continue
            if start != self._epoch_received or not 0 < n <= ring.slot_samples:
                ring.free.release()
                raise HardwareIOError(
                    f"PrefetchedSource: slot {slot} holds {n} samples from sample {start} of "
                    f"epoch {epoch}, expected sample {self._epoch_received}"
                )
            self._chunk_slot = slot
            self._chunk_n = n
            self._chunk_pos = 0
            self._epoch_received += n
            return

    def _wait_filled(self) -> None:
        filled = self._ring.filled
        if filled.acquire(block=False):
            return
        for _ in range(self._wait_slices):
            if filled.acquire(timeout=WAIT_SLICE_S):
                return
            self._check_child()
        raise HardwareIOError(
            f"PrefetchedSource: no samples from the generator process (pid "
            f"{self._process.pid}) within {self._timeout_s:g} s"
        )

    def _check_child(self) -> None:
        """Raise if the child reported an error or is gone."""
        try:
            message = self._conn.recv_bytes() if self._conn.poll() else None
        except (EOFError, OSError):
            raise self._died() from None
        if message is not None:
            if message[0] == MSG_ERROR:
                raise HardwareIOError(
                    f"PrefetchedSource: the generator process failed: {_error_text(message)}"
                )
            raise HardwareIOError(f"PrefetchedSource: unexpected message {message[0]} from child")
        if self._process.exitcode is not None:
            raise self._died()

    def _died(self) -> HardwareIOError:
        self._process.join(KILL_JOIN_TIMEOUT_S)
        code = self._process.exitcode
        how = "is still running" if code is None else f"exited with code {code}"
        return HardwareIOError(
            f"PrefetchedSource: lost the generator process (pid {self._process.pid}), which {how}"
        )

    def _wait_ready(self, timeout_s: float) -> None:
        try:
            ready = self._conn.poll(timeout_s)
            message = self._conn.recv_bytes() if ready else b""
        except (EOFError, OSError):
            raise HardwareInitError(str(self._died())) from None
        if not ready:
            raise HardwareInitError(
                f"PrefetchedSource: the generator process (pid {self._process.pid}) was not "
                f"ready within {timeout_s:g} s"
            )
        if message[:1] == bytes([MSG_READY]):
            return
        if message[:1] == bytes([MSG_ERROR]):
            class_name, _, text = message[1:].decode("utf-8", "replace").partition("\n")
            if class_name == "ConfigError":
                raise ConfigError(text)
            raise HardwareInitError(
                f"PrefetchedSource: the generator process failed to start: {_error_text(message)}"
            )
        raise HardwareInitError(f"PrefetchedSource: unexpected message {message[:1]!r} at start")


def _error_text(message: bytes) -> str:
    class_name, _, text = message[1:].decode("utf-8", "replace").partition("\n")
    return f"{class_name}: {text}"


def _context(start_method: str | None) -> ForkServerContext | SpawnContext:
    available = multiprocessing.get_all_start_methods()
    if start_method is None:
        start_method = "forkserver" if "forkserver" in available else "spawn"
    if start_method not in START_METHODS or start_method not in available:
        usable = [m for m in START_METHODS if m in available]
        raise ConfigError(
            f"PrefetchedSource: start_method {start_method!r} is not usable here; "
            f"choose one of {', '.join(usable)}"
        )
    if start_method == "spawn":
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # Children forked from a server that already imported numpy/scipy start in ~0.1 s.
    ctx.set_forkserver_preload([__name__])
    return ctx


def _shutdown(process: BaseProcess, conn: Connection) -> None:
    """Ask the child to stop, close the pipe, and make sure it is gone (never raises)."""
    with contextlib.suppress(OSError):
        conn.send_bytes(_COMMAND.pack(CMD_STOP, 0, 0, 0.0, False))
    conn.close()
    if process.pid is None:
        return
    process.join(CLOSE_JOIN_TIMEOUT_S)
    if process.is_alive():
        process.kill()
        process.join(KILL_JOIN_TIMEOUT_S)


# --- the child process ----------------------------------------------------------------------


class _Producer:
    """The child's side: fills free slots in order, rewinds on a seek."""

    def __init__(
        self, emg: SyntheticEmg, conn: Connection, ring: _Ring, first_rate_hz: float, chunk_s: float
    ) -> None:
        self._emg = emg
        self._conn = conn
        self._ring = ring
        self._samples, self._headers = ring.views()
        self._chunk_s = chunk_s
        self._epoch = 0
        self._fs_hz = first_rate_hz  # 0.0: idle until the first seek
        self._produced = 0  # samples written in this epoch
        self._slot = 0  # next slot to write
        # The generator pickled just before each recent chunk: (first sample, state). The
        # consumer is inside one of the newest n_slots + 1 chunks of the epoch.
        self._snapshots: deque[tuple[int, bytes]] = deque(maxlen=ring.n_slots + 2)

    def run(self) -> None:
        while True:
            while self._conn.poll():
                if not self._handle(self._conn.recv_bytes()):
                    return
            if self._fs_hz == 0.0:
                if not self._handle(self._conn.recv_bytes()):  # idle: wait for a seek
                    return
            elif self._ring.free.acquire(timeout=CHILD_POLL_S):
                self._produce()

    def _handle(self, message: bytes) -> bool:
        command, epoch, position, fs, entered = _COMMAND.unpack(message[: _COMMAND.size])
        if command == CMD_STOP:
            return False
        if command not in (CMD_SEEK, CMD_CUE):
            raise RuntimeError(f"unknown command {command}")
        self._rewind_to(position, entered)
        if command == CMD_CUE:
            effort, at_s = _CUE.unpack_from(message, _COMMAND.size)
            pose = message[_COMMAND.size + _CUE.size :].decode()
            self._emg.trajectory.cue(pose, effort, at_s)  # type: ignore[attr-defined]
        self._epoch = epoch
        self._fs_hz = fs
        self._produced = 0
        self._snapshots.clear()
        return True

    def _rewind_to(self, position: int, entered: bool) -> None:
        """Put the generator where the in-process one is after ``position`` samples of this
        epoch: if the consumer ever called at this epoch's rate, its generator started a
        segment at that rate, even with zero samples, and so must this one."""
        emg, emg_at = self._emg, self._produced
        if position != self._produced:
            older = [(s, state) for s, state in self._snapshots if s <= position < self._produced]
            if not older:
                raise RuntimeError(
                    f"cannot rewind to sample {position} of epoch {self._epoch}: "
                    f"{self._produced} written, snapshots at {[s for s, _ in self._snapshots]}"
                )
            emg_at, state = older[-1]
            emg = pickle.loads(state)
        if entered:
            emg.generate(position - emg_at, self._fs_hz)
        elif position != 0:
            raise RuntimeError(f"seek to sample {position} of an epoch never entered")
        self._emg = emg

    def _produce(self) -> None:
        ring = self._ring
        n = min(ring.slot_samples, max(1, round(self._chunk_s * self._fs_hz)))
        self._snapshots.append((self._produced, pickle.dumps(self._emg, pickle.HIGHEST_PROTOCOL)))
        slot = self._slot
        self._samples[slot, :n] = self._emg.generate(n, self._fs_hz)
        self._headers[slot] = (self._epoch, self._produced, n)
        ring.filled.release()
        self._slot = (slot + 1) % ring.n_slots
        self._produced += n


def _lower_priority() -> None:
    """Make this process a batch task (Linux only, best effort; see ``background``)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def _child_main(conn: Connection, job: _ChildJob) -> None:
    """Entry point of the generator process: build, report ready, produce until told."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    set_process_name(RENDERER_PROCESS_NAME)
    if job.background:
        _lower_priority()
    try:
        # The motor units' interval draws import scipy.special on first use (~0.5 s); here,
        # before reporting ready, rather than mid-stream, where it ate the whole lead and
        # the acquisition process waited: 51 frames lost at once, on one core.
        import scipy.special  # noqa: F401

        emg = job.spec.build()
        conn.send_bytes(bytes([MSG_READY]))
        _Producer(emg, conn, job.ring, job.first_rate_hz, job.chunk_s).run()
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the parent went away
    except Exception as exc:
        text = f"{type(exc).__name__}\n{exc}".encode()
        with contextlib.suppress(OSError):
            conn.send_bytes(bytes([MSG_ERROR]) + text)
    finally:
        conn.close()
