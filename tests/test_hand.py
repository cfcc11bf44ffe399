"""Tests for emgd.sim.hand: fingers follow the simulated PCA9685's pulses at servo speed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emgd.clock import FakeClock
from emgd.hw.pca9685 import ServoBoard
from emgd.hw.servo_math import ServoCalibration
from emgd.sim.hand import SimHand
from emgd.sim.i2c_bus import SimI2CBus
from emgd.sim.pca9685_sim import Pca9685Sim

PLAIN = [ServoCalibration(channel=k, min_pulse_us=500.0, max_pulse_us=2500.0) for k in range(5)]
# 90° → 307 counts → 307 · 4.88 = 1498.16 µs → (1498.16 − 500) · 180 / 2000 = 89.8344°
REACHED_90_DEG = 89.8344


class Rig:
    def __init__(self, servos: list[ServoCalibration] = PLAIN, speed_deg_s: float = 350.0) -> None:
        self.clock = FakeClock()
        self.pca = Pca9685Sim()
        self.bus = SimI2CBus()
        self.bus.attach(0x40, self.pca)
        self.board = ServoBoard(self.bus, servos)
        self.hand = SimHand(self.pca, self.clock, servos, speed_deg_s=speed_deg_s)


def test_finger_moves_at_the_servo_speed_and_stops_at_the_target() -> None:
    rig = Rig()
    rig.board.write_angles([90.0, 0.0, 0.0, 0.0, 0.0])
    rig.clock.advance_s(0.1)
    np.testing.assert_allclose(rig.hand.update(), [35.0, 0, 0, 0, 0], atol=1e-9)
    rig.clock.advance_s(0.1)
    np.testing.assert_allclose(rig.hand.update(), [70.0, 0, 0, 0, 0], atol=1e-9)
    rig.clock.advance_s(0.1)  # would reach 105°: stops where the pulse points
    np.testing.assert_allclose(rig.hand.update(), [REACHED_90_DEG, 0, 0, 0, 0], atol=1e-9)
    rig.clock.advance_s(1.0)
    np.testing.assert_allclose(rig.hand.update()[0], REACHED_90_DEG, atol=1e-9)


def test_mg996r_class_speed_60_deg_in_about_0_17_s() -> None:
    rig = Rig()
    rig.board.write_angles([180.0] * 5)
    rig.clock.advance_s(0.17)
    assert rig.hand.update()[0] == pytest.approx(59.5)


def test_fingers_move_both_ways_and_independently() -> None:
    rig = Rig(speed_deg_s=100.0)
    rig.hand = SimHand(
        rig.pca, rig.clock, PLAIN, speed_deg_s=100.0, initial_angles_deg=[180, 180, 0, 0, 90]
    )
    rig.board.write_angles([0.0, 170.0, 10.0, 180.0, 90.0])
    rig.clock.advance_s(0.05)  # 5° at most
    angles = rig.hand.update()
    np.testing.assert_allclose(angles[[0, 1, 3]], [175.0, 175.0, 5.0], atol=1e-9)
    assert angles[2] == pytest.approx(5.0)
    assert abs(angles[4] - 90.0) < 0.2  # already there (within one count)


def test_inverted_and_trimmed_servos_land_on_the_commanded_flexion() -> None:
    servos = [
        ServoCalibration(channel=0, min_pulse_us=1000.0, max_pulse_us=2000.0, inverted=True),
        ServoCalibration(channel=1, min_pulse_us=600.0, max_pulse_us=2400.0, trim_deg=10.0),
        *PLAIN[2:],
    ]
    rig = Rig(servos)
    rig.board.write_angles([30.0, 40.0, 0.0, 0.0, 0.0])
    rig.clock.advance_s(1.0)
    angles = rig.hand.update()
    # inverted: 30° → 1833.3 µs → 375.7 → 376 counts → 1834.88 µs → shaft 149.08° → 30.92°
    assert angles[0] == pytest.approx(180.0 - (376 * 4.88 - 1000.0) * 180 / 1000, abs=1e-9)
    assert abs(angles[0] - 30.0) < 180 * 4.88 / 1000  # within one count
    # the hand uses the same calibration, so the trim cancels: within one count of 40°
    assert abs(angles[1] - 40.0) < 180 * 4.88 / 1800


def test_released_channel_leaves_the_finger_limp() -> None:
    rig = Rig()
    rig.board.write_angles([90.0] * 5)
    rig.clock.advance_s(0.1)
    rig.hand.update()
    rig.board.release()
    rig.clock.advance_s(1.0)
    np.testing.assert_allclose(rig.hand.update(), [35.0] * 5, atol=1e-9)
    assert np.isnan(rig.hand.target_angles_deg()).all()
    rig.board.hold()
    rig.clock.advance_s(0.1)
    np.testing.assert_allclose(rig.hand.update(), [70.0] * 5, atol=1e-9)


def test_sleeping_chip_drives_nothing() -> None:
    clock = FakeClock()
    pca = Pca9685Sim()
    hand = SimHand(pca, clock, PLAIN, initial_angles_deg=[10, 20, 30, 40, 50])
    clock.advance_s(1.0)
    np.testing.assert_allclose(hand.update(), [10, 20, 30, 40, 50])


def test_full_on_channel_is_not_a_servo_pulse() -> None:
    rig = Rig()
    assert rig.bus.try_lock()
    rig.bus.writeto(0x40, b"\x06\x00\x10\x00\x00")  # channel 0 full ON
    rig.bus.unlock()
    rig.clock.advance_s(1.0)
    assert rig.hand.update()[0] == 0.0


def test_pulse_beyond_the_calibrated_range_drives_to_the_end_stop() -> None:
    rig = Rig()
    assert rig.bus.try_lock()
    rig.bus.writeto(0x40, b"\x06\x00\x00\x20\x02")  # 544 counts = 2654.72 µs > 2500
    rig.bus.unlock()
    rig.clock.advance_s(1.0)
    assert rig.hand.update()[0] == 180.0


def test_angles_are_copies_and_update_returns_shape_five() -> None:
    rig = Rig()
    angles = rig.hand.angles_deg
    angles[0] = 99.0
    assert rig.hand.angles_deg[0] == 0.0
    assert rig.hand.update().shape == (5,)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"speed_deg_s": 0.0}, "speed_deg_s"),
        ({"speed_deg_s": math.nan}, "speed_deg_s"),
        ({"initial_angles_deg": [0.0] * 4}, "shape"),
        ({"initial_angles_deg": [0.0, 0.0, math.inf, 0.0, 0.0]}, "finite"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        SimHand(Pca9685Sim(), FakeClock(), PLAIN, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        SimHand(Pca9685Sim(), FakeClock(), [])
