"""Driver for the TI ADS1299 / ADS1299-6 / ADS1299-4 EMG/EEG front end over SPI.

This module owns the chip's byte protocol: the power-up and configuration sequence (every
register write verified by read-back), conversion control (START/STOP, RDATAC/SDATAC), the
decoding of data frames into microvolts, and the acquisition counters (lost, stale, railed,
invalid frames and DRDY timeouts). It talks only to an injected SPI bus with py-spidev's
``SpiDev`` interface, an injected DRDY line and an injected clock; it must not open devices,
import GPIO libraries, sleep with :mod:`time`, or filter or buffer the signal.

Wire facts used here (TI SBAS499, see ``reference/hardware.md`` §1): SPI mode 1, one command
or frame per CS-low window, 24-bit two's complement big-endian samples, and
LSB = 2·VREF / gain / 2^24.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from emgd.clock import NS_PER_S, Clock
from emgd.errors import ConfigError, HardwareInitError, HardwareIOError
from emgd.hw.interfaces import AcquisitionStats, DrdyLine, FloatArray, Frame, SpiBus

IntArray = npt.NDArray[np.int32]

# --- Clock and timing (datasheet delays in tCLK, converted at the slowest allowed fCLK) ---------
FCLK_NOMINAL_HZ: Final = 2_048_000  # internal oscillator; sets the data rates
FCLK_MIN_HZ: Final = 1_500_000  # slowest allowed fCLK (tCLK max 666 ns): waits use this
TPOR_TCLK: Final = 2**18  # power-on reset time before any SPI activity
RESET_SETTLE_TCLK: Final = 18  # after the RESET opcode, before the next command
COMMAND_DECODE_TCLK: Final = 4  # tSDECODE / wait after SDATAC before the next command
REFERENCE_SETTLE_S: Final = 0.150  # internal reference buffer settling after PD_REFBUF = 1
CS_HOLD_US: Final = 3  # tSCCS: 4 tCLK (<= 2.67 us) from the last SCLK edge to CS high
START_DRDY_TIMEOUT_S: Final = 0.1  # minimum wait for the first DRDY after START

# --- SPI -----------------------------------------------------------------------------------
SPI_MODE: Final = 1  # CPOL = 0, CPHA = 1
SCLK_MAX_HZ: Final = 20_000_000  # tSCLK >= 50 ns at DVDD 2.7-3.6 V
SCLK_MIN_HZ: Final = 100_000
# Within a multi-byte command one byte must end >= 4 tCLK after the previous one (tSDECODE);
# at <= 4 MHz a byte lasts >= 2 us, so register commands are clocked at most this fast.
COMMAND_SCLK_MAX_HZ: Final = 4_000_000
STATUS_BYTES: Final = 3
BYTES_PER_CHANNEL: Final = 3
MAX_CHANNELS: Final = 8

# --- Opcodes (Table 10) -----------------------------------------------------------------------
OP_WAKEUP: Final = 0x02
OP_STANDBY: Final = 0x04
OP_RESET: Final = 0x06
OP_START: Final = 0x08
OP_STOP: Final = 0x0A
OP_RDATAC: Final = 0x10
OP_SDATAC: Final = 0x11
OP_RDATA: Final = 0x12
OP_RREG: Final = 0x20  # 001r rrrr, then 000n nnnn (= count - 1), then count bytes out
OP_WREG: Final = 0x40  # 010r rrrr, then 000n nnnn (= count - 1), then count bytes in

# --- Register map (SBAS499C Table 11) --------------------------------------------------------
#
#  addr name        b7        b6       b5       b4        b3          b2      b1        b0
#  00   ID (RO)     REV_ID2   REV_ID1  REV_ID0  1         DEV_ID1     DEV_ID0 NU_CH1    NU_CH0
#  01   CONFIG1     1         DAISY_EN CLK_EN   1         0           DR2     DR1       DR0
#  02   CONFIG2     1         1        0        INT_CAL   0           CAL_AMP CAL_FREQ1 CAL_FREQ0
#  03   CONFIG3     PD_REFBUF 1        1        BIAS_MEAS BIASREF_INT PD_BIAS LOFF_SENS BIAS_STAT
#  04   LOFF        COMP_TH2  COMP_TH1 COMP_TH0 0         ILEAD_OFF1  ILEAD0  FLEAD1    FLEAD0
#  05+n CHnSET      PDn       GAINn2   GAINn1   GAINn0    SRB2        MUXn2   MUXn1     MUXn0
#  0D   BIAS_SENSP  one bit per channel, bit 0 = channel 1 (same layout for 0E..13)
#  0E   BIAS_SENSN
#  0F   LOFF_SENSP
#  10   LOFF_SENSN
#  11   LOFF_FLIP
#  12   LOFF_STATP (RO)
#  13   LOFF_STATN (RO)
#  14   GPIO        GPIOD4..GPIOD1 (data)          | GPIOC4..GPIOC1 (1 = input)
#  15   MISC1       0 0 SRB1 0 0 0 0 0
#  16   MISC2       reserved, 0
#  17   CONFIG4     0 0 0 0 SINGLE_SHOT 0 PD_LOFF_COMP 0
REG_ID: Final = 0x00
REG_CONFIG1: Final = 0x01
REG_CONFIG2: Final = 0x02
REG_CONFIG3: Final = 0x03
REG_LOFF: Final = 0x04
REG_CH1SET: Final = 0x05
REG_BIAS_SENSP: Final = 0x0D
REG_BIAS_SENSN: Final = 0x0E
REG_LOFF_SENSP: Final = 0x0F
REG_LOFF_SENSN: Final = 0x10
REG_LOFF_FLIP: Final = 0x11
REG_LOFF_STATP: Final = 0x12
REG_LOFF_STATN: Final = 0x13
REG_GPIO: Final = 0x14
REG_MISC1: Final = 0x15
REG_MISC2: Final = 0x16
REG_CONFIG4: Final = 0x17
REGISTER_COUNT: Final = 0x18

REGISTER_NAMES: Final = (
    "ID",
    "CONFIG1",
    "CONFIG2",
    "CONFIG3",
    "LOFF",
    *(f"CH{n}SET" for n in range(1, 9)),
    "BIAS_SENSP",
    "BIAS_SENSN",
    "LOFF_SENSP",
    "LOFF_SENSN",
    "LOFF_FLIP",
    "LOFF_STATP",
    "LOFF_STATN",
    "GPIO",
    "MISC1",
    "MISC2",
    "CONFIG4",
)

# ID: bit 4 always 1, DEV_ID = 11 (ADS1299 family); NU_CH selects the part.
ID_FAMILY_MASK: Final = 0x1C
ID_REV_SHIFT: Final = 5
# NU_CH = 11 is not in the datasheet table but genuine 8-channel parts read 0xDF (TI E2E).
NU_CH_CHANNELS: Final[Mapping[int, int]] = MappingProxyType({0b00: 4, 0b01: 6, 0b10: 8, 0b11: 8})

# CONFIG1: 1 DAISY_EN=0 CLK_EN=0 1 0 DR[2:0]
CONFIG1_BASE: Final = 0x90
DATA_RATE_CODES: Final[Mapping[int, int]] = MappingProxyType(
    {16000: 0b000, 8000: 0b001, 4000: 0b010, 2000: 0b011, 1000: 0b100, 500: 0b101, 250: 0b110}
)
# CONFIG2: 110 INT_CAL 0 CAL_AMP CAL_FREQ[1:0]
CONFIG2_BASE: Final = 0xC0
CONFIG2_INT_CAL: Final = 0x10
TEST_AMPLITUDE_CODES: Final[Mapping[int, int]] = MappingProxyType({1: 0x00, 2: 0x04})
TEST_FREQ_CODES: Final[Mapping[str, int]] = MappingProxyType(
    {"slow": 0b00, "fast": 0b01, "dc": 0b11}  # fCLK/2^21, fCLK/2^20, DC
)
# CONFIG3: PD_REFBUF=1, bits 6:5 = 11; BIASREF_INT and PD_BIAS when the bias drive is used.
CONFIG3_REFERENCE_ON: Final = 0xE0
CONFIG3_BIAS_ON: Final = 0x0C
CONFIG3_READ_MASK: Final = 0xFE  # bit 0 (BIAS_STAT) is read-only status
# LOFF: COMP_TH[7:5] 0 ILEAD_OFF[3:2] FLEAD_OFF[1:0]
LOFF_THRESHOLD_CODES: Final[Mapping[float, int]] = MappingProxyType(
    {95.0: 0, 92.5: 1, 90.0: 2, 87.5: 3, 85.0: 4, 80.0: 5, 75.0: 6, 70.0: 7}
)
LOFF_CURRENT_CODES: Final[Mapping[int, int]] = MappingProxyType(
    {6: 0b00, 24: 0b01, 6000: 0b10, 24000: 0b11}  # nA
)
LOFF_FREQ_CODES: Final[Mapping[str, int]] = MappingProxyType(
    {"dc": 0b00, "7.8hz": 0b01, "31.2hz": 0b10, "fdr/4": 0b11}
)
# CHnSET: PD GAIN[2:0] SRB2 MUX[2:0]
CHSET_POWER_DOWN: Final = 0x80
CHSET_SRB2: Final = 0x08
GAIN_CODES: Final[Mapping[int, int]] = MappingProxyType(
    {1: 0b000, 2: 0b001, 4: 0b010, 6: 0b011, 8: 0b100, 12: 0b101, 24: 0b110}
)
MUX_CODES: Final[Mapping[str, int]] = MappingProxyType(
    {
        "normal": 0b000,
        "shorted": 0b001,
        "bias_meas": 0b010,
        "mvdd": 0b011,
        "temperature": 0b100,
        "test": 0b101,
        "bias_drp": 0b110,
        "bias_drn": 0b111,
    }
)
GPIO_ALL_OUTPUTS_LOW: Final = 0x00  # floating GPIO inputs add noise; drive them low
MISC1_SRB1: Final = 0x20
CONFIG4_PD_LOFF_COMP: Final = 0x02

# --- Data frame ---------------------------------------------------------------------------------
#
#  byte  0          1          2          3..5      6..8     ...  3+3(N-1)..
#        1100 P8-P5 P4-P1 N8-N5 N4-N1 G4-G1 CH1[23:0] CH2[23:0] ... CHN[23:0]
#        status: 1100 + LOFF_STATP + LOFF_STATN + GPIO data; channels 24-bit two's
#        complement, MSB first. N = 4, 6 or 8 (the part's channel count).
STATUS_MARKER: Final = 0xC0
STATUS_MARKER_MASK: Final = 0xF0
CODE_FULL_SCALE_POS: Final = 0x7FFFFF
CODE_FULL_SCALE_NEG: Final = -0x800000
CODE_SPAN: Final = 2**24
UV_PER_V: Final = 1_000_000.0


def _tclk_ns(n_tclk: int) -> int:
    """Duration of ``n_tclk`` master-clock periods at the slowest allowed fCLK, in ns."""
    return -(-n_tclk * NS_PER_S // FCLK_MIN_HZ)


def _choice_error(field_name: str, value: object, allowed: object) -> ConfigError:
    return ConfigError(f"ADS1299 setting {field_name} = {value!r} is not one of {allowed}")


@dataclass(frozen=True, slots=True)
class Ads1299ChannelSettings:
    """Configuration of one ADS1299 channel (one CHnSET register plus its bitmask bits).

    Attributes
    ----------
    gain:
        PGA gain, one of 1, 2, 4, 6, 8, 12, 24.
    input:
        MUX selection: ``normal``, ``shorted``, ``bias_meas``, ``mvdd``, ``temperature``,
        ``test``, ``bias_drp``, ``bias_drn``.
    powered:
        False powers the channel down (written with MUX = shorted, as TI recommends); it
        keeps its slot in the frame and reads 0.
    srb2:
        Close the SRB2 switch (INnP to the common reference).
    bias:
        Include this channel in the bias drive derivation (BIAS_SENSP/N).
    lead_off:
        Enable lead-off detection on both inputs of this channel (LOFF_SENSP/N).
    """

    gain: int = 24
    input: str = "normal"
    powered: bool = True
    srb2: bool = True
    bias: bool = True
    lead_off: bool = False

    def __post_init__(self) -> None:
        if self.gain not in GAIN_CODES:
            raise _choice_error("channel gain", self.gain, sorted(GAIN_CODES))
        if self.input not in MUX_CODES:
            raise _choice_error("channel input", self.input, list(MUX_CODES))

    @property
    def chnset(self) -> int:
        """The CHnSET register value for these settings."""
        gain_bits = GAIN_CODES[self.gain] << 4
        if not self.powered:
            return CHSET_POWER_DOWN | gain_bits | MUX_CODES["shorted"]
        return gain_bits | (CHSET_SRB2 if self.srb2 else 0) | MUX_CODES[self.input]


def _default_channels() -> tuple[Ads1299ChannelSettings, ...]:
    return tuple(Ads1299ChannelSettings() for _ in range(MAX_CHANNELS))


@dataclass(frozen=True, slots=True)
class Ads1299Settings:
    """Everything the driver writes to the chip, validated on construction.

    Attributes
    ----------
    sample_rate_hz:
        Data rate, one of 250, 500, 1000, 2000, 4000, 8000, 16000 (CONFIG1 DR).
    channels:
        One entry per channel used, channel 1 first; at most the part's channel count
        (checked at :meth:`Ads1299.initialize`). Unused channels of the part are powered down.
    srb1:
        Connect SRB1 to every channel's inverting input (MISC1).
    bias_drive:
        Power the bias buffer with the internal mid-supply reference (CONFIG3).
    lead_off_current_na:
        Lead-off excitation current: 6, 24, 6000 or 24000 nA.
    lead_off_threshold_pct:
        Comparator threshold (positive side): 95, 92.5, 90, 87.5, 85, 80, 75 or 70 %.
    lead_off_ac:
        Excitation: ``dc``, ``7.8hz``, ``31.2hz`` or ``fdr/4``.
    test_signal:
        Generate the internal test signal (CONFIG2 INT_CAL) for channels with input ``test``.
    test_signal_amplitude:
        1 or 2, in units of VREF/2400.
    test_signal_freq:
        ``slow`` (fCLK/2^21), ``fast`` (fCLK/2^20) or ``dc``.
    vref_v:
        Reference voltage (4.5 V with the internal reference).
    spi_speed_hz:
        SCLK for data frames; register commands use at most 4 MHz (tSDECODE).
    settle_frames:
        Frames discarded after START while the digital filter settles.
    invalid_frame_limit:
        Consecutive garbage frames (status nibble not 1100) tolerated before
        :class:`~emgd.errors.HardwareIOError`.
    """

    sample_rate_hz: int = 1000
    channels: tuple[Ads1299ChannelSettings, ...] = field(default_factory=_default_channels)
    srb1: bool = False
    bias_drive: bool = True
    lead_off_current_na: int = 6
    lead_off_threshold_pct: float = 95.0
    lead_off_ac: str = "dc"
    test_signal: bool = False
    test_signal_amplitude: int = 1
    test_signal_freq: str = "slow"
    vref_v: float = 4.5
    spi_speed_hz: int = 4_000_000
    settle_frames: int = 1
    invalid_frame_limit: int = 8

    def __post_init__(self) -> None:
        if self.sample_rate_hz not in DATA_RATE_CODES:
            raise _choice_error("sample_rate_hz", self.sample_rate_hz, sorted(DATA_RATE_CODES))
        if not 1 <= len(self.channels) <= MAX_CHANNELS:
            raise ConfigError(
                f"ADS1299 setting channels has {len(self.channels)} entries; "
                f"allowed 1..{MAX_CHANNELS}"
            )
        if self.lead_off_current_na not in LOFF_CURRENT_CODES:
            raise _choice_error(
                "lead_off_current_na", self.lead_off_current_na, sorted(LOFF_CURRENT_CODES)
            )
        if self.lead_off_threshold_pct not in LOFF_THRESHOLD_CODES:
            raise _choice_error(
                "lead_off_threshold_pct", self.lead_off_threshold_pct, list(LOFF_THRESHOLD_CODES)
            )
        if self.lead_off_ac not in LOFF_FREQ_CODES:
            raise _choice_error("lead_off_ac", self.lead_off_ac, list(LOFF_FREQ_CODES))
        if self.test_signal_amplitude not in TEST_AMPLITUDE_CODES:
            raise _choice_error(
                "test_signal_amplitude", self.test_signal_amplitude, list(TEST_AMPLITUDE_CODES)
            )
        if self.test_signal_freq not in TEST_FREQ_CODES:
            raise _choice_error("test_signal_freq", self.test_signal_freq, list(TEST_FREQ_CODES))
        if not 0.0 < self.vref_v <= 5.0:
            raise ConfigError(f"ADS1299 setting vref_v = {self.vref_v!r} is outside (0, 5] V")
        if not SCLK_MIN_HZ <= self.spi_speed_hz <= SCLK_MAX_HZ:
            raise ConfigError(
                f"ADS1299 setting spi_speed_hz = {self.spi_speed_hz} is outside "
                f"{SCLK_MIN_HZ}..{SCLK_MAX_HZ} Hz"
            )
        frame_bits = 8 * (STATUS_BYTES + BYTES_PER_CHANNEL * MAX_CHANNELS)
        if self.spi_speed_hz < frame_bits * self.sample_rate_hz:
            raise ConfigError(
                f"ADS1299 setting spi_speed_hz = {self.spi_speed_hz} cannot clock a "
                f"{frame_bits}-bit frame every 1/{self.sample_rate_hz} s; "
                f"need >= {frame_bits * self.sample_rate_hz} Hz"
            )
        if not 0 <= self.settle_frames <= 64:
            raise ConfigError(f"ADS1299 setting settle_frames = {self.settle_frames} not in 0..64")
        if self.invalid_frame_limit < 1:
            raise ConfigError(
                f"ADS1299 setting invalid_frame_limit = {self.invalid_frame_limit} must be >= 1"
            )
        for number, channel in enumerate(self.channels, start=1):
            if channel.powered and channel.input == "test" and not self.test_signal:
                raise ConfigError(f"ADS1299 channel {number} input 'test' needs test_signal = true")


def register_plan(settings: Ads1299Settings, chip_channels: int) -> tuple[tuple[int, int], ...]:
    """The (address, value) pairs :meth:`Ads1299.initialize` writes, in write order.

    CONFIG3 (internal reference on) comes first so the reference settles while the rest is
    written. Channels of the part beyond ``settings.channels`` are powered down; registers
    of channels the part does not have are not written.

    Parameters
    ----------
    settings:
        The validated settings.
    chip_channels:
        4, 6 or 8 (decoded from the ID register).
    """
    used = settings.channels
    unused = Ads1299ChannelSettings(powered=False, srb2=False, bias=False)
    per_channel = [used[c] if c < len(used) else unused for c in range(chip_channels)]

    def bitmask(selected: list[bool]) -> int:
        return sum(1 << c for c, on in enumerate(selected) if on)

    bias_bits = bitmask([settings.bias_drive and ch.powered and ch.bias for ch in per_channel])
    loff_bits = bitmask([ch.powered and ch.lead_off for ch in per_channel])
    config2 = CONFIG2_BASE
    if settings.test_signal:
        config2 |= (
            CONFIG2_INT_CAL
            | TEST_AMPLITUDE_CODES[settings.test_signal_amplitude]
            | TEST_FREQ_CODES[settings.test_signal_freq]
        )
    loff = (
        (LOFF_THRESHOLD_CODES[settings.lead_off_threshold_pct] << 5)
        | (LOFF_CURRENT_CODES[settings.lead_off_current_na] << 2)
        | LOFF_FREQ_CODES[settings.lead_off_ac]
    )
    plan: list[tuple[int, int]] = [
        (REG_CONFIG3, CONFIG3_REFERENCE_ON | (CONFIG3_BIAS_ON if settings.bias_drive else 0)),
        (REG_CONFIG1, CONFIG1_BASE | DATA_RATE_CODES[settings.sample_rate_hz]),
        (REG_CONFIG2, config2),
        (REG_LOFF, loff),
    ]
    plan += [(REG_CH1SET + c, ch.chnset) for c, ch in enumerate(per_channel)]
    plan += [
        (REG_BIAS_SENSP, bias_bits),
        (REG_BIAS_SENSN, bias_bits),
        (REG_LOFF_SENSP, loff_bits),
        (REG_LOFF_SENSN, loff_bits),
        (REG_LOFF_FLIP, 0x00),
        (REG_GPIO, GPIO_ALL_OUTPUTS_LOW),
        (REG_MISC1, MISC1_SRB1 if settings.srb1 else 0x00),
        (REG_CONFIG4, CONFIG4_PD_LOFF_COMP if loff_bits else 0x00),
    ]
    return tuple(plan)


def _read_mask(address: int) -> int:
    """Bits of a register that must read back as written."""
    return CONFIG3_READ_MASK if address == REG_CONFIG3 else 0xFF


# --- Pure conversions ---------------------------------------------------------------------------


def lsb_uv(gain: int, vref_v: float) -> float:
    """Input-referred size of one code, in µV: 2·VREF / gain / 2^24."""
    return 2.0 * vref_v / gain / CODE_SPAN * UV_PER_V


def code_to_uv(code: int, gain: int, vref_v: float) -> float:
    """Convert a signed 24-bit code to the input-referred voltage in µV."""
    return code * lsb_uv(gain, vref_v)


def uv_to_code(emg_uv: float, gain: int, vref_v: float) -> int:
    """Nearest code for an input voltage in µV, clipped to the converter's full scale."""
    code = round(emg_uv / lsb_uv(gain, vref_v))
    return max(CODE_FULL_SCALE_NEG, min(CODE_FULL_SCALE_POS, code))


def decode_channels(data: bytes, n_channels: int) -> IntArray:
    """Decode big-endian 24-bit two's complement samples.

    Parameters
    ----------
    data:
        At least ``3 * n_channels`` bytes, channel 1 first.
    n_channels:
        Number of samples to decode.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_channels,)``, int32 codes in [-2^23, 2^23 - 1].
    """
    return np.array(_decode_codes(data, n_channels), dtype=np.int32)


def _decode_codes(data: bytes, n_channels: int) -> list[int]:
    if len(data) < BYTES_PER_CHANNEL * n_channels:
        raise ValueError(f"{len(data)} bytes cannot hold {n_channels} 24-bit samples")
    from_bytes = int.from_bytes
    return [
        from_bytes(data[i : i + BYTES_PER_CHANNEL], "big", signed=True)
        for i in range(0, BYTES_PER_CHANNEL * n_channels, BYTES_PER_CHANNEL)
    ]


class StatusWord(NamedTuple):
    """The 24-bit status word that opens every frame."""

    valid: bool  #: top nibble is 1100
    lead_off_p: int  #: LOFF_STATP, bit c = channel c+1 positive electrode off
    lead_off_n: int  #: LOFF_STATN
    gpio: int  #: GPIOD[4:1] pin data


def decode_status(status: bytes) -> StatusWord:
    """Split the three status bytes into their fields (see the frame drawing above)."""
    s0, s1, s2 = status[0], status[1], status[2]
    return StatusWord(
        valid=(s0 & STATUS_MARKER_MASK) == STATUS_MARKER,
        lead_off_p=((s0 & 0x0F) << 4) | (s1 >> 4),
        lead_off_n=((s1 & 0x0F) << 4) | (s2 >> 4),
        gpio=s2 & 0x0F,
    )


class Ads1299:
    """The ADS1299 on an SPI bus with its DRDY line.

    Parameters
    ----------
    spi:
        py-spidev ``SpiDev`` (or :class:`~emgd.sim.spi_bus.SimSpiDev`), already opened.
    drdy:
        The chip's DRDY line.
    clock:
        Time source for every datasheet delay and for read deadlines.
    settings:
        What to configure.

    Notes
    -----
    ``Frame.index`` counts conversions from the first frame after the settling frames.
    It advances by the number of conversion periods between DRDY timestamps, so it jumps
    over lost frames (a DRDY not serviced before the next one) and over invalid frames
    (counted but not returned).
    """

    def __init__(
        self, spi: SpiBus, drdy: DrdyLine, clock: Clock, settings: Ads1299Settings
    ) -> None:
        self._spi = spi
        self._drdy = drdy
        self._clock = clock
        self._settings = settings
        n = len(settings.channels)
        self._stats = AcquisitionStats(railed_per_channel=[0] * n)
        self._lsb_uv: FloatArray = np.array(
            [lsb_uv(ch.gain, settings.vref_v) if ch.powered else 0.0 for ch in settings.channels]
        )
        self._lead_off_mask = sum(
            1 << c for c, ch in enumerate(settings.channels) if ch.powered and ch.lead_off
        )
        self._period_ns = NS_PER_S // settings.sample_rate_hz
        self._command_speed_hz = min(settings.spi_speed_hz, COMMAND_SCLK_MAX_HZ)
        self._device_id: int | None = None
        self._chip_channels = 0
        self._frame_len = 0
        self._plan: tuple[tuple[int, int], ...] = ()
        self._streaming = False
        self._closed = False
        self._last_drdy_ns: int | None = None
        self._last_index = -1
        self._last_raw: bytes | None = None
        self._consecutive_invalid = 0

    # --- properties ------------------------------------------------------------------------
    @property
    def device_id(self) -> int:
        """The ID register value read at :meth:`initialize`."""
        return self._require_initialized()

    @property
    def revision(self) -> int:
        """REV_ID[7:5] of the ID register."""
        return self._require_initialized() >> ID_REV_SHIFT

    @property
    def chip_channels(self) -> int:
        """Channels the part has (4, 6 or 8), from NU_CH."""
        self._require_initialized()
        return self._chip_channels

    @property
    def n_channels(self) -> int:
        """Channels returned in each frame (``len(settings.channels)``)."""
        return len(self._settings.channels)

    @property
    def sample_rate_hz(self) -> float:
        return float(self._settings.sample_rate_hz)

    @property
    def stats(self) -> AcquisitionStats:
        return self._stats

    @property
    def settings(self) -> Ads1299Settings:
        return self._settings

    # --- bring-up ----------------------------------------------------------------------------
    def initialize(self) -> None:
        """Power-up sequence, ID check and verified configuration; leaves the chip stopped.

        Raises
        ------
        HardwareInitError
            Wrong or absent chip, a part with fewer channels than configured, or a
            register that did not read back what was written.
        """
        self._check_open()
        if self._streaming:
            self.stop()
        self._spi.mode = SPI_MODE
        self._spi.bits_per_word = 8
        self._spi.max_speed_hz = self._settings.spi_speed_hz
        self._wait_tclk(TPOR_TCLK)
        self._command(OP_RESET, RESET_SETTLE_TCLK)
        self._command(OP_SDATAC, COMMAND_DECODE_TCLK)
        device_id = self._read_registers(REG_ID, 1)[0]
        chip_channels = self._check_id(device_id)
        if len(self._settings.channels) > chip_channels:
            raise HardwareInitError(
                f"ADS1299: settings use {len(self._settings.channels)} channels but the part "
                f"(ID 0x{device_id:02X}) has {chip_channels}"
            )
        self._device_id = device_id
        self._chip_channels = chip_channels
        self._frame_len = STATUS_BYTES + BYTES_PER_CHANNEL * chip_channels
        self._plan = register_plan(self._settings, chip_channels)
        for address, value in self._plan:
            self._write_verified(address, value)
            if address == REG_CONFIG3:
                self._clock.sleep_until_ns(
                    self._clock.monotonic_ns() + round(REFERENCE_SETTLE_S * NS_PER_S)
                )

    def _check_id(self, device_id: int) -> int:
        if device_id in (0x00, 0xFF):
            raise HardwareInitError(
                f"ADS1299: ID register read 0x{device_id:02X} (MISO stuck "
                f"{'low' if device_id == 0 else 'high'}: no chip, no power or wrong CS)"
            )
        if device_id & ID_FAMILY_MASK != ID_FAMILY_MASK or device_id >> ID_REV_SHIFT == 0:
            raise HardwareInitError(
                f"ADS1299: ID register read 0x{device_id:02X}, not an ADS1299 "
                "(expected bits 4:2 = 111 and a non-zero REV_ID, e.g. 0x3E)"
            )
        return NU_CH_CHANNELS[device_id & 0x03]

    # --- acquisition -------------------------------------------------------------------------
    def start(self) -> None:
        """START conversions, enter RDATAC and discard the settling frame(s).

        Raises
        ------
        HardwareIOError
            No DRDY after START.
        """
        self._require_initialized()
        self._check_open()
        if self._streaming:
            return
        self._command(OP_START, COMMAND_DECODE_TCLK)
        self._command(OP_RDATAC, COMMAND_DECODE_TCLK)
        self._streaming = True
        self._last_drdy_ns = None
        self._last_index = -1
        self._last_raw = None
        self._consecutive_invalid = 0
        timeout_s = max(START_DRDY_TIMEOUT_S, 10 * self._period_ns / NS_PER_S)
        for _ in range(self._settings.settle_frames):
            drdy_ns = self._drdy.wait_falling_edge(timeout_s)
            if drdy_ns is None:
                self._streaming = False
                raise HardwareIOError(
                    f"ADS1299: no DRDY within {timeout_s * 1000:.0f} ms after START"
                )
            self._clock_frame()
            self._last_drdy_ns = drdy_ns

    def read_frame(self, timeout_s: float) -> Frame | None:
        """Wait for DRDY, clock in one frame and decode it.

        Parameters
        ----------
        timeout_s:
            How long to wait for a valid frame.

        Returns
        -------
        Frame or None
            ``None`` when no DRDY arrived in time (counted in ``stats.timeouts``) or only
            invalid frames did.

        Raises
        ------
        HardwareIOError
            ``invalid_frame_limit`` consecutive frames without the 1100 status marker.
        """
        if not self._streaming:
            raise HardwareIOError("ADS1299: read_frame() before start()")
        deadline_ns = self._clock.monotonic_ns() + round(timeout_s * NS_PER_S)
        while True:
            remaining_s = max(0, deadline_ns - self._clock.monotonic_ns()) / NS_PER_S
            drdy_ns = self._drdy.wait_falling_edge(remaining_s)
            if drdy_ns is None:
                self._stats.timeouts += 1
                return None
            raw = self._clock_frame()
            frame = self._decode(raw, drdy_ns)
            if frame is not None:
                return frame
            if self._clock.monotonic_ns() >= deadline_ns:
                return None

    def _decode(self, raw: bytes, drdy_ns: int) -> Frame | None:
        stats = self._stats
        if self._last_drdy_ns is None:
            periods = 1
        else:
            periods = max(1, round((drdy_ns - self._last_drdy_ns) / self._period_ns))
            stats.frames_lost += periods - 1
        self._last_drdy_ns = drdy_ns
        self._last_index += periods
        status = decode_status(raw[:STATUS_BYTES])
        if not status.valid:
            stats.frames_invalid += 1
            self._consecutive_invalid += 1
            if self._consecutive_invalid >= self._settings.invalid_frame_limit:
                raise HardwareIOError(
                    f"ADS1299: {self._consecutive_invalid} consecutive invalid frames "
                    f"(status nibble not 1100); last frame {raw.hex(' ')}"
                )
            return None
        self._consecutive_invalid = 0
        stats.frames_read += 1
        if raw == self._last_raw:
            stats.frames_stale += 1
        self._last_raw = raw
        n = len(self._settings.channels)
        codes = _decode_codes(raw[STATUS_BYTES:], n)
        railed = 0
        if CODE_FULL_SCALE_POS in codes or CODE_FULL_SCALE_NEG in codes:
            stats.frames_railed += 1
            for c, code in enumerate(codes):
                if code in (CODE_FULL_SCALE_POS, CODE_FULL_SCALE_NEG):
                    railed |= 1 << c
                    stats.railed_per_channel[c] += 1
        return Frame(
            index=self._last_index,
            timestamp_ns=drdy_ns,
            emg_uv=np.array(codes, dtype=np.float64) * self._lsb_uv,
            railed=railed,
            lead_off_p=status.lead_off_p & self._lead_off_mask,
            lead_off_n=status.lead_off_n & self._lead_off_mask,
        )

    def stop(self) -> None:
        """STOP conversions and leave RDATAC (SDATAC), so registers can be accessed."""
        if self._closed or self._device_id is None:
            return
        self._command(OP_STOP, COMMAND_DECODE_TCLK)
        self._command(OP_SDATAC, COMMAND_DECODE_TCLK)
        self._streaming = False

    def close(self) -> None:
        """Stop if running and release the bus and the DRDY line (idempotent)."""
        if self._closed:
            return
        try:
            if self._streaming:
                self.stop()
        finally:
            self._closed = True
            self._streaming = False
            try:
                self._spi.close()
            finally:
                self._drdy.close()

    def verify_registers(self) -> list[str]:
        """Read every register back and compare with what :meth:`initialize` wrote.

        Safe while streaming: it leaves RDATAC (SDATAC), reads all registers in one window
        and re-enters RDATAC; conversions that complete meanwhile are counted as lost by the
        next :meth:`read_frame`. It does not repair anything.

        Returns
        -------
        list of str
            One line per mismatch (register, expected and read value); empty when all match.
        """
        self._require_initialized()
        self._check_open()
        if self._streaming:
            self._command(OP_SDATAC, COMMAND_DECODE_TCLK)
        try:
            values = self._read_registers(REG_ID, REGISTER_COUNT)
        finally:
            if self._streaming:
                self._command(OP_RDATAC, COMMAND_DECODE_TCLK)
        problems: list[str] = []
        if values[REG_ID] != self._device_id:
            problems.append(
                f"ID (0x00): expected 0x{self._device_id:02X}, read 0x{values[REG_ID]:02X}"
            )
        for address, expected in self._plan:
            mask = _read_mask(address)
            if (values[address] ^ expected) & mask:
                problems.append(
                    f"{REGISTER_NAMES[address]} (0x{address:02X}): expected 0x{expected:02X}, "
                    f"read 0x{values[address]:02X}"
                )
        return problems

    # --- bus helpers ---------------------------------------------------------------------------
    def _wait_tclk(self, n_tclk: int) -> None:
        self._clock.sleep_until_ns(self._clock.monotonic_ns() + _tclk_ns(n_tclk))

    def _command(self, opcode: int, wait_tclk: int) -> None:
        self._spi.xfer2([opcode], self._command_speed_hz, CS_HOLD_US)
        self._wait_tclk(wait_tclk)

    def _read_registers(self, address: int, count: int) -> bytes:
        tx = [OP_RREG | address, count - 1] + [0x00] * count
        rx = self._spi.xfer2(tx, self._command_speed_hz, CS_HOLD_US)
        return bytes(rx[2:])

    def _write_verified(self, address: int, value: int) -> None:
        self._spi.xfer2([OP_WREG | address, 0x00, value], self._command_speed_hz, CS_HOLD_US)
        read = self._read_registers(address, 1)[0]
        if (read ^ value) & _read_mask(address):
            raise HardwareInitError(
                f"ADS1299: register {REGISTER_NAMES[address]} (0x{address:02X}) wrote "
                f"0x{value:02X}, read back 0x{read:02X}"
            )

    def _clock_frame(self) -> bytes:
        rx = self._spi.xfer2([0x00] * self._frame_len, self._settings.spi_speed_hz, CS_HOLD_US)
        return bytes(rx)

    def _require_initialized(self) -> int:
        if self._device_id is None:
            raise HardwareIOError("ADS1299: not initialized (call initialize() first)")
        return self._device_id

    def _check_open(self) -> None:
        if self._closed:
            raise HardwareIOError("ADS1299: driver is closed")
