"""Tests for emgd.hw.pca9685: the servo board driver, byte for byte against the simulator."""

from __future__ import annotations

import math

import pytest

from emgd.errors import ConfigError, HardwareInitError, HardwareIOError
from emgd.hw.pca9685 import FULL_OFF, ServoBoard
from emgd.hw.servo_math import ServoCalibration
from emgd.sim.i2c_bus import I2CNack, SimI2CBus, TransferKind
from emgd.sim.pca9685_sim import Pca9685Sim

W, WR = TransferKind.WRITE, TransferKind.WRITE_READ
PLAIN = [ServoCalibration(channel=k, min_pulse_us=500.0, max_pulse_us=2500.0) for k in range(5)]


def make_rig(pca: Pca9685Sim | None = None, address: int = 0x40) -> tuple[SimI2CBus, Pca9685Sim]:
    chip = Pca9685Sim() if pca is None else pca
    bus = SimI2CBus(log_limit=200)
    bus.attach(address, chip)
    return bus, chip


def wire_log(bus: SimI2CBus) -> list[tuple[TransferKind, bytes, bytes]]:
    return [(t.kind, t.tx, t.rx) for t in bus.log]


# ---- start-up ------------------------------------------------------------------------------


def test_cold_start_bus_log_from_power_up() -> None:
    bus, chip = make_rig()
    board = ServoBoard(bus, PLAIN)
    assert wire_log(bus) == [
        (W, b"", b""),  # I2CDevice probe
        (W, b"\x00\x00", b""),  # library reset(): MODE1 = 0 (wakes the chip)
        (WR, b"\x00", b"\x00"),  # driver: MODE1 (no RESTART pending)
        (WR, b"\xfe", b"\x1e"),  # driver: PRE_SCALE = power-on 0x1E ≠ 0x79 → cold start
        (WR, b"\x00", b"\x00"),  # frequency setter: old MODE1
        (W, b"\x00\x10", b""),  # sleep
        (W, b"\xfe\x79", b""),  # PRE_SCALE = 121, accepted because SLEEP = 1
        (W, b"\x00\x00", b""),  # wake (old MODE1)
        (W, b"\x00\xa0", b""),  # RESTART | AI
        (WR, b"\xfe", b"\x79"),  # read-back
        (WR, b"\x00", b"\x20"),  # read-back: AI, awake, restart done
    ]
    assert not board.warm_start
    assert chip.prescale == 0x79
    assert board.prescale == 121
    assert board.frequency_hz == pytest.approx(25e6 / (4096 * 122))
    assert chip.outputs_running
    assert chip.prescale_writes_blocked == 0
    assert all(chip.pulse_us(k) is None for k in range(16))  # outputs start full OFF


def test_warm_start_keeps_the_pose_without_sleeping_the_chip() -> None:
    bus, chip = make_rig()
    ServoBoard(bus, PLAIN).write_angles([10.0, 20.0, 30.0, 40.0, 50.0])
    pulses = [chip.pulse_us(k) for k in range(5)]
    bus.clear_log()
    second = ServoBoard(bus, PLAIN)  # the daemon restarted
    assert second.warm_start
    assert wire_log(bus) == [
        (W, b"", b""),
        (W, b"\x00\x00", b""),  # forced by the library; the oscillator keeps running
        (WR, b"\x00", b"\x00"),
        (WR, b"\xfe", b"\x79"),  # already 50 Hz
        (W, b"\x00\x20", b""),  # AI only
        (WR, b"\xfe", b"\x79"),
        (WR, b"\x00", b"\x20"),
    ]
    assert [chip.pulse_us(k) for k in range(5)] == pulses


def test_restart_pending_takes_the_cold_path_and_restores_outputs() -> None:
    bus, chip = make_rig()
    ServoBoard(bus, PLAIN).write_angles([90.0] * 5)
    assert bus.try_lock()
    bus.writeto(0x40, b"\x00\x30")  # someone put the running chip to sleep
    bus.unlock()
    assert chip.pulse_us(0) is None
    board = ServoBoard(bus, PLAIN)
    assert not board.warm_start
    assert chip.pulse_us(0) == pytest.approx(307 * 4.88)


def test_other_frequency_reprograms_the_prescale() -> None:
    bus, chip = make_rig()
    ServoBoard(bus, PLAIN)
    board = ServoBoard(bus, PLAIN, frequency_hz=60.0)
    assert not board.warm_start
    assert chip.prescale == 101  # 25e6/4096/60 = 101.7 → 102 − 1


def test_absent_device_is_an_init_error_naming_the_address() -> None:
    bus = SimI2CBus()
    with pytest.raises(HardwareInitError, match="0x41"):
        ServoBoard(bus, PLAIN, address=0x41)


class RefusingChip(Pca9685Sim):
    """Acknowledges its address but NACKs every data byte."""

    def write(self, data: bytes, *, stop: bool) -> None:
        if data:
            raise I2CNack("data refused")
        super().write(data, stop=stop)


def test_io_failure_during_init_names_address_and_errno() -> None:
    bus, _ = make_rig(RefusingChip())
    with pytest.raises(HardwareInitError) as info:
        ServoBoard(bus, PLAIN)
    assert "0x40" in str(info.value)
    assert "EREMOTEIO" in str(info.value)


class NoPrescaleChip(Pca9685Sim):
    """A chip whose PRE_SCALE never changes (a clone or a failing part)."""

    def write(self, data: bytes, *, stop: bool) -> None:
        if data[:1] == b"\xfe" and len(data) > 1:
            return  # the pointer is set for reads, the value is dropped
        super().write(data, stop=stop)


def test_prescale_that_does_not_read_back_is_an_init_error() -> None:
    bus, _ = make_rig(NoPrescaleChip())
    with pytest.raises(HardwareInitError, match=r"PRE_SCALE \(0xFE\) reads 0x1E, wrote 0x79"):
        ServoBoard(bus, PLAIN)


@pytest.mark.parametrize(
    ("kwargs", "servos", "words"),
    [
        ({"frequency_hz": 10.0}, PLAIN, "frequency"),
        ({"address": 0x80}, PLAIN, "0x80"),
        ({}, [], "at least one"),
        ({}, [*PLAIN[:4], ServoCalibration(3, 500.0, 2500.0)], "not distinct"),
    ],
)
def test_bad_configuration(
    kwargs: dict[str, float], servos: list[ServoCalibration], words: str
) -> None:
    bus, _ = make_rig()
    with pytest.raises(ConfigError, match=words):
        ServoBoard(bus, servos, **kwargs)  # type: ignore[arg-type]
    assert bus.transfers_total == 0


# ---- writing angles ------------------------------------------------------------------------

MIXED = [
    ServoCalibration(channel=0, min_pulse_us=500.0, max_pulse_us=2500.0),
    ServoCalibration(channel=1, min_pulse_us=1000.0, max_pulse_us=2000.0, inverted=True),
    ServoCalibration(channel=2, min_pulse_us=600.0, max_pulse_us=2400.0, trim_deg=10.0),
    ServoCalibration(
        channel=3, min_pulse_us=500.0, max_pulse_us=2500.0, min_angle_deg=20.0, max_angle_deg=150.0
    ),
    ServoCalibration(channel=4, min_pulse_us=750.0, max_pulse_us=2250.0),
]


def test_five_angles_are_one_21_byte_write() -> None:
    bus, chip = make_rig()
    board = ServoBoard(bus, MIXED)
    bus.clear_log()
    counts = board.write_angles([90.0, 45.0, 35.0, 170.0, 0.0])
    # One count = 4.88 µs at PRE_SCALE 121.
    # ch0: 90° → 1500 µs → 307.4 → 307 (0x133)
    # ch1: inverted, 45° → shaft 135° → 1000 + 1000·135/180 = 1750 µs → 358.6 → 359 (0x167)
    # ch2: trim +10: 35° → 45° → 600 + 1800/4 = 1050 µs → 215.2 → 215 (0x0D7)
    # ch3: 170° clamps to 150° → 500 + 2000·150/180 = 2166.7 µs → 444.0 → 444 (0x1BC)
    # ch4: 0° → 750 µs → 153.7 → 154 (0x09A)
    assert counts == (307, 359, 215, 444, 154)
    expected = bytes.fromhex(
        "06"
        "0000 3301"  # ch0 = 0x133
        "0000 6701"  # ch1 = 0x167
        "0000 d700"  # ch2 = 0x0D7
        "0000 bc01"  # ch3 = 0x1BC
        "0000 9a00"  # ch4 = 0x09A
    )
    assert wire_log(bus) == [(W, expected, b"")]
    assert len(expected) == 21
    assert [chip.counts(k) for k in range(5)] == [307, 359, 215, 444, 154]
    assert chip.pulse_us(1) == pytest.approx(359 * 4.88)
    assert board.last_counts == counts


def test_contiguous_channels_in_any_finger_order_are_one_write() -> None:
    servos = [
        ServoCalibration(channel=8 - k, min_pulse_us=500.0, max_pulse_us=2500.0) for k in range(5)
    ]
    bus, chip = make_rig()
    board = ServoBoard(bus, servos)
    bus.clear_log()
    # finger k on channel 8 − k; angles 0, 45, 90, 135, 180 → 102, 205, 307, 410, 512 counts
    assert board.write_angles([0.0, 45.0, 90.0, 135.0, 180.0]) == (102, 205, 307, 410, 512)
    expected = bytes.fromhex(
        "16"  # LED4_ON_L = 0x06 + 4·4
        "0000 0002"  # ch4 = 512
        "0000 9a01"  # ch5 = 410
        "0000 3301"  # ch6 = 307
        "0000 cd00"  # ch7 = 205
        "0000 6600"  # ch8 = 102
    )
    assert wire_log(bus) == [(W, expected, b"")]
    assert chip.counts(8) == 102


def test_scattered_channels_are_one_write_each() -> None:
    servos = [
        ServoCalibration(channel=2 * k, min_pulse_us=500.0, max_pulse_us=2500.0) for k in range(5)
    ]
    bus, _ = make_rig()
    board = ServoBoard(bus, servos)
    bus.clear_log()
    board.write_angles([90.0] * 5)
    assert wire_log(bus) == [
        (W, bytes([0x06 + 8 * k, 0x00, 0x00, 0x33, 0x01]), b"") for k in range(5)
    ]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_angle_writes_nothing(bad: float) -> None:
    bus, chip = make_rig()
    board = ServoBoard(bus, PLAIN)
    board.write_angles([0.0] * 5)
    bus.clear_log()
    with pytest.raises(ValueError, match="channel 3"):
        board.write_angles([10.0, 10.0, 10.0, bad, 10.0])
    assert list(bus.log) == []
    assert chip.counts(0) == 102


def test_wrong_number_of_angles() -> None:
    bus, _ = make_rig()
    board = ServoBoard(bus, PLAIN)
    with pytest.raises(ValueError, match="4 angles for 5 servos"):
        board.write_angles([0.0] * 4)


def test_nack_while_writing_is_an_io_error_naming_address_and_errno() -> None:
    bus, _ = make_rig(address=0x41)
    board = ServoBoard(bus, PLAIN, address=0x41)
    bus.inject_nack(1)
    with pytest.raises(HardwareIOError) as info:
        board.write_angles([90.0] * 5)
    message = str(info.value)
    assert "0x41" in message
    assert "EREMOTEIO" in message
    assert isinstance(info.value, OSError)
    assert board.last_counts is None
    assert bus.try_lock()  # the library released the bus lock
    bus.unlock()
    board.write_angles([90.0] * 5)  # the next frame goes through


def test_off_nominal_reference_clock_changes_the_counts() -> None:
    # 23 MHz: prescale round(112.3) − 1 = 111; f = 23e6/(4096·112) = 50.1361 Hz;
    # 2000 µs → 2000e-6 · 50.1361 · 4096 = 410.7 → 411 (at 25 MHz it would be 410)
    bus, chip = make_rig(Pca9685Sim(oscillator_hz=23e6))
    board = ServoBoard(bus, PLAIN, reference_clock_hz=23e6)
    assert board.prescale == 111
    assert board.write_angles([135.0] * 5) == (411,) * 5
    assert chip.pulse_us(0) == pytest.approx(411 * 112 / 23.0)


# ---- release, hold, read-back, close -------------------------------------------------------


def test_release_sets_full_off_and_hold_restores() -> None:
    bus, chip = make_rig()
    board = ServoBoard(bus, PLAIN)
    assert board.hold() is None  # nothing commanded yet
    board.write_angles([0.0, 45.0, 90.0, 135.0, 180.0])
    bus.clear_log()
    board.release()
    assert wire_log(bus) == [(W, bytes([0x06] + [0x00, 0x00, 0x00, 0x10] * 5), b"")]
    assert all(chip.pulse_us(k) is None for k in range(5))
    assert board.read_counts() == (FULL_OFF,) * 5
    bus.clear_log()
    assert board.hold() == (102, 205, 307, 410, 512)
    assert [chip.counts(k) for k in range(5)] == [102, 205, 307, 410, 512]


def test_read_counts_is_one_combined_read() -> None:
    bus, _ = make_rig()
    board = ServoBoard(bus, PLAIN)
    board.write_angles([0.0, 45.0, 90.0, 135.0, 180.0])
    bus.clear_log()
    assert board.read_counts() == (102, 205, 307, 410, 512)
    log = wire_log(bus)
    assert len(log) == 1
    kind, tx, rx = log[0]
    assert (kind, tx) == (WR, b"\x06")
    assert rx[:8] == bytes([0, 0, 0x66, 0x00, 0, 0, 0xCD, 0x00])
    assert len(rx) == 20


def test_read_counts_with_scattered_channels_reads_each() -> None:
    servos = [
        ServoCalibration(channel=15 - 3 * k, min_pulse_us=500.0, max_pulse_us=2500.0)
        for k in range(5)
    ]
    bus, _ = make_rig()
    board = ServoBoard(bus, servos)
    board.write_angles([90.0, 0.0, 180.0, 45.0, 135.0])
    board.release()
    board.hold()
    assert board.read_counts() == (307, 102, 512, 205, 410)


def test_read_counts_failure_is_an_io_error() -> None:
    bus, _ = make_rig()
    board = ServoBoard(bus, PLAIN)
    bus.inject_nack(1)
    with pytest.raises(HardwareIOError, match=r"0x40.*read"):
        board.read_counts()


def test_close_keeps_pulses_unless_asked() -> None:
    bus, chip = make_rig()
    board = ServoBoard(bus, PLAIN)
    board.write_angles([90.0] * 5)
    bus.clear_log()
    board.close()
    assert list(bus.log) == []
    assert chip.pulse_us(0) == pytest.approx(307 * 4.88)
    with pytest.raises(HardwareIOError, match="closed"):
        board.write_angles([90.0] * 5)
    board.close()  # idempotent

    other = ServoBoard(bus, PLAIN)
    other.close(release=True)
    assert all(chip.pulse_us(k) is None for k in range(5))


def test_board_gone_from_the_bus_is_an_io_error_with_enxio() -> None:
    bus, _ = make_rig()
    board = ServoBoard(bus, PLAIN)
    bus.detach(0x40)  # the board fell off the bus
    with pytest.raises(HardwareIOError) as info:
        board.write_angles([0.0] * 5)
    assert "ENXIO" in str(info.value)


def test_raw_counts_are_what_the_board_remembers_it_holds() -> None:
    bus, chip = make_rig()
    board = ServoBoard(bus, PLAIN)
    board.write_angles([90.0] * 5)
    # A raw pulse (servo end-point calibration) on the index: 2499 µs → 512 counts.
    board.write_counts([307, 512, 307, 307, 307])
    assert board.last_counts == (307, 512, 307, 307, 307)
    assert chip.counts(1) == 512
    board.release()
    assert board.hold() == (307, 512, 307, 307, 307)  # re-energised at the raw pulse
    bus.inject_nack(1)
    with pytest.raises(HardwareIOError):
        board.write_counts([102] * 5)
    assert board.last_counts == (307, 512, 307, 307, 307)  # a failed write changed nothing
