"""A bit-level model of the MCP3008 behind a simulated SPI bus, fed by a signal source.

This module owns what the chip does with the bits of one CS-low window: it finds the start
bit wherever it falls (leading zeros allowed), decodes SGL/DIFF and D2..D0, samples the
analogue input at the clock's current time, and shifts out the null bit and B9..B0 MSB first
at the exact bit positions the real chip uses, then the LSB-first tail (B1..B9), then zeros.
A second start bit in the same window does not start a conversion (the chip needs CS high
then low); such windows are counted in :attr:`Mcp3008Sim.cs_violations`. The input is the
source's electrode µV times the front-end gain plus the mid-rail offset, held between source
samples, clipped to 0..VREF and quantised to 10 bits (differential = IN+ − IN−, negative
reads 0).

Not modelled: the analogue timing (tCSH, aperture and sample-capacitor charge time, SCLK
limits inside a window; the bus checks the clock against :attr:`max_sclk_hz`), the power-up
rule that CS must go high once before the first conversion, INL/DNL, noise of the chip
itself and the undefined MISO level before the null bit (modelled as 0). It must not pace,
sleep or know about the driver.
"""

from __future__ import annotations

import math

import numpy as np

from emgd.clock import NS_PER_S, Clock
from emgd.errors import ConfigError
from emgd.hw.interfaces import FloatArray, SignalSource
from emgd.hw.mcp3008 import CODE_COUNT, CODE_MAX, N_INPUTS, SPI_MODES, max_sclk_hz

# Bit positions counted from the start bit (position 0), MSB-first on the wire:
#
#   pos:   0      1    2   3   4   5          6     7  ...  16   17  ...  25   26 ...
#   MOSI:  start  SGL  D2  D1  D0  x          x     x  ...  x    x   ...  x    x
#   MISO:  -      -    -   -   -   (sample)   null  B9 ...  B0   B1  ...  B9   0 ...
#
# With the start bit in bit 0 of byte 0 (tx 01 ..), the null bit lands on rx[1] bit 2 and
# B9..B0 on rx[1] bits 1..0 and rx[2].
COMMAND_BITS = 4  # SGL, D2, D1, D0 after the start bit
NULL_BIT_POS = 6  # relative to the start bit
OUTPUT_BITS = 1 + 10 + 9  # null, B9..B0, then B1..B9 LSB first
DEFAULT_SOURCE_RATE_HZ = 10_000.0
#: Source samples generated per refill.
SOURCE_BLOCK_SAMPLES = 256
#: A clock jump longer than this is not filled sample by sample; the source just resumes.
MAX_CATCH_UP_S = 1.0
UV_TO_V = 1e-6


def _reverse_bits(value: int, width: int) -> int:
    out = 0
    for _ in range(width):
        out = (out << 1) | (value & 1)
        value >>= 1
    return out


def output_stream(code: int) -> int:
    """The 20 bits the chip shifts out from the null bit on, as an integer (MSB = null bit).

    ``0 | B9..B0 | B1..B9``: the null bit, the code MSB first, then the code LSB first
    without repeating B0.
    """
    return (code << 9) | _reverse_bits(code >> 1, 9)


class Mcp3008Sim:
    """The MCP3008 as an :class:`~emgd.sim.spi_bus.SpiChip`.

    Parameters
    ----------
    source:
        Electrode signals in µV; source channel c drives CHc (at most 8 channels; missing
        inputs sit at the mid-rail offset).
    clock:
        When a conversion samples its input.
    vref_v:
        Reference voltage (full scale).
    offset_v:
        Front-end bias added before the ADC; ``None`` means ``vref_v / 2``.
    frontend_gain:
        Analogue gain from the electrodes to the ADC pins.
    source_rate_hz:
        The rate at which the "analogue" input is generated and then held.
    vdd_v:
        The supply, which sets :attr:`max_sclk_hz`.
    """

    allowed_modes: frozenset[int] = SPI_MODES

    def __init__(
        self,
        source: SignalSource,
        clock: Clock,
        *,
        vref_v: float = 3.3,
        offset_v: float | None = None,
        frontend_gain: float = 1000.0,
        source_rate_hz: float = DEFAULT_SOURCE_RATE_HZ,
        vdd_v: float = 3.3,
    ) -> None:
        self.max_sclk_hz = max_sclk_hz(vdd_v)
        if not (math.isfinite(vref_v) and 0 < vref_v <= vdd_v):
            raise ConfigError(f"Mcp3008Sim vref_v = {vref_v}: must be within (0, vdd_v={vdd_v}]")
        if not (math.isfinite(frontend_gain) and frontend_gain > 0):
            raise ConfigError(f"Mcp3008Sim frontend_gain = {frontend_gain}: must be > 0")
        if not (math.isfinite(source_rate_hz) and source_rate_hz > 0):
            raise ConfigError(f"Mcp3008Sim source_rate_hz = {source_rate_hz}: must be > 0")
        if source.n_channels > N_INPUTS:
            raise ConfigError(
                f"Mcp3008Sim: source has {source.n_channels} channels, the chip has 8 inputs"
            )
        self.source = source
        self.clock = clock
        self.vref_v = vref_v
        self.offset_v = vref_v / 2 if offset_v is None else offset_v
        self.frontend_gain = frontend_gain
        self.source_rate_hz = source_rate_hz
        #: Conversions performed.
        self.conversions = 0
        #: Windows in which DIN went high again after a command (a second start bit).
        self.cs_violations = 0
        #: Windows that ended before D0 was clocked (no conversion).
        self.incomplete_commands = 0
        self._t_origin_ns = clock.monotonic_ns()
        self._block_start = 0
        self._block_pins_v = np.full((0, N_INPUTS), self.offset_v)

    # SpiChip ----------------------------------------------------------------------------
    def transfer(self, tx: bytes) -> bytes:
        """One CS-low window: decode the command bits of ``tx`` and return MISO."""
        n_bits = 8 * len(tx)
        word = int.from_bytes(tx, "big")
        if word == 0:
            return bytes(len(tx))
        start_pos = n_bits - word.bit_length()
        d0_pos = start_pos + COMMAND_BITS
        if d0_pos >= n_bits:
            self.incomplete_commands += 1
            return bytes(len(tx))
        bits_after_d0 = n_bits - 1 - d0_pos
        command = (word >> bits_after_d0) & 0xF
        if word & ((1 << bits_after_d0) - 1):
            self.cs_violations += 1
        single_ended = bool(command & 0x8)
        channel = command & 0x7
        code = self.convert(channel, single_ended)
        stream = output_stream(code)
        first_pos = start_pos + NULL_BIT_POS
        spare_bits = n_bits - (first_pos + OUTPUT_BITS)
        if spare_bits >= 0:
            rx_word = stream << spare_bits
        else:
            rx_word = stream >> -spare_bits if -spare_bits < OUTPUT_BITS else 0
        return rx_word.to_bytes(len(tx), "big")

    # the analogue side --------------------------------------------------------------------
    def pin_voltages_v(self) -> FloatArray:
        """Voltages on CH0..CH7 now, shape ``(8,)`` (before clipping)."""
        elapsed_ns = self.clock.monotonic_ns() - self._t_origin_ns
        index = max(0, math.floor(elapsed_ns * self.source_rate_hz / NS_PER_S))
        self._ensure_sample(index)
        pins: FloatArray = self._block_pins_v[index - self._block_start]
        return pins

    def convert(self, channel: int, single_ended: bool) -> int:
        """The 10-bit code the chip would produce for this input now.

        Parameters
        ----------
        channel:
            D2..D0: the channel, or for a pair the IN+ channel (IN- is ``channel ^ 1``).
        single_ended:
            The SGL/DIFF bit.
        """
        pins = self.pin_voltages_v()
        v = float(pins[channel])
        if not single_ended:
            v -= float(pins[channel ^ 1])
        self.conversions += 1
        return self.volts_to_code(v)

    def volts_to_code(self, v: float) -> int:
        """Ideal 10-bit transfer: ``floor(1024 · v / vref)`` clipped to 0..1023."""
        if not math.isfinite(v) or v <= 0:
            return 0
        return min(CODE_MAX, math.floor(v * CODE_COUNT / self.vref_v))

    def _ensure_sample(self, index: int) -> None:
        block_end = self._block_start + len(self._block_pins_v)
        if index < block_end:
            return
        max_catch_up = max(SOURCE_BLOCK_SAMPLES, round(MAX_CATCH_UP_S * self.source_rate_hz))
        start = block_end if index - block_end < max_catch_up else index
        n = max(SOURCE_BLOCK_SAMPLES, index - start + 1)
        emg_uv = np.asarray(self.source.generate(n, self.source_rate_hz), dtype=np.float64)
        if emg_uv.shape != (n, self.source.n_channels):
            raise ValueError(
                f"Mcp3008Sim: source returned shape {emg_uv.shape}, expected "
                f"({n}, {self.source.n_channels})"
            )
        pins = np.full((n, N_INPUTS), self.offset_v)
        pins[:, : emg_uv.shape[1]] += emg_uv * (UV_TO_V * self.frontend_gain)
        self._block_start = start
        self._block_pins_v = pins
