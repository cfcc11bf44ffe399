"""The simulated hand: five finger servos following the pulses of a simulated PCA9685.

This module owns the fingers' angles and how they move: each finger turns toward the
flexion angle its channel's pulse commands (through the inverse servo maths of its
calibration) at a bounded speed, like an MG996R-class servo (about 0.17 s per 60°). A
channel without pulses leaves its finger where it is (a servo without a signal goes
limp). It reads the chip model's outputs only, never its registers or the bus, and it
does not model load, inertia, overshoot, dead band or stall current.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emgd.clock import NS_PER_S, Clock
from emgd.hw.interfaces import FloatArray
from emgd.hw.servo_math import (
    FULL_SCALE_DEG,
    MAX_SERVO_PULSE_US,
    MIN_SERVO_PULSE_US,
    ServoCalibration,
    pulse_us_to_angle_deg,
)
from emgd.sim.pca9685_sim import Pca9685Sim

#: MG996R-class speed: 60° in about 0.17 s.
DEFAULT_SPEED_DEG_S = 350.0
#: Pulses outside this window are not servo pulses (e.g. a full-ON channel): no signal.
MIN_VALID_PULSE_US = MIN_SERVO_PULSE_US
MAX_VALID_PULSE_US = MAX_SERVO_PULSE_US


class SimHand:
    """Five fingers driven by the pulses on a :class:`Pca9685Sim`'s outputs.

    Parameters
    ----------
    pca:
        The chip model whose outputs the servos are wired to.
    clock:
        Time base; motion is integrated over the clock time between :meth:`update` calls.
    servos:
        One calibration per finger (thumb, index, middle, ring, little), the same the
        driver uses, so a perfect driver puts each finger where it was told.
    speed_deg_s:
        Highest finger speed in flexion degrees per second.
    initial_angles_deg:
        Where the fingers rest at power-up; open (0°) by default.

    Notes
    -----
    The command is sampled at each :meth:`update` and held over the elapsed interval, so
    call it at least as often as the servo frame rate for faithful trajectories.
    """

    def __init__(
        self,
        pca: Pca9685Sim,
        clock: Clock,
        servos: Sequence[ServoCalibration],
        *,
        speed_deg_s: float = DEFAULT_SPEED_DEG_S,
        initial_angles_deg: Sequence[float] | None = None,
    ) -> None:
        if not servos:
            raise ValueError("simulated hand: at least one servo calibration is needed")
        if not np.isfinite(speed_deg_s) or speed_deg_s <= 0:
            raise ValueError(f"simulated hand: speed_deg_s must be positive, got {speed_deg_s}")
        self._pca = pca
        self._clock = clock
        self._servos = tuple(servos)
        self._speed_deg_s = float(speed_deg_s)
        if initial_angles_deg is None:
            angles = np.zeros(len(self._servos), dtype=np.float64)
        else:
            angles = np.asarray(initial_angles_deg, dtype=np.float64).copy()
            if angles.shape != (len(self._servos),):
                raise ValueError(
                    f"simulated hand: initial_angles_deg has shape {angles.shape}, "
                    f"expected ({len(self._servos)},)"
                )
            if not np.all(np.isfinite(angles)):
                raise ValueError("simulated hand: initial_angles_deg must be finite")
            angles = np.clip(angles, 0.0, FULL_SCALE_DEG)
        self._angles_deg: FloatArray = angles
        self._last_ns = clock.monotonic_ns()

    @property
    def angles_deg(self) -> FloatArray:
        """Current finger angles, shape ``(n_fingers,)``, degrees of flexion (a copy)."""
        return self._angles_deg.copy()

    def target_angles_deg(self) -> FloatArray:
        """Where each finger is heading, shape ``(n_fingers,)``; NaN for a limp finger."""
        targets = np.full(len(self._servos), np.nan)
        for k, cal in enumerate(self._servos):
            pulse_us = self._pca.pulse_us(cal.channel)
            if pulse_us is None or not MIN_VALID_PULSE_US <= pulse_us <= MAX_VALID_PULSE_US:
                continue
            angle = pulse_us_to_angle_deg(pulse_us, cal)
            targets[k] = min(max(angle, 0.0), FULL_SCALE_DEG)
        return targets

    def update(self) -> FloatArray:
        """Advance the fingers to the clock's current time and return their angles.

        Returns
        -------
        numpy.ndarray
            Shape ``(n_fingers,)``, degrees of flexion (a copy).
        """
        now_ns = self._clock.monotonic_ns()
        elapsed_s = max(now_ns - self._last_ns, 0) / NS_PER_S
        self._last_ns = now_ns
        targets = self.target_angles_deg()
        driven = ~np.isnan(targets)
        step_deg = self._speed_deg_s * elapsed_s
        delta = np.clip(targets[driven] - self._angles_deg[driven], -step_deg, step_deg)
        self._angles_deg[driven] += delta
        return self._angles_deg.copy()
