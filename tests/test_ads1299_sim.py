"""Byte-level tests of the simulated ADS1299: opcodes, register rules, conversions, frames.

Expected bytes are worked out by hand from the datasheet (hardware.md §1), never with the
driver's code.
"""

from __future__ import annotations

import numpy as np
import pytest

from emgd.clock import FakeClock, SystemClock
from emgd.errors import HardwareIOError
from emgd.hw.interfaces import FloatArray
from emgd.sim.ads1299_sim import Ads1299Sim
from emgd.sim.spi_bus import SimSpiDev

PERIOD_250_NS = 4_000_000  # 8192 tCLK at 2.048 MHz
PERIOD_1000_NS = 1_000_000
RESET_REGISTERS = bytes.fromhex("3E96C06000" + "61" * 8 + "00" * 7 + "0F000000")


class ConstantSource:
    """Every channel at a fixed µV value (per channel)."""

    def __init__(self, values_uv: list[float]) -> None:
        self._values = np.array(values_uv, dtype=np.float64)

    @property
    def n_channels(self) -> int:
        return len(self._values)

    def generate(self, n_samples: int, sample_rate_hz: float) -> FloatArray:
        return np.tile(self._values, (n_samples, 1))


class RampSource:
    """Channel 0 carries the sample number in µV (to see which samples were consumed)."""

    def __init__(self) -> None:
        self.next_sample = 0
        self.calls: list[int] = []

    @property
    def n_channels(self) -> int:
        return 1

    def generate(self, n_samples: int, sample_rate_hz: float) -> FloatArray:
        self.calls.append(n_samples)
        ramp = np.arange(self.next_sample, self.next_sample + n_samples, dtype=np.float64)
        self.next_sample += n_samples
        return ramp.reshape(-1, 1)


def make(
    values_uv: list[float] | None = None, device_id: int = 0x3E, noise_uv_rms: float = 0.0
) -> tuple[Ads1299Sim, SimSpiDev, FakeClock]:
    clock = FakeClock()
    sim = Ads1299Sim(
        ConstantSource(values_uv or [0.0] * 8),
        clock,
        device_id=device_id,
        noise_uv_rms=noise_uv_rms,
    )
    bus = SimSpiDev(sim)
    bus.mode = 1
    bus.max_speed_hz = 4_000_000
    return sim, bus, clock


def send(bus: SimSpiDev, hex_bytes: str) -> bytes:
    return bytes(bus.xfer2(list(bytes.fromhex(hex_bytes))))


def configure(bus: SimSpiDev, writes: str) -> None:
    """SDATAC, reference on, then the given WREG windows separated by '|'."""
    send(bus, "11")
    send(bus, "43 00 E0")
    for window in writes.split("|"):
        if window.strip():
            send(bus, window)


def test_power_up_register_file_read_in_one_window() -> None:
    sim, bus, _ = make()
    rx = send(bus, "11")
    assert rx == b"\x00"
    rx = send(bus, "20 17" + " 00" * 24)
    assert rx[:2] == b"\x00\x00"
    assert rx[2:] == RESET_REGISTERS
    assert sim.registers == RESET_REGISTERS


def test_rreg_is_ignored_in_rdatac_until_sdatac() -> None:
    sim, bus, _ = make()
    assert sim.mode == "RDATAC"
    assert send(bus, "20 00 00") == b"\x00\x00\x00"
    send(bus, "11")
    assert sim.mode == "SDATAC"
    assert send(bus, "20 00 00") == b"\x00\x00\x3e"


def test_wreg_is_ignored_in_rdatac() -> None:
    sim, bus, _ = make()
    send(bus, "45 00 68")
    assert sim.registers[0x05] == 0x61


def test_wreg_then_rreg_reads_back() -> None:
    _, bus, _ = make()
    send(bus, "11")
    assert send(bus, "45 00 68") == b"\x00\x00\x00"
    assert send(bus, "25 00 00") == b"\x00\x00\x68"


def test_multi_register_wreg_and_rreg() -> None:
    _, bus, _ = make()
    send(bus, "11")
    send(bus, "4D 01 AA 55")
    assert send(bus, "2D 01 00 00") == bytes.fromhex("0000AA55")


def test_wreg_split_across_windows_writes_nothing() -> None:
    sim, bus, _ = make()
    send(bus, "11")
    send(bus, "45 00")
    send(bus, "68")
    assert sim.registers[0x05] == 0x61
    send(bus, "45 00 68")
    assert sim.registers[0x05] == 0x68


def test_read_only_and_forced_bits() -> None:
    sim, bus, _ = make()
    send(bus, "11")
    send(bus, "40 00 00")  # ID is read-only
    send(bus, "41 00 06")  # CONFIG1: b7 forced 1, b4:3 forced 10 -> 0x96
    send(bus, "42 00 3F")  # CONFIG2: b7:6 = 11, b5 = b3 = 0 -> 0xD7
    send(bus, "43 00 81")  # CONFIG3: b6:5 forced 11, BIAS_STAT read-only -> 0xE0
    send(bus, "44 00 FF")  # LOFF: b4 = 0 -> 0xEF
    send(bus, "52 00 FF")  # LOFF_STATP is read-only
    send(bus, "55 00 FF")  # MISC1: only SRB1 -> 0x20
    send(bus, "56 00 FF")  # MISC2 reads 0
    send(bus, "57 00 FF")  # CONFIG4: bits 3 and 1 -> 0x0A
    regs = sim.registers
    assert regs[0x00] == 0x3E
    assert regs[0x01] == 0x96
    assert regs[0x02] == 0xD7
    assert regs[0x03] == 0xE0
    assert regs[0x04] == 0xEF
    assert regs[0x12] == 0x00
    assert regs[0x15] == 0x20
    assert regs[0x16] == 0x00
    assert regs[0x17] == 0x0A


def test_gpio_input_pins_read_zero_data() -> None:
    sim, bus, _ = make()
    send(bus, "11")
    send(bus, "54 00 F3")  # GPIO1-2 inputs, GPIO3-4 outputs driven high
    assert sim.registers[0x14] == 0xC3


def test_four_channel_part_has_no_channels_5_to_8() -> None:
    sim, bus, _ = make(device_id=0x3C)
    assert sim.chip_channels == 4
    send(bus, "11")
    assert send(bus, "29 00 00")[2] == 0x00  # CH5SET does not exist
    send(bus, "49 00 68")
    assert sim.registers[0x09] == 0x00
    send(bus, "4D 00 FF")  # BIAS_SENSP: only bits 3:0 exist
    assert sim.registers[0x0D] == 0x0F


def test_six_channel_part_frame_length() -> None:
    sim, _, _ = make(device_id=0x3D)
    assert sim.chip_channels == 6
    assert sim.frame_length == 21


def test_reset_restores_defaults_and_rdatac() -> None:
    sim, bus, _ = make()
    send(bus, "11")
    send(bus, "45 00 68")
    send(bus, "06")
    assert sim.mode == "RDATAC"
    assert sim.registers == RESET_REGISTERS


def test_no_conversions_before_start() -> None:
    sim, _, clock = make()
    drdy = sim.drdy_line()
    start_ns = clock.monotonic_ns()
    assert drdy.wait_falling_edge(0.05) is None
    assert clock.monotonic_ns() - start_ns == 50_000_000
    assert sim.frames_converted == 0


def test_drdy_falls_one_period_after_start_at_default_rate() -> None:
    sim, bus, clock = make()
    drdy = sim.drdy_line()
    send(bus, "11")
    send(bus, "43 00 E0")
    start_ns = clock.monotonic_ns()
    send(bus, "08")
    assert drdy.wait_falling_edge(1.0) == start_ns + PERIOD_250_NS
    assert clock.monotonic_ns() == start_ns + PERIOD_250_NS
    assert drdy.wait_falling_edge(1.0) == start_ns + 2 * PERIOD_250_NS
    assert sim.frames_converted == 2


def test_writing_config1_restarts_conversion_timing() -> None:
    sim, bus, clock = make()
    drdy = sim.drdy_line()
    send(bus, "11")
    send(bus, "08")
    clock.advance_ns(PERIOD_250_NS // 2)
    write_ns = clock.monotonic_ns()
    send(bus, "41 00 94")  # 1 kSPS
    assert drdy.wait_falling_edge(1.0) == write_ns + PERIOD_1000_NS
    assert sim.sample_rate_hz == 1000.0


def test_stop_halts_conversions() -> None:
    sim, bus, _ = make()
    drdy = sim.drdy_line()
    send(bus, "11")
    send(bus, "08")
    assert drdy.wait_falling_edge(1.0) is not None
    send(bus, "0A")
    assert drdy.wait_falling_edge(0.1) is None
    assert sim.frames_converted == 1


def frame_after_start(values_uv: list[float], chset: str, extra: str = "") -> bytes:
    """Configure all channels with ``chset``, start, return the first frame (RDATAC)."""
    sim, bus, _ = make(values_uv)
    writes = "|".join(f"{0x45 + c:02X} 00 {chset}" for c in range(8))
    configure(bus, writes + "|" + extra)
    send(bus, "08")
    send(bus, "10")
    assert sim.drdy_line().wait_falling_edge(1.0) is not None
    return send(bus, "00" * 27)


def test_frame_codes_at_gain_24() -> None:
    # 100 µV x 24 / 9 V x 2^24 = 4473.92 -> 4474 = 0x00117A; -100 µV -> 0xFFEE86
    frame = frame_after_start([100.0, -100.0, 0, 0, 0, 0, 0, 0], "60")
    assert frame[:3] == bytes.fromhex("C00000")
    assert frame[3:6] == bytes.fromhex("00117A")
    assert frame[6:9] == bytes.fromhex("FFEE86")
    assert frame[9:] == bytes(18)


def test_frame_codes_at_gain_1() -> None:
    # 1000 µV x 1 / 9 V x 2^24 = 1864.135 -> 1864 = 0x000748
    frame = frame_after_start([1000.0] * 8, "00")
    assert frame[3:6] == bytes.fromhex("000748")


def test_full_scale_clipping() -> None:
    # gain 24: full scale is ±187500 µV
    frame = frame_after_start([500_000.0, -500_000.0, 187_400.0, 0, 0, 0, 0, 0], "60")
    assert frame[3:6] == bytes.fromhex("7FFFFF")
    assert frame[6:9] == bytes.fromhex("800000")
    assert frame[9:12] != bytes.fromhex("7FFFFF")


def test_powered_down_channel_reads_zero() -> None:
    frame = frame_after_start([100.0] * 8, "60", "45 00 E1")
    assert frame[3:6] == bytes(3)
    assert frame[6:9] == bytes.fromhex("00117A")


def test_shorted_input_reads_near_zero_with_noise() -> None:
    sim, bus, _ = make([10_000.0] * 8, noise_uv_rms=0.5)
    configure(bus, "45 00 61")  # CH1 shorted, gain 24 (others still at reset 0x61 too)
    send(bus, "08")
    send(bus, "10")
    drdy = sim.drdy_line()
    codes = []
    for _ in range(20):
        drdy.wait_falling_edge(1.0)
        frame = send(bus, "00" * 27)
        codes.append(int.from_bytes(frame[3:6], "big", signed=True))
    # 0.5 µV rms at 0.02235 µV/LSB is ~22 LSB rms; the 10 mV input must not show.
    assert max(abs(c) for c in codes) < 200
    assert len(set(codes)) > 1


def test_mvdd_and_temperature_are_plausible_constants() -> None:
    frame = frame_after_start([0.0] * 8, "03", "46 00 04")  # CH1 MVDD, CH2 temperature, gain 1
    mvdd_v = int.from_bytes(frame[3:6], "big", signed=True) * 9 / 2**24
    temp_v = int.from_bytes(frame[6:9], "big", signed=True) * 9 / 2**24
    assert 1.0 < mvdd_v < 3.0
    assert 0.1 < temp_v < 0.2


def test_reference_powered_down_gives_unrelated_codes() -> None:
    sim, bus, _ = make([100.0] * 8)
    send(bus, "11")
    for c in range(8):
        send(bus, f"{0x45 + c:02X} 00 60")
    send(bus, "08")
    send(bus, "10")
    sim.drdy_line().wait_falling_edge(1.0)
    frame = send(bus, "00" * 27)
    assert frame[3:6] != bytes.fromhex("00117A") or frame[6:9] != bytes.fromhex("00117A")


def test_test_signal_amplitude_and_frequency() -> None:
    # CONFIG2 0xD0: internal, 1 x VREF/2400 = 1.875 mV, fCLK/2^21 (half period 512 ms).
    # Gain 1: 1.875 mV / 9 V x 2^24 = 3495.25 -> ±3495 = 0x000DA7 / 0xFFF259.
    sim, bus, clock = make([0.0] * 8)
    configure(bus, "42 00 D0|45 00 05")
    send(bus, "41 00 96")
    send(bus, "08")
    send(bus, "10")
    drdy = sim.drdy_line()
    seen = set()
    for _ in range(6):
        drdy.wait_falling_edge(1.0)
        seen.add(send(bus, "00" * 27)[3:6])
        clock.advance_ns(256_000_000)
    assert seen == {bytes.fromhex("000DA7"), bytes.fromhex("FFF259")}


def test_test_signal_double_amplitude() -> None:
    # CAL_AMP = 1: 3.75 mV at gain 1 = 6990.5 -> 6990 or 6991 in magnitude
    frame = frame_after_start([0.0] * 8, "05", "42 00 D7")  # DC test signal, 2x
    code = int.from_bytes(frame[3:6], "big", signed=True)
    assert abs(code) in (6990, 6991)


def test_same_conversion_read_twice_gives_same_bytes() -> None:
    sim, bus, _ = make([5.0] * 8, noise_uv_rms=1.0)
    configure(bus, "")
    send(bus, "08")
    send(bus, "10")
    sim.drdy_line().wait_falling_edge(1.0)
    assert send(bus, "00" * 27) == send(bus, "00" * 27)


def test_rdata_in_sdatac_returns_latest_frame() -> None:
    sim, bus, _ = make([100.0] * 8)
    configure(bus, "45 00 60")
    send(bus, "08")
    sim.drdy_line().wait_falling_edge(1.0)
    rx = send(bus, "12" + "00" * 27)
    assert rx[0] == 0x00
    assert rx[1:4] == bytes.fromhex("C00000")
    assert rx[4:7] == bytes.fromhex("00117A")
    assert sim.frames_lost == 0


def test_unread_conversions_are_lost() -> None:
    sim, bus, clock = make()
    configure(bus, "")
    send(bus, "08")
    send(bus, "10")
    drdy = sim.drdy_line()
    drdy.wait_falling_edge(1.0)
    send(bus, "00" * 27)
    clock.advance_ns(3 * PERIOD_250_NS)
    assert drdy.wait_falling_edge(1.0) is not None
    send(bus, "00" * 27)
    assert sim.frames_converted == 4
    assert sim.frames_lost == 2


def test_partial_read_does_not_count_as_read() -> None:
    sim, bus, _ = make()
    configure(bus, "")
    send(bus, "08")
    send(bus, "10")
    drdy = sim.drdy_line()
    drdy.wait_falling_edge(1.0)
    send(bus, "00" * 3)  # status only
    drdy.wait_falling_edge(1.0)
    assert sim.frames_lost == 1


def test_source_is_pulled_in_blocks_and_lost_samples_are_consumed() -> None:
    source = RampSource()
    clock = FakeClock()
    sim = Ads1299Sim(source, clock, noise_uv_rms=0.0)
    bus = SimSpiDev(sim)
    bus.mode = 1
    bus.max_speed_hz = 4_000_000
    configure(bus, "41 00 94|45 00 00")  # 1 kSPS, CH1 normal gain 1
    send(bus, "08")
    send(bus, "10")
    drdy = sim.drdy_line()
    values = []
    for skip in (0, 0, 4, 0):
        clock.advance_ns(skip * PERIOD_1000_NS)
        drdy.wait_falling_edge(1.0)
        code = int.from_bytes(send(bus, "00" * 27)[3:6], "big", signed=True)
        values.append(round(code * 9 / 2**24 * 1e6))
    # sample k (0-based) is k µV: conversions 1, 2 read; 3-5 lost; 6 and 7 read
    assert values == [0, 1, 5, 6]
    assert sim.frames_lost == 3
    assert source.calls == [256]


def test_lead_off_reported_only_where_sensing_is_enabled() -> None:
    sim, bus, _ = make()
    sim.set_lead_off(0, positive=True, off=True)
    sim.set_lead_off(1, positive=False, off=True)
    sim.set_lead_off(2, positive=True, off=True)  # no sensing on channel 3
    configure(bus, "4F 00 01|50 00 02")
    send(bus, "08")
    send(bus, "10")
    drdy = sim.drdy_line()
    drdy.wait_falling_edge(1.0)
    assert send(bus, "00" * 27)[:3] == bytes.fromhex("C00000")  # comparators off
    send(bus, "11")
    send(bus, "57 00 02")  # PD_LOFF_COMP
    assert send(bus, "32 01 00 00")[2:] == bytes.fromhex("0102")
    send(bus, "10")
    drdy.wait_falling_edge(1.0)
    # LOFF_STATP 0x01, LOFF_STATN 0x02: C0 | 0, (1 << 4) | 0, (2 << 4) | GPIO data 0
    assert send(bus, "00" * 27)[:3] == bytes.fromhex("C01020")


def test_gpio_data_in_status_word() -> None:
    sim, bus, _ = make()
    configure(bus, "54 00 A0")  # all outputs, data 1010
    send(bus, "08")
    send(bus, "10")
    sim.drdy_line().wait_falling_edge(1.0)
    assert send(bus, "00" * 27)[:3] == bytes.fromhex("C0000A")


def test_inject_no_drdy() -> None:
    sim, bus, _ = make()
    configure(bus, "")
    send(bus, "08")
    drdy = sim.drdy_line()
    sim.inject_no_drdy(True)
    assert drdy.wait_falling_edge(0.1) is None
    assert sim.frames_converted == 25
    sim.inject_no_drdy(False)
    assert drdy.wait_falling_edge(0.1) is not None


def test_inject_garbage_frames() -> None:
    sim, bus, _ = make()
    configure(bus, "")
    send(bus, "08")
    send(bus, "10")
    drdy = sim.drdy_line()
    sim.inject_garbage(2)
    frames = []
    for _ in range(3):
        drdy.wait_falling_edge(1.0)
        frames.append(send(bus, "00" * 27))
    assert frames[0][0] & 0xF0 != 0xC0
    assert frames[1][0] & 0xF0 != 0xC0
    assert frames[2][:3] == bytes.fromhex("C00000")


def test_inject_reset_restores_defaults_and_stops() -> None:
    sim, bus, _ = make()
    configure(bus, "45 00 68")
    send(bus, "08")
    send(bus, "10")
    drdy = sim.drdy_line()
    assert drdy.wait_falling_edge(1.0) is not None
    sim.inject_reset()
    assert sim.registers == RESET_REGISTERS
    assert sim.mode == "RDATAC"
    assert not sim.converting
    assert drdy.wait_falling_edge(0.1) is None


def test_standby_and_wakeup() -> None:
    sim, bus, _ = make()
    configure(bus, "")
    send(bus, "08")
    send(bus, "04")
    drdy = sim.drdy_line()
    assert drdy.wait_falling_edge(0.1) is None
    send(bus, "02")
    assert drdy.wait_falling_edge(0.1) is not None


def test_bus_refuses_wrong_mode_and_speed() -> None:
    _, bus, _ = make()
    bus.mode = 0
    with pytest.raises(HardwareIOError, match="mode 0"):
        send(bus, "11")
    bus.mode = 1
    bus.max_speed_hz = 25_000_000
    with pytest.raises(HardwareIOError, match="exceeds"):
        send(bus, "11")


def test_large_catch_up_at_16k() -> None:
    sim, bus, clock = make()
    configure(bus, "41 00 90")  # 16 kSPS
    send(bus, "08")
    send(bus, "10")
    clock.advance_s(1.0)
    assert sim.frames_converted == 16_000
    assert sim.frames_lost == 15_999


def test_drdy_waits_in_real_time_with_the_system_clock() -> None:
    clock = SystemClock()
    sim = Ads1299Sim(ConstantSource([0.0] * 8), clock)
    bus = SimSpiDev(sim)
    bus.mode = 1
    bus.max_speed_hz = 4_000_000
    configure(bus, "41 00 94")  # 1 kSPS
    start_ns = clock.monotonic_ns()
    send(bus, "08")
    edge_ns = sim.drdy_line().wait_falling_edge(1.0)
    assert edge_ns is not None
    assert edge_ns >= start_ns + PERIOD_1000_NS
    assert clock.monotonic_ns() >= edge_ns
