"""Contract of the servo board (PCA9685 through the Adafruit library), written once.

Simulated PCA9685 in CI; the real board when ``EMGD_TEST_HARDWARE=1`` (servos move: keep
the hand clear).
"""

from __future__ import annotations

import pytest

from emgd.clock import Clock
from emgd.hw.servo_math import angle_to_pulse_us, pulse_us_to_counts
from emgd.service.board import Board

FULL_OFF = 4096


def test_written_counts_read_back(board_and_clock: tuple[Board, Clock]) -> None:
    board, _clock = board_and_clock
    angles = [0.0, 45.0, 90.0, 135.0, 180.0]
    written = board.servos.write_angles(angles)
    assert board.servos.read_counts() == written
    for angle, cal, counts in zip(angles, board.servos.servos, written, strict=True):
        expected = pulse_us_to_counts(angle_to_pulse_us(angle, cal), board.servos.frequency_hz)
        assert counts == expected


def test_release_goes_limp_and_hold_restores(board_and_clock: tuple[Board, Clock]) -> None:
    board, _clock = board_and_clock
    written = board.servos.write_angles([30.0] * 5)
    board.servos.release()
    assert board.servos.read_counts() == (FULL_OFF,) * 5
    assert board.servos.hold() == written
    assert board.servos.read_counts() == written


def test_non_finite_angle_never_reaches_the_chip(board_and_clock: tuple[Board, Clock]) -> None:
    board, _clock = board_and_clock
    written = board.servos.write_angles([60.0] * 5)
    with pytest.raises(ValueError, match=r"finite|nan|NaN"):
        board.servos.write_angles([60.0, float("nan"), 60.0, 60.0, 60.0])
    assert board.servos.read_counts() == written
