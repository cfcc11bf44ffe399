"""Tests of the ADS1299 driver against the simulated chip: bytes on the wire, decoding,
ID checks, read-back verification and the acquisition counters.

Expected bytes and microvolts are computed by hand from the datasheet (hardware.md §1).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emgd.clock import FakeClock
from emgd.errors import ConfigError, HardwareInitError, HardwareIOError
from emgd.hw.ads1299 import (
    Ads1299,
    Ads1299ChannelSettings,
    Ads1299Settings,
    code_to_uv,
    decode_channels,
    decode_status,
    lsb_uv,
    register_plan,
    uv_to_code,
)
from emgd.hw.interfaces import FloatArray
from emgd.sim.ads1299_sim import Ads1299Sim
from emgd.sim.spi_bus import SimSpiDev

LSB_GAIN1_UV = 0.536441802978515625  # 9 V / 2^24
LSB_GAIN24_UV = 0.022351741790771484375  # 9 V / 24 / 2^24
PERIOD_1000_NS = 1_000_000


class ConstantSource:
    def __init__(self, values_uv: list[float]) -> None:
        self._values = np.array(values_uv, dtype=np.float64)

    @property
    def n_channels(self) -> int:
        return len(self._values)

    def generate(self, n_samples: int, sample_rate_hz: float) -> FloatArray:
        return np.tile(self._values, (n_samples, 1))


class RampSource:
    """Every channel rises by 1 µV per sample (so no two frames are identical)."""

    def __init__(self, n_channels: int = 8) -> None:
        self._n = n_channels
        self._next = 0

    @property
    def n_channels(self) -> int:
        return self._n

    def generate(self, n_samples: int, sample_rate_hz: float) -> FloatArray:
        ramp = np.arange(self._next, self._next + n_samples, dtype=np.float64)
        self._next += n_samples
        return np.repeat(ramp[:, None], self._n, axis=1)


class Rig:
    """Driver + simulated chip + logged bus on a fake clock."""

    def __init__(
        self,
        settings: Ads1299Settings | None = None,
        *,
        values_uv: list[float] | None = None,
        device_id: int = 0x3E,
        noise_uv_rms: float = 0.0,
        ramp: bool = False,
    ) -> None:
        self.clock = FakeClock()
        source = RampSource() if ramp else ConstantSource(values_uv or [0.0] * 8)
        self.sim = Ads1299Sim(source, self.clock, device_id=device_id, noise_uv_rms=noise_uv_rms)
        self.bus = SimSpiDev(self.sim, log_limit=10_000)
        self.driver = Ads1299(
            self.bus, self.sim.drdy_line(), self.clock, settings or Ads1299Settings()
        )

    def windows(self) -> list[str]:
        return [w.tx.hex(" ").upper() for w in self.bus.log]


# --- settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"sample_rate_hz": 300}, ["sample_rate_hz", "300", "250"]),
        ({"lead_off_current_na": 10}, ["lead_off_current_na", "10", "6000"]),
        ({"lead_off_threshold_pct": 50.0}, ["lead_off_threshold_pct", "50.0"]),
        ({"lead_off_ac": "ac"}, ["lead_off_ac", "'ac'", "fdr/4"]),
        ({"vref_v": 6.0}, ["vref_v", "6.0"]),
        ({"spi_speed_hz": 30_000_000}, ["spi_speed_hz", "30000000"]),
        ({"sample_rate_hz": 16000, "spi_speed_hz": 1_000_000}, ["spi_speed_hz", "3456000"]),
        ({"channels": ()}, ["channels", "0 entries"]),
        ({"channels": (Ads1299ChannelSettings(),) * 9}, ["channels", "9 entries"]),
        ({"channels": (Ads1299ChannelSettings(input="test"),)}, ["channel 1", "test_signal"]),
        ({"invalid_frame_limit": 0}, ["invalid_frame_limit", "0"]),
    ],
)
def test_settings_validation(kwargs: dict[str, object], words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        Ads1299Settings(**kwargs)  # type: ignore[arg-type]
    for word in words:
        assert word in str(info.value)


def test_channel_settings_validation() -> None:
    with pytest.raises(ConfigError, match=r"gain = 3 .*\[1, 2, 4, 6, 8, 12, 24\]"):
        Ads1299ChannelSettings(gain=3)
    with pytest.raises(ConfigError, match="input = 'electrode'"):
        Ads1299ChannelSettings(input="electrode")


@pytest.mark.parametrize(
    ("channel", "chnset"),
    [
        (Ads1299ChannelSettings(), 0x68),  # OpenBCI default: gain 24, normal, SRB2
        (Ads1299ChannelSettings(gain=1, srb2=False), 0x00),
        (Ads1299ChannelSettings(gain=12, input="test", srb2=False), 0x55),
        (Ads1299ChannelSettings(gain=8, input="shorted"), 0x49),
        (Ads1299ChannelSettings(powered=False), 0xE1),  # PD, gain 24, MUX shorted, SRB2 open
    ],
)
def test_chnset_values(channel: Ads1299ChannelSettings, chnset: int) -> None:
    assert channel.chnset == chnset


def test_register_plan_for_lead_off_and_test_signal() -> None:
    settings = Ads1299Settings(
        sample_rate_hz=250,
        channels=(
            Ads1299ChannelSettings(lead_off=True),
            Ads1299ChannelSettings(gain=1, input="test", bias=False),
        ),
        srb1=True,
        bias_drive=False,
        lead_off_current_na=6000,
        lead_off_threshold_pct=80.0,
        lead_off_ac="31.2hz",
        test_signal=True,
        test_signal_amplitude=2,
        test_signal_freq="fast",
    )
    plan = dict(register_plan(settings, 4))
    assert plan[0x03] == 0xE0  # reference on, bias off
    assert plan[0x01] == 0x96
    assert plan[0x02] == 0xD5  # 110 1 0 1 01
    assert plan[0x04] == 0xAA  # 101 0 10 10
    assert [plan[a] for a in (0x05, 0x06, 0x07, 0x08)] == [0x68, 0x0D, 0xE1, 0xE1]
    assert 0x09 not in plan  # a 4-channel part has no CH5SET
    assert plan[0x0D] == plan[0x0E] == 0x00
    assert plan[0x0F] == plan[0x10] == 0x01
    assert plan[0x15] == 0x20
    assert plan[0x17] == 0x02


# --- pure decoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "gain", "expected_uv"),
    [
        ("800000", 1, -4_500_000.0),
        ("7FFFFF", 1, 4_499_999.463558197021484375),
        ("FFFFFF", 1, -0.536441802978515625),
        ("000001", 1, 0.536441802978515625),
        ("800000", 24, -187_500.0),
        ("7FFFFF", 24, 187_499.977648258209228515625),
        ("FFFFFF", 24, -0.022351741790771484375),
        ("000001", 24, 0.022351741790771484375),
    ],
)
def test_decode_known_codes(raw: str, gain: int, expected_uv: float) -> None:
    code = int(decode_channels(bytes.fromhex(raw), 1)[0])
    assert code_to_uv(code, gain, 4.5) == pytest.approx(expected_uv, rel=1e-12, abs=1e-12)


def test_decode_channels_signs() -> None:
    codes = decode_channels(bytes.fromhex("800000 7FFFFF FFFFFF 000001 00117A FFEE86"), 6)
    assert codes.tolist() == [-8388608, 8388607, -1, 1, 4474, -4474]


def test_lsb_values() -> None:
    assert lsb_uv(1, 4.5) == pytest.approx(LSB_GAIN1_UV, rel=1e-15)
    assert lsb_uv(24, 4.5) == pytest.approx(LSB_GAIN24_UV, rel=1e-15)


def test_decode_status() -> None:
    status = decode_status(bytes.fromhex("C5 A3 C9"))
    assert status.valid
    assert status.lead_off_p == 0x5A
    assert status.lead_off_n == 0x3C
    assert status.gpio == 0x9
    assert not decode_status(bytes.fromhex("D0 00 00")).valid


@given(
    gain=st.sampled_from([1, 2, 4, 6, 8, 12, 24]),
    fraction=st.floats(min_value=-1.0, max_value=1.0 - 2.0**-23),
)
def test_uv_code_round_trip_within_one_lsb(gain: int, fraction: float) -> None:
    full_scale_uv = 4.5 / gain * 1e6
    emg_uv = fraction * full_scale_uv
    code = uv_to_code(emg_uv, gain, 4.5)
    assert -(2**23) <= code <= 2**23 - 1
    assert abs(code_to_uv(code, gain, 4.5) - emg_uv) <= 4.5 * 2 / gain / 2**24 * 1e6


def test_uv_to_code_clips() -> None:
    assert uv_to_code(1e9, 24, 4.5) == 0x7FFFFF
    assert uv_to_code(-1e9, 24, 4.5) == -0x800000


# --- initialisation -------------------------------------------------------------------------


def test_init_sequence_bytes() -> None:
    rig = Rig()
    start_ns = rig.clock.monotonic_ns()
    rig.driver.initialize()
    assert rig.bus.mode == 1
    assert rig.bus.max_speed_hz == 4_000_000
    expected = ["06", "11", "20 00 00", "43 00 EC", "23 00 00", "41 00 94", "21 00 00"]
    expected += ["42 00 C0", "22 00 00", "44 00 00", "24 00 00"]
    for n in range(8):
        expected += [f"{0x45 + n:02X} 00 68", f"{0x25 + n:02X} 00 00"]
    expected += ["4D 00 FF", "2D 00 00", "4E 00 FF", "2E 00 00", "4F 00 00", "2F 00 00"]
    expected += ["50 00 00", "30 00 00", "51 00 00", "31 00 00", "54 00 00", "34 00 00"]
    expected += ["55 00 00", "35 00 00", "57 00 00", "37 00 00"]
    assert rig.windows() == expected
    # tPOR (2^18 tCLK, >= 128 ms) + reference settling (150 ms)
    assert rig.clock.monotonic_ns() - start_ns >= 278_000_000
    assert rig.driver.device_id == 0x3E
    assert rig.driver.revision == 1
    assert rig.driver.chip_channels == 8
    assert rig.sim.registers[0x05] == 0x68


def test_commands_clocked_at_4mhz_and_frames_at_full_speed() -> None:
    rig = Rig(Ads1299Settings(spi_speed_hz=8_000_000))
    rig.driver.initialize()
    rig.driver.start()
    assert rig.driver.read_frame(0.1) is not None
    speeds = {w.tx[0]: w.speed_hz for w in rig.bus.log}
    assert speeds[0x41] == 4_000_000
    assert rig.bus.log[-1].speed_hz == 8_000_000
    assert len(rig.bus.log[-1].tx) == 27


@pytest.mark.parametrize(
    ("device_id", "channels", "revision"),
    [(0x3E, 8, 1), (0x3D, 6, 1), (0x3C, 4, 1), (0xDF, 8, 6)],
)
def test_accepted_ids(device_id: int, channels: int, revision: int) -> None:
    settings = Ads1299Settings(channels=(Ads1299ChannelSettings(),) * 4)
    rig = Rig(settings, device_id=device_id)
    rig.driver.initialize()
    assert rig.driver.chip_channels == channels
    assert rig.driver.revision == revision
    assert rig.driver.n_channels == 4


@pytest.mark.parametrize("device_id", [0x00, 0xFF, 0x1E, 0x92, 0x3A])
def test_refused_ids(device_id: int) -> None:
    rig = Rig(device_id=device_id)
    with pytest.raises(HardwareInitError, match=f"0x{device_id:02X}"):
        rig.driver.initialize()


def test_six_channel_part_refuses_eight_channel_settings() -> None:
    rig = Rig(device_id=0x3D)
    with pytest.raises(HardwareInitError, match=r"8 channels .*0x3D.* has 6"):
        rig.driver.initialize()


def test_six_channel_part_with_six_channels() -> None:
    rig = Rig(
        Ads1299Settings(channels=(Ads1299ChannelSettings(),) * 6),
        device_id=0x3D,
        values_uv=[100.0] * 6,
    )
    rig.driver.initialize()
    assert "4B 00 68" not in rig.windows()  # CH7SET is never written
    rig.driver.start()
    frame = rig.driver.read_frame(0.1)
    assert frame is not None
    assert frame.emg_uv.shape == (6,)
    assert len(rig.bus.log[-1].tx) == 21


class CorruptingChip:
    """Passes windows to the simulator but turns the data byte of WREG CONFIG1 into 0x00."""

    def __init__(self, sim: Ads1299Sim) -> None:
        self.sim = sim
        self.allowed_modes = sim.allowed_modes
        self.max_sclk_hz = sim.max_sclk_hz

    def transfer(self, tx: bytes) -> bytes:
        if len(tx) == 3 and tx[0] == 0x41:
            tx = tx[:2] + b"\x00"
        return self.sim.transfer(tx)


def test_read_back_mismatch_refused() -> None:
    clock = FakeClock()
    sim = Ads1299Sim(ConstantSource([0.0] * 8), clock)
    bus = SimSpiDev(CorruptingChip(sim))
    driver = Ads1299(bus, sim.drdy_line(), clock, Ads1299Settings())
    # the chip forces CONFIG1 bits 7 and 4: 0x00 written reads 0x90
    with pytest.raises(HardwareInitError, match=r"CONFIG1 \(0x01\) wrote 0x94, read back 0x90"):
        driver.initialize()


# --- acquisition ----------------------------------------------------------------------------


def test_start_discards_settling_frame_and_decodes_gains() -> None:
    channels = (
        Ads1299ChannelSettings(gain=24),
        Ads1299ChannelSettings(gain=1),
        Ads1299ChannelSettings(gain=12),
        Ads1299ChannelSettings(powered=False),
    )
    rig = Rig(Ads1299Settings(channels=channels), values_uv=[100.0, -1000.0, 250.0, 100.0])
    rig.driver.initialize()
    rig.driver.start()
    assert rig.windows()[-3:] == ["08", "10", " ".join(["00"] * 27)]
    frame = rig.driver.read_frame(0.1)
    assert frame is not None
    assert rig.sim.frames_converted == 2
    assert frame.index == 0
    # 100 µV at gain 24 -> code 4474; -1000 µV at gain 1 -> -1864; 250 µV at gain 12 -> 5592
    expected = [4474 * LSB_GAIN24_UV, -1864 * LSB_GAIN1_UV, 5592 * LSB_GAIN24_UV * 2, 0.0]
    np.testing.assert_allclose(frame.emg_uv, expected, rtol=1e-12)
    assert frame.railed == 0
    assert rig.driver.stats.frames_read == 1


def test_consecutive_frames_are_one_period_apart() -> None:
    rig = Rig(ramp=True)
    rig.driver.initialize()
    rig.driver.start()
    frames = [rig.driver.read_frame(0.1) for _ in range(5)]
    assert [f.index for f in frames if f is not None] == [0, 1, 2, 3, 4]
    stamps = [f.timestamp_ns for f in frames if f is not None]
    assert np.diff(stamps).tolist() == [PERIOD_1000_NS] * 4
    assert rig.driver.stats.frames_lost == 0
    assert rig.driver.stats.frames_stale == 0


def test_late_read_counts_lost_frames_and_index_jumps() -> None:
    rig = Rig(ramp=True)
    rig.driver.initialize()
    rig.driver.start()
    first = rig.driver.read_frame(0.1)
    rig.clock.advance_ns(3 * PERIOD_1000_NS)
    late = rig.driver.read_frame(0.1)
    assert first is not None
    assert late is not None
    assert late.index - first.index == 3
    assert rig.driver.stats.frames_lost == 2
    assert rig.sim.frames_lost == 2


def test_identical_frames_are_stale() -> None:
    rig = Rig(values_uv=[10.0] * 8)  # constant input, no noise: identical bytes
    rig.driver.initialize()
    rig.driver.start()
    for _ in range(3):
        rig.driver.read_frame(0.1)
    assert rig.driver.stats.frames_stale == 2


def test_railed_channels_counted() -> None:
    rig = Rig(values_uv=[0.0, 1e6, 0.0, -1e6, 0.0, 0.0, 0.0, 0.0], noise_uv_rms=0.3)
    rig.driver.initialize()
    rig.driver.start()
    frame = rig.driver.read_frame(0.1)
    rig.driver.read_frame(0.1)
    assert frame is not None
    assert frame.railed == 0b1010
    assert frame.emg_uv[1] == pytest.approx(187_499.977648258209228515625)
    assert frame.emg_uv[3] == -187_500.0
    assert rig.driver.stats.frames_railed == 2
    assert rig.driver.stats.railed_per_channel == [0, 2, 0, 2, 0, 0, 0, 0]


def test_garbage_frames_are_counted_and_skipped() -> None:
    rig = Rig(Ads1299Settings(invalid_frame_limit=4), ramp=True)
    rig.driver.initialize()
    rig.driver.start()
    assert rig.driver.read_frame(0.1) is not None
    rig.sim.inject_garbage(3)
    frame = rig.driver.read_frame(0.1)
    assert frame is not None
    assert frame.index == 4  # three conversions were garbage
    assert rig.driver.stats.frames_invalid == 3
    assert rig.driver.stats.frames_lost == 0
    assert rig.driver.stats.frames_read == 2


def test_garbage_raises_after_the_limit() -> None:
    rig = Rig(Ads1299Settings(invalid_frame_limit=4))
    rig.driver.initialize()
    rig.driver.start()
    rig.sim.inject_garbage(10)
    with pytest.raises(
        HardwareIOError, match=r"4 consecutive invalid frames .*last frame [0-9a-f]{2} "
    ):
        rig.driver.read_frame(1.0)
    assert rig.driver.stats.frames_invalid == 4


def test_drdy_timeout_returns_none_and_counts() -> None:
    rig = Rig()
    rig.driver.initialize()
    rig.driver.start()
    rig.sim.inject_no_drdy(True)
    before_ns = rig.clock.monotonic_ns()
    assert rig.driver.read_frame(0.02) is None
    assert rig.clock.monotonic_ns() - before_ns == 20_000_000
    assert rig.driver.stats.timeouts == 1


def test_start_without_drdy_raises() -> None:
    rig = Rig()
    rig.driver.initialize()
    rig.sim.inject_no_drdy(True)
    with pytest.raises(HardwareIOError, match="no DRDY"):
        rig.driver.start()


def test_read_before_start_raises() -> None:
    rig = Rig()
    rig.driver.initialize()
    with pytest.raises(HardwareIOError, match="before start"):
        rig.driver.read_frame(0.1)


def test_lead_off_bits_in_frame() -> None:
    channels = (Ads1299ChannelSettings(lead_off=True), Ads1299ChannelSettings())
    rig = Rig(Ads1299Settings(channels=channels))
    rig.driver.initialize()
    assert rig.sim.registers[0x17] == 0x02
    rig.sim.set_lead_off(0, positive=True, off=True)
    rig.sim.set_lead_off(1, positive=True, off=True)  # not sensed: must not show
    rig.driver.start()
    frame = rig.driver.read_frame(0.1)
    assert frame is not None
    assert frame.lead_off_p == 0b01
    assert frame.lead_off_n == 0


def test_test_signal_amplitude_through_driver() -> None:
    settings = Ads1299Settings(
        channels=(Ads1299ChannelSettings(gain=1, input="test"),), test_signal=True
    )
    rig = Rig(settings)
    rig.driver.initialize()
    rig.driver.start()
    frame = rig.driver.read_frame(0.1)
    assert frame is not None
    # ±VREF/2400 = ±1875 µV, quantised at 0.536 µV
    assert abs(frame.emg_uv[0]) == pytest.approx(1875.0, abs=LSB_GAIN1_UV)


def test_stop_sends_stop_and_sdatac() -> None:
    rig = Rig()
    rig.driver.initialize()
    rig.driver.start()
    rig.driver.read_frame(0.1)
    rig.driver.stop()
    assert rig.windows()[-2:] == ["0A", "11"]
    assert not rig.sim.converting
    assert rig.sim.mode == "SDATAC"


def test_verify_registers_clean_and_after_spontaneous_reset() -> None:
    rig = Rig(ramp=True)
    rig.driver.initialize()
    rig.driver.start()
    rig.driver.read_frame(0.1)
    assert rig.driver.verify_registers() == []
    assert rig.windows()[-3:] == ["11", "20 17 " + " ".join(["00"] * 24), "10"]
    assert rig.sim.mode == "RDATAC"
    assert rig.driver.read_frame(0.1) is not None
    rig.sim.inject_reset()
    problems = rig.driver.verify_registers()
    assert "CONFIG1 (0x01): expected 0x94, read 0x96" in problems
    assert "CONFIG3 (0x03): expected 0xEC, read 0x60" in problems
    assert "CH1SET (0x05): expected 0x68, read 0x61" in problems
    assert rig.driver.read_frame(0.01) is None  # conversions stopped by the reset


def test_verify_registers_when_stopped_detects_a_flipped_bit() -> None:
    rig = Rig()
    rig.driver.initialize()
    rig.sim.poke_register(0x0D, 0xFE)
    assert rig.driver.verify_registers() == ["BIAS_SENSP (0x0D): expected 0xFF, read 0xFE"]
    assert rig.sim.mode == "SDATAC"


def test_frames_lost_during_verify_are_counted() -> None:
    rig = Rig(ramp=True)
    rig.driver.initialize()
    rig.driver.start()
    rig.driver.read_frame(0.1)
    rig.clock.advance_ns(2 * PERIOD_1000_NS)  # the check ran long
    rig.driver.verify_registers()
    frame = rig.driver.read_frame(0.1)
    assert frame is not None
    assert frame.index == 2
    assert rig.driver.stats.frames_lost == 1


def test_close_stops_and_releases() -> None:
    rig = Rig()
    rig.driver.initialize()
    rig.driver.start()
    rig.driver.close()
    rig.driver.close()
    assert rig.bus.closed
    assert not rig.sim.converting
    with pytest.raises(HardwareIOError, match="closed"):
        rig.driver.start()


def test_properties_before_initialize() -> None:
    rig = Rig(Ads1299Settings(sample_rate_hz=2000))
    assert rig.driver.sample_rate_hz == 2000.0
    assert rig.driver.n_channels == 8
    with pytest.raises(HardwareIOError, match="not initialized"):
        _ = rig.driver.device_id
