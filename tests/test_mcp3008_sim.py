"""Tests of emgd.sim.mcp3008_sim: the bit-level MCP3008 model, byte by byte.

Most tests use vref 1.024 V, offset 0 V and gain 1000, so an electrode value of x µV puts
x mV on the pin and the ideal code is floor(x): codes are chosen by writing x = code + 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.clock import FakeClock
from emgd.errors import ConfigError, HardwareIOError
from emgd.hw.interfaces import FloatArray
from emgd.hw.mcp3008 import Mcp3008, Mcp3008Settings
from emgd.sim.mcp3008_sim import Mcp3008Sim, output_stream
from emgd.sim.spi_bus import SimSpiDev

MS_NS = 1_000_000


class ConstSource:
    """Each channel holds a fixed electrode value (µV); ``values`` may be changed."""

    def __init__(self, values: Sequence[float]) -> None:
        self.values = list(values)
        self.generated = 0

    @property
    def n_channels(self) -> int:
        return len(self.values)

    def generate(self, n_samples: int, sample_rate_hz: float) -> FloatArray:
        self.generated += n_samples
        return np.tile(np.asarray(self.values, dtype=np.float64), (n_samples, 1))


class CounterSource:
    """Channel 0 carries the sample number (in µV), so the code says which sample was held."""

    n_channels = 1

    def __init__(self) -> None:
        self.next_sample = 0
        self.calls: list[int] = []

    def generate(self, n_samples: int, sample_rate_hz: float) -> FloatArray:
        out = np.arange(self.next_sample, self.next_sample + n_samples, dtype=np.float64)
        self.next_sample += n_samples
        self.calls.append(n_samples)
        return out[:, None] + 0.5


def mv_sim(values: Sequence[float], **kwargs: float) -> tuple[Mcp3008Sim, FakeClock]:
    clock = FakeClock()
    return Mcp3008Sim(ConstSource(values), clock, vref_v=1.024, offset_v=0.0, **kwargs), clock


def one_code(code: int) -> Mcp3008Sim:
    return mv_sim([code + 0.5])[0]


# --- the standard 3-byte exchange -------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "rx_hex"),
    [(0x000, "00 00 00"), (0x3FF, "00 03 ff"), (0x155, "00 01 55"), (0x2AA, "00 02 aa")],
)
def test_standard_exchange_puts_b9_b0_at_the_datasheet_bits(code: int, rx_hex: str) -> None:
    sim = one_code(code)
    assert sim.transfer(bytes.fromhex("01 80 00")).hex(" ") == rx_hex
    assert sim.conversions == 1
    assert sim.cs_violations == 0


def test_tail_is_lsb_first_without_repeating_b0_then_zeros() -> None:
    # 0x301 = B9 B8 .. B0 = 1 1 0 0 0 0 0 0 0 1.  After B0 the chip sends B1..B9:
    # rx[3] = B1 B2 B3 B4 B5 B6 B7 B8 = 0000 0001, rx[4] = B9 then zeros = 1000 0000.
    sim = one_code(0x301)
    assert sim.transfer(bytes.fromhex("01 80 00 00 00 00")).hex(" ") == "00 03 01 01 80 00"


def test_output_stream_layout() -> None:
    # null | B9..B0 | B1..B9 for 0x301: 0 1100000001 000000011
    assert output_stream(0x301) == 0b0_1100000001_000000011


def test_channel_select_and_differential_pairs() -> None:
    values = [10.5, 120.7, 300.2, 40.9, 600.4, 600.4, 1000.6, 0.3]
    sim, _ = mv_sim(values)
    single = [sim.transfer(bytes((0x01, 0x80 | ch << 4, 0x00))) for ch in range(8)]
    assert [((rx[1] & 3) << 8) | rx[2] for rx in single] == [10, 120, 300, 40, 600, 600, 1000, 0]
    diffs = {
        "01 00 00": "00 00 00",  # CH0+ CH1-: 10.5 - 120.7 < 0 reads 0
        "01 10 00": "00 00 6e",  # CH1+ CH0-: 110.2 mV -> 110
        "01 20 00": "00 01 03",  # CH2+ CH3-: 259.3 mV -> 259
        "01 30 00": "00 00 00",  # CH3+ CH2-: negative
        "01 40 00": "00 00 00",  # CH4 = CH5
        "01 60 00": "00 03 e8",  # CH6+ CH7-: 1000.3 mV -> 1000
        "01 70 00": "00 00 00",
    }
    for tx_hex, rx_hex in diffs.items():
        assert sim.transfer(bytes.fromhex(tx_hex)).hex(" ") == rx_hex, tx_hex


def test_inputs_are_clipped_to_zero_and_vref() -> None:
    sim, _ = mv_sim([5000.0, -300.0, 1023.9, 1024.0])
    replies = [sim.transfer(bytes((0x01, 0x80 | ch << 4, 0x00))).hex(" ") for ch in range(4)]
    assert replies == ["00 03 ff", "00 00 00", "00 03 ff", "00 03 ff"]


def test_channels_the_source_does_not_drive_sit_at_the_offset() -> None:
    clock = FakeClock()
    sim = Mcp3008Sim(ConstSource([0.0]), clock, vref_v=3.3, offset_v=1.65)
    # 1.65 V of 3.3 V = code 512 = 0x200
    assert sim.transfer(bytes.fromhex("01 f0 00")).hex(" ") == "00 02 00"


# --- non-standard alignments and protocol violations ------------------------------------


def test_five_bit_aligned_command_is_decoded() -> None:
    # tx[0] = 0001 1DDD: start bit at bit 3, SGL at 4, CH5 = 101 at 5..7.
    # null at bit 9, B9..B4 at 10..15, B3..B0 at 16..19, tail B1..B4 at 20..23.
    values = [0.0] * 8
    values[5] = 0x301 + 0.5
    sim, _ = mv_sim(values)
    rx = sim.transfer(bytes.fromhex("1d 00 00"))
    assert rx.hex(" ") == "00 30 10"
    assert (((rx[1] & 0x3F) << 4) | (rx[2] >> 4)) == 0x301


def test_leading_zero_bytes_shift_the_reply() -> None:
    sim = one_code(0x301)
    assert sim.transfer(bytes.fromhex("00 01 80 00 00")).hex(" ") == "00 00 03 01 01"


def test_second_start_bit_in_one_window_is_not_a_conversion() -> None:
    sim, _ = mv_sim([0x301 + 0.5, 0x0AB + 0.5])
    rx = sim.transfer(bytes.fromhex("01 80 00 01 90 00"))
    # CH0's code and its LSB-first tail; CH1 (0x0AB) is nowhere.
    assert rx.hex(" ") == "00 03 01 01 80 00"
    assert sim.conversions == 1
    assert sim.cs_violations == 1
    # After CS goes high and low again, CH1 converts.
    assert sim.transfer(bytes.fromhex("01 90 00")).hex(" ") == "00 00 ab"
    assert sim.conversions == 2
    assert sim.cs_violations == 1


def test_windows_without_a_full_command_convert_nothing() -> None:
    sim = one_code(0x155)
    assert sim.transfer(bytes(3)) == bytes(3)
    assert sim.transfer(bytes.fromhex("00 01")) == bytes(2)  # start bit but no SGL/D2..D0
    assert sim.transfer(bytes.fromhex("0f")) == bytes(1)  # D0 would be clock 9 of 8
    assert sim.conversions == 0
    assert sim.incomplete_commands == 2
    # D0 on the last clock: the input is sampled, but CS rises before any output bit.
    assert sim.transfer(bytes.fromhex("1f")) == bytes(1)
    assert sim.conversions == 1
    assert sim.incomplete_commands == 2


# --- the analogue side --------------------------------------------------------------------


def test_input_is_sampled_at_the_clock_time_and_held() -> None:
    clock = FakeClock()
    source = CounterSource()
    sim = Mcp3008Sim(source, clock, vref_v=1.024, offset_v=0.0, source_rate_hz=1000.0)
    codes = []
    for step_ns in (0, 999_999, 1, 1_500_000, 10 * MS_NS):
        clock.advance_ns(step_ns)
        rx = sim.transfer(bytes.fromhex("01 80 00"))
        codes.append(((rx[1] & 3) << 8) | rx[2])
    # t = 0, 0.999999, 1.0, 2.5, 12.5 ms at 1 kHz -> held samples 0, 0, 1, 2, 12
    assert codes == [0, 0, 1, 2, 12]


def test_a_long_clock_jump_does_not_generate_every_missed_sample() -> None:
    clock = FakeClock()
    source = CounterSource()
    sim = Mcp3008Sim(source, clock, source_rate_hz=10_000.0)
    sim.transfer(bytes.fromhex("01 80 00"))
    clock.advance_s(3600.0)
    sim.transfer(bytes.fromhex("01 80 00"))
    assert source.next_sample < 20_000


def test_frontend_gain_and_offset_scale_the_electrode_signal() -> None:
    clock = FakeClock()
    # 100 µV x 1000 = 0.1 V above a 1.65 V bias: floor(1024 * 1.75 / 3.3) = 543
    sim = Mcp3008Sim(ConstSource([100.0]), clock, vref_v=3.3)
    assert sim.transfer(bytes.fromhex("01 80 00")).hex(" ") == "00 02 1f"


# --- the chip's SPI limits ---------------------------------------------------------------


def test_modes_and_clock_limit_follow_the_datasheet() -> None:
    clock = FakeClock()
    assert Mcp3008Sim(ConstSource([0.0]), clock, vdd_v=5.0).max_sclk_hz == 3_600_000
    assert Mcp3008Sim(ConstSource([0.0]), clock, vdd_v=2.7, vref_v=2.5).max_sclk_hz == 1_350_000
    sim = Mcp3008Sim(ConstSource([0.0]), clock)
    assert sim.allowed_modes == frozenset({0, 3})
    bus = SimSpiDev(sim)
    bus.max_speed_hz = 1_000_000
    bus.mode = 3
    assert bus.xfer2([0x01, 0x80, 0x00]) == [0x00, 0x02, 0x00]
    bus.mode = 1
    with pytest.raises(HardwareIOError, match="SPI mode 1"):
        bus.xfer2([0x01, 0x80, 0x00])
    bus.mode = 0
    with pytest.raises(HardwareIOError, match="exceeds"):
        bus.xfer2([0x01, 0x80, 0x00], 2_000_000)


def test_bad_construction_is_a_config_error() -> None:
    clock = FakeClock()
    with pytest.raises(ConfigError, match="9 channels"):
        Mcp3008Sim(ConstSource([0.0] * 9), clock)
    with pytest.raises(ConfigError, match=r"vref_v = 5\.0"):
        Mcp3008Sim(ConstSource([0.0]), clock, vref_v=5.0, vdd_v=3.3)
    with pytest.raises(ConfigError, match=r"vdd_v = 6\.0"):
        Mcp3008Sim(ConstSource([0.0]), clock, vdd_v=6.0)


# --- round trips through the driver --------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    vref_v=st.floats(min_value=0.5, max_value=3.3),
    fraction=st.floats(min_value=0.0, max_value=1023 / 1024),
)
def test_volts_to_code_to_volts_within_one_lsb(vref_v: float, fraction: float) -> None:
    v = fraction * vref_v
    sim = Mcp3008Sim(ConstSource([0.0]), FakeClock(), vref_v=vref_v, offset_v=0.0)
    code = sim.volts_to_code(v)
    assert 0 <= code <= 1023
    driver = Mcp3008(
        SimSpiDev(sim),
        FakeClock(),
        Mcp3008Settings(vref_v=vref_v, offset_v=0.0, frontend_gain=1.0),
    )
    back_v = float(driver.codes_to_uv(code)) * 1e-6
    lsb_v = vref_v / 1024
    assert back_v <= v + 1e-12
    assert v - back_v < lsb_v + 1e-12


@settings(max_examples=60, deadline=None)
@given(emg_uv=st.lists(st.floats(min_value=-1600.0, max_value=1600.0), min_size=8, max_size=8))
def test_electrode_microvolts_survive_sim_bus_and_driver(emg_uv: list[float]) -> None:
    clock = FakeClock()
    sim = Mcp3008Sim(ConstSource(emg_uv), clock, vref_v=3.3, frontend_gain=1000.0)
    driver = Mcp3008(SimSpiDev(sim), clock, Mcp3008Settings(vref_v=3.3, frontend_gain=1000.0))
    driver.start()
    frame = driver.read_frame(1.0)
    assert frame is not None
    lsb_uv = 3.3 / 1024 / 1000 * 1e6
    error_uv = np.asarray(emg_uv) - frame.emg_uv
    assert np.all(error_uv >= -1e-6)
    assert np.all(error_uv < lsb_uv + 1e-6)
    assert frame.railed == 0
