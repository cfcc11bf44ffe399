"""Tests of emgd.hw.mcp3008: command bytes, reply decoding, scaling, pacing and counters."""

from __future__ import annotations

import ctypes
import errno
import fcntl
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from emgd.clock import FakeClock
from emgd.errors import ConfigError, HardwareInitError, HardwareIOError
from emgd.hw.interfaces import FloatArray, Frame
from emgd.hw.mcp3008 import (
    Mcp3008,
    Mcp3008Input,
    Mcp3008Settings,
    decode_reply,
    max_sclk_hz,
    parse_input,
)
from emgd.hw.spi import LinuxSpiBus, SpiIocTransfer
from emgd.sim.mcp3008_sim import Mcp3008Sim
from emgd.sim.spi_bus import SimSpiDev

MS_NS = 1_000_000
US_NS = 1_000


def reply_for(code: int, null_bit: int = 0, junk: int = 0) -> bytes:
    """A 3-byte reply built by hand from the datasheet layout (junk fills the Hi-Z bits)."""
    return bytes((junk, (junk & 0xF8) | (null_bit << 2) | (code >> 8), code & 0xFF))


class ScriptedBus:
    """A plain (non-windowed) SpiBus: records every window and answers from a script.

    ``answer(tx) -> code`` picks the code; ``per_xfer_ns`` advances the clock per window.
    """

    def __init__(
        self,
        clock: FakeClock,
        answer: Callable[[bytes], bytes],
        per_xfer_ns: int = 0,
    ) -> None:
        self.mode = 0
        self.max_speed_hz = 125_000_000
        self.bits_per_word = 0
        self.clock = clock
        self.answer = answer
        self.per_xfer_ns = per_xfer_ns
        self.windows: list[tuple[int, bytes, int]] = []
        self.close_count = 0

    def xfer2(
        self, values: list[int], speed_hz: int = 0, delay_usecs: int = 0, bits_per_word: int = 0
    ) -> list[int]:
        tx = bytes(values)
        self.windows.append((self.clock.monotonic_ns(), tx, speed_hz))
        self.clock.advance_ns(self.per_xfer_ns)
        values[:] = list(self.answer(tx))
        return values

    def close(self) -> None:
        self.close_count += 1


def channel_of(tx: bytes) -> int:
    return (tx[1] >> 4) & 0x7


def fixed_codes(codes: Sequence[int]) -> Callable[[bytes], bytes]:
    return lambda tx: reply_for(codes[channel_of(tx)])


def make_driver(
    codes: Sequence[int] = (512,) * 8,
    per_xfer_ns: int = 0,
    **settings: Any,
) -> tuple[Mcp3008, ScriptedBus, FakeClock]:
    clock = FakeClock()
    bus = ScriptedBus(clock, fixed_codes(codes), per_xfer_ns)
    driver = Mcp3008(bus, clock, Mcp3008Settings(**settings))
    return driver, bus, clock


def read(driver: Mcp3008, timeout_s: float = 1.0) -> Frame:
    frame = driver.read_frame(timeout_s)
    assert frame is not None
    return frame


# --- command bytes and reply decoding ---------------------------------------------------


def test_single_ended_commands_are_the_datasheet_bytes() -> None:
    expected = [
        "01 80 00",
        "01 90 00",
        "01 a0 00",
        "01 b0 00",
        "01 c0 00",
        "01 d0 00",
        "01 e0 00",
        "01 f0 00",
    ]
    assert [Mcp3008Input(ch).command().hex(" ") for ch in range(8)] == expected


@pytest.mark.parametrize(
    ("spec", "tx_hex"),
    [
        ("0-1", "01 00 00"),
        ((1, 0), "01 10 00"),
        ("2-3", "01 20 00"),
        ("CH3-CH2", "01 30 00"),
        ((4, 5), "01 40 00"),
        ("5-4", "01 50 00"),
        ("6-7", "01 60 00"),
        ((7, 6), "01 70 00"),
    ],
)
def test_differential_commands(spec: Any, tx_hex: str) -> None:
    assert parse_input(spec).command().hex(" ") == tx_hex


def test_input_labels() -> None:
    assert parse_input("3").label == "CH3"
    assert parse_input((7, 6)).label == "CH7-CH6"


@pytest.mark.parametrize("spec", [8, -1, "0-2", (1, 2), (2, 1), "x", True, 1.5, "9"])
def test_inputs_the_chip_cannot_convert_are_config_errors(spec: Any) -> None:
    with pytest.raises(ConfigError, match=r"MCP3008 inputs"):
        parse_input(spec)


@pytest.mark.parametrize(
    ("rx", "code", "null_ok"),
    [
        (bytes((0x00, 0x00, 0x00)), 0x000, True),
        (bytes((0x00, 0x03, 0xFF)), 0x3FF, True),
        (bytes((0x00, 0x01, 0x55)), 0x155, True),
        (bytes((0xFF, 0xFA, 0xAA)), 0x2AA, True),  # Hi-Z bits high, null bit still 0
        (bytes((0x00, 0x04, 0x00)), 0x000, False),
        (bytes((0xFF, 0xFF, 0xFF)), 0x3FF, False),  # MISO floating high: no chip
    ],
)
def test_decode_reply(rx: bytes, code: int, null_ok: bool) -> None:
    assert decode_reply(rx) == (code, null_ok)


# --- settings ---------------------------------------------------------------------------


def test_max_sclk_follows_the_supply() -> None:
    assert max_sclk_hz(2.7) == 1_350_000
    assert max_sclk_hz(5.0) == 3_600_000
    assert max_sclk_hz(5.5) == 3_600_000
    assert max_sclk_hz(3.85) == 2_475_000  # half way between 2.7 and 5 V


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"sample_rate_hz": 0.0}, r"sample_rate_hz = 0.0"),
        ({"sample_rate_hz": float("nan")}, r"sample_rate_hz = nan"),
        ({"vref_v": 5.0}, r"vref_v = 5.0: must not exceed vdd_v = 3.3"),
        ({"offset_v": 3.4}, r"offset_v = 3.4"),
        ({"frontend_gain": -1.0}, r"frontend_gain = -1.0"),
        ({"spi_mode": 1}, r"spi_mode = 1"),
        ({"spi_speed_hz": 2_000_000}, r"spi_speed_hz = 2000000: must be 1..1936956 Hz"),
        ({"spi_speed_hz": 3_600_001, "vdd_v": 5.0}, r"spi_speed_hz = 3600001"),
        ({"spi_speed_hz": 0}, r"spi_speed_hz = 0"),
        ({"vdd_v": 2.5}, r"vdd_v = 2.5"),
        ({"inputs": ()}, r"at least one input"),
        ({"inputs": (0, "0")}, r"listed twice"),
        ({"inputs": (*range(8), 0)}, r"9 given"),
        ({"inputs": (0, "1-2")}, r"inputs\[1\] = '1-2'"),
        ({"sample_rate_hz": 10_000.0}, r"need 1920000 Hz of SCLK"),
    ],
)
def test_bad_settings_are_config_errors_naming_field_and_value(
    kwargs: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        Mcp3008Settings(**kwargs)


def test_settings_accept_the_datasheet_limits() -> None:
    Mcp3008Settings(spi_speed_hz=3_600_000, vdd_v=5.0, vref_v=5.0)
    Mcp3008Settings(spi_speed_hz=1_350_000, vdd_v=2.7, vref_v=2.5)
    s = Mcp3008Settings(inputs=(0, "2-3", (5, 4)), spi_mode=3)
    assert s.channels == (Mcp3008Input(0), Mcp3008Input(2, 3), Mcp3008Input(5, 4))
    assert s.input_offset_v == pytest.approx(1.65)
    assert Mcp3008Settings(offset_v=0.5).input_offset_v == 0.5


# --- bus set-up and conversions ---------------------------------------------------------


def test_driver_configures_the_bus_and_sends_one_window_per_conversion() -> None:
    driver, bus, _ = make_driver(inputs=(2, "0-1"), spi_mode=3, spi_speed_hz=500_000)
    assert (bus.mode, bus.bits_per_word, bus.max_speed_hz) == (3, 8, 500_000)
    driver.start()
    bus.windows.clear()
    read(driver)
    assert [(tx.hex(" "), speed) for _, tx, speed in bus.windows] == [
        ("01 a0 00", 500_000),
        ("01 00 00", 500_000),
    ]
    assert driver.labels == ("CH2", "CH0-CH1")
    assert driver.n_channels == 2


def test_codes_become_input_referred_microvolts() -> None:
    # vref 3.3 V, offset 1.65 V, gain 1000: code 512 is mid-rail (0 µV),
    # 1023 is (1023*3.3/1024 - 1.65) V / 1000 = 1646.77734375 µV, 0 is -1650 µV.
    driver, _, _ = make_driver(codes=(512, 1023, 0, 700), inputs=(0, 1, 2, 3))
    driver.start()
    frame = read(driver)
    expected = [0.0, 1646.77734375, -1650.0, (700 * 3.3 / 1024 - 1.65) / 1000 * 1e6]
    np.testing.assert_allclose(frame.emg_uv, expected, rtol=0, atol=1e-9)
    assert frame.emg_uv.shape == (4,)
    assert frame.emg_uv.dtype == np.float64


def test_railed_channels_are_flagged_and_counted() -> None:
    driver, _, _ = make_driver(codes=(0, 5, 1023, 1022), inputs=(0, 1, 2, 3))
    driver.start()
    frame = read(driver)
    assert frame.railed == 0b0101
    read(driver)
    assert driver.stats.frames_railed == 2
    assert driver.stats.railed_per_channel == [2, 0, 2, 0]


def test_stale_frames_are_counted() -> None:
    codes = [100, 200]
    clock = FakeClock()
    bus = ScriptedBus(clock, lambda tx: reply_for(codes[channel_of(tx)]))
    driver = Mcp3008(bus, clock, Mcp3008Settings(inputs=(0, 1)))
    driver.start()
    read(driver)
    read(driver)
    assert driver.stats.frames_stale == 1
    codes[1] = 201
    read(driver)
    assert driver.stats.frames_stale == 1
    read(driver)
    assert driver.stats.frames_stale == 2


def test_start_without_a_chip_is_an_init_error() -> None:
    clock = FakeClock()
    bus = ScriptedBus(clock, lambda tx: b"\xff\xff\xff")
    driver = Mcp3008(bus, clock, Mcp3008Settings(inputs=(4,)))
    with pytest.raises(HardwareInitError, match=r"CH4: null bit is 1 \(rx ff ff ff\)"):
        driver.start()


def test_invalid_null_bit_drops_the_frame_then_errors_after_a_run() -> None:
    bad = {"n": 0}

    def answer(tx: bytes) -> bytes:
        if bad["n"] > 0:
            bad["n"] -= 1
            return reply_for(300, null_bit=1)
        return reply_for(300)

    clock = FakeClock()
    bus = ScriptedBus(clock, answer)
    driver = Mcp3008(bus, clock, Mcp3008Settings(inputs=(1,)), invalid_run_limit=3)
    driver.start()
    assert read(driver).index == 0
    bad["n"] = 2
    frame = read(driver)
    assert frame.index == 3  # frames 1 and 2 were dropped as invalid
    assert driver.stats.frames_invalid == 2
    bad["n"] = 3
    with pytest.raises(HardwareIOError, match=r"3 frames in a row with the null bit set.*CH1"):
        driver.read_frame(1.0)


def test_read_before_start_and_close_once() -> None:
    driver, bus, _ = make_driver()
    with pytest.raises(HardwareIOError, match=r"before start"):
        driver.read_frame(0.1)
    driver.start()
    driver.stop()
    with pytest.raises(HardwareIOError):
        driver.read_frame(0.1)
    driver.close()
    driver.close()
    assert bus.close_count == 1
    with pytest.raises(HardwareInitError, match=r"after close"):
        driver.start()


# --- pacing -----------------------------------------------------------------------------


def test_reads_happen_exactly_on_absolute_deadlines() -> None:
    driver, bus, clock = make_driver(inputs=(0,), sample_rate_hz=1000.0)
    driver.start()
    t0 = clock.monotonic_ns()
    bus.windows.clear()
    frames = [read(driver) for _ in range(5)]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.timestamp_ns - t0 for f in frames] == [0, MS_NS, 2 * MS_NS, 3 * MS_NS, 4 * MS_NS]
    assert [t - t0 for t, _, _ in bus.windows] == [0, MS_NS, 2 * MS_NS, 3 * MS_NS, 4 * MS_NS]


def test_deadlines_do_not_drift_with_a_period_that_is_not_whole_nanoseconds() -> None:
    driver, _, clock = make_driver(inputs=(0,), sample_rate_hz=3.0)
    driver.start()
    t0 = clock.monotonic_ns()
    stamps = [read(driver).timestamp_ns - t0 for _ in range(7)]
    # ceil(k * 1e9 / 3)
    assert stamps == [0, 333_333_334, 666_666_667, 1_000_000_000, 1_333_333_334, 1_666_666_667,
                      2_000_000_000]  # fmt: skip


def test_a_late_loop_loses_whole_periods_and_the_index_jumps() -> None:
    driver, _, clock = make_driver(inputs=(0,), sample_rate_hz=1000.0)
    driver.start()
    t0 = clock.monotonic_ns()
    read(driver)
    read(driver)
    clock.advance_ns(3 * MS_NS + 500 * US_NS)  # now t0 + 4.5 ms; deadlines 2 and 3 missed
    frame = read(driver)
    assert frame.index == 4
    assert frame.timestamp_ns == t0 + 4 * MS_NS
    assert driver.stats.frames_lost == 2
    assert read(driver).index == 5
    report = driver.timing_report()
    assert report.frames_read == 4
    assert report.frames_lost == 2
    assert report.achieved_rate_hz == pytest.approx(4 / 0.006)
    assert report.jitter_max_us == pytest.approx(500.0)


def test_late_by_less_than_a_period_is_taken_late_not_lost() -> None:
    driver, _, clock = make_driver(inputs=(0,), sample_rate_hz=1000.0)
    driver.start()
    read(driver)
    read(driver)
    clock.advance_ns(1_400 * US_NS)  # deadline 2 passed by 0.4 ms
    assert read(driver).index == 2
    assert driver.stats.frames_lost == 0
    assert driver.timing_report().jitter_max_us == pytest.approx(400.0)


def test_achieved_rate_equals_nominal_without_losses() -> None:
    driver, _, _ = make_driver(inputs=(0, 1), sample_rate_hz=500.0)
    driver.start()
    for _ in range(50):
        read(driver)
    report = driver.timing_report()
    assert report.achieved_rate_hz == pytest.approx(500.0)
    assert report.nominal_rate_hz == 500.0
    assert report.frames_lost == 0
    assert report.windowed is False
    assert report.batched is None


def test_jitter_statistics() -> None:
    driver, _, clock = make_driver(inputs=(0,), sample_rate_hz=1000.0, codes=(100,) * 8)
    driver.start()
    jitters_us = [0, 100, 200, 300]
    previous = 0
    for k, jitter in enumerate(jitters_us):
        if k:
            clock.advance_ns((1000 - previous + jitter) * US_NS)
        read(driver)
        previous = jitter
    report = driver.timing_report()
    assert report.jitter_mean_us == pytest.approx(150.0)
    assert report.jitter_max_us == pytest.approx(300.0)
    assert report.jitter_p50_us == pytest.approx(150.0)
    assert report.jitter_p99_us == pytest.approx(297.0)


def test_spi_time_per_frame_is_measured() -> None:
    driver, _, _ = make_driver(inputs=(0, 1), per_xfer_ns=20 * US_NS)
    driver.start()
    for _ in range(3):
        read(driver)
    report = driver.timing_report()
    assert report.spi_mean_us == pytest.approx(40.0)
    assert report.spi_max_us == pytest.approx(40.0)


def test_timeout_before_the_next_deadline_returns_none() -> None:
    driver, _, clock = make_driver(inputs=(0,), sample_rate_hz=10.0)
    driver.start()
    t0 = clock.monotonic_ns()
    read(driver)
    assert driver.read_frame(0.01) is None
    assert clock.monotonic_ns() == t0 + 10 * MS_NS
    frame = read(driver, timeout_s=1.0)
    assert (frame.index, frame.timestamp_ns) == (1, t0 + 100 * MS_NS)
    assert driver.stats.timeouts == 0
    assert driver.stats.frames_lost == 0


# --- the same frames whatever the bus path ----------------------------------------------


class RampSource:
    """Deterministic electrode signals: channel c, sample n -> 40·sin(n/7 + c) + 3·c µV."""

    n_channels = 8

    def __init__(self) -> None:
        self._n = 0

    def generate(self, n_samples: int, sample_rate_hz: float) -> FloatArray:
        n = np.arange(self._n, self._n + n_samples)[:, None]
        c = np.arange(8)[None, :]
        self._n += n_samples
        out: FloatArray = 40.0 * np.sin(n / 7.0 + c) + 3.0 * c
        return out


class PlainBus:
    """Hides xfer_windows: the driver must use one xfer2 per conversion."""

    def __init__(self, inner: SimSpiDev) -> None:
        self.inner = inner
        self.mode = 0
        self.max_speed_hz = 0
        self.bits_per_word = 0

    def xfer2(
        self, values: list[int], speed_hz: int = 0, delay_usecs: int = 0, bits_per_word: int = 0
    ) -> list[int]:
        self.inner.mode = self.mode
        self.inner.bits_per_word = self.bits_per_word
        self.inner.max_speed_hz = self.max_speed_hz
        return self.inner.xfer2(values, speed_hz, delay_usecs, bits_per_word)

    def close(self) -> None:
        self.inner.close()


class SpiDevOverSim:
    """A py-spidev look-alike with a file descriptor, forwarding xfer2 to a SimSpiDev."""

    def __init__(self, inner: SimSpiDev) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "inner":
            object.__setattr__(self, name, value)
        else:
            setattr(self.inner, name, value)

    def fileno(self) -> int:
        return 99


def kernel_ioctl_into(sims: dict[int, SimSpiDev]) -> Callable[..., int]:
    """An fcntl.ioctl stand-in that runs each transfer as one CS window on a SimSpiDev."""

    def ioctl(fd: int, request: int, arg: Any, mutate_flag: bool = True) -> int:
        n = ((request >> 16) & 0x3FFF) // 32
        transfers = (SpiIocTransfer * n).from_buffer(arg)
        sim = sims[fd]
        for t in transfers:
            rx = sim.xfer_windows([ctypes.string_at(t.tx_buf, t.len)], t.speed_hz)[0]
            ctypes.memmove(t.rx_buf, rx, t.len)
        return sum(t.len for t in transfers)

    return ioctl


def run_driver(kind: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Frame], Mcp3008]:
    clock = FakeClock()
    sim_dev = SimSpiDev(Mcp3008Sim(RampSource(), clock, source_rate_hz=2000.0), log_limit=0)
    bus: Any
    if kind == "windowed-sim":
        bus = sim_dev
    elif kind == "per-window":
        bus = PlainBus(sim_dev)
    elif kind == "linux-batched":
        monkeypatch.setattr(fcntl, "ioctl", kernel_ioctl_into({99: sim_dev}))
        bus = LinuxSpiBus(SpiDevOverSim(sim_dev), bufsiz_bytes=4096)
    else:

        def refuse(*args: Any) -> int:
            raise OSError(errno.ENOTTY, "not a spidev")

        monkeypatch.setattr(fcntl, "ioctl", refuse)
        bus = LinuxSpiBus(SpiDevOverSim(sim_dev), bufsiz_bytes=4096)
    settings = Mcp3008Settings(
        inputs=(0, 1, "2-3", (5, 4), 6), sample_rate_hz=1000.0, frontend_gain=500.0
    )
    driver = Mcp3008(bus, clock, settings)
    driver.start()
    frames = [read(driver) for _ in range(30)]
    return frames, driver


def test_every_bus_path_gives_the_same_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    reference, ref_driver = run_driver("windowed-sim", monkeypatch)
    assert ref_driver.timing_report().windowed is True
    codes = {round(float(v), 6) for f in reference for v in f.emg_uv}
    assert len(codes) > 20  # the signal really moves
    for kind in ("per-window", "linux-batched", "linux-fallback"):
        frames, driver = run_driver(kind, monkeypatch)
        assert [f.index for f in frames] == [f.index for f in reference], kind
        assert [f.timestamp_ns for f in frames] == [f.timestamp_ns for f in reference], kind
        for a, b in zip(frames, reference, strict=True):
            np.testing.assert_array_equal(a.emg_uv, b.emg_uv)
        report = driver.timing_report()
        if kind == "linux-batched":
            assert report.batched is True
        if kind == "linux-fallback":
            assert report.batched is False
        if kind == "per-window":
            assert report.windowed is False
