"""The daemon: start-up in order, the control loop every hop, signals, watchdog and status.

This is the one place that owns the clock, the processes and threads, the signals and the
watchdog. Start-up: config → model (contract checked against the config) → calibration →
acquisition process (chip ID, register read-back) → servo board → servos to a known pose
→ READY → the signal chain (its filter design imports scipy). Every hop (the model's hop,
20 ms by default, one servo frame) it takes the new frames from the acquisition ring,
runs filter → window → model (the newest window only, after a backlog) through
:class:`~emgd.pipeline.InferencePipeline`, passes the result through
:class:`~emgd.service.safety.SafetyGate` and writes the five servos; it records the latency of
each stage, publishes an immutable status snapshot, and pings the watchdog while the
loop runs (faults included: the gate handles them; a dead acquisition process ends the run
once the hand is at the safe pose, for systemd to restart the service). The stages
themselves live elsewhere; this module only composes them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import grp
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emgd import __version__
from emgd.calibration import store as calibration_store
from emgd.clock import NS_PER_S, Clock, SystemClock
from emgd.config import FINGERS, Config
from emgd.errors import CalibrationError, EmgdError, HardwareIOError, InvalidParams, ModelError
from emgd.hw.servo_math import (
    MAX_SERVO_PULSE_US,
    MIN_SERVO_PULSE_US,
    pulse_us_to_counts,
)
from emgd.poses import pose_angles_deg
from emgd.service import hop_timing, servo_position
from emgd.service.acquisition import AcquisitionProcess, RealtimeRequest
from emgd.service.board import ServoSide, open_servo_side
from emgd.service.hop_record import HopRecord
from emgd.service.latency import LatencyRecorder
from emgd.service.safety import SafetyGate, SafetySettings, SafetyState
from emgd.service.startup_keepalive import StartupKeepalive
from emgd.service.systemd import Notifier

if TYPE_CHECKING:
    from emgd.calibration.session import CalibrationService
    from emgd.recording.session import RecordingService
    from emgd.service.lsl_bridge import LslBridge, OutletFactory
    from emgd.service.shm_ring import RingBatch
    from emgd.service.tac_session import TacService

log = logging.getLogger("emgd.runner")

DEFAULT_MODEL_NAMES = ("default.onnx",)
SYSTEM_MODEL_DIR = Path("/usr/share/emgd/models")
SOURCE_MODEL_DIR = Path(__file__).resolve().parents[3] / "models"
SYSTEM_RUNTIME_DIR = Path("/run/emgd")
SYSTEM_STATE_DIR = Path("/var/lib/emgd")
SOCKET_NAME = "emgd.sock"
STATUS_EVERY_HOPS = 5
#: Latency percentiles (over the last 2000 hops) and the mains ratio change slowly and
#: cost ~0.8 ms together: refreshed in one hop out of this many (below 1 %, so they stay
#: out of the loop's own p99 compute time).
SLOW_STATUS_EVERY_HOPS = 150
#: Raw samples kept per channel for the mains ratio shown by status.
MAINS_WINDOW_S = 0.2
#: A one-line summary goes to the journal this often.
SUMMARY_EVERY_S = 10.0
#: Longest walk to the safe pose at shutdown (hops); 180° at 60°/s takes 150.
SHUTDOWN_MAX_HOPS = 500
#: A hop that starts this many hops late is skipped rather than run twice.
MAX_CATCH_UP_HOPS = 2
#: More windows than this in one hop is a backlog: only the newest is inferred.
MAX_WINDOWS_PER_HOP = 2


def resolve_model_path(config: Config, state_dir: Path | None = None) -> Path:
    """The model the daemon runs, first found of: ``model.path`` in the config (explicit
    config always wins), the active model installed in ``state_dir`` (``emgd model
    install``), the shipped default (system install, then source tree)."""
    if config.model.path:
        return Path(config.model.path)
    if state_dir is not None:
        from emgd.model.store import ModelStore

        installed = ModelStore(state_dir).active()
        if installed is not None:
            return installed.path
    for folder in (SYSTEM_MODEL_DIR, SOURCE_MODEL_DIR):
        for name in DEFAULT_MODEL_NAMES:
            if (folder / name).is_file():
                return folder / name
    raise ModelError(
        f"no model configured (model.path) and no default model in {SYSTEM_MODEL_DIR} or "
        f"{SOURCE_MODEL_DIR}"
    )


def _writable_dir(candidates: list[Path]) -> Path:
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    raise EmgdError(f"none of {', '.join(map(str, candidates))} is a writable folder")


def resolve_runtime_dir(config: Config, env: Mapping[str, str] | None = None) -> Path:
    """Where the status socket lives: config, $RUNTIME_DIRECTORY, /run/emgd, or a per-user
    folder in the temp dir when run by hand without root."""
    env = os.environ if env is None else env
    if config.daemon.runtime_dir:
        return _writable_dir([Path(config.daemon.runtime_dir)])
    if env.get("RUNTIME_DIRECTORY"):
        return Path(env["RUNTIME_DIRECTORY"].split(":")[0])
    user_dir = Path(tempfile.gettempdir()) / f"emgd-{os.getuid()}"
    return _writable_dir([SYSTEM_RUNTIME_DIR, user_dir])


def resolve_state_dir(config: Config, env: Mapping[str, str] | None = None) -> Path:
    """Where calibrations and installed models live: config, $STATE_DIRECTORY,
    /var/lib/emgd, or ~/.local/state."""
    env = os.environ if env is None else env
    if config.daemon.state_dir:
        return Path(config.daemon.state_dir)
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    return _writable_dir([SYSTEM_STATE_DIR, Path.home() / ".local" / "state" / "emgd"])


@contextlib.contextmanager
def loop_scheduling(fifo_priority: int) -> Iterator[None]:
    """Run the calling thread at SCHED_FIFO ``fifo_priority`` (0: leave it), then restore.

    The status server's thread runs one priority below (StatusServer._apply_scheduling)
    within its CPU budget, so a flood of clients cannot take the CPU from the loop or the
    acquisition process, nor keep the GIL from the loop.
    """
    if not fifo_priority or not hasattr(os, "sched_setscheduler"):
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo_priority))
    except PermissionError:
        log.warning(
            "control loop: SCHED_FIFO %d not permitted (needs CAP_SYS_NICE or LimitRTPRIO=; "
            "the systemd unit grants it): hops may be late under load",
            fifo_priority,
        )
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, policy, param)


def live_contract(model: Any, config: Config) -> Any:
    """The model's contract after checking it against the config, with the live filter's
    mains notch taken from ``model.mains_hz`` (the wearer's country, not the training's)."""
    contract = model.contract
    contract.check_against(config)
    return dataclasses.replace(
        contract,
        filter_spec=dataclasses.replace(contract.filter_spec, mains_hz=config.model.mains_hz),
    )


def safety_settings(config: Config, servo_side: ServoSide) -> SafetySettings:
    """Safety limits from ``[safety]`` and each finger's mechanical limits."""
    cals = servo_side.servos.servos
    s = config.safety
    return SafetySettings(
        min_angle_deg=tuple(c.min_angle_deg for c in cals),
        max_angle_deg=tuple(c.max_angle_deg for c in cals),
        max_rate_deg_s=s.max_rate_deg_s,
        safe_pose_deg=tuple(float(a) for a in pose_angles_deg(s.safe_pose)),
        safe_pose_rate_deg_s=s.safe_pose_rate_deg_s,
        fault_hold_s=s.fault_hold_s,
        smoothing=s.smoothing,
        min_cutoff_hz=s.min_cutoff_hz,
        beta=s.beta,
    )


class Daemon:
    """The running controller.

    Parameters
    ----------
    config:
        The validated configuration.
    clock:
        The loop's clock (the acquisition process always uses the system clock).
    notifier:
        sd_notify sender (a no-op outside systemd).
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        env: Mapping[str, str] | None = None,
        lsl_outlets: OutletFactory | None = None,
    ) -> None:
        self.config = config
        self._lsl_outlets = lsl_outlets  # None: pylsl's (tests pass fakes)
        self._lsl: LslBridge | None = None
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier(env)
        self._env = os.environ if env is None else env
        self.latency = LatencyRecorder()
        self.started_ns = self.clock.monotonic_ns()
        self.state = "starting"
        self._commands: deque[Callable[[], None]] = deque()
        self._snapshot: dict[str, Any] = {"state": "starting", "version": __version__}
        self._acq: AcquisitionProcess | None = None
        self._servo: ServoSide | None = None
        self._pipeline: Any = None
        self._safety: SafetyGate | None = None
        self._model: Any = None
        self._calibration: calibration_store.StoredCalibration | None = None
        self._hop_ns = 0
        self._frame_period_ns = 0
        self._window_late = False  # the last wait for a window's frame gave up
        self._windows_late = 0
        self._last_frame_ns = 0
        self._first_frame_ns: int | None = None
        self._first_frame_index = 0
        self._newest_index = 0
        self._newest_frame_ns = 0
        self._frames = 0
        self._overrun = 0
        self._windows_skipped = 0
        self._model_deg = np.full(5, np.nan)
        self._intent_deg: np.ndarray | None = None
        self._rms_uv = np.zeros(config.adc.channels)
        n_mains = max(8, round(config.adc.sample_rate_hz * MAINS_WINDOW_S))
        self._raw_recent = np.zeros((n_mains, config.adc.channels))
        self._mains_ratio = np.full(config.adc.channels, np.nan)
        self._railed_mask = 0
        self._lead_off_mask = 0
        self._i2c_failed = False
        self._last_watchdog_ns = 0
        self._acquisition_dead_ns: int | None = None  # first hop that found it gone
        self._faults: list[str] = []
        self.hardware: dict[str, str] = {}
        self.state_dir = Path()
        self.socket_path = Path()
        self._server: Any = None
        self._calibrate: CalibrationService | None = None
        self._record: RecordingService | None = None
        # Cues the simulated wearer (recording cues, `emgd test` targets); None on hardware.
        self._simulated_cue: Callable[[str, float], None] | None = None
        self._tac: TacService | None = None  # its on_cue is the simulated wearer's seam
        # Pulses set by `servo.set_pulse` (finger index → µs), written instead of the angle
        # while paused; cleared on resume.
        self._servo_pulse_us: dict[int, float] = {}
        self.hops = 0
        self._ready_ns: int | None = None
        self._latency_summary: dict[str, dict[str, float]] = {}
        self._first_inference_ns: int | None = None

    # ------------------------------------------------------------------ start-up
    def start(self) -> None:
        """Bring everything up in order; any failure raises one clear EmgdError.

        The acquisition process is spawned first and left to import and open the chip
        while this process loads the model and the calibration (half of the start-up time
        is Python importing, and the two overlap on two cores); its outcome is awaited
        after the contract and calibration checks, so errors still come in that order.
        """
        cfg = self.config
        d = cfg.daemon
        if cfg.lsl.enabled and self._lsl_outlets is None:
            from emgd.service.lsl_outlets import import_pylsl

            import_pylsl(cfg)  # a missing extra is a config error before anything starts
        realtime = RealtimeRequest(
            fifo_priority=d.realtime_priority,
            cpu=None if d.acquisition_cpu < 0 else d.acquisition_cpu,
            lock_memory=d.lock_memory,
        )
        self._acq = AcquisitionProcess(cfg, realtime)
        self._acq.spawn()
        self._simulated_cue = self._acq.cue if cfg.adc.bus == "simulated" else None
        try:
            contract = self._load_model_and_calibration()
            info = self._acq.wait_ready()
        except BaseException:
            self._acq.stop()
            self._acq = None
            raise
        for note in info.realtime_notes:
            log.warning("acquisition: %s", note)
        try:
            self._servo = open_servo_side(cfg, self.clock)
            safety = safety_settings(cfg, self._servo)
            self._safety = SafetyGate(safety, safety.safe_pose_deg)
            self._servo.servos.write_angles(self._safety.commanded_deg.tolist())
        except BaseException:
            self._acq.stop()
            raise
        from emgd.calibration.session import CalibrationService

        assert self._calibration is not None
        # Calibration sees the frames as they come, at the ADC's rate.
        self._calibrate = CalibrationService(
            contract.filter_spec,
            cfg.adc.sample_rate_hz,
            contract.n_channels,
            self.state_dir,
            self.clock,
            submit=self.submit,
            hold=self.pause,
            release=self.resume,
            apply=self._apply_calibration,
        )
        self._record = self._recording_service(contract)
        from emgd.service.tac_session import TacService

        self._tac = TacService(
            self.state_dir,
            self.clock,
            submit=self.submit,
            model=lambda: self._model,
            on_cue=self._cue_hook(
                "test", None if self._simulated_cue is None else self._cue_target
            ),
        )
        if cfg.lsl.enabled:
            self._open_lsl(info.description)
        self._last_frame_ns = self.clock.monotonic_ns()
        self.started_ns = self.clock.monotonic_ns()
        self.state = "running"
        self.hardware = {"adc": info.description, "servo": self._servo.description}
        log.info(
            "emgd %s ready: config %s; model %s; calibration %s (%s); %s; %s",
            __version__,
            cfg.source,
            self._model.identity,
            self._calibration.identity(),
            self._calibration.source,
            info.description,
            self._servo.description,
        )
        try:
            self._start_status_server()
        except BaseException:
            self.shutdown()
            raise
        self._publish_status()
        self.notifier.ready(f"running: {info.sample_rate_hz:g} Hz, model {self._model.identity}")
        # The signal chain is built after READY: designing its filters imports scipy.signal
        # (~2 s on a small machine), and the model's first window takes longer than that to
        # fill anyway; meanwhile the hand holds the start pose, the socket answers and the
        # frames wait in the ring (RING_SECONDS). The bench reports both times.
        self._ready_ns = self.clock.monotonic_ns()
        try:
            # systemd arms the watchdog at READY: ping from a thread while scipy imports.
            with StartupKeepalive(self.notifier, self.clock) as keepalive:
                self._build_pipeline(contract)
            self._last_watchdog_ns = keepalive.last_ping_ns
        except BaseException:
            self.shutdown()
            raise

    def _recording_service(self, contract: Any) -> RecordingService:
        """``emgd record``: raw frames to a BDF+ file in ``<state dir>/recordings``."""
        from emgd.recording.header import device_header
        from emgd.recording.session import RECORDINGS_DIR, RecordingService

        def busy() -> str | None:
            calibrating = self._calibrate is not None and self._calibrate.active
            return "a calibration session is running" if calibrating else None

        return RecordingService(
            contract.filter_spec,
            device_header(self.config, datetime.datetime.now()),
            self.state_dir / RECORDINGS_DIR,
            self.clock,
            submit=self.submit,
            hold=self.pause,
            release=self.resume,
            on_cue=self._cue_hook("record", self._simulated_cue),  # the simulated wearer follows
            busy=busy,
        )

    def _open_lsl(self, board_description: str) -> None:
        """The LSL outlets (``[lsl] enabled``): EMG, angles, markers (service/lsl_bridge)."""
        from emgd.service.lsl_bridge import open_bridge

        try:
            self._lsl = open_bridge(
                self.config,
                board_description,
                self._hop_ns / NS_PER_S,
                outlet_factory=self._lsl_outlets,
            )
        except BaseException:
            self.shutdown()  # the hand to the safe pose, the acquisition process stopped
            raise
        self._lsl.marker(self.clock.monotonic_ns(), f"start emgd {__version__}")

    def _cue_hook(
        self, source: str, then: Callable[[str, Any], None] | None
    ) -> Callable[[str, Any], None] | None:
        """A session's cue callback: an LSL marker (when on), then ``then`` (the simulated
        wearer's seam, or None)."""
        if not self.config.lsl.enabled:
            return then

        def on_cue(pose: str, effort: float | None) -> None:
            if self._lsl is not None:
                self._lsl.cue(source, self.clock.monotonic_ns(), pose, effort)
            if then is not None:
                then(pose, effort)

        return on_cue

    def _build_pipeline(self, contract: Any) -> None:
        from emgd.pipeline import InferencePipeline

        assert self._calibration is not None
        self._pipeline = InferencePipeline(
            contract,
            self._calibration.normaliser(),
            self._model,
            history=self._model.spec.history,
            input_rate_hz=self.config.adc.sample_rate_hz,
        )

    def _load_model_and_calibration(self) -> Any:
        """Model, contract checked against the config, calibration; returns the contract."""
        from emgd.model.runtime import OnnxModel

        cfg = self.config
        self.state_dir = resolve_state_dir(cfg, self._env)
        self._model = OnnxModel(resolve_model_path(cfg, self.state_dir))
        contract = live_contract(self._model, cfg)
        self._calibration = self._load_calibration(contract.n_channels)
        self._hop_ns = round(contract.hop_samples * NS_PER_S / contract.sample_rate_hz)
        self._frame_period_ns = round(NS_PER_S / self.config.adc.sample_rate_hz)
        return contract

    def _start_status_server(self) -> None:
        from emgd.service.status_limits import status_limits
        from emgd.service.status_server import StatusServer

        runtime_dir = resolve_runtime_dir(self.config, self._env)
        try:
            gid: int | None = grp.getgrnam(self.config.daemon.socket_group).gr_gid
        except KeyError:
            gid = None
            log.warning(
                "group %r does not exist: only root and this user may pause or calibrate",
                self.config.daemon.socket_group,
            )

        def queued(action: Callable[[], None], reply: str) -> Callable[..., object]:
            def handler(params: dict[str, Any], peer: object) -> object:
                self.submit(action)
                return {"ok": True, "state": reply}

            return handler

        self._server = StatusServer(
            runtime_dir / SOCKET_NAME,
            {
                "status": lambda params, peer: self.status(
                    since_start=bool(params.get("since_start", False))
                ),
                "pause": queued(self.pause, "hold"),
                "resume": queued(self.resume, "running"),
                "reload": self._handle_reload,
                **self._calibrate_handlers(),
                **(self._record.handlers() if self._record is not None else {}),
                **(self._tac.handlers() if self._tac is not None else {}),
                "servo.set_pulse": self._handle_set_pulse,
            },
            privileged=frozenset(
                {"pause", "resume", "reload", "calibrate.*", "record.*", "servo.*", "tac.*"}
            ),
            allowed_gid=gid,
            max_clients=self.config.status.max_clients,
            limits=status_limits(self.config.status),
            clock=self.clock,
            fifo_priority=max(0, self.config.daemon.loop_priority - 1),
        )
        self._server.start()
        self.socket_path = runtime_dir / SOCKET_NAME
        log.info("status socket %s", self.socket_path)

    def _calibrate_handlers(self) -> dict[str, Callable[..., object]]:
        """``calibrate.*``, with ``calibrate.start`` refused while a recording runs (both
        hold the hand; a calibration's end would resume it under the recording)."""
        if self._calibrate is None:
            return {}
        handlers: dict[str, Callable[..., object]] = dict(self._calibrate.handlers())
        start = handlers["calibrate.start"]

        def guarded_start(params: dict[str, Any], peer: object) -> object:
            if self._record is not None and self._record.snapshot.get("active"):
                raise CalibrationError("calibrate.start: a recording is running (emgd record)")
            return start(params, peer)

        handlers["calibrate.start"] = guarded_start
        return handlers

    def _handle_set_pulse(self, params: dict[str, Any], peer: object) -> object:
        """``servo.set_pulse {"finger", "pulse_us"}`` (server thread): pause, then hold that
        finger's servo at ``pulse_us`` (null hands it back to the commanded angle)."""
        finger = params.get("finger")
        pulse_us = params.get("pulse_us")
        if finger not in FINGERS:
            raise InvalidParams(
                f"servo.set_pulse finger {finger!r}: expected one of {', '.join(FINGERS)}"
            )
        if pulse_us is not None and (
            isinstance(pulse_us, bool)
            or not isinstance(pulse_us, int | float)
            or not MIN_SERVO_PULSE_US <= pulse_us <= MAX_SERVO_PULSE_US
        ):
            raise InvalidParams(
                f"servo.set_pulse pulse_us {pulse_us!r} for {finger}: expected "
                f"{MIN_SERVO_PULSE_US:g}-{MAX_SERVO_PULSE_US:g} µs or null"
            )
        index = FINGERS.index(str(finger))
        value = None if pulse_us is None else float(pulse_us)
        self.submit(lambda: self._set_servo_pulse(index, value))
        return {"ok": True, "finger": finger, "pulse_us": value, "state": "hold"}

    def _set_servo_pulse(self, finger_index: int, pulse_us: float | None) -> None:
        assert self._safety is not None
        if pulse_us is None:
            # Continue from where that finger really is, so handing it back to the
            # commanded angle is slew-limited rather than a jump.
            self._hold_gate_at_servos()
            self._servo_pulse_us.pop(finger_index, None)
            return
        self._safety.pause()
        self._servo_pulse_us[finger_index] = pulse_us

    def _hold_gate_at_servos(self) -> None:
        """Make the pulses on the servos (the board's last write, held pulses included) the
        gate's command, unclamped: whatever comes next moves from there, slew-limited."""
        assert self._safety is not None
        if self._servo is not None:
            where = servo_position.position_deg(self._servo.servos, self._safety.commanded_deg)
            self._safety.hold_at(where, clamp=False)

    def _write_servos(self, commanded_deg: np.ndarray) -> None:
        """The commanded angles, except fingers held at a pulse by ``servo.set_pulse``."""
        assert self._servo is not None
        servos = self._servo.servos
        counts = list(servo_position.counts_for_angles(servos, commanded_deg))
        for index, pulse_us in self._servo_pulse_us.items():
            counts[index] = pulse_us_to_counts(pulse_us, servos.frequency_hz)
        servos.write_counts(counts)

    def _apply_calibration(self, stored: calibration_store.StoredCalibration) -> None:
        """Swap a new calibration in (loop thread): the pipeline's normaliser and status."""
        assert self._pipeline is not None
        self._pipeline.set_normaliser(stored.normaliser())
        self._calibration = stored
        log.info("calibration %s applied (%s)", stored.identity(), stored.source)
        self._publish_status()

    def _load_calibration(
        self, n_channels: int, model: Any = None
    ) -> calibration_store.StoredCalibration:
        """The stored calibration, else the one in the card of ``model`` (default: the
        running model)."""
        model = self._model if model is None else model
        stored = calibration_store.load(self.state_dir)
        if stored is None:
            card = model.card if isinstance(model.card, dict) else {}
            default = card.get("calibration")
            if default is None:
                raise CalibrationError(
                    f"no calibration in {self.state_dir} and the model carries none: "
                    "run 'emgd calibrate'"
                )
            stored = calibration_store.StoredCalibration.from_dict(
                default, f"{model.path} (training calibration)"
            )
            log.warning(
                "no calibration in %s: using the one the model was trained with; run "
                "'emgd calibrate' for this wearer and these electrodes",
                self.state_dir,
            )
        if stored.n_channels != n_channels:
            raise CalibrationError(
                f"calibration has {stored.n_channels} channels, the model expects {n_channels}"
            )
        return stored

    # ------------------------------------------------------------------ the loop
    def run(self, should_stop: Callable[[], bool], duration_s: float | None = None) -> None:
        """Hop on absolute deadlines until ``should_stop()`` or ``duration_s`` (from now).

        The calling thread runs at ``daemon.loop_priority`` (SCHED_FIFO, below the
        acquisition process) while it hops, when permitted, and gets its policy back after.
        """
        first_ns = self.clock.monotonic_ns()
        next_ns = first_ns + self._hop_ns
        end_ns = None if duration_s is None else first_ns + round(duration_s * NS_PER_S)
        with loop_scheduling(self.config.daemon.loop_priority):
            while not should_stop():
                self.clock.sleep_until_ns(next_ns)
                self._await_window(next_ns)
                now = self.clock.monotonic_ns()
                if end_ns is not None and now >= end_ns:
                    break
                self.hop()
                next_ns = self._next_wake_ns(next_ns + self._hop_ns)
                if now - next_ns > MAX_CATCH_UP_HOPS * self._hop_ns:
                    next_ns = now + self._hop_ns

    def _next_wake_ns(self, cadence_ns: int) -> int:
        """Just after the frame that completes the next window is due (hop_timing)."""
        if self._pipeline is None:
            return cadence_ns
        return hop_timing.next_wake_ns(
            cadence_ns,
            hop_ns=self._hop_ns,
            newest_frame_ns=None if self._first_frame_ns is None else self._newest_frame_ns,
            frames_needed=self._pipeline.frames_to_next_window,
            frame_period_ns=self._frame_period_ns,
            last_wait_gave_up=self._window_late,
        )

    def _await_window(self, woke_ns: int) -> None:
        """Wait (bounded) until the frame completing the next window is published."""
        self._window_late = False
        if self._acq is None or self._pipeline is None or self._first_frame_ns is None:
            return
        self._window_late = hop_timing.window_late(
            self.clock,
            self._acq.frames_pending,
            self._pipeline.frames_to_next_window,
            woke_ns,
            hop_ns=self._hop_ns,
            frame_period_ns=self._frame_period_ns,
        )
        self._windows_late += self._window_late

    def submit(self, command: Callable[[], None]) -> None:
        """Run ``command`` in the loop thread at the next hop (for socket handlers)."""
        self._commands.append(command)

    def hop(self) -> None:
        """One control step: frames → faults → pipeline → safety → servos → status.

        Each stage is one call below, in the order of its side effects; a
        :class:`~emgd.service.hop_record.HopRecord` carries what one found to the next.
        """
        assert self._acq and self._pipeline and self._safety and self._servo and self._calibrate
        rec = HopRecord(cpu_start_ns=time.thread_time_ns())
        while self._commands:
            self._commands.popleft()()
        if self._servo_pulse_us:
            self._hold_gate_at_servos()  # held fingers: the gate starts each hop from them
        batch = self._read_frames(rec)
        self._check_faults(rec)
        if batch.n_frames:
            self._infer_windows(batch, rec)
        self._step_without_proposal(rec)
        self._write_commanded(rec)
        if self._tac is not None:
            self._tac.tick(rec.t_written, self._safety.commanded_deg)
        self._record_latency(rec)
        self._update_status(rec)
        if self._lsl is not None:
            self._lsl.on_hop(
                rec.t_written, self._safety.commanded_deg, self._model_deg, self.state, self._faults
            )
        # Compute: CPU time of this thread for the whole hop (status and journal included)
        # but the simulated hand; time spent preempted is in the latencies, not here.
        self.latency.add("compute", time.thread_time_ns() - rec.cpu_start_ns - rec.cpu_hand_ns)
        self._feed_watchdog(rec)
        self._end_if_acquisition_died(rec)

    def _read_frames(self, rec: HopRecord) -> RingBatch:
        """Take the new frames from the ring and account for them (counts, RMS, masks)."""
        assert self._acq is not None and self._calibrate is not None
        batch = self._acq.read_new()
        rec.t_read = self.clock.monotonic_ns()
        rec.n_frames = batch.n_frames
        self._overrun += batch.overrun_frames
        if batch.overrun_frames:
            rec.faults.add("overrun")
        if batch.n_frames:
            if self._lsl is not None:
                self._lsl.on_frames(batch.index, batch.timestamp_ns, batch.emg_uv)
            self._frames += batch.n_frames
            self._last_frame_ns = rec.t_read
            if self._first_frame_ns is None:
                self._first_frame_ns = int(batch.timestamp_ns[0])
                self._first_frame_index = int(batch.index[0])
            self._newest_index = int(batch.index[-1])
            self._newest_frame_ns = int(batch.timestamp_ns[-1])
            emg = batch.emg_uv.astype(np.float64)
            self._rms_uv = np.sqrt(np.mean(emg * emg, axis=0))
            keep = min(len(emg), len(self._raw_recent))
            self._raw_recent = np.roll(self._raw_recent, -keep, axis=0)
            self._raw_recent[-keep:] = emg[-keep:]
            self._railed_mask = int(np.bitwise_or.reduce(batch.railed))
            self._lead_off_mask = int(np.bitwise_or.reduce(batch.lead_off))
            if self._railed_mask:
                rec.faults.add("railed")
            if not np.all(np.isnan(batch.intent_deg[-1])):
                self._intent_deg = batch.intent_deg[-1].astype(np.float64)
            self._calibrate.on_frames(batch.emg_uv, batch.railed)
            if self._record is not None:
                self._record.on_frames(
                    batch.index,
                    batch.emg_uv,
                    batch.railed,
                    batch.lead_off,
                    overrun_frames=batch.overrun_frames,
                    timestamp_ns=batch.timestamp_ns,
                )
        return batch

    def _check_faults(self, rec: HopRecord) -> None:
        """Stale frames, a dead acquisition process, the last I²C write; and the
        calibration's clock tick (it may pause the gate, so it comes before the gate)."""
        assert self._acq is not None and self._calibrate is not None
        if (rec.t_read - self._last_frame_ns) / NS_PER_S > self.config.safety.stale_after_s:
            rec.faults.add("stale")
        if not self._acq.alive():
            rec.faults.add("acquisition")
        self._calibrate.tick(rec.t_read)
        if self._record is not None:
            self._record.tick(rec.t_read)
        if self._i2c_failed:
            rec.faults.add("i2c")

    def _infer_windows(self, batch: RingBatch, rec: HopRecord) -> None:
        """Filter the frames, cut the windows, infer (the newest only after a backlog) and
        pass each proposal through the gate; any error marks the model failed."""
        assert self._pipeline is not None and self._safety is not None
        clock = self.clock
        try:
            to_first_window = self._pipeline.frames_to_next_window
            windows = self._pipeline.windows(batch.emg_uv)
            if windows:
                newest_at = to_first_window - 1
                newest_at += (len(windows) - 1) * self._pipeline.frames_per_window_step
                rec.window_drdy_ns = int(batch.timestamp_ns[newest_at])
            rec.t_filter = self._pipeline.last_filter_ns
            rec.t_window = self._pipeline.last_window_ns
            if len(windows) > MAX_WINDOWS_PER_HOP:
                # A backlog (start-up, a stall): the filter has seen every frame, but
                # only the newest window says what the wearer does now.
                self._windows_skipped += len(windows) - 1
                windows = windows[-1:]
            for window in windows:
                t1 = clock.monotonic_ns()
                step = self._pipeline.step(
                    window.frames, self._pipeline.history_deg, window.newest_index
                )
                t2 = clock.monotonic_ns()
                self._model_deg = step.angles_deg
                if self._first_inference_ns is None:
                    self._first_inference_ns = t2
                rec.outs.append(self._safety.step(t2, step.angles_deg, rec.faults))
                # The model sees what was really commanded, not what it proposed.
                self._pipeline.command(rec.outs[-1].commanded_deg)
                rec.t_infer += t2 - t1
                rec.t_safety += clock.monotonic_ns() - t2
        except (EmgdError, ValueError, RuntimeError) as exc:
            rec.model_failed = True
            log.error("model step failed: %s", exc)

    def _step_without_proposal(self, rec: HopRecord) -> None:
        """No usable proposal this hop (model failed, or faults and no window): the gate
        holds, or walks to the safe pose."""
        assert self._safety is not None
        if not (rec.model_failed or (rec.faults and not rec.outs)):
            return
        t2 = self.clock.monotonic_ns()
        proposal = None if rec.model_failed else self._model_deg
        rec.outs.append(self._safety.step(t2, proposal, rec.faults))
        rec.t_safety += self.clock.monotonic_ns() - t2

    def _write_commanded(self, rec: HopRecord) -> None:
        """Write the gate's commanded angles to the servos, then step the simulated hand."""
        assert self._safety is not None and self._servo is not None
        rec.t_write0 = self.clock.monotonic_ns()
        commanded = self._safety.commanded_deg
        try:
            self._write_servos(commanded)
            self._i2c_failed = False
        except HardwareIOError as exc:
            self._i2c_failed = True
            log.error("servo write failed: %s", exc)
        rec.t_written = self.clock.monotonic_ns()
        cpu_written = time.thread_time_ns()
        if self._servo.hand is not None:
            self._servo.hand.update()  # the simulated hand's physics: not compute of ours
        rec.cpu_hand_ns = time.thread_time_ns() - cpu_written

    def _record_latency(self, rec: HopRecord) -> None:
        """Add this hop's stage times, and the end-to-end one when a window was inferred."""
        if rec.n_frames:
            self.latency.add("filter", rec.t_filter)
            self.latency.add("window", rec.t_window)
        if rec.outs:
            if rec.t_infer:
                self.latency.add("infer", rec.t_infer)
            self.latency.add("safety", rec.t_safety)
        self.latency.add("i2c_write", rec.t_written - rec.t_write0)
        if rec.window_drdy_ns is not None and rec.t_infer:
            # From the DRDY edge of the newest sample the command reflects: the time that
            # sample waited for the loop is part of it (hop_timing keeps it short).
            self.latency.add("acquire", max(0, rec.t_read - rec.window_drdy_ns))
            self.latency.add("end_to_end", rec.t_written - rec.window_drdy_ns)

    def _update_status(self, rec: HopRecord) -> None:
        """State and faults from the gate's last decision; the hop count; the status
        snapshot and the journal summary when due."""
        assert self._safety is not None
        out = rec.out
        state = (
            out.state
            if out is not None
            else (SafetyState.HOLD if self._safety.paused else SafetyState.RUNNING)
        )
        self.state = state.value
        self._faults = sorted(out.faults) if out is not None else []
        self.hops += 1
        if self.hops % SLOW_STATUS_EVERY_HOPS == 1:  # the first hop, then every 3 s
            self._refresh_slow_status()
        if self.hops % STATUS_EVERY_HOPS == 0:
            self._publish_status()
        if self.hops % max(1, round(SUMMARY_EVERY_S * NS_PER_S / self._hop_ns)) == 0:
            self._log_summary()

    def _cue_target(self, pose: str, effort: float | None) -> None:
        """An `emgd test` target for the simulated wearer (a whole pose when no effort)."""
        assert self._simulated_cue is not None
        self._simulated_cue(pose, 1.0 if effort is None else effort)

    def _feed_watchdog(self, rec: HopRecord) -> None:
        """Ping the systemd watchdog when due: the loop ran its hop and is in charge of the
        hand, faults included (the gate holds, then walks to the safe pose; a restart would
        cut that walk short and could not mend a lifted electrode). A stuck loop stops the
        pings; a dead acquisition process ends the run instead (:meth:`_end_if_acquisition_died`).
        """
        interval = self.notifier.watchdog_interval_s()
        due = (
            interval is not None and (rec.t_written - self._last_watchdog_ns) / NS_PER_S >= interval
        )
        if due:
            self.notifier.watchdog()
            self._last_watchdog_ns = rec.t_written

    def _end_if_acquisition_died(self, rec: HopRecord) -> None:
        """The acquisition process is gone: once the gate has walked the hand to the safe
        pose (or had the time to), stop with a HardwareIOError, so that systemd restarts
        the service (``Restart=on-failure``) with a new acquisition process."""
        assert self._acq is not None and self._safety is not None
        if "acquisition" not in rec.faults:
            self._acquisition_dead_ns = None
            return
        if self._acquisition_dead_ns is None:
            self._acquisition_dead_ns = rec.t_written
        safety = self.config.safety
        walk_s = safety.fault_hold_s + 180.0 / safety.safe_pose_rate_deg_s + 0.5
        at_safe = bool(
            np.all(np.abs(self._safety.commanded_deg - self._safety.safe_pose_deg) < 0.5)
        )
        waited_s = (rec.t_written - self._acquisition_dead_ns) / NS_PER_S
        if (at_safe and waited_s >= safety.fault_hold_s) or waited_s >= walk_s:
            failure = self._acq.failure()
            why = f": {failure}" if failure is not None else ""
            raise HardwareIOError(
                f"acquisition process stopped{why}; the hand is at the safe pose, "
                "exiting so that the service is restarted"
            )

    # ------------------------------------------------------------------ status
    def status(self, since_start: bool = False) -> dict[str, Any]:
        """The latest immutable snapshot (safe to call from another thread).

        ``since_start`` adds ``latency_run_ms``: every stage's percentiles since start from
        the whole-run histograms, computed here in the caller's thread (``emgd bench``
        asks for it; the loop does not pay for it).
        """
        if not since_start:
            return self._snapshot
        return {**self._snapshot, "latency_run_ms": self.latency.run_summary()}

    def _achieved_rate_hz(self) -> float:
        """Conversions per second between the first and the newest frame seen (lost ones
        included, since the frame index counts them)."""
        if self._first_frame_ns is None or self._newest_frame_ns <= self._first_frame_ns:
            return 0.0
        span_s = (self._newest_frame_ns - self._first_frame_ns) / NS_PER_S
        return (self._newest_index - self._first_frame_index) / span_s

    def _update_mains_ratio(self) -> None:
        """Share of each channel's raw power (DC removed) at the mains frequency, over the
        last ``MAINS_WINDOW_S``: high means a poor electrode contact or a missing ground."""
        mains_hz = self.config.model.mains_hz or 50.0
        x = self._raw_recent - self._raw_recent.mean(axis=0)
        t = np.arange(len(x)) / self.config.adc.sample_rate_hz
        c, s_ = np.cos(2 * np.pi * mains_hz * t), np.sin(2 * np.pi * mains_hz * t)
        # Power of the best-fitting mains sinusoid vs the total (both per sample).
        p_mains = 2.0 * ((c @ x) ** 2 + (s_ @ x) ** 2) / len(x) ** 2
        p_total = np.mean(x * x, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            self._mains_ratio = np.where(p_total > 0, np.minimum(1.0, p_mains / p_total), np.nan)

    def _refresh_slow_status(self) -> None:
        self._update_mains_ratio()
        self._latency_summary = self.latency.summary()

    def _publish_status(self) -> None:
        assert self._acq is not None and self._safety is not None
        stats = self._acq.stats()
        elapsed_s = max(1e-9, (self.clock.monotonic_ns() - self.started_ns) / NS_PER_S)
        hand = None
        if self._servo is not None and self._servo.hand is not None:
            hand = [float(a) for a in self._servo.hand.angles_deg]
        self._snapshot = {
            "state": self.state,
            "faults": list(self._faults),
            "uptime_s": elapsed_s,
            "version": __version__,
            "config_path": self.config.source,
            "model": {"identity": self._model.identity, "path": str(self._model.path)},
            "calibration": None
            if self._calibration is None
            else {
                "identity": self._calibration.identity(),
                "created": self._calibration.created,
                "source": self._calibration.source,
            },
            "hardware": dict(self.hardware),
            "acquisition": {
                "sample_rate_hz": float(self.config.adc.sample_rate_hz),
                "achieved_rate_hz": self._achieved_rate_hz(),
                "frames": stats.frames_read,
                "lost": stats.frames_lost,
                "stale": stats.frames_stale,
                "railed": stats.frames_railed,
                "invalid": stats.frames_invalid,
                "timeouts": stats.timeouts,
                "overrun": self._overrun,
                "windows_skipped": self._windows_skipped,
                "windows_late": self._windows_late,
            },
            "latency_ms": self._latency_summary,
            "hop_ms": self._hop_ns / 1e6,
            "first_inference_after_ready_s": None
            if self._first_inference_ns is None or self._ready_ns is None
            else (self._first_inference_ns - self._ready_ns) / NS_PER_S,
            "channels": [
                {
                    "rms_uv": float(self._rms_uv[c]),
                    "mains_ratio": float(self._mains_ratio[c]),
                    "railed": bool(self._railed_mask >> c & 1),
                    "lead_off": bool(self._lead_off_mask >> c & 1),
                }
                for c in range(self.config.adc.channels)
            ],
            "socket": None if self._server is None else self._server.counters().as_dict(),
            "lsl": None if self._lsl is None else self._lsl.status(),
            "angles_deg": {
                "fingers": list(FINGERS),
                "commanded": [float(a) for a in self._safety.commanded_deg],
                "model": [float(a) for a in self._model_deg],
                "intent": None
                if self._intent_deg is None
                else [float(a) for a in self._intent_deg],
                "hand": hand,
            },
        }

    def _log_summary(self) -> None:
        snap = self._snapshot
        acq = snap.get("acquisition", {})
        lat = snap.get("latency_ms", {}).get("end_to_end", {})
        angles = snap.get("angles_deg", {})
        cmd = " ".join(f"{a:.0f}" for a in angles.get("commanded", []))
        intent = angles.get("intent")
        intent_text = "" if intent is None else " intent " + " ".join(f"{a:.0f}" for a in intent)
        log.info(
            "%s: %.1f Hz, %d frames, %d lost, %d overrun; latency p50 %.2f ms p99 %.2f ms; "
            "commanded %s%s",
            snap.get("state"),
            acq.get("achieved_rate_hz", 0.0),
            acq.get("frames", 0),
            acq.get("lost", 0),
            acq.get("overrun", 0),
            lat.get("p50", float("nan")),
            lat.get("p99", float("nan")),
            cmd,
            intent_text,
        )

    # ------------------------------------------------------------------ shutdown
    def reload(self) -> None:
        """Load the model and the calibration again without a restart (loop thread).

        A model whose contract does not fit the config, or a corrupt calibration, is
        refused with one error line and the running ones are kept.
        """
        try:
            prepared = self._prepare_reload()
        except EmgdError as exc:
            log.error("reload refused, keeping model %s: %s", self._model.identity, exc)
            return
        self._swap_in(prepared)

    def _prepare_reload(self) -> tuple[Any, calibration_store.StoredCalibration, Any]:
        """The model :func:`resolve_model_path` names now (``model.path``, else the active
        installed one), its contract checked, the calibration and a new pipeline; touches
        nothing the loop uses, so the status server's thread may call it."""
        from emgd.model.runtime import OnnxModel
        from emgd.pipeline import InferencePipeline

        model = OnnxModel(resolve_model_path(self.config, self.state_dir))
        contract = live_contract(model, self.config)
        if round(contract.hop_samples * NS_PER_S / contract.sample_rate_hz) != self._hop_ns:
            raise ModelError(
                f"{model.path}: hop {contract.hop_samples} samples at "
                f"{contract.sample_rate_hz:g} Hz differs from the running model's "
                f"{self._hop_ns / 1e6:g} ms: restart the daemon to change the hop"
            )
        calibration = self._load_calibration(contract.n_channels, model)
        pipeline = InferencePipeline(
            contract,
            calibration.normaliser(),
            model,
            history=model.spec.history,
            input_rate_hz=self.config.adc.sample_rate_hz,
        )
        return model, calibration, pipeline

    def _swap_in(self, prepared: tuple[Any, calibration_store.StoredCalibration, Any]) -> None:
        """Swap a prepared model in between hops (loop thread): the hand holds the last
        commanded pose until the new pipeline's first window is full."""
        model, calibration, pipeline = prepared
        self._model, self._calibration, self._pipeline = model, calibration, pipeline
        self._hold_gate_at_servos()
        self._model_deg = np.full(5, np.nan)
        log.info("reloaded: model %s, calibration %s", model.identity, calibration.identity())
        self._publish_status()

    def _handle_reload(self, params: dict[str, Any], peer: object) -> object:
        """``reload`` (server thread): load and check now, so a refusal is the error reply
        (and the running model stays); the swap itself runs in the loop at the next hop.

        This is the one handler that does real work in the server thread (loading
        ``models/default.onnx`` and building its pipeline took 30 ms here once the modules
        are imported): other clients wait that long, the control loop does not.
        """
        prepared = self._prepare_reload()
        self.submit(lambda: self._swap_in(prepared))
        model = prepared[0]
        return {
            "ok": True,
            "state": "reloading",
            "model": {"identity": model.identity, "path": str(model.path)},
            "calibration": prepared[1].identity(),
        }

    def pause(self) -> None:
        assert self._safety is not None
        self._safety.pause()

    def resume(self) -> None:
        """Leave HOLD: fingers held by ``servo.set_pulse`` and a calibration session end."""
        assert self._safety is not None
        self._hold_gate_at_servos()  # held pulses: come back from them, slew-limited
        self._servo_pulse_us.clear()
        if self._calibrate is not None and self._calibrate.active:
            self._calibrate.end("ended by a 'resume' request")
        if self._record is not None and self._record.active:
            self._record.end("ended by a 'resume' request")
        self._safety.resume()

    def _log_final_pulses(self) -> None:
        """The journal's last word on the hand: the pulses read back from the board."""
        assert self._servo is not None
        board = self._servo.servos
        try:
            counts, how = board.read_counts(), "read back"
        except HardwareIOError as exc:
            if board.last_counts is None:
                log.error("stopped; servo pulses unknown (read-back failed: %s)", exc)
                return
            counts, how = board.last_counts, f"last written; read-back failed: {exc}"
        log.info("stopped with the hand at %s (%s)", servo_position.describe(board, counts), how)

    def shutdown(self) -> None:
        """Walk the hand from the pulses on its servos (held ones included) to the
        configured safe pose at the safe-pose speed, then stop; the journal's last servo
        line gives the pulses read back from the board.

        The PCA9685 keeps the last pulses after the process exits, so the hand stays there.
        """
        self.notifier.stopping()
        if self._record is not None:
            self._record.shutdown()  # the recording's file closed, whole
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._safety is not None and self._servo is not None:
            settings = safety_settings(self.config, self._servo)
            lo, hi = np.array(settings.min_angle_deg), np.array(settings.max_angle_deg)
            target = np.clip(np.array(settings.safe_pose_deg), lo, hi)
            servo = self._servo
            next_ns = self.clock.monotonic_ns()

            def next_frame() -> None:
                nonlocal next_ns
                next_ns += self._hop_ns
                self.clock.sleep_until_ns(next_ns)
                if servo.hand is not None:
                    servo.hand.update()

            try:
                servo_position.walk_to(
                    servo.servos,
                    target,
                    max_step_deg=settings.safe_pose_rate_deg_s * self._hop_ns / NS_PER_S,
                    max_steps=SHUTDOWN_MAX_HOPS,
                    after_write=next_frame,
                    fallback_deg=self._safety.commanded_deg,
                )
            except HardwareIOError as exc:
                log.error("servo write failed during shutdown: %s", exc)
            self._log_final_pulses()
        if self._acq is not None:
            self._acq.stop()
            self._acq = None
        if self._servo is not None:
            self._servo.close()
            self._servo = None
        if self._lsl is not None:
            self._lsl.marker(self.clock.monotonic_ns(), "stop")
            self._lsl.close()
            self._lsl = None
