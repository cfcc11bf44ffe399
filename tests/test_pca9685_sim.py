"""Tests for emgd.sim.pca9685_sim: the register file, pointer rules and derived outputs."""

from __future__ import annotations

import errno

import pytest

from emgd.clock import FakeClock
from emgd.sim.i2c_bus import SimI2CBus
from emgd.sim.pca9685_sim import Pca9685Sim

ADDRESS = 0x40
# At PRE_SCALE 121 one count is 4096·122/25 MHz / 4096 = 4.88 µs; the period 19988.48 µs.
US_PER_COUNT_121 = 4.88
PERIOD_US_121 = 4096 * 4.88


class Rig:
    """A locked simulated bus with one PCA9685 at 0x40 and byte-level helpers."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.pca = Pca9685Sim(clock=clock)
        self.bus = SimI2CBus(log_limit=100)
        self.bus.attach(ADDRESS, self.pca)
        assert self.bus.try_lock()

    def write(self, *data: int) -> None:
        self.bus.writeto(ADDRESS, bytes(data))

    def read(self, register: int, n_bytes: int) -> bytes:
        buf = bytearray(1 + n_bytes)
        buf[0] = register
        self.bus.writeto_then_readfrom(ADDRESS, buf, buf, out_end=1, in_start=1)
        return bytes(buf[1:])

    def run_at_50_hz(self) -> None:
        """What a driver does: prescale 121 while asleep, then wake with AI."""
        self.write(0x00, 0x10)
        self.write(0xFE, 0x79)
        self.write(0x00, 0x20)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_reset_values_read_over_the_bus(rig: Rig) -> None:
    # MODE1.AI is 0 after reset: each register is read with its own pointer write.
    expected = {0x00: 0x11, 0x01: 0x04, 0x02: 0xE2, 0x03: 0xE4, 0x04: 0xE8, 0x05: 0xE0}
    expected |= {0x06: 0x00, 0x07: 0x00, 0x08: 0x00, 0x09: 0x10, 0x45: 0x10, 0xFE: 0x1E}
    for register, value in expected.items():
        assert rig.read(register, 1) == bytes([value]), hex(register)


def test_without_ai_every_data_byte_lands_in_one_register(rig: Rig) -> None:
    rig.write(0x06, 0x01, 0x02, 0x03, 0x04)
    assert rig.pca.led_registers(0) == (0x04, 0x00, 0x00, 0x10)
    assert rig.pca.pointer == 0x06
    # reads without AI repeat the same register
    assert rig.read(0x06, 3) == b"\x04\x04\x04"


def test_ai_wraps_from_led15_off_h_to_mode1(rig: Rig) -> None:
    rig.write(0x00, 0x20)  # wake with AI
    rig.write(0x44, 0xAB, 0x0F, 0x21, 0x0C)
    assert rig.pca.peek(0x44) == 0xAB
    assert rig.pca.peek(0x45) == 0x0F
    assert rig.pca.peek(0x00) == 0x21
    assert rig.pca.peek(0x01) == 0x0C
    assert rig.pca.pointer == 0x02


def test_ai_wraps_from_pre_scale_to_mode1(rig: Rig) -> None:
    rig.write(0x00, 0x30)  # asleep, AI
    rig.write(0xFE, 0x79, 0x20)  # PRE_SCALE, then the pointer rolls over to MODE1
    assert rig.pca.prescale == 0x79
    assert rig.pca.peek(0x00) == 0x20
    # reads roll over the same way; ALL_LED registers read 0
    assert rig.read(0xFC, 4) == b"\x00\x00\x79\x20"


def test_read_with_ai_walks_the_led_block(rig: Rig) -> None:
    rig.write(0x00, 0x20)
    rig.write(0x0A, 0x01, 0x00, 0x33, 0x01)
    assert rig.read(0x06, 8) == bytes([0, 0, 0, 0x10, 0x01, 0x00, 0x33, 0x01])


def test_pre_scale_write_is_ignored_while_awake(rig: Rig) -> None:
    rig.write(0x00, 0x00)  # wake
    rig.write(0xFE, 0x79)
    assert rig.pca.prescale == 0x1E
    assert rig.pca.prescale_writes_blocked == 1
    rig.write(0x00, 0x10)  # sleep
    rig.write(0xFE, 0x79)
    assert rig.pca.prescale == 0x79


def test_pre_scale_has_a_hardware_minimum_of_3(rig: Rig) -> None:
    rig.write(0xFE, 0x01)  # asleep after reset
    assert rig.pca.prescale == 3


@pytest.mark.parametrize("register", [0x46, 0x80, 0xF9])
def test_reserved_registers_are_not_acknowledged(rig: Rig, register: int) -> None:
    with pytest.raises(OSError) as info:
        rig.write(register, 0x00)
    assert info.value.errno == errno.EREMOTEIO
    with pytest.raises(OSError):
        rig.read(register, 1)


def test_all_led_off_h_turns_every_channel_off_and_reads_zero(rig: Rig) -> None:
    rig.run_at_50_hz()
    for channel in range(16):
        rig.write(0x06 + 4 * channel, 0x00, 0x00, 0x33, 0x01)
    assert rig.pca.pulse_us(15) == pytest.approx(307 * US_PER_COUNT_121)
    rig.write(0xFD, 0x10)
    for channel in range(16):
        assert rig.pca.led_registers(channel)[3] == 0x10
        assert rig.pca.pulse_us(channel) is None
    assert rig.read(0xFD, 1) == b"\x00"


def test_all_led_fan_out_of_each_register(rig: Rig) -> None:
    rig.write(0x00, 0x20)
    rig.write(0xFA, 0x12, 0x01, 0x45, 0x02)  # AI walks FA..FD
    for channel in range(16):
        assert rig.pca.led_registers(channel) == (0x12, 0x01, 0x45, 0x02)
    assert rig.read(0xFA, 4) == b"\x00\x00\x00\x00"


def test_reserved_bits_read_zero(rig: Rig) -> None:
    rig.write(0x07, 0xFF)
    rig.write(0x09, 0xE5)
    rig.write(0x01, 0xFF)
    assert rig.read(0x07, 1) == b"\x1f"
    assert rig.read(0x09, 1) == b"\x05"
    assert rig.read(0x01, 1) == b"\x1f"


def test_restart_sequence(rig: Rig) -> None:
    rig.run_at_50_hz()
    rig.write(0x06, 0x00, 0x00, 0x33, 0x01)
    assert rig.pca.pulse_us(0) == pytest.approx(1498.16)
    rig.write(0x00, 0x30)  # sleep while running: RESTART gets set, outputs stop
    assert rig.read(0x00, 1) == b"\xb0"
    assert rig.pca.pulse_us(0) is None
    rig.write(0x00, 0x20)  # wake: outputs stay stopped until RESTART
    assert rig.read(0x00, 1) == b"\xa0"
    assert rig.pca.pulse_us(0) is None
    rig.write(0x00, 0xA0)  # write 1 to RESTART: channels resume, bit clears
    assert rig.read(0x00, 1) == b"\x20"
    assert rig.pca.pulse_us(0) == pytest.approx(1498.16)
    assert rig.pca.led_registers(0) == (0x00, 0x00, 0x33, 0x01)


def test_writing_zero_to_restart_has_no_effect_and_a_pwm_write_clears_it(rig: Rig) -> None:
    rig.run_at_50_hz()
    rig.write(0x00, 0x30)
    rig.write(0x00, 0x20)
    rig.write(0x00, 0x20)
    assert rig.read(0x00, 1) == b"\xa0"
    rig.write(0x06, 0x00, 0x00, 0x9A, 0x01)  # PWM register write + STOP (OCH = 0)
    assert rig.read(0x00, 1) == b"\x20"
    assert rig.pca.pulse_us(0) == pytest.approx(410 * US_PER_COUNT_121)


def test_restart_is_not_set_when_sleeping_from_power_up(rig: Rig) -> None:
    rig.write(0x00, 0x10)  # already asleep: no PWM was running
    assert rig.read(0x00, 1) == b"\x10"


def test_extclk_is_sticky_and_only_set_while_asleep(rig: Rig) -> None:
    rig.write(0x00, 0x00)  # awake
    rig.write(0x00, 0x40)
    assert rig.pca.peek(0x00) & 0x40 == 0
    rig.write(0x00, 0x10)
    rig.write(0x00, 0x50)
    rig.write(0x00, 0x00)
    assert rig.pca.peek(0x00) & 0x40 == 0x40


def test_derived_outputs(rig: Rig) -> None:
    assert rig.pca.period_s == pytest.approx(4096 * 31 / 25e6)  # reset prescale 0x1E
    rig.run_at_50_hz()
    assert rig.pca.frequency_hz == pytest.approx(50.0288166, rel=1e-8)
    rig.write(0x06, 0x00, 0x00, 0x33, 0x01)  # ON 0, OFF 307
    rig.write(0x0A, 0x64, 0x00, 0x97, 0x01)  # ON 100, OFF 407
    rig.write(0x0E, 0xA0, 0x0F, 0xD3, 0x00)  # ON 4000, OFF 211: wraps to 307
    rig.write(0x12, 0x00, 0x10, 0x00, 0x00)  # full ON
    rig.write(0x16, 0x00, 0x10, 0x00, 0x10)  # full ON and full OFF: OFF wins
    rig.write(0x1A, 0x10, 0x00, 0x10, 0x00)  # ON == OFF: no high time
    assert [rig.pca.counts(k) for k in range(7)] == [307, 307, 307, 4096, 0, 0, 0]
    for k in range(3):
        assert rig.pca.pulse_us(k) == pytest.approx(1498.16)
    assert rig.pca.pulse_us(3) == pytest.approx(PERIOD_US_121)
    assert rig.pca.pulse_us(4) is None
    assert rig.pca.pulse_us(5) is None
    assert rig.pca.pulse_us(6) is None  # reset value: full OFF
    with pytest.raises(ValueError, match="channel 16"):
        rig.pca.pulse_us(16)


def test_no_pulses_while_asleep(rig: Rig) -> None:
    rig.write(0x06, 0x00)
    rig.write(0x09, 0x01)  # OFF = 256 counts, full OFF cleared
    assert rig.pca.counts(0) == 256
    assert rig.pca.pulse_us(0) is None  # SLEEP = 1 after reset
    rig.write(0x00, 0x00)
    assert rig.pca.pulse_us(0) == pytest.approx(256 * 4096 * 31 / 25e6 / 4096 * 1e6)


def test_off_nominal_oscillator() -> None:
    pca = Pca9685Sim(oscillator_hz=26e6)
    assert pca.frequency_hz == pytest.approx(26e6 / (4096 * 31))


def running(pca: Pca9685Sim) -> bool:
    return pca.oscillator_running


def test_oscillator_needs_500_us_after_wake() -> None:
    clock = FakeClock()
    rig = Rig(clock=clock)
    rig.write(0x08, 0x33)
    rig.write(0x09, 0x01)
    rig.write(0x00, 0x00)
    assert not running(rig.pca)
    assert rig.pca.pulse_us(0) is None
    clock.advance_ns(499_999)
    assert rig.pca.pulse_us(0) is None
    clock.advance_ns(1)
    assert running(rig.pca)
    assert rig.pca.pulse_us(0) is not None


def test_power_cycle_restores_reset_state(rig: Rig) -> None:
    rig.run_at_50_hz()
    rig.write(0x06, 0x00, 0x00, 0x33, 0x01)
    rig.pca.power_cycle()
    assert rig.pca.peek(0x00) == 0x11
    assert rig.pca.prescale == 0x1E
    assert rig.pca.led_registers(0) == (0, 0, 0, 0x10)
    assert rig.pca.pointer == 0
    assert rig.pca.pulse_us(0) is None


def test_probe_changes_nothing(rig: Rig) -> None:
    rig.bus.writeto(ADDRESS, b"")
    assert rig.pca.peek(0x00) == 0x11
    assert rig.pca.pointer == 0


def test_peek_bounds(rig: Rig) -> None:
    with pytest.raises(ValueError):
        rig.pca.peek(0x100)
