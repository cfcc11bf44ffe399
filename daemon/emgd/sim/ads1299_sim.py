"""Register-level model of the TI ADS1299 (8-, 6- or 4-channel part) behind a simulated SPI bus.

This module owns the chip's side of the wire: it parses the opcodes clocked in during each
CS-low window, keeps the register file with the datasheet's reset values and forced bits,
runs conversions on the injected clock, builds data frames from a :class:`SignalSource`
and drives a simulated DRDY line. It also injects faults and keeps ground-truth counters for
tests. It must not import the driver (:mod:`emgd.hw.ads1299`): it encodes frames with its
own arithmetic, so tests compare two independent implementations of the datasheet.

What it models
    * Opcodes WAKEUP, STANDBY, RESET, START, STOP, RDATAC, SDATAC, RDATA, RREG ``2r nn``
      and WREG ``4r nn`` + data, each inside one CS window; a command cut short by the end
      of the window is dropped (a WREG split across windows writes nothing).
    * Power-up in RDATAC; RREG and WREG are ignored in RDATAC (their bytes are consumed);
      STOP, SDATAC, START and RESET are accepted in either mode. RESET restores the reset
      values, enters RDATAC and stops conversions (as with the START pin tied low).
    * Register reset values; read-only ID, LOFF_STATP/N and CONFIG3.BIAS_STAT; forced bits
      (CONFIG1 b7 = 1, b4:3 = 10; CONFIG2 b7:6 = 11, b5 = b3 = 0; CONFIG3 b6:5 = 11;
      LOFF b4 = 0; MISC1 only SRB1; MISC2 reads 0; CONFIG4 only SINGLE_SHOT and
      PD_LOFF_COMP); GPIO data bits of inputs read 0; channels a 4/6-channel part lacks
      read 0 and ignore writes.
    * Conversions only after START, one per ``128 << DR`` tCLK at fCLK = 2.048 MHz, the first
      one period after START; writing CONFIG1 restarts the timing. DRDY falls at every
      conversion. A conversion not clocked out (full frame in RDATAC, or RDATA) before the
      next one is lost (``frames_lost``). Reading the same conversion twice gives the
      same bytes.
    * Frame contents: the source's µV (channel c of the source on channel c) plus
      input-referred Gaussian noise, times the gain, quantised at LSB = 2·VREF/gain/2^24
      (round to nearest) and clipped at 0x7FFFFF / 0x800000. Powered-down channels read 0.
      MUX shorted, BIAS_MEAS, BIAS_DRP/N: noise only. MVDD: 2.5 V. Temperature: 145.3 mV
      (25 °C). Test signal (INT_CAL = 1): a square wave of ±VREF/2400 (×2 with CAL_AMP) at
      fCLK/2^21 or fCLK/2^20, or DC. With the internal reference powered down
      (CONFIG3.PD_REFBUF = 0) the channel data are random codes unrelated to the input.
    * Status word ``1100`` + LOFF_STATP + LOFF_STATN + GPIO data; an electrode marked off
      with :meth:`Ads1299Sim.set_lead_off` is reported only when its LOFF_SENSP/N bit is set
      and CONFIG4.PD_LOFF_COMP = 1.
    * Faults: a dead DRDY line, garbage frames and a spontaneous reset (see the methods).
    * Real time: on the SystemClock the DRDY wait sleeps, then spins the last 150 µs, so a
      Python reader can keep up at 16 kSPS; encoding one 8-channel frame costs a few µs.

What it does not model
    tSDECODE, tSCCS, tCSH, tUPDATE and the 18-tCLK reset time (no timing inside or between
    windows), settling time (tSETTLE) and the digital filter's step response, reference
    settling, daisy-chain and multiple-readback modes (bytes after the frame read 0), the
    START and RESET pins, single-shot mode, clock output, LOFF_FLIP, bias drive physics,
    lead-off current effects on the signal, AC lead-off, and gain code 111 (treated as 24).
    STOP halts at once (the conversion in progress is dropped). STANDBY stops conversions
    until WAKEUP. Data rate code 111 (reserved) produces no conversions. It is not
    thread-safe: one thread drives the bus and the DRDY line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from emgd.clock import NS_PER_S, Clock
from emgd.errors import HardwareIOError
from emgd.hw.interfaces import FloatArray, SignalSource

# --- Chip constants -------------------------------------------------------------------------
FCLK_HZ: Final = 2_048_000
BASE_PERIOD_TCLK: Final = 128  # conversion period at DR = 000 (16 kSPS)
RESERVED_DR: Final = 0b111
VREF_V: Final = 4.5
MVDD_V: Final = 2.5  # plausible supply-measurement reading
TEMPERATURE_SENSOR_V: Final = 0.1453  # temperature-sensor output at 25 °C
TEST_SIGNAL_DIVISOR: Final = 2400  # amplitude = VREF / 2400 (x2 with CAL_AMP)
TEST_FREQ_DIVIDER_LOG2: Final = (21, 20)  # CAL_FREQ 00 -> fCLK/2^21, 01 -> fCLK/2^20
TEST_FREQ_DC: Final = 0b11
DEFAULT_NOISE_UV_RMS: Final = 0.2  # input-referred, roughly the datasheet's noise floor
CODE_MAX: Final = 0x7FFFFF
CODE_MIN: Final = -0x800000
CODE_SPAN: Final = 2**24
SPI_MAX_SCLK_HZ: Final = 20_000_000
SOURCE_BLOCK_SAMPLES: Final = 256  # how many samples to pull from the source at a time
SOURCE_MAX_BLOCK_SAMPLES: Final = 65_536
# Real-time DRDY waits sleep, then spin the last stretch before the edge: the smaller of
# SPIN_BEFORE_EDGE_NS and SPIN_MAX_PERIOD_FRACTION of the period. A sleep on this 2-core VM
# overshoots by 40 us typically and by 200 us at p99 (measured); a 2 kSPS acquisition loop
# lost 140 frames in 20 s with a 150 us spin and 52 with 300 us. Spinning (near) the
# whole period would trip the kernel's real-time throttling (95 % per second).
SPIN_BEFORE_EDGE_NS: Final = 300_000
SPIN_MAX_PERIOD_FRACTION: Final = 0.6

# --- Opcodes --------------------------------------------------------------------------------
OP_WAKEUP: Final = 0x02
OP_STANDBY: Final = 0x04
OP_RESET: Final = 0x06
OP_START: Final = 0x08
OP_STOP: Final = 0x0A
OP_RDATAC: Final = 0x10
OP_SDATAC: Final = 0x11
OP_RDATA: Final = 0x12
OP_CLASS_MASK: Final = 0xE0
OP_RREG: Final = 0x20
OP_WREG: Final = 0x40

# --- Register file (addresses and reset values, SBAS499C Table 11) ---------------------------
REG_ID: Final = 0x00
REG_CONFIG1: Final = 0x01
REG_CONFIG2: Final = 0x02
REG_CONFIG3: Final = 0x03
REG_LOFF: Final = 0x04
REG_CH1SET: Final = 0x05
REG_BIAS_SENSP: Final = 0x0D
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
RESET_VALUES: Final = bytes(
    [0x00, 0x96, 0xC0, 0x60, 0x00]  # ID (filled per part), CONFIG1..3, LOFF
    + [0x61] * 8  # CH1SET..CH8SET: gain 24, input shorted
    + [0x00] * 7  # BIAS_SENSP/N, LOFF_SENSP/N, LOFF_FLIP, LOFF_STATP/N
    + [0x0F, 0x00, 0x00, 0x00]  # GPIO (all inputs), MISC1, MISC2, CONFIG4
)
# Forced bits on write: value = (written & keep) | force.
CONFIG1_KEEP, CONFIG1_FORCE = 0x67, 0x90
CONFIG2_KEEP, CONFIG2_FORCE = 0x17, 0xC0
CONFIG3_KEEP, CONFIG3_FORCE = 0x9E, 0x60  # bit 0 BIAS_STAT read-only, reads 0 (bias connected)
LOFF_KEEP: Final = 0xEF
MISC1_KEEP: Final = 0x20
CONFIG4_KEEP: Final = 0x0A
CONFIG2_INT_CAL: Final = 0x10
CONFIG2_CAL_AMP: Final = 0x04
CONFIG3_PD_REFBUF: Final = 0x80
CONFIG4_PD_LOFF_COMP: Final = 0x02
CHSET_POWER_DOWN: Final = 0x80
GAINS: Final = (1, 2, 4, 6, 8, 12, 24, 24)  # GAIN code 111 "do not use" modelled as 24
MUX_NORMAL, MUX_SHORTED, MUX_BIAS_MEAS, MUX_MVDD, MUX_TEMP, MUX_TEST = 0, 1, 2, 3, 4, 5
# NU_CH[1:0] -> channel count (11 is read by genuine 8-channel parts, e.g. ID 0xDF)
NU_CH_CHANNELS: Final = (4, 6, 8, 8)
STATUS_MARKER: Final = 0xC0


class Ads1299Sim:
    """A simulated ADS1299 answering the real byte protocol, one CS window at a time.

    Parameters
    ----------
    source:
        Analogue input in µV at the electrodes; channel c feeds chip channel c.
    clock:
        Drives conversion timing (a FakeClock in tests, SystemClock for real time).
    device_id:
        Value of the ID register (0x3E 8-ch, 0x3D 6-ch, 0x3C 4-ch, 0xDF, or anything to
        test ID checks). NU_CH (bits 1:0) sets the channel count.
    seed:
        Seed of the noise and garbage generator.
    noise_uv_rms:
        Input-referred noise added to every powered channel (0 for exact codes).
    """

    def __init__(
        self,
        source: SignalSource,
        clock: Clock,
        *,
        device_id: int = 0x3E,
        seed: int = 0,
        noise_uv_rms: float = DEFAULT_NOISE_UV_RMS,
    ) -> None:
        if not 0 <= device_id <= 0xFF:
            raise ValueError(f"Ads1299Sim: device_id 0x{device_id:X} is not a byte")
        if noise_uv_rms < 0:
            raise ValueError(f"Ads1299Sim: noise_uv_rms {noise_uv_rms} is negative")
        self.allowed_modes: frozenset[int] = frozenset({1})
        self.max_sclk_hz: int = SPI_MAX_SCLK_HZ
        self._source = source
        self._clock = clock
        self._device_id = device_id
        self._chip_channels = NU_CH_CHANNELS[device_id & 0x03]
        self._channel_mask = (1 << self._chip_channels) - 1
        self._noise_v_rms = noise_uv_rms * 1e-6
        self._rng = np.random.default_rng(seed)
        self._regs = bytearray(REGISTER_COUNT)
        self._rdatac = True
        self._started = False
        self._standby = False
        self._t0_ns = 0
        self._conversions_since_t0 = 0
        self._frames_converted = 0
        self._frames_lost = 0
        self._latest_frame: bytes | None = None
        self._latest_read = True
        self._latest_ns = 0
        self._off_p = 0
        self._off_n = 0
        self._no_drdy = False
        self._garbage_left = 0
        self._buffer: FloatArray = np.zeros((0, source.n_channels))
        self._buffer_pos = 0
        self._buffer_rate_hz = 0.0
        self._noise: list[list[float]] = []
        self._noise_pos = 0
        self._plan: tuple[_ChannelPlan, ...] | None = None
        self._load_defaults()

    # --- ground truth and inspection ---------------------------------------------------------
    @property
    def device_id(self) -> int:
        return self._device_id

    @property
    def chip_channels(self) -> int:
        """4, 6 or 8, from NU_CH."""
        return self._chip_channels

    @property
    def frame_length(self) -> int:
        """Bytes in one data frame: 3 status + 3 per channel."""
        return 3 + 3 * self._chip_channels

    @property
    def frames_converted(self) -> int:
        """Conversions completed since construction (catches up to the clock first)."""
        self._catch_up(self._clock.monotonic_ns())
        return self._frames_converted

    @property
    def frames_lost(self) -> int:
        """Conversions overwritten before anything clocked them out."""
        self._catch_up(self._clock.monotonic_ns())
        return self._frames_lost

    @property
    def registers(self) -> bytes:
        """The 24 registers as RREG would return them."""
        return bytes(self._read_register(a) for a in range(REGISTER_COUNT))

    @property
    def mode(self) -> str:
        """``"RDATAC"`` or ``"SDATAC"``."""
        return "RDATAC" if self._rdatac else "SDATAC"

    @property
    def converting(self) -> bool:
        """True while conversions run (START given, not stopped, not in standby)."""
        return self._period_ns() is not None

    @property
    def sample_rate_hz(self) -> float:
        """Data rate set by CONFIG1.DR (0 for the reserved code)."""
        dr = self._regs[REG_CONFIG1] & 0x07
        return 0.0 if dr == RESERVED_DR else FCLK_HZ / (BASE_PERIOD_TCLK << dr)

    def poke_register(self, address: int, value: int) -> None:
        """Overwrite a register bypassing the write rules (a bit flip, for fault tests)."""
        self._regs[address] = value & 0xFF
        self._plan = None

    # --- analogue side and faults ------------------------------------------------------------
    def set_lead_off(self, channel: int, positive: bool, off: bool) -> None:
        """Mark electrode INnP (``positive``) or INnN of ``channel`` (0-based) off or on."""
        if not 0 <= channel < self._chip_channels:
            raise ValueError(f"Ads1299Sim: channel {channel} outside 0..{self._chip_channels - 1}")
        bit = 1 << channel
        if positive:
            self._off_p = (self._off_p | bit) if off else (self._off_p & ~bit)
        else:
            self._off_n = (self._off_n | bit) if off else (self._off_n & ~bit)

    def inject_no_drdy(self, on: bool) -> None:
        """Make the DRDY line dead (no edges seen) while ``on``; conversions go on inside."""
        self._catch_up(self._clock.monotonic_ns())
        self._no_drdy = on

    def inject_garbage(self, n_frames: int) -> None:
        """Replace the next ``n_frames`` conversions by random bytes (status not 1100)."""
        self._catch_up(self._clock.monotonic_ns())
        self._garbage_left += n_frames

    def clear_garbage(self) -> None:
        """End a garbage fault early: the next conversions are real frames again."""
        self._garbage_left = 0

    def inject_reset(self) -> None:
        """Spontaneous reset (supply glitch) with the START pin low.

        Registers return to their reset values, the interface is in RDATAC, conversions are
        stopped (no DRDY until a new START) and the latest frame is discarded.
        """
        self._catch_up(self._clock.monotonic_ns())
        self._reset()

    def drdy_line(self) -> SimDrdy:
        """A DRDY line tied to this chip and its clock."""
        return SimDrdy(self, self._clock)

    # --- SPI side (SpiChip protocol) -----------------------------------------------------------
    def transfer(self, tx: bytes) -> bytes:
        """Clock one CS-low window: parse opcodes in ``tx`` and return DOUT."""
        now_ns = self._clock.monotonic_ns()
        self._catch_up(now_ns)
        rx = bytearray(len(tx))
        if self._rdatac and self._latest_frame is not None:
            frame = self._latest_frame
            rx[: len(frame)] = frame[: len(tx)]
            if len(tx) >= len(frame):
                self._latest_read = True
        if tx.count(0) == len(tx):
            return bytes(rx)  # a window of zeros: data out only, no command in
        i = 0
        while i < len(tx):
            opcode = tx[i]
            op_class = opcode & OP_CLASS_MASK
            if op_class in (OP_RREG, OP_WREG):
                if i + 1 >= len(tx):
                    break  # count byte never arrived: command dropped
                address = opcode & 0x1F
                count = (tx[i + 1] & 0x1F) + 1
                end = i + 2 + count
                if op_class == OP_WREG:
                    if end > len(tx):
                        break  # data cut short by CS: nothing is written
                    if not self._rdatac:
                        for k in range(count):
                            self._write_register(address + k, tx[i + 2 + k], now_ns)
                elif not self._rdatac:
                    for k in range(min(count, len(tx) - i - 2)):
                        rx[i + 2 + k] = self._read_register(address + k)
                i = end
                continue
            if opcode == OP_RDATA and not self._rdatac:
                i += 1 + self._rdata(tx, rx, i + 1)
                continue
            self._simple_command(opcode, now_ns)
            i += 1
        return bytes(rx)

    def _rdata(self, tx: bytes, rx: bytearray, start: int) -> int:
        frame = self._latest_frame
        if frame is None:
            return 0
        n = min(len(frame), len(tx) - start)
        rx[start : start + n] = frame[:n]
        if n == len(frame):
            self._latest_read = True
        return n

    def _simple_command(self, opcode: int, now_ns: int) -> None:
        if opcode == OP_RESET:
            self._reset()
        elif opcode == OP_START:
            self._started = True
            self._restart_timing(now_ns)
            self._latest_read = True  # a frame pending at START is discarded, not lost
        elif opcode == OP_STOP:
            self._started = False
        elif opcode == OP_RDATAC:
            self._rdatac = True
        elif opcode == OP_SDATAC:
            self._rdatac = False
        elif opcode == OP_STANDBY:
            self._standby = True
        elif opcode == OP_WAKEUP and self._standby:
            self._standby = False
            self._restart_timing(now_ns)
        # 0x00 and undefined opcodes are ignored

    # --- register file ------------------------------------------------------------------------
    def _load_defaults(self) -> None:
        self._plan = None
        self._regs[:] = RESET_VALUES
        self._regs[REG_ID] = self._device_id
        for c in range(self._chip_channels, 8):
            self._regs[REG_CH1SET + c] = 0x00

    def _reset(self) -> None:
        self._load_defaults()
        self._rdatac = True
        self._started = False
        self._standby = False
        self._latest_frame = None
        self._latest_read = True

    def _read_register(self, address: int) -> int:
        if address >= REGISTER_COUNT:
            return 0
        comparators_on = bool(self._regs[REG_CONFIG4] & CONFIG4_PD_LOFF_COMP)
        if address == REG_LOFF_STATP:
            return self._off_p & self._regs[REG_LOFF_SENSP] if comparators_on else 0
        if address == REG_LOFF_STATN:
            return self._off_n & self._regs[REG_LOFF_SENSN] if comparators_on else 0
        return self._regs[address]

    def _write_register(self, address: int, value: int, now_ns: int) -> None:
        if address in (REG_ID, REG_LOFF_STATP, REG_LOFF_STATN) or address >= REGISTER_COUNT:
            return
        self._plan = None
        if address == REG_CONFIG1:
            self._regs[address] = (value & CONFIG1_KEEP) | CONFIG1_FORCE
            self._restart_timing(now_ns)
        elif address == REG_CONFIG2:
            self._regs[address] = (value & CONFIG2_KEEP) | CONFIG2_FORCE
        elif address == REG_CONFIG3:
            self._regs[address] = (value & CONFIG3_KEEP) | CONFIG3_FORCE
        elif address == REG_LOFF:
            self._regs[address] = value & LOFF_KEEP
        elif REG_CH1SET <= address < REG_CH1SET + 8:
            if address - REG_CH1SET < self._chip_channels:
                self._regs[address] = value
        elif REG_BIAS_SENSP <= address <= REG_LOFF_FLIP:
            self._regs[address] = value & self._channel_mask
        elif address == REG_GPIO:
            control = value & 0x0F
            data_out = (value >> 4) & ~control & 0x0F  # input pins read 0
            self._regs[address] = (data_out << 4) | control
        elif address == REG_MISC1:
            self._regs[address] = value & MISC1_KEEP
        elif address == REG_MISC2:
            self._regs[address] = 0x00
        elif address == REG_CONFIG4:
            self._regs[address] = value & CONFIG4_KEEP

    # --- conversions --------------------------------------------------------------------------
    def _period_ns(self) -> int | None:
        dr = self._regs[REG_CONFIG1] & 0x07
        if not self._started or self._standby or dr == RESERVED_DR:
            return None
        return (BASE_PERIOD_TCLK << dr) * NS_PER_S // FCLK_HZ

    def _restart_timing(self, now_ns: int) -> None:
        self._t0_ns = now_ns
        self._conversions_since_t0 = 0

    def next_conversion_ns(self) -> int | None:
        """When the next conversion completes, or None if conversions are stopped."""
        period_ns = self._period_ns()
        if period_ns is None:
            return None
        return self._t0_ns + (self._conversions_since_t0 + 1) * period_ns

    def _catch_up(self, now_ns: int) -> None:
        """Run every conversion due by ``now_ns``; only the newest one is encoded."""
        period_ns = self._period_ns()
        if period_ns is None:
            return
        due = (now_ns - self._t0_ns) // period_ns
        n_new = due - self._conversions_since_t0
        if n_new <= 0:
            return
        pending_unread = self._latest_frame is not None and not self._latest_read
        self._frames_lost += n_new - 1 + int(pending_unread)
        self._frames_converted += n_new
        self._conversions_since_t0 = due
        self._latest_ns = self._t0_ns + due * period_ns
        row_uv = self._advance_source(n_new, NS_PER_S / period_ns)
        garbage = min(n_new, self._garbage_left)
        self._garbage_left -= garbage
        if garbage == n_new:
            self._latest_frame = self._garbage_frame()
        else:
            self._latest_frame = self._encode(row_uv, self._latest_ns)
        self._latest_read = False

    def _advance_source(self, n_samples: int, sample_rate_hz: float) -> FloatArray:
        """Consume ``n_samples`` from the source stream; return the last one, shape (ch,)."""
        if sample_rate_hz != self._buffer_rate_hz:
            self._buffer = np.zeros((0, self._source.n_channels))
            self._buffer_pos = 0
            self._buffer_rate_hz = sample_rate_hz
        remaining = n_samples
        while True:
            available = len(self._buffer) - self._buffer_pos
            if remaining <= available:
                self._buffer_pos += remaining
                last: FloatArray = self._buffer[self._buffer_pos - 1]
                return last
            remaining -= available
            block = min(max(SOURCE_BLOCK_SAMPLES, remaining), SOURCE_MAX_BLOCK_SAMPLES)
            samples = np.asarray(self._source.generate(block, sample_rate_hz), dtype=np.float64)
            if samples.shape != (block, self._source.n_channels):
                raise ValueError(
                    f"Ads1299Sim: source returned shape {samples.shape}, expected "
                    f"({block}, {self._source.n_channels})"
                )
            self._buffer = samples
            self._buffer_pos = 0

    def _garbage_frame(self) -> bytes:
        frame = bytearray(self._rng.integers(0, 256, self.frame_length, dtype=np.uint8).tobytes())
        if frame[0] & 0xF0 == STATUS_MARKER:
            frame[0] ^= 0x80
        return bytes(frame)

    def _test_signal_v(self, conversion_ns: int) -> float:
        config2 = self._regs[REG_CONFIG2]
        if not config2 & CONFIG2_INT_CAL:
            return 0.0
        amplitude_v = VREF_V / TEST_SIGNAL_DIVISOR * (2 if config2 & CONFIG2_CAL_AMP else 1)
        freq_code = config2 & 0x03
        if freq_code == TEST_FREQ_DC:
            return -amplitude_v
        if freq_code > 1:
            return 0.0  # "do not use"
        half_period_ns = (2 ** (TEST_FREQ_DIVIDER_LOG2[freq_code] - 1)) * NS_PER_S // FCLK_HZ
        return amplitude_v if (conversion_ns // half_period_ns) % 2 == 0 else -amplitude_v

    def _channel_plan(self) -> tuple[_ChannelPlan, ...]:
        if self._plan is None:
            plans = []
            for c in range(self._chip_channels):
                chset = self._regs[REG_CH1SET + c]
                mux = chset & 0x07
                fixed = {MUX_MVDD: MVDD_V, MUX_TEMP: TEMPERATURE_SENSOR_V}
                plans.append(
                    _ChannelPlan(
                        powered_down=bool(chset & CHSET_POWER_DOWN),
                        codes_per_v=GAINS[(chset >> 4) & 0x07] / (2.0 * VREF_V) * CODE_SPAN,
                        const_v=fixed.get(mux, 0.0),
                        noise_scale_v=0.0 if mux in fixed else self._noise_v_rms,
                        from_source=mux == MUX_NORMAL and c < self._source.n_channels,
                        test=mux == MUX_TEST,
                    )
                )
            self._plan = tuple(plans)
        return self._plan

    def _noise_row(self) -> list[float]:
        if self._noise_pos >= len(self._noise):
            block = self._rng.standard_normal((SOURCE_BLOCK_SAMPLES, self._chip_channels))
            self._noise = block.tolist()
            self._noise_pos = 0
        row = self._noise[self._noise_pos]
        self._noise_pos += 1
        return row

    def _encode(self, row_uv: FloatArray, conversion_ns: int) -> bytes:
        plan = self._channel_plan()
        reference_on = bool(self._regs[REG_CONFIG3] & CONFIG3_PD_REFBUF)
        noise = self._noise_row()
        source_uv = row_uv.tolist()
        test_v = self._test_signal_v(conversion_ns)
        parts = []
        for c, ch in enumerate(plan):
            if ch.powered_down:
                code = 0
            elif not reference_on:  # the output bears no relation to the input
                code = int(self._rng.integers(CODE_MIN, CODE_MAX + 1))
            else:
                volts = ch.const_v + noise[c] * ch.noise_scale_v
                if ch.from_source:
                    volts += source_uv[c] * 1e-6
                elif ch.test:
                    volts += test_v
                code = min(CODE_MAX, max(CODE_MIN, round(volts * ch.codes_per_v)))
            parts.append(code.to_bytes(3, "big", signed=True))
        loff_p = self._read_register(REG_LOFF_STATP)
        loff_n = self._read_register(REG_LOFF_STATN)
        gpio_data = self._regs[REG_GPIO] >> 4
        status = bytes(
            [
                STATUS_MARKER | (loff_p >> 4),
                ((loff_p & 0x0F) << 4) | (loff_n >> 4),
                ((loff_n & 0x0F) << 4) | gpio_data,
            ]
        )
        return status + b"".join(parts)


@dataclass(frozen=True, slots=True)
class _ChannelPlan:
    """Conversion constants of one channel, derived from its CHnSET (cached until a write)."""

    powered_down: bool
    codes_per_v: float  # gain / (2 VREF) * 2^24
    const_v: float  # MVDD / temperature reading, else 0
    noise_scale_v: float
    from_source: bool  # MUX normal and the source has this channel
    test: bool  # MUX test signal


class SimDrdy:
    """The simulated chip's DRDY pin, implementing :class:`~emgd.hw.interfaces.DrdyLine`.

    Waiting sleeps on the chip's clock until the next conversion: with a FakeClock the
    clock jumps there at once, with the SystemClock the call really waits.

    Parameters
    ----------
    chip:
        The chip whose conversions make the edges.
    clock:
        The same clock the chip runs on.
    """

    def __init__(self, chip: Ads1299Sim, clock: Clock) -> None:
        self._chip = chip
        self._clock = clock
        self._seen = chip.frames_converted
        self._closed = False

    def wait_falling_edge(self, timeout_s: float) -> int | None:
        """Timestamp (ns) of the newest edge since the previous call, or None on timeout."""
        if self._closed:
            raise HardwareIOError("simulated DRDY line: wait on a closed line")
        chip = self._chip
        deadline_ns = self._clock.monotonic_ns() + round(timeout_s * NS_PER_S)
        while True:
            converted = chip.frames_converted
            if chip._no_drdy:
                self._seen = converted
            elif converted > self._seen:
                self._seen = converted
                return chip._latest_ns
            next_ns = None if chip._no_drdy else chip.next_conversion_ns()
            if next_ns is None or next_ns > deadline_ns:
                self._clock.sleep_until_ns(deadline_ns)
                converted = chip.frames_converted
                if not chip._no_drdy and converted > self._seen:
                    self._seen = converted
                    return chip._latest_ns
                return None
            self._sleep_until_ns(next_ns)

    def _sleep_until_ns(self, deadline_ns: int) -> None:
        """Sleep, then spin the last stretch if the clock runs by itself (real time).

        An OS sleep overshoots by tens of µs, more than a 62.5 µs period at 16 kSPS. A
        FakeClock does not move while spinning, so it is simply advanced.
        """
        clock = self._clock
        period_ns = self._chip._period_ns() or SPIN_BEFORE_EDGE_NS
        spin_ns = min(SPIN_BEFORE_EDGE_NS, int(SPIN_MAX_PERIOD_FRACTION * period_ns))
        clock.sleep_until_ns(deadline_ns - spin_ns)
        previous_ns = clock.monotonic_ns()
        while previous_ns < deadline_ns:
            now_ns = clock.monotonic_ns()
            if now_ns == previous_ns:  # a clock that only moves when told to
                clock.sleep_until_ns(deadline_ns)
                return
            previous_ns = now_ns

    def close(self) -> None:
        self._closed = True
