"""Servo arithmetic: finger angle ↔ pulse width ↔ PCA9685 counts, and the prescale formula.

This module owns the per-servo calibration record and every conversion between a finger
flexion angle (0° = open, 180° = flexed), a servo pulse width in microseconds, the 12-bit
count a PCA9685 channel holds, and the chip's PRE_SCALE value. It is pure arithmetic: it
must not talk to a bus, read the time or hold state, so that the driver
(:mod:`emgd.hw.pca9685`), the simulated hand (:mod:`emgd.sim.hand`) and the tests share one
definition of the mapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from emgd.errors import ConfigError

#: Number of PWM channels on one PCA9685.
N_CHANNELS = 16
#: Counts per PWM period (12-bit counter).
COUNTS_PER_PERIOD = 4096
#: Highest count an ON/OFF register can hold.
MAX_COUNT = COUNTS_PER_PERIOD - 1
#: The PCA9685's internal oscillator, nominal (real parts measure 23–27 MHz).
DEFAULT_REFERENCE_CLOCK_HZ = 25_000_000.0
#: PRE_SCALE limits from the datasheet (0x03 → ~1526 Hz, 0xFF → ~24 Hz at 25 MHz).
MIN_PRESCALE = 3
MAX_PRESCALE = 255
#: Full travel of the angle scale, degrees.
FULL_SCALE_DEG = 180.0
#: Sane bounds for a hobby servo's pulse end-points; beyond them servos hit their stops.
MIN_SERVO_PULSE_US = 300.0
MAX_SERVO_PULSE_US = 2700.0
#: Largest zero-offset correction a calibration may carry.
MAX_TRIM_DEG = 45.0

US_PER_S = 1_000_000.0


def _check_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class ServoCalibration:
    """How one finger's servo is wired and where its end-points are.

    Attributes
    ----------
    channel:
        PCA9685 output, 0–15.
    min_pulse_us, max_pulse_us:
        Pulse width that puts the servo shaft at 0° and at 180° (before inversion),
        within 300–2700 µs, ``min_pulse_us < max_pulse_us``.
    inverted:
        The servo is mounted mirrored: finger flexion 0° is servo 180°.
    trim_deg:
        Added to every commanded angle before the limits are applied (|trim| ≤ 45°).
    min_angle_deg, max_angle_deg:
        Mechanical limits of the finger in flexion degrees, inside 0–180, min < max.
        Commanded angles are clamped to them after trim.
    """

    channel: int
    min_pulse_us: float
    max_pulse_us: float
    inverted: bool = False
    trim_deg: float = 0.0
    min_angle_deg: float = 0.0
    max_angle_deg: float = FULL_SCALE_DEG

    def __post_init__(self) -> None:
        where = f"servo calibration (channel {self.channel!r})"
        if isinstance(self.channel, bool) or not isinstance(self.channel, int):
            raise ConfigError(f"{where}: channel must be an integer, got {self.channel!r}")
        if not 0 <= self.channel < N_CHANNELS:
            raise ConfigError(f"{where}: channel {self.channel} outside 0..{N_CHANNELS - 1}")
        if not isinstance(self.inverted, bool):
            raise ConfigError(f"{where}: inverted must be true or false, got {self.inverted!r}")
        for name in ("min_pulse_us", "max_pulse_us", "trim_deg", "min_angle_deg", "max_angle_deg"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{where}: {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{where}: {name} must be finite, got {value!r}")
        for name in ("min_pulse_us", "max_pulse_us"):
            value = getattr(self, name)
            if not MIN_SERVO_PULSE_US <= value <= MAX_SERVO_PULSE_US:
                raise ConfigError(
                    f"{where}: {name} = {value} outside "
                    f"{MIN_SERVO_PULSE_US:g}..{MAX_SERVO_PULSE_US:g} µs"
                )
        if not self.min_pulse_us < self.max_pulse_us:
            raise ConfigError(
                f"{where}: min_pulse_us = {self.min_pulse_us} must be below "
                f"max_pulse_us = {self.max_pulse_us} (use inverted = true to mirror)"
            )
        if abs(self.trim_deg) > MAX_TRIM_DEG:
            raise ConfigError(f"{where}: trim_deg = {self.trim_deg} outside ±{MAX_TRIM_DEG:g}°")
        for name in ("min_angle_deg", "max_angle_deg"):
            value = getattr(self, name)
            if not 0.0 <= value <= FULL_SCALE_DEG:
                raise ConfigError(f"{where}: {name} = {value} outside 0..{FULL_SCALE_DEG:g}°")
        if not self.min_angle_deg < self.max_angle_deg:
            raise ConfigError(
                f"{where}: min_angle_deg = {self.min_angle_deg} must be below "
                f"max_angle_deg = {self.max_angle_deg}"
            )


def angle_to_pulse_us(angle_deg: float, cal: ServoCalibration) -> float:
    """Pulse width that puts a finger at ``angle_deg`` of flexion.

    The trim is added first, the result is clamped to ``[min_angle_deg, max_angle_deg]``,
    mirrored (``180 − a``) when the servo is inverted, then mapped linearly from
    ``[0, 180]`` onto ``[min_pulse_us, max_pulse_us]``.

    Raises
    ------
    ValueError
        ``angle_deg`` is NaN or infinite.
    """
    _check_finite(f"angle for servo channel {cal.channel}", angle_deg)
    flexion_deg = min(max(angle_deg + cal.trim_deg, cal.min_angle_deg), cal.max_angle_deg)
    shaft_deg = FULL_SCALE_DEG - flexion_deg if cal.inverted else flexion_deg
    span_us = cal.max_pulse_us - cal.min_pulse_us
    return cal.min_pulse_us + span_us * shaft_deg / FULL_SCALE_DEG


def pulse_us_to_angle_deg(pulse_us: float, cal: ServoCalibration) -> float:
    """The commanded finger angle that a pulse width stands for (inverse of the mapping).

    Inverts the linear map, the mirroring and the trim, but applies **no** clamp: a pulse
    outside the calibrated range gives an angle outside the mechanical limits (the caller
    decides what that means: the simulated hand clamps to 0–180°).

    Raises
    ------
    ValueError
        ``pulse_us`` is NaN or infinite.
    """
    _check_finite(f"pulse for servo channel {cal.channel}", pulse_us)
    span_us = cal.max_pulse_us - cal.min_pulse_us
    shaft_deg = (pulse_us - cal.min_pulse_us) * FULL_SCALE_DEG / span_us
    flexion_deg = FULL_SCALE_DEG - shaft_deg if cal.inverted else shaft_deg
    return flexion_deg - cal.trim_deg


def prescale_for(
    frequency_hz: float, reference_clock_hz: float = DEFAULT_REFERENCE_CLOCK_HZ
) -> int:
    """PRE_SCALE value for a PWM frequency: ``round(osc / (4096·f)) − 1`` (halves round up).

    Rounding half up matches ``adafruit_pca9685`` (``int(x + 0.5) − 1``), so the value
    computed here is the one the library writes.

    Raises
    ------
    ValueError
        Non-finite or non-positive input, or a result outside 3..255 (at 25 MHz: about
        24–1526 Hz).
    """
    _check_finite("PWM frequency_hz", frequency_hz)
    _check_finite("reference_clock_hz", reference_clock_hz)
    if frequency_hz <= 0 or reference_clock_hz <= 0:
        raise ValueError(
            f"PWM frequency_hz ({frequency_hz}) and reference_clock_hz ({reference_clock_hz}) "
            "must be positive"
        )
    prescale = math.floor(reference_clock_hz / (COUNTS_PER_PERIOD * frequency_hz) + 0.5) - 1
    if not MIN_PRESCALE <= prescale <= MAX_PRESCALE:
        low_hz = frequency_for(MAX_PRESCALE, reference_clock_hz)
        high_hz = frequency_for(MIN_PRESCALE, reference_clock_hz)
        raise ValueError(
            f"PWM frequency {frequency_hz} Hz needs PRE_SCALE {prescale}, outside "
            f"{MIN_PRESCALE}..{MAX_PRESCALE} (reachable: {low_hz:.1f}..{high_hz:.1f} Hz "
            f"with a {reference_clock_hz:g} Hz oscillator)"
        )
    return prescale


def frequency_for(prescale: int, reference_clock_hz: float = DEFAULT_REFERENCE_CLOCK_HZ) -> float:
    """The PWM frequency a PRE_SCALE value produces: ``osc / (4096·(prescale + 1))``.

    Raises
    ------
    ValueError
        ``prescale`` outside 3..255 or a non-positive oscillator frequency.
    """
    if not MIN_PRESCALE <= prescale <= MAX_PRESCALE:
        raise ValueError(f"PRE_SCALE {prescale} outside {MIN_PRESCALE}..{MAX_PRESCALE}")
    _check_finite("reference_clock_hz", reference_clock_hz)
    if reference_clock_hz <= 0:
        raise ValueError(f"reference_clock_hz must be positive, got {reference_clock_hz}")
    return reference_clock_hz / (COUNTS_PER_PERIOD * (prescale + 1))


def pulse_us_to_counts(pulse_us: float, frequency_hz: float) -> int:
    """The 12-bit OFF count (with ON = 0) whose high time is closest to ``pulse_us``.

    Raises
    ------
    ValueError
        Non-finite input, non-positive frequency, or a pulse that does not fit in one
        period (count outside 0..4095).
    """
    _check_finite("pulse_us", pulse_us)
    _check_finite("frequency_hz", frequency_hz)
    if frequency_hz <= 0:
        raise ValueError(f"frequency_hz must be positive, got {frequency_hz}")
    counts = math.floor(pulse_us * frequency_hz * COUNTS_PER_PERIOD / US_PER_S + 0.5)
    if not 0 <= counts <= MAX_COUNT:
        raise ValueError(
            f"pulse of {pulse_us} µs is {counts} counts at {frequency_hz:.4f} Hz, "
            f"outside 0..{MAX_COUNT}"
        )
    return counts


def counts_to_pulse_us(counts: int, frequency_hz: float) -> float:
    """High time in microseconds of a channel that stays high for ``counts`` of 4096.

    Raises
    ------
    ValueError
        ``counts`` outside 0..4096 or a non-positive frequency.
    """
    if not 0 <= counts <= COUNTS_PER_PERIOD:
        raise ValueError(f"count {counts} outside 0..{COUNTS_PER_PERIOD}")
    _check_finite("frequency_hz", frequency_hz)
    if frequency_hz <= 0:
        raise ValueError(f"frequency_hz must be positive, got {frequency_hz}")
    return counts * US_PER_S / (COUNTS_PER_PERIOD * frequency_hz)
