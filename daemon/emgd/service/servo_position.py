"""Where each servo *is*: the pulse last written to the board, as a finger angle, and moves
that start from it.

This module owns the one answer the daemon gives to "where is the hand": the OFF counts the
servo board last wrote (from an angle or from a raw ``servo.set_pulse`` pulse), turned back
into finger angles through each servo's calibration, with no clamp, so a finger held beyond
its limits is reported where it is. It also owns the inverse for such angles (counts for an
angle outside a finger's limits, so a move from a held pulse re-enters the limits step by
step instead of being clamped in one jump), the slew-limited walk the daemon makes at
shutdown, and the journal's wording of the pulses on the servos. It must not decide when to
move or where to (the safety gate and the runner do), and it holds no state of its own: the
board's :attr:`~emgd.hw.pca9685.ServoBoard.last_counts` is the state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from emgd.config import FINGERS
from emgd.hw.pca9685 import FULL_OFF, ServoBoard
from emgd.hw.servo_math import (
    FULL_SCALE_DEG,
    MAX_SERVO_PULSE_US,
    MIN_SERVO_PULSE_US,
    ServoCalibration,
    counts_to_pulse_us,
    pulse_us_to_angle_deg,
    pulse_us_to_counts,
)

FloatArray = npt.NDArray[np.float64]

#: Two poses closer than this (degrees, every finger) are the same pose for a walk.
SAME_POSE_TOL_DEG = 1e-6


def pulses_us(counts: Sequence[int], board: ServoBoard) -> tuple[float | None, ...]:
    """The pulse (µs) each OFF count stands for at the board's frequency, finger order;
    None for a channel at full OFF (no pulse: the servo is limp)."""
    return tuple(
        None if c & FULL_OFF else counts_to_pulse_us(c, board.frequency_hz) for c in counts
    )


def written_pulses_us(board: ServoBoard) -> tuple[float | None, ...]:
    """The pulse (µs) each servo holds from the board's last write; all None before the
    first write."""
    counts = board.last_counts
    if counts is None:
        return (None,) * len(board.servos)
    return pulses_us(counts, board)


def position_deg(board: ServoBoard, fallback_deg: Sequence[float] | FloatArray) -> FloatArray:
    """Shape ``(n_servos,)``: the finger angle each servo's last written pulse stands for.

    No clamp: a pulse beyond a finger's calibrated range or limits gives an angle beyond
    them. A servo with no pulse (never written, or released) takes ``fallback_deg``.
    """
    out = np.array(fallback_deg, dtype=np.float64)
    if out.shape != (len(board.servos),):
        raise ValueError(
            f"servo position: fallback has shape {out.shape}, expected ({len(board.servos)},)"
        )
    for i, (pulse_us, cal) in enumerate(zip(written_pulses_us(board), board.servos, strict=True)):
        if pulse_us is not None:
            out[i] = pulse_us_to_angle_deg(pulse_us, cal)
    return out


def _unclamped_pulse_us(angle_deg: float, cal: ServoCalibration) -> float:
    """The servo's linear angle → pulse map without the limit clamp, kept inside the pulses
    a hobby servo accepts (300–2700 µs)."""
    flexion_deg = angle_deg + cal.trim_deg
    shaft_deg = FULL_SCALE_DEG - flexion_deg if cal.inverted else flexion_deg
    span_us = cal.max_pulse_us - cal.min_pulse_us
    pulse_us = cal.min_pulse_us + span_us * shaft_deg / FULL_SCALE_DEG
    return min(max(pulse_us, MIN_SERVO_PULSE_US), MAX_SERVO_PULSE_US)


def counts_for_angles(
    board: ServoBoard, angles_deg: Sequence[float] | FloatArray
) -> tuple[int, ...]:
    """OFF counts for one angle per servo.

    Inside a finger's limits (after trim) this is the board's own mapping, the counts
    :meth:`~emgd.hw.pca9685.ServoBoard.write_angles` would write; beyond them (a finger
    coming back from a held pulse) the same linear map, unclamped, so the way back is as
    gradual as the angles given.

    Raises
    ------
    ValueError
        Wrong number of angles or a non-finite angle.
    """
    angles = [float(a) for a in angles_deg]
    counts = list(board.angles_to_counts(angles))  # checks the count and finiteness
    for i, (angle, cal) in enumerate(zip(angles, board.servos, strict=True)):
        if not cal.min_angle_deg <= angle + cal.trim_deg <= cal.max_angle_deg:
            counts[i] = pulse_us_to_counts(_unclamped_pulse_us(angle, cal), board.frequency_hz)
    return tuple(counts)


def walk_steps(
    start_deg: Sequence[float] | FloatArray,
    target_deg: Sequence[float] | FloatArray,
    max_step_deg: float,
    max_steps: int,
) -> list[FloatArray]:
    """The poses of a straight, slew-limited walk from ``start_deg`` to ``target_deg``.

    Each pose differs from the one before (the first from ``start_deg``) by at most
    ``max_step_deg`` on every finger; the last is ``target_deg`` unless ``max_steps`` ran
    out first. Empty when the hand is already there.

    Raises
    ------
    ValueError
        Shapes differ, a value is not finite, or ``max_step_deg`` is not positive.
    """
    current = np.array(start_deg, dtype=np.float64)
    target = np.array(target_deg, dtype=np.float64)
    if current.shape != target.shape:
        raise ValueError(f"walk: start {current.shape} and target {target.shape} differ")
    if not (np.all(np.isfinite(current)) and np.all(np.isfinite(target))):
        raise ValueError(f"walk: start {current!r} and target {target!r} must be finite")
    if not max_step_deg > 0:
        raise ValueError(f"walk: max_step_deg = {max_step_deg!r} must be positive")
    steps: list[FloatArray] = []
    while len(steps) < max_steps and not np.allclose(current, target, atol=SAME_POSE_TOL_DEG):
        current = current + np.clip(target - current, -max_step_deg, max_step_deg)
        steps.append(current.copy())
    return steps


def walk_to(
    board: ServoBoard,
    target_deg: Sequence[float] | FloatArray,
    *,
    max_step_deg: float,
    max_steps: int,
    after_write: Callable[[], None],
    fallback_deg: Sequence[float] | FloatArray,
) -> int:
    """Walk the servos from where they are (:func:`position_deg`) to ``target_deg``, one
    write per step, calling ``after_write`` after each (the caller waits for the next
    frame there); return the number of writes.

    Raises
    ------
    HardwareIOError
        A write failed: the walk stops there and the board still knows the last pulses
        that did go out.
    """
    start = position_deg(board, fallback_deg)
    steps = walk_steps(start, target_deg, max_step_deg, max_steps)
    for angles in steps:
        board.write_counts(counts_for_angles(board, angles))
        after_write()
    return len(steps)


def describe(board: ServoBoard, counts: Sequence[int]) -> str:
    """``thumb 833 µs (30°), index 2499 µs (180°), …``: OFF counts as the journal says them."""
    parts = []
    for finger, pulse_us, cal in zip(FINGERS, pulses_us(counts, board), board.servos, strict=True):
        if pulse_us is None:
            parts.append(f"{finger} off")
        else:
            angle_deg = pulse_us_to_angle_deg(pulse_us, cal)
            parts.append(f"{finger} {pulse_us:.0f} µs ({angle_deg:.0f}°)")
    return ", ".join(parts)
