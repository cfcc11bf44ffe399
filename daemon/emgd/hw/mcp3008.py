"""The MCP3008 driver: a 10-bit, 8-input SAR ADC read over SPI and paced in software.

This module owns the MCP3008 command bytes, the decoding of its replies, the conversion of
codes to input-referred microvolts, and the sampling schedule: the chip has no clock of its
own, so every sample is taken at an absolute deadline ``t0 + k / fs`` on the injected
:class:`~emgd.clock.Clock`, and samples whose deadline passed by a whole period are counted
as lost rather than taken late. It talks only to an injected SPI bus (real or simulated)
and must not open devices, start threads or sleep on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from emgd.clock import NS_PER_S, Clock
from emgd.errors import ConfigError, HardwareInitError, HardwareIOError
from emgd.hw.interfaces import AcquisitionStats, Frame, SpiBus, WindowedSpiBus

# --- chip facts (Microchip DS21295D) -------------------------------------------------------
N_INPUTS = 8
ADC_BITS = 10
CODE_COUNT = 1 << ADC_BITS  # 1024: volts = code * vref_v / 1024
CODE_MIN = 0
CODE_MAX = CODE_COUNT - 1  # 1023
SPI_MODES = frozenset({0, 3})  # "modes 0,0 and 1,1"
VDD_MIN_V = 2.7
VDD_MAX_V = 5.5
# fCLK = 18 * fSAMPLE at the specified throughput: 75 ksps at 2.7 V, 200 ksps at 5 V.
SCLK_MAX_AT_2V7_HZ = 1_350_000
SCLK_MAX_AT_5V_HZ = 3_600_000
VDD_LOW_POINT_V = 2.7
VDD_HIGH_POINT_V = 5.0
BITS_PER_CONVERSION = 24  # the byte-aligned 3-byte exchange below

# --- command and reply layout (one CS-low window per conversion) ----------------------------
#
#   bit on the wire:   0  1  2  3  4  5  6  7 | 8   9  10  11  12  13  14  15 | 16 ...     23
#   MOSI (tx):         0  0  0  0  0  0  0  1 | SGL D2 D1  D0  x   x   x   x  | x  ...     x
#   MISO (rx):         ?  ?  ?  ?  ?  ?  ?  ? | ?   ?  ?   ?   ?   0   B9  B8 | B7 ...     B0
#
#   tx[0] = 0x01                     start bit in the last bit of byte 0
#   tx[1] = SGL << 7 | D2D1D0 << 4   SGL = 1 single-ended, 0 differential
#   tx[2] = 0x00
#   rx[1] & 0x04 = null bit (always 0 from a live chip), rx[1] & 0x03 = B9..B8, rx[2] = B7..B0
#
#   single-ended CHn: tx = 01 (80 | n<<4) 00  ->  01 80 00 ... 01 F0 00
#   differential, D2..D0 = the IN+ channel, IN- is its neighbour in the pair:
#     D=0: CH0+ CH1-   D=1: CH1+ CH0-   D=2: CH2+ CH3-   D=3: CH3+ CH2-
#     D=4: CH4+ CH5-   D=5: CH5+ CH4-   D=6: CH6+ CH7-   D=7: CH7+ CH6-
START_BYTE = 0x01
SGL_BIT = 0x80
CHANNEL_SHIFT = 4
NULL_BIT_MASK = 0x04
HIGH_BITS_MASK = 0x03

# --- driver policy --------------------------------------------------------------------------
DEFAULT_SAMPLE_RATE_HZ = 1000.0
DEFAULT_VREF_V = 3.3
DEFAULT_FRONTEND_GAIN = 1000.0
DEFAULT_SPI_SPEED_HZ = 1_000_000
#: Consecutive frames with a bad null bit after which read_frame raises.
DEFAULT_INVALID_RUN_LIMIT = 8
#: How many recent jitter values the p50/p99 are computed over.
DEFAULT_JITTER_WINDOW = 4096
_RATE_DENOMINATOR_LIMIT = 1_000_000
US_PER_NS = 1e-3
UV_PER_V = 1e6

InputSpec = int | str | tuple[int, int]


def max_sclk_hz(vdd_v: float) -> int:
    """Highest MCP3008 SCLK for a supply voltage, from the datasheet's fCLK = 18·fSAMPLE rule.

    1.35 MHz at 2.7 V and 3.6 MHz at 5 V, linear in between, held at 3.6 MHz up to 5.5 V.
    """
    if not (math.isfinite(vdd_v) and VDD_MIN_V <= vdd_v <= VDD_MAX_V):
        raise ConfigError(f"MCP3008 vdd_v = {vdd_v}: must be within {VDD_MIN_V}..{VDD_MAX_V} V")
    if vdd_v >= VDD_HIGH_POINT_V:
        return SCLK_MAX_AT_5V_HZ
    fraction = (vdd_v - VDD_LOW_POINT_V) / (VDD_HIGH_POINT_V - VDD_LOW_POINT_V)
    return int(SCLK_MAX_AT_2V7_HZ + fraction * (SCLK_MAX_AT_5V_HZ - SCLK_MAX_AT_2V7_HZ))


@dataclass(frozen=True, slots=True)
class Mcp3008Input:
    """One converted input: a single-ended channel or a differential pair.

    Attributes
    ----------
    positive:
        The channel (0..7) read single-ended, or the IN+ channel of a pair.
    negative:
        The IN- channel of a differential pair (``positive ^ 1``), or ``None``.
    """

    positive: int
    negative: int | None = None

    @property
    def differential(self) -> bool:
        return self.negative is not None

    @property
    def label(self) -> str:
        """``"CH3"`` or ``"CH0-CH1"`` (IN+ first)."""
        if self.negative is None:
            return f"CH{self.positive}"
        return f"CH{self.positive}-CH{self.negative}"

    def command(self) -> bytes:
        """The 3 bytes that convert this input (see the layout at the top of the module)."""
        sgl = 0 if self.differential else SGL_BIT
        return bytes((START_BYTE, sgl | (self.positive << CHANNEL_SHIFT), 0x00))


def parse_input(spec: InputSpec, where: str = "inputs") -> Mcp3008Input:
    """Turn ``3``, ``"3"``, ``"0-1"`` or ``(0, 1)`` into an :class:`Mcp3008Input`.

    Raises
    ------
    ConfigError
        The channel is outside 0..7 or the pair is not one the chip can convert.
    """
    pair: tuple[int, int] | None = None
    single: int | None = None
    if isinstance(spec, bool):
        raise ConfigError(f"MCP3008 {where} = {spec!r}: expected a channel 0..7 or a pair")
    if isinstance(spec, int):
        single = spec
    elif isinstance(spec, str):
        text = spec.strip().upper().replace("CH", "")
        try:
            if "-" in text:
                plus_text, minus_text = text.split("-", 1)
                pair = (int(plus_text), int(minus_text))
            else:
                single = int(text)
        except ValueError:
            raise ConfigError(
                f"MCP3008 {where} = {spec!r}: expected a channel like '3' or a pair like '0-1'"
            ) from None
    elif isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(c, int) for c in spec):
        pair = (spec[0], spec[1])
    else:
        raise ConfigError(f"MCP3008 {where} = {spec!r}: expected a channel 0..7 or a pair")
    if single is not None:
        if not 0 <= single < N_INPUTS:
            raise ConfigError(f"MCP3008 {where} = {spec!r}: channel must be 0..7")
        return Mcp3008Input(single)
    assert pair is not None
    plus, minus = pair
    if not (0 <= plus < N_INPUTS and minus == plus ^ 1):
        raise ConfigError(
            f"MCP3008 {where} = {spec!r}: the chip only converts the pairs 0-1, 1-0, 2-3, "
            "3-2, 4-5, 5-4, 6-7, 7-6"
        )
    return Mcp3008Input(plus, minus)


def _finite_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"MCP3008 {name} = {value}: must be a finite number > 0")


@dataclass(frozen=True, slots=True)
class Mcp3008Settings:
    """How the MCP3008 is wired and read.

    Attributes
    ----------
    sample_rate_hz:
        Frames per second (each frame converts every input once).
    inputs:
        What to convert, in frame order: channels 0..7 (``3`` or ``"3"``) or differential
        pairs (``"0-1"`` or ``(0, 1)``; IN+ first, only the chip's pairs).
    vref_v:
        Voltage on the VREF pin; full scale is ``vref_v * 1023/1024``.
    offset_v:
        Mid-rail bias the analogue front end adds before the ADC; ``None`` means ``vref_v/2``.
    frontend_gain:
        Analogue gain between the electrodes and the ADC pins.
    spi_speed_hz:
        SCLK; at most the datasheet limit for ``vdd_v`` (:func:`max_sclk_hz`).
    spi_mode:
        0 or 3.
    vdd_v:
        The chip's supply, 2.7..5.5 V; sets the SCLK limit.
    """

    sample_rate_hz: float = DEFAULT_SAMPLE_RATE_HZ
    inputs: tuple[InputSpec, ...] = tuple(range(N_INPUTS))
    vref_v: float = DEFAULT_VREF_V
    offset_v: float | None = None
    frontend_gain: float = DEFAULT_FRONTEND_GAIN
    spi_speed_hz: int = DEFAULT_SPI_SPEED_HZ
    spi_mode: int = 0
    vdd_v: float = DEFAULT_VREF_V
    channels: tuple[Mcp3008Input, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _finite_positive("sample_rate_hz", self.sample_rate_hz)
        _finite_positive("frontend_gain", self.frontend_gain)
        sclk_limit_hz = max_sclk_hz(self.vdd_v)
        _finite_positive("vref_v", self.vref_v)
        if self.vref_v > self.vdd_v:
            raise ConfigError(
                f"MCP3008 vref_v = {self.vref_v}: must not exceed vdd_v = {self.vdd_v} V"
            )
        if self.offset_v is not None and not (
            math.isfinite(self.offset_v) and 0 <= self.offset_v <= self.vref_v
        ):
            raise ConfigError(
                f"MCP3008 offset_v = {self.offset_v}: must be within 0..vref_v ({self.vref_v} V)"
            )
        if self.spi_mode not in SPI_MODES:
            raise ConfigError(f"MCP3008 spi_mode = {self.spi_mode}: the chip supports 0 and 3")
        if not isinstance(self.spi_speed_hz, int) or not 0 < self.spi_speed_hz <= sclk_limit_hz:
            raise ConfigError(
                f"MCP3008 spi_speed_hz = {self.spi_speed_hz}: must be 1..{sclk_limit_hz} Hz "
                f"at vdd_v = {self.vdd_v} V (datasheet fCLK = 18 x fSAMPLE)"
            )
        if not self.inputs:
            raise ConfigError("MCP3008 inputs = (): at least one input is needed")
        if len(self.inputs) > N_INPUTS:
            raise ConfigError(f"MCP3008 inputs: {len(self.inputs)} given, the chip has 8")
        channels = tuple(parse_input(spec, f"inputs[{i}]") for i, spec in enumerate(self.inputs))
        if len(set(channels)) != len(channels):
            raise ConfigError(f"MCP3008 inputs = {self.inputs!r}: an input is listed twice")
        bus_bits_per_s = BITS_PER_CONVERSION * len(channels) * self.sample_rate_hz
        if bus_bits_per_s > self.spi_speed_hz:
            raise ConfigError(
                f"MCP3008 sample_rate_hz = {self.sample_rate_hz}: {len(channels)} inputs x 24 "
                f"clocks per frame need {bus_bits_per_s:.0f} Hz of SCLK, more than "
                f"spi_speed_hz = {self.spi_speed_hz}"
            )
        object.__setattr__(self, "channels", channels)

    @property
    def input_offset_v(self) -> float:
        """The front-end bias in volts (``offset_v``, or ``vref_v / 2`` when unset)."""
        return self.vref_v / 2 if self.offset_v is None else self.offset_v


def decode_reply(rx: Sequence[int] | bytes) -> tuple[int, bool]:
    """Decode a 3-byte reply of the standard exchange.

    Returns
    -------
    code:
        The 10-bit result B9..B0.
    null_ok:
        True when the null bit (``rx[1]`` bit 2) is 0, as a live chip sends it.
    """
    return ((rx[1] & HIGH_BITS_MASK) << 8) | rx[2], (rx[1] & NULL_BIT_MASK) == 0


@dataclass(frozen=True, slots=True)
class Mcp3008TimingReport:
    """How well the software pacing kept to its schedule.

    Jitter is the time at which a conversion burst started minus its deadline (≥ 0 on a
    clock that never wakes early); percentiles cover the most recent ``jitter_window``
    frames, mean and max the whole run.
    """

    nominal_rate_hz: float
    achieved_rate_hz: float
    frames_read: int
    frames_lost: int
    jitter_mean_us: float
    jitter_max_us: float
    jitter_p50_us: float
    jitter_p99_us: float
    spi_mean_us: float
    spi_max_us: float
    windowed: bool
    batched: bool | None


class Mcp3008:
    """MCP3008 on an SPI bus, sampled at absolute deadlines.

    Parameters
    ----------
    spi:
        The bus. With a :class:`~emgd.hw.interfaces.WindowedSpiBus` all inputs of a frame
        are converted in one ``xfer_windows`` call; otherwise one ``xfer2`` per input.
    clock:
        Paces the sampling and timestamps the frames.
    settings:
        Wiring, scaling and bus settings.
    invalid_run_limit:
        After this many consecutive frames with a bad null bit, ``read_frame`` raises.
    jitter_window:
        How many recent jitter values the p50/p99 cover.
    """

    def __init__(
        self,
        spi: SpiBus,
        clock: Clock,
        settings: Mcp3008Settings | None = None,
        *,
        invalid_run_limit: int = DEFAULT_INVALID_RUN_LIMIT,
        jitter_window: int = DEFAULT_JITTER_WINDOW,
    ) -> None:
        self._settings = settings if settings is not None else Mcp3008Settings()
        self._spi = spi
        self._clock = clock
        s = self._settings
        spi.mode = s.spi_mode
        spi.bits_per_word = 8
        spi.max_speed_hz = s.spi_speed_hz
        self._windowed_bus = spi if isinstance(spi, WindowedSpiBus) else None
        self._windowed = self._windowed_bus is not None
        self._commands = [ch.command() for ch in s.channels]
        self._labels = tuple(ch.label for ch in s.channels)
        n = len(self._commands)
        self._uv_per_code = s.vref_v / CODE_COUNT / s.frontend_gain * UV_PER_V
        self._offset_uv = s.input_offset_v / s.frontend_gain * UV_PER_V
        rate = Fraction(s.sample_rate_hz).limit_denominator(_RATE_DENOMINATOR_LIMIT)
        period = Fraction(NS_PER_S) / rate
        self._period_num = period.numerator
        self._period_den = period.denominator
        self._invalid_run_limit = invalid_run_limit
        self._stats = AcquisitionStats(railed_per_channel=[0] * n)
        self._running = False
        self._closed = False
        self._t0_ns = 0
        self._next_index = 0
        self._last_index = -1
        self._previous_codes: npt.NDArray[np.int64] | None = None
        self._codes = np.zeros(n, dtype=np.int64)
        self._invalid_run = 0
        self._jitter_ring_ns = np.zeros(max(jitter_window, 1), dtype=np.int64)
        self._jitter_count = 0
        self._jitter_sum_ns = 0
        self._jitter_max_ns = 0
        self._spi_count = 0
        self._spi_sum_ns = 0
        self._spi_max_ns = 0

    # AdcDriver ------------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return len(self._commands)

    @property
    def sample_rate_hz(self) -> float:
        return self._settings.sample_rate_hz

    @property
    def stats(self) -> AcquisitionStats:
        return self._stats

    @property
    def settings(self) -> Mcp3008Settings:
        return self._settings

    @property
    def labels(self) -> tuple[str, ...]:
        """Input names in frame order, e.g. ``("CH0", "CH2-CH3")``."""
        return self._labels

    def start(self) -> None:
        """Check that a chip answers (null bit 0 on every input) and start the schedule.

        Raises
        ------
        HardwareInitError
            A reply came back with the null bit set (no chip, unpowered, or MISO floating).
        """
        if self._closed:
            raise HardwareInitError("MCP3008: start() after close()")
        for label, rx in zip(self._labels, self._convert_all(), strict=True):
            _, null_ok = decode_reply(rx)
            if not null_ok:
                raise HardwareInitError(
                    f"MCP3008: no chip answering on {label}: null bit is 1 "
                    f"(rx {rx.hex(' ')}); check power, CS and MISO wiring"
                )
        self._t0_ns = self._clock.monotonic_ns()
        self._next_index = 0
        self._last_index = -1
        self._previous_codes = None
        self._invalid_run = 0
        self._running = True

    def read_frame(self, timeout_s: float) -> Frame | None:
        """Wait for the next deadline, convert every input and return the frame.

        Deadlines are ``t0 + k / sample_rate_hz``. If the call comes one or more whole
        periods after a deadline, those samples are lost (counted; ``Frame.index`` jumps)
        and the newest due sample is taken instead. Returns ``None`` when the next deadline
        is more than ``timeout_s`` away (after waiting ``timeout_s``); that is not counted
        as a fault. A frame whose replies carry a bad null bit is dropped and counted, and
        the next deadline is tried within the same timeout.

        Raises
        ------
        HardwareIOError
            Not started, or ``invalid_run_limit`` bad frames in a row.
        """
        if not self._running:
            raise HardwareIOError("MCP3008: read_frame() before start() or after stop()")
        clock = self._clock
        give_up_ns = clock.monotonic_ns() + max(0, round(timeout_s * NS_PER_S))
        while True:
            deadline_ns = self._deadline_ns(self._next_index)
            now_ns = clock.monotonic_ns()
            if now_ns < deadline_ns:
                if deadline_ns > give_up_ns:
                    clock.sleep_until_ns(give_up_ns)
                    return None
                clock.sleep_until_ns(deadline_ns)
                now_ns = clock.monotonic_ns()
            due_index = self._due_index(now_ns)
            if due_index > self._next_index:
                self._stats.frames_lost += due_index - self._next_index
                self._next_index = due_index
                deadline_ns = self._deadline_ns(due_index)
            index = self._next_index
            self._next_index += 1
            replies = self._convert_all()
            done_ns = clock.monotonic_ns()
            self._record_timing(now_ns - deadline_ns, done_ns - now_ns)
            frame = self._decode(index, deadline_ns, replies)
            if frame is not None:
                return frame

    def stop(self) -> None:
        """Stop the schedule; ``read_frame`` needs another :meth:`start`."""
        self._running = False

    def close(self) -> None:
        """Stop and close the bus (idempotent)."""
        self._running = False
        if not self._closed:
            self._closed = True
            self._spi.close()

    # reports ------------------------------------------------------------------------
    def timing_report(self) -> Mcp3008TimingReport:
        """Achieved rate, jitter and SPI time so far (see :class:`Mcp3008TimingReport`)."""
        count = self._jitter_count
        recent = self._jitter_ring_ns[: min(count, len(self._jitter_ring_ns))]
        if count:
            p50_ns, p99_ns = np.percentile(recent, [50.0, 99.0])
            mean_us = self._jitter_sum_ns / count * US_PER_NS
        else:
            p50_ns = p99_ns = 0.0
            mean_us = 0.0
        spi_mean_us = self._spi_sum_ns / self._spi_count * US_PER_NS if self._spi_count else 0.0
        # Frames delivered per second of schedule elapsed up to the last frame's period.
        if self._last_index >= 0:
            elapsed_ns = self._period_num * (self._last_index + 1) / self._period_den
            achieved_hz = self._stats.frames_read * NS_PER_S / elapsed_ns
        else:
            achieved_hz = 0.0
        batched = getattr(self._spi, "batched", None)
        return Mcp3008TimingReport(
            nominal_rate_hz=self._settings.sample_rate_hz,
            achieved_rate_hz=achieved_hz,
            frames_read=self._stats.frames_read,
            frames_lost=self._stats.frames_lost,
            jitter_mean_us=mean_us,
            jitter_max_us=self._jitter_max_ns * US_PER_NS,
            jitter_p50_us=float(p50_ns) * US_PER_NS,
            jitter_p99_us=float(p99_ns) * US_PER_NS,
            spi_mean_us=spi_mean_us,
            spi_max_us=self._spi_max_ns * US_PER_NS,
            windowed=self._windowed,
            batched=batched if isinstance(batched, bool) else None,
        )

    def codes_to_uv(self, codes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Convert ADC codes to input-referred µV: ``(code·vref/1024 − offset) / gain · 1e6``.

        Parameters
        ----------
        codes:
            Any shape, integers 0..1023.

        Returns
        -------
        Same shape, float64 µV at the electrodes.
        """
        return np.asarray(codes, dtype=np.float64) * self._uv_per_code - self._offset_uv

    # internals ----------------------------------------------------------------------
    def _deadline_ns(self, index: int) -> int:
        # ceil(t0 + index * period), so that _due_index is its exact inverse.
        return self._t0_ns - ((-index * self._period_num) // self._period_den)

    def _due_index(self, now_ns: int) -> int:
        """The largest k with ``_deadline_ns(k) <= now_ns``."""
        return ((now_ns - self._t0_ns) * self._period_den) // self._period_num

    def _convert_all(self) -> list[bytes]:
        speed_hz = self._settings.spi_speed_hz
        if self._windowed_bus is not None:
            return self._windowed_bus.xfer_windows(self._commands, speed_hz)
        return [bytes(self._spi.xfer2(list(tx), speed_hz)) for tx in self._commands]

    def _record_timing(self, jitter_ns: int, spi_ns: int) -> None:
        ring = self._jitter_ring_ns
        ring[self._jitter_count % len(ring)] = jitter_ns
        self._jitter_count += 1
        self._jitter_sum_ns += jitter_ns
        self._jitter_max_ns = max(self._jitter_max_ns, jitter_ns)
        self._spi_count += 1
        self._spi_sum_ns += spi_ns
        self._spi_max_ns = max(self._spi_max_ns, spi_ns)

    def _decode(self, index: int, timestamp_ns: int, replies: list[bytes]) -> Frame | None:
        codes = self._codes
        for c, rx in enumerate(replies):
            if len(rx) != len(self._commands[c]):
                raise HardwareIOError(
                    f"MCP3008: {self._labels[c]} reply has {len(rx)} bytes, expected 3"
                )
            code, null_ok = decode_reply(rx)
            if not null_ok:
                self._stats.frames_invalid += 1
                self._invalid_run += 1
                if self._invalid_run >= self._invalid_run_limit:
                    raise HardwareIOError(
                        f"MCP3008: {self._invalid_run} frames in a row with the null bit set "
                        f"(last on {self._labels[c]}, rx {rx.hex(' ')}); chip lost?"
                    )
                return None
            codes[c] = code
        self._invalid_run = 0
        railed = 0
        for c, code in enumerate(codes.tolist()):
            if code in (CODE_MIN, CODE_MAX):
                railed |= 1 << c
                self._stats.railed_per_channel[c] += 1
        stats = self._stats
        stats.frames_read += 1
        if railed:
            stats.frames_railed += 1
        previous = self._previous_codes
        if previous is not None and np.array_equal(previous, codes):
            stats.frames_stale += 1
        self._previous_codes = codes.copy()
        self._last_index = index
        return Frame(
            index=index,
            timestamp_ns=timestamp_ns,
            emg_uv=self.codes_to_uv(codes),
            railed=railed,
        )
