"""The hardware monitor: EMG through the real ADC driver, servo commands through the real
PCA9685 path, summarised once per hop for a live view.

This is the acquisition + servo path without a model: it reads every frame from the
driver, keeps per-channel RMS over each hop, and commands the servos from a chosen source
(``intent``: the simulated wearer's intended finger angles, only on the simulated board;
``sweep``: a slow open/close sweep for checking servo end points; ``hold``: never moves).
It owns no threads and no terminal; time comes from the injected clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from emgd.clock import NS_PER_S, Clock
from emgd.errors import ConfigError
from emgd.hw.interfaces import FloatArray
from emgd.service.board import Board

SERVO_SOURCES = ("intent", "sweep", "hold")
#: One servo frame at 50 Hz.
DEFAULT_HOP_S = 0.020
SWEEP_PERIOD_S = 8.0
#: Frames may be late by this much before a DRDY wait gives up.
FRAME_TIMEOUT_S = 0.25
HOLD_ANGLE_DEG = 30.0


@dataclass(frozen=True)
class HopSummary:
    """What one hop looked like (immutable snapshot for the view)."""

    time_s: float
    frames: int
    rms_uv: FloatArray  # (C,)
    railed_mask: int
    lead_off_mask: int
    commanded_deg: tuple[float, ...]
    counts: tuple[int, ...]
    pulses_us: tuple[float | None, ...]
    hand_deg: tuple[float, ...] | None
    intent_deg: tuple[float, ...] | None
    frames_read: int
    frames_lost: int
    frames_stale: int
    frames_invalid: int
    timeouts: int
    achieved_rate_hz: float


class Monitor:
    """Run the acquisition and servo path hop by hop.

    Parameters
    ----------
    board:
        Opened hardware (real or simulated).
    clock:
        The same clock the board was built with.
    servo_source:
        ``intent``, ``sweep`` or ``hold``.
    hop_s:
        Seconds of EMG per hop (one servo update each).
    """

    def __init__(
        self,
        board: Board,
        clock: Clock,
        *,
        servo_source: str = "intent",
        hop_s: float = DEFAULT_HOP_S,
    ) -> None:
        if servo_source not in SERVO_SOURCES:
            raise ConfigError(
                f"servo source {servo_source!r}: must be one of {', '.join(SERVO_SOURCES)}"
            )
        if servo_source == "intent" and board.sim is None:
            raise ConfigError(
                "servo source 'intent' needs the simulated board (the real wearer's intent is "
                "what the model estimates); use 'sweep' or 'hold'"
            )
        self._board = board
        self._clock = clock
        self._source = servo_source
        self._hop_frames = max(1, round(hop_s * board.adc.sample_rate_hz))
        self._n_channels = board.adc.n_channels
        self._start_ns = 0
        self._started = False

    @property
    def hop_frames(self) -> int:
        return self._hop_frames

    def start(self) -> None:
        """Move the servos to the rest pose and start conversions."""
        self._board.servos.write_angles([HOLD_ANGLE_DEG] * 5)
        self._board.adc.start()
        self._start_ns = self._clock.monotonic_ns()
        self._started = True

    def hop(self) -> HopSummary:
        """Read one hop of frames, command the servos once, and summarise."""
        if not self._started:
            self.start()
        adc = self._board.adc
        sum_sq = np.zeros(self._n_channels)
        frames = 0
        railed = 0
        lead_off = 0
        for _ in range(self._hop_frames):
            frame = adc.read_frame(FRAME_TIMEOUT_S)
            if frame is None:
                break
            sum_sq += frame.emg_uv * frame.emg_uv
            frames += 1
            railed |= frame.railed
            lead_off |= frame.lead_off_p | frame.lead_off_n
        rms = np.sqrt(sum_sq / frames) if frames else np.full(self._n_channels, math.nan)
        now_ns = self._clock.monotonic_ns()
        elapsed_s = (now_ns - self._start_ns) / NS_PER_S
        commanded = self._command(elapsed_s)
        counts = self._board.servos.write_angles(commanded)
        sim = self._board.sim
        pulses: tuple[float | None, ...] = ()
        hand = intent = None
        if sim is not None:
            pulses = tuple(sim.pca.pulse_us(cal.channel) for cal in self._board.servos.servos)
            hand = tuple(float(a) for a in sim.hand.update())
            intent = tuple(float(a) for a in sim.wearer.target_angles_deg())
        stats = adc.stats
        return HopSummary(
            time_s=elapsed_s,
            frames=frames,
            rms_uv=rms,
            railed_mask=railed,
            lead_off_mask=lead_off,
            commanded_deg=tuple(commanded),
            counts=counts,
            pulses_us=pulses,
            hand_deg=hand,
            intent_deg=intent,
            frames_read=stats.frames_read,
            frames_lost=stats.frames_lost,
            frames_stale=stats.frames_stale,
            frames_invalid=stats.frames_invalid,
            timeouts=stats.timeouts,
            achieved_rate_hz=(stats.frames_read + stats.frames_lost) / elapsed_s
            if elapsed_s > 0
            else 0.0,
        )

    def run(self, duration_s: float, on_hop: Callable[[HopSummary], None] | None = None) -> int:
        """Hop until ``duration_s`` of clock time has passed; returns the hop count."""
        if not self._started:
            self.start()
        end_ns = self._start_ns + round(duration_s * NS_PER_S)
        hops = 0
        while self._clock.monotonic_ns() < end_ns:
            summary = self.hop()
            hops += 1
            if on_hop is not None:
                on_hop(summary)
        return hops

    def _command(self, elapsed_s: float) -> list[float]:
        if self._source == "intent":
            assert self._board.sim is not None
            return [float(a) for a in self._board.sim.wearer.target_angles_deg()]
        if self._source == "sweep":
            phase = 0.5 - 0.5 * math.cos(2 * math.pi * elapsed_s / SWEEP_PERIOD_S)
            return [180.0 * phase] * 5
        return [HOLD_ANGLE_DEG] * 5
