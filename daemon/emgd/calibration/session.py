"""The daemon side of ``emgd calibrate``: one guided calibration session at a time.

This module owns the session state machine that lives in the control loop's thread: it
filters the raw frames of every hop with its own :class:`~emgd.dsp.filters.StreamingFilter`
(the model contract's spec, so the calibration sees exactly what the pipeline's normaliser
will see, un-normalised), records the phases the client asks for (``rest`` and one
recording per gesture), reports progress and live per-channel RMS, and at the end computes
the calibration with :func:`~emgd.dsp.normalise.compute_calibration`, saves it atomically
with :mod:`emgd.calibration.store` and hands it to the daemon to apply, or refuses with
the reason and keeps the previous one. It also owns the socket handlers of the
``calibrate.*`` methods; they run in the status server's thread and therefore only read the
snapshot this module publishes or submit a command to the loop (the reply carries a
sequence number; ``calibrate.progress`` says when that command was applied and whether it
failed). It must not touch the servos, the safety gate or the pipeline directly: the daemon
passes in ``hold``, ``release`` and ``apply`` callbacks.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from emgd.calibration import store as calibration_store
from emgd.clock import Clock
from emgd.command_ledger import CLIENT_TIMEOUT_S, CommandLedger
from emgd.dsp.filters import FilterSpec, StreamingFilter
from emgd.dsp.normalise import (
    DEFAULT_EFFORT_PERCENTILE,
    DEFAULT_ENVELOPE_S,
    Calibration,
    compute_calibration,
    moving_rms,
    railed_mask_from_bits,
)
from emgd.errors import CalibrationError, InvalidParams

FloatArray = npt.NDArray[np.float64]

# --- Session limits and timings -------------------------------------------------------
#: Longest single recording.
MAX_PHASE_S = 120.0
#: Shortest single recording (one envelope window of the calibration maths).
MIN_PHASE_S = DEFAULT_ENVELOPE_S
#: The session's filter runs this long from its first sample before a recording counts,
#: so its start-up transient never reaches the rest noise floor.
SETTLE_S = 0.3
#: Live RMS shown by ``calibrate.progress`` covers at least this much of the newest signal.
LIVE_RMS_S = 0.1
REST_PHASE = "rest"
#: Phase names: lower-case words (the client's gesture names, e.g. the poses of emgd.poses).
PHASE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
#: How compute_calibration names a channel at the start of its messages (0-based index).
_CHANNEL_PREFIX = re.compile(r"^calibration channel \d+: ")

Handler = Callable[[dict[str, Any], object], object]


class CalibrationSession:
    """The recordings of one session (loop thread only).

    Parameters
    ----------
    filter_spec:
        The model contract's filter (mains notch as configured).
    sample_rate_hz:
        Frame rate of the blocks fed.
    n_channels:
        EMG channels per frame.
    """

    def __init__(self, filter_spec: FilterSpec, sample_rate_hz: float, n_channels: int) -> None:
        self.sample_rate_hz = float(sample_rate_hz)
        self.n_channels = n_channels
        self._filter = StreamingFilter(filter_spec, sample_rate_hz, n_channels)
        self._settle_frames = round(SETTLE_S * sample_rate_hz)
        self._seen_frames = 0
        self._live: deque[FloatArray] = deque()
        self._live_frames = 0
        self._live_keep = max(1, round(LIVE_RMS_S * sample_rate_hz))
        self.phase: str | None = None
        self._target_frames = 0
        self._blocks: list[FloatArray] = []
        self._railed: list[npt.NDArray[np.uint32]] = []
        self._collected = 0
        self.recordings: dict[str, tuple[FloatArray, npt.NDArray[np.uint32]]] = {}

    @property
    def recording(self) -> bool:
        return self.phase is not None

    @property
    def settled(self) -> bool:
        """True once the filter has run long enough for a recording to count."""
        return self._seen_frames >= self._settle_frames

    @property
    def fraction(self) -> float:
        """Share of the current recording collected (0 when idle)."""
        return 0.0 if not self._target_frames else min(1.0, self._collected / self._target_frames)

    def recorded_s(self) -> dict[str, float]:
        """Seconds recorded per finished phase."""
        return {k: v[0].shape[0] / self.sample_rate_hz for k, v in self.recordings.items()}

    def live_rms_uv(self) -> list[float]:
        """Per-channel RMS of the newest filtered samples, shape ``(n_channels,)``."""
        if not self._live:
            return [0.0] * self.n_channels
        x = np.concatenate(list(self._live))[-self._live_keep :]
        return [float(v) for v in np.sqrt(np.mean(x * x, axis=0))]

    def start_recording(self, phase: str, seconds: float) -> None:
        """Begin recording ``phase`` (a redo replaces the earlier recording).

        Raises
        ------
        CalibrationError
            When another phase is still being recorded.
        """
        if self.phase is not None:
            raise CalibrationError(
                f"calibrate.record {phase!r}: still recording {self.phase!r} "
                f"({100 * self.fraction:.0f} % done)"
            )
        self.phase = phase
        self._target_frames = max(1, round(seconds * self.sample_rate_hz))
        self._blocks = []
        self._railed = []
        self._collected = 0

    def feed(self, block_uv: npt.ArrayLike, railed_bits: npt.ArrayLike) -> None:
        """Filter the hop's raw frames and record them if a phase is running.

        Parameters
        ----------
        block_uv:
            Shape ``(n, n_channels)``, raw µV as read from the ring.
        railed_bits:
            Shape ``(n,)``, per-frame railed bitmask (bit c = channel c).
        """
        x = np.asarray(block_uv, dtype=np.float64)
        if x.shape[0] == 0:
            return
        filtered = self._filter.process(x)
        self._live.append(filtered)
        self._live_frames += filtered.shape[0]
        while self._live_frames - self._live[0].shape[0] >= self._live_keep:
            self._live_frames -= self._live.popleft().shape[0]
        skip = max(0, min(filtered.shape[0], self._settle_frames - self._seen_frames))
        self._seen_frames += filtered.shape[0]
        if self.phase is None or skip == filtered.shape[0]:
            return
        take = min(filtered.shape[0] - skip, self._target_frames - self._collected)
        bits = np.asarray(railed_bits, dtype=np.uint32)
        self._blocks.append(filtered[skip : skip + take].copy())
        self._railed.append(bits[skip : skip + take].copy())
        self._collected += take
        if self._collected >= self._target_frames:
            self.recordings[self.phase] = (
                np.concatenate(self._blocks),
                np.concatenate(self._railed),
            )
            self.phase = None
            self._target_frames = 0
            self._blocks = []
            self._railed = []

    def compute(self) -> tuple[Calibration | None, dict[str, Any]]:
        """The calibration (None when refused) and the summary shown to the wearer.

        Raises
        ------
        CalibrationError
            When the rest phase or every gesture phase is missing.
        """
        if REST_PHASE not in self.recordings:
            raise CalibrationError("calibration: no rest recording (record phase 'rest' first)")
        gestures = [k for k in self.recordings if k != REST_PHASE]
        if not gestures:
            raise CalibrationError("calibration: no gesture recording (record at least one)")
        rest, rest_bits = self.recordings[REST_PHASE]
        effort = np.concatenate([self.recordings[g][0] for g in gestures])
        effort_bits = np.concatenate([self.recordings[g][1] for g in gestures])
        c = self.n_channels
        rest_railed = railed_mask_from_bits(rest_bits, c)
        effort_railed = railed_mask_from_bits(effort_bits, c)
        figures = channel_figures(rest, effort, self.sample_rate_hz)
        problems: dict[int, str] = {}
        for ch in range(c):
            try:
                compute_calibration(
                    rest[:, ch : ch + 1],
                    effort[:, ch : ch + 1],
                    self.sample_rate_hz,
                    rest_railed=rest_railed[:, ch : ch + 1],
                    effort_railed=effort_railed[:, ch : ch + 1],
                )
            except CalibrationError as exc:
                problems[ch] = _CHANNEL_PREFIX.sub("", str(exc))
        summary: dict[str, Any] = {
            "rest_s": rest.shape[0] / self.sample_rate_hz,
            "effort_s": effort.shape[0] / self.sample_rate_hz,
            "phases": self.recorded_s(),
            "channels": [
                {
                    "channel": ch + 1,
                    "noise_floor_uv": figures[0][ch],
                    "effort_level_uv": figures[1][ch],
                    "snr_db": figures[2][ch],
                    "problem": problems.get(ch),
                }
                for ch in range(c)
            ],
            "bad_channels": [ch + 1 for ch in sorted(problems)],
        }
        if problems:
            reason = "; ".join(f"ch{ch + 1}: {text}" for ch, text in sorted(problems.items()))
            summary["reason"] = f"calibration refused: {reason}"
            return None, summary
        try:
            calibration = compute_calibration(
                rest,
                effort,
                self.sample_rate_hz,
                rest_railed=rest_railed,
                effort_railed=effort_railed,
            )
        except CalibrationError as exc:
            summary["reason"] = str(exc)
            return None, summary
        return calibration, summary


def channel_figures(
    rest_uv: FloatArray, effort_uv: FloatArray, sample_rate_hz: float
) -> tuple[list[float], list[float], list[float]]:
    """Per-channel noise floor, effort level and SNR for the summary (also of bad channels).

    Parameters
    ----------
    rest_uv, effort_uv:
        Shapes ``(n_rest, C)`` and ``(n_effort, C)``, filtered µV.

    Returns
    -------
    noise_floor_uv, effort_level_uv, snr_db:
        One value per channel: RMS at rest about the rest median, the effort percentile of
        the moving-RMS envelope about the same median (as the calibration maths defines
        them), and ``20·log10(effort / noise)`` (inf for a silent rest, -inf for no effort).
    """
    offset = np.median(rest_uv, axis=0)
    noise = np.sqrt(np.mean(np.square(rest_uv - offset), axis=0))
    n_env = max(1, min(effort_uv.shape[0], round(DEFAULT_ENVELOPE_S * sample_rate_hz)))
    level = np.percentile(moving_rms(effort_uv - offset, n_env), DEFAULT_EFFORT_PERCENTILE, axis=0)
    snr = [
        math.inf if n == 0 and e > 0 else (-math.inf if e == 0 else 20 * math.log10(e / n))
        for n, e in zip(noise.tolist(), level.tolist(), strict=True)
    ]
    return [float(v) for v in noise], [float(v) for v in level], snr


class CalibrationService:
    """Hosts calibration sessions for the daemon.

    Parameters
    ----------
    filter_spec, sample_rate_hz, n_channels:
        The model contract's filter, rate and channel count.
    state_dir:
        Where :func:`emgd.calibration.store.save` writes the result.
    clock:
        The loop's clock (session time-out).
    submit:
        Runs a callable in the loop thread at the next hop (``Daemon.submit``).
    hold, release:
        Pause and resume the daemon's output (loop thread).
    apply:
        Swap the saved calibration in (loop thread).
    client_timeout_s:
        A session ends when its client is silent this long.

    Notes
    -----
    Threads: :meth:`handlers` run in the status server thread and only read
    :attr:`snapshot` or :func:`submit`; everything else runs in the loop thread.
    """

    def __init__(
        self,
        filter_spec: FilterSpec,
        sample_rate_hz: float,
        n_channels: int,
        state_dir: Path,
        clock: Clock,
        *,
        submit: Callable[[Callable[[], None]], None],
        hold: Callable[[], None],
        release: Callable[[], None],
        apply: Callable[[calibration_store.StoredCalibration], None],
        client_timeout_s: float = CLIENT_TIMEOUT_S,
    ) -> None:
        self._filter_spec = filter_spec
        self._sample_rate_hz = float(sample_rate_hz)
        self._n_channels = n_channels
        self._state_dir = state_dir
        self._clock = clock
        self._submit = submit
        self._hold = hold
        self._release = release
        self._apply = apply
        self.client_timeout_s = client_timeout_s
        self._session: CalibrationSession | None = None
        self._commands = CommandLedger(submit, clock, self._publish)
        self._session_number = 0
        self._result: dict[str, Any] | None = None
        self.snapshot: Mapping[str, Any] = {}
        self._publish()

    # ------------------------------------------------------------------ loop thread
    @property
    def active(self) -> bool:
        return self._session is not None

    def on_frames(self, block_uv: npt.ArrayLike, railed_bits: npt.ArrayLike) -> None:
        """Feed one hop's raw frames (loop thread); a no-op without a session."""
        if self._session is None:
            return
        self._session.feed(block_uv, railed_bits)
        self._publish()

    def tick(self, now_ns: int) -> None:
        """End a session whose client went away (loop thread, every hop)."""
        if self._session is None:
            return
        silent_s = self._commands.silent_s(now_ns)
        if silent_s > self.client_timeout_s:
            self._finish_session(
                {
                    "outcome": "timed_out",
                    "reason": f"no word from the client for {silent_s:.0f} s: session ended",
                },
                release=True,
            )

    def end(self, reason: str) -> None:
        """End the session without resuming (the daemon is resuming already)."""
        if self._session is not None:
            self._finish_session({"outcome": "cancelled", "reason": reason}, release=False)

    def _start(self) -> None:
        if self._session is not None:
            raise CalibrationError("calibrate.start: a calibration session is already running")
        self._session = CalibrationSession(
            self._filter_spec, self._sample_rate_hz, self._n_channels
        )
        self._session_number += 1
        self._result = None
        self._hold()

    def _record(self, phase: str, seconds: float) -> None:
        self._require_session("calibrate.record").start_recording(phase, seconds)

    def _finish(self) -> None:
        session = self._require_session("calibrate.finish")
        if session.recording:
            raise CalibrationError(
                f"calibrate.finish: still recording {session.phase!r} "
                f"({100 * session.fraction:.0f} % done)"
            )
        try:
            calibration, summary = session.compute()
        except CalibrationError as exc:
            self._finish_session({"outcome": "refused", "reason": str(exc)}, release=True)
            return
        if calibration is None:
            reason = summary.pop("reason")
            self._finish_session(
                {"outcome": "refused", "reason": reason, "summary": summary}, release=True
            )
            return
        stored = calibration_store.StoredCalibration(
            offset=tuple(float(v) for v in calibration.normaliser.offset),
            scale=tuple(float(v) for v in calibration.normaliser.scale),
            sample_rate_hz=self._sample_rate_hz,
            noise_floor_uv=tuple(float(v) for v in calibration.noise_floor_uv),
            effort_level_uv=tuple(float(v) for v in calibration.effort_level_uv),
            created=calibration_store.now_text(),
        )
        try:
            path = calibration_store.save(self._state_dir, stored)
        except OSError as exc:
            reason = f"calibration not saved in {self._state_dir}: {exc.strerror or exc}"
            self._finish_session(
                {"outcome": "refused", "reason": reason, "summary": summary}, release=True
            )
            return
        self._apply(stored)
        self._finish_session(
            {
                "outcome": "saved",
                "identity": stored.identity(),
                "path": str(path),
                "summary": summary,
            },
            release=True,
        )

    def _cancel(self) -> None:
        self._require_session("calibrate.cancel")
        self._finish_session(
            {"outcome": "cancelled", "reason": "cancelled by the client"}, release=True
        )

    def _require_session(self, method: str) -> CalibrationSession:
        if self._session is None:
            raise CalibrationError(f"{method}: no calibration session (call calibrate.start)")
        return self._session

    def _finish_session(self, result: dict[str, Any], *, release: bool) -> None:
        self._session = None
        self._result = result
        if release:
            self._release()
        self._publish()

    def _publish(self) -> None:
        s = self._session
        self.snapshot = {
            "active": s is not None,
            "session": self._session_number,
            **self._commands.fields(),
            "phase": None if s is None else s.phase,
            "recording": s is not None and s.recording,
            "settled": s is not None and s.settled,
            "fraction": 0.0 if s is None else s.fraction,
            "rms_uv": [] if s is None else s.live_rms_uv(),
            "recorded_s": {} if s is None else s.recorded_s(),
            "result": self._result,
        }

    # ------------------------------------------------------------------ server thread
    def handlers(self) -> dict[str, Handler]:
        """The ``calibrate.*`` socket handlers (run in the status server thread)."""
        return {
            "calibrate.start": lambda params, peer: self._commands.queue(self._start),
            "calibrate.record": self._handle_record,
            "calibrate.progress": self._handle_progress,
            "calibrate.finish": lambda params, peer: self._commands.queue(self._finish),
            "calibrate.cancel": lambda params, peer: self._commands.queue(self._cancel),
        }

    def _handle_record(self, params: dict[str, Any], peer: object) -> dict[str, int]:
        phase = params.get("phase")
        seconds = params.get("seconds")
        if not isinstance(phase, str) or not PHASE_NAME.match(phase):
            raise InvalidParams(
                f"calibrate.record phase {phase!r}: expected 'rest' or a gesture name "
                "(lower-case word)"
            )
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not MIN_PHASE_S <= seconds <= MAX_PHASE_S
        ):
            raise InvalidParams(
                f"calibrate.record seconds {seconds!r}: expected {MIN_PHASE_S:g}-{MAX_PHASE_S:g}"
            )
        return self._commands.queue(lambda: self._record(phase, float(seconds)))

    def _handle_progress(self, params: dict[str, Any], peer: object) -> Mapping[str, Any]:
        snapshot = self.snapshot
        self._commands.poll(bool(snapshot.get("active")))  # polling is the heartbeat
        return snapshot
