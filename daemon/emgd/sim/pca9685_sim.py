"""A register-level model of the NXP PCA9685 16-channel PWM controller, as an I²C target.

The model owns the 256-byte register file with its power-on values, the register pointer
and auto-increment (with the chip's two wrap rules), the MODE1 SLEEP/RESTART/AI behaviour,
PRE_SCALE write blocking, the ALL_LED fan-out, the NACK of reserved addresses, and the
derived outputs (PWM period, per-channel high time). It attaches to
:class:`emgd.sim.i2c_bus.SimI2CBus` and must not know about servos, angles or any driver:
what it exposes is what a logic analyser on the output pins would see.

Register map (datasheet Table 4)::

    00 MODE1     RESTART EXTCLK AI SLEEP SUB1 SUB2 SUB3 ALLCALL   reset 0x11
    01 MODE2     - - - INVRT OCH OUTDRV OUTNE1 OUTNE0             reset 0x04
    02..04 SUBADR1..3, 05 ALLCALLADR                              reset E2 E4 E8 E0
    06+4n LEDn_ON_L   ON[7:0]                                     reset 0x00
    07+4n LEDn_ON_H   - - - FULL_ON ON[11:8]                      reset 0x00
    08+4n LEDn_OFF_L  OFF[7:0]                                    reset 0x00
    09+4n LEDn_OFF_H  - - - FULL_OFF OFF[11:8]                    reset 0x10
    46..F9 reserved (not acknowledged)
    FA..FD ALL_LED_ON_L/H, ALL_LED_OFF_L/H (write-only, read 0)
    FE PRE_SCALE                                                  reset 0x1E
    FF TestMode (reserved: writes ignored here)

Not modelled: the OE pin and OUTNE, INVRT and OUTDRV (outputs are reported as the
non-inverted logic level), OCH = 1 timing, an external clock on EXTCLK (the bit is kept and
sticky, the frequency still comes from ``oscillator_hz``), sub-addresses, ALLCALL and the
general-call software reset (use :meth:`Pca9685Sim.power_cycle`), and the phase of the
counter (only high times are reported).
"""

from __future__ import annotations

from emgd.clock import Clock
from emgd.sim.i2c_bus import I2CNack

# ---- register addresses ------------------------------------------------------------------
REG_MODE1 = 0x00
REG_MODE2 = 0x01
REG_SUBADR1 = 0x02
REG_SUBADR2 = 0x03
REG_SUBADR3 = 0x04
REG_ALLCALLADR = 0x05
REG_LED0_ON_L = 0x06
REG_LED15_OFF_H = 0x45
BYTES_PER_LED = 4
N_CHANNELS = 16
REG_RESERVED_FIRST = 0x46
REG_RESERVED_LAST = 0xF9
REG_ALL_LED_ON_L = 0xFA
REG_ALL_LED_OFF_H = 0xFD
REG_PRE_SCALE = 0xFE
REG_TESTMODE = 0xFF

# ---- MODE1 bits -------------------------------------------------------------------------
MODE1_RESTART = 0x80
MODE1_EXTCLK = 0x40
MODE1_AI = 0x20
MODE1_SLEEP = 0x10
MODE1_ALLCALL = 0x01

# ---- LEDn_ON_H / LEDn_OFF_H -------------------------------------------------------------
LED_H_FULL = 0x10  # bit 4: full ON (in ON_H) / full OFF (in OFF_H)
LED_H_WRITABLE = 0x1F  # bits 7:5 are reserved and read 0
MODE2_WRITABLE = 0x1F  # bits 7:5 are reserved and read 0
MODE2_OCH = 0x08

# ---- power-on values --------------------------------------------------------------------
RESET_MODE1 = 0x11
RESET_MODE2 = 0x04
RESET_SUBADR = (0xE2, 0xE4, 0xE8)
RESET_ALLCALLADR = 0xE0
RESET_LED_OFF_H = 0x10
RESET_PRE_SCALE = 0x1E

# ---- timing and counter -----------------------------------------------------------------
COUNTS_PER_PERIOD = 4096
MIN_PRESCALE = 3  # the hardware will not load a smaller value
NOMINAL_OSCILLATOR_HZ = 25_000_000.0
OSCILLATOR_STARTUP_NS = 500_000  # "500 µs max. for the oscillator to be up and running"
US_PER_S = 1_000_000.0


def _is_led_register(register: int) -> bool:
    return REG_LED0_ON_L <= register <= REG_LED15_OFF_H


def _is_high_byte(register: int) -> bool:
    """ON_H or OFF_H of a channel (or of ALL_LED): odd offset inside a 4-byte group."""
    return (register - REG_LED0_ON_L) % 2 == 1


class Pca9685Sim:
    """A PCA9685 at the register level, answering the I²C protocol of :class:`SimI2CTarget`.

    Parameters
    ----------
    oscillator_hz:
        The internal oscillator. Real parts measure 23–27 MHz; set it off-nominal to test
        a driver's reference-clock calibration.
    clock:
        If given, outputs start :data:`OSCILLATOR_STARTUP_NS` after SLEEP is cleared;
        without a clock the oscillator is up at once.
    """

    def __init__(
        self, *, oscillator_hz: float = NOMINAL_OSCILLATOR_HZ, clock: Clock | None = None
    ) -> None:
        if not oscillator_hz > 0:
            raise ValueError(f"oscillator_hz must be positive, got {oscillator_hz}")
        self.oscillator_hz = oscillator_hz
        self._clock = clock
        self._registers = bytearray(256)
        self._pointer = 0
        #: True while outputs are stopped after a sleep, waiting for RESTART or a PWM write.
        self._halted = False
        self._awake_since_ns: int | None = None
        #: How many PRE_SCALE writes were dropped because SLEEP was 0.
        self.prescale_writes_blocked = 0
        self.power_cycle()

    # power ---------------------------------------------------------------------------
    def power_cycle(self) -> None:
        """Remove and restore power: every register to its reset value, pointer to 0."""
        regs = self._registers
        regs[:] = bytes(256)
        regs[REG_MODE1] = RESET_MODE1
        regs[REG_MODE2] = RESET_MODE2
        regs[REG_SUBADR1 : REG_SUBADR3 + 1] = bytes(RESET_SUBADR)
        regs[REG_ALLCALLADR] = RESET_ALLCALLADR
        for channel in range(N_CHANNELS):
            regs[REG_LED0_ON_L + BYTES_PER_LED * channel + 3] = RESET_LED_OFF_H
        regs[REG_PRE_SCALE] = RESET_PRE_SCALE
        self._pointer = REG_MODE1
        self._halted = False
        self._awake_since_ns = None

    # I²C target protocol -------------------------------------------------------------
    def write(self, data: bytes, *, stop: bool) -> None:
        """One write message: byte 0 sets the pointer, the rest are stored from it."""
        if not data:
            return  # address-only probe: acknowledged, nothing changes
        register = data[0]
        if REG_RESERVED_FIRST <= register <= REG_RESERVED_LAST:
            raise I2CNack(f"PCA9685: register 0x{register:02X} is reserved (not acknowledged)")
        self._pointer = register
        led_written = False
        for value in data[1:]:
            led_written |= self._store(self._pointer, value)
            self._advance()
        mode2 = self._registers[REG_MODE2]
        if led_written and (stop or mode2 & MODE2_OCH):
            # A PWM register write ends a pending restart: outputs run from the new values.
            self._registers[REG_MODE1] &= ~MODE1_RESTART & 0xFF
            self._halted = False

    def read(self, n_bytes: int) -> bytes:
        """Clock out ``n_bytes`` from the pointer (advancing only when MODE1.AI is set)."""
        out = bytearray()
        for _ in range(n_bytes):
            out.append(self._load(self._pointer))
            self._advance()
        return bytes(out)

    # register file -------------------------------------------------------------------
    def peek(self, register: int) -> int:
        """A register as the chip would return it, without touching the pointer."""
        if not 0 <= register <= 0xFF:
            raise ValueError(f"register 0x{register:X} outside 0x00..0xFF")
        return self._load(register)

    @property
    def pointer(self) -> int:
        """The register the next data byte goes to or comes from."""
        return self._pointer

    def _advance(self) -> None:
        if not self._registers[REG_MODE1] & MODE1_AI:
            return
        p = self._pointer
        if p in (REG_LED15_OFF_H, REG_PRE_SCALE, REG_TESTMODE):
            self._pointer = REG_MODE1
        else:
            self._pointer = p + 1

    def _load(self, register: int) -> int:
        if REG_ALL_LED_ON_L <= register <= REG_ALL_LED_OFF_H:
            return 0
        return self._registers[register]

    def _store(self, register: int, value: int) -> bool:
        """Store one data byte; return True when it was a PWM (LED) register."""
        regs = self._registers
        if register == REG_MODE1:
            self._store_mode1(value)
        elif register == REG_MODE2:
            regs[REG_MODE2] = value & MODE2_WRITABLE
        elif _is_led_register(register):
            regs[register] = value & LED_H_WRITABLE if _is_high_byte(register) else value
            return True
        elif REG_ALL_LED_ON_L <= register <= REG_ALL_LED_OFF_H:
            offset = register - REG_ALL_LED_ON_L
            masked = value & LED_H_WRITABLE if offset % 2 else value
            for channel in range(N_CHANNELS):
                regs[REG_LED0_ON_L + BYTES_PER_LED * channel + offset] = masked
            return True
        elif register == REG_PRE_SCALE:
            if regs[REG_MODE1] & MODE1_SLEEP:
                regs[REG_PRE_SCALE] = max(value, MIN_PRESCALE)
            else:
                self.prescale_writes_blocked += 1
        elif register == REG_TESTMODE:
            pass  # reserved; do not emulate test modes
        else:
            regs[register] = value  # SUBADR1..3, ALLCALLADR
        return False

    def _store_mode1(self, value: int) -> None:
        old = self._registers[REG_MODE1]
        was_asleep = bool(old & MODE1_SLEEP)
        sleep = bool(value & MODE1_SLEEP)
        restart = old & MODE1_RESTART
        if not was_asleep and sleep:
            # Oscillator stops. If PWM was running, remember that it can be restarted.
            if not self._halted:
                restart = MODE1_RESTART
            self._halted = True
            self._awake_since_ns = None
        elif was_asleep and not sleep:
            self._awake_since_ns = self._now_ns()
        elif not was_asleep and not sleep and value & MODE1_RESTART and restart:
            # Writing 1 to RESTART while awake restarts every channel and clears the bit.
            restart = 0
            self._halted = False
        # EXTCLK is sticky and can only be set while the chip sleeps.
        extclk = (old & MODE1_EXTCLK) | (value & MODE1_EXTCLK if was_asleep else 0)
        self._registers[REG_MODE1] = restart | extclk | (value & 0x3F)

    def _now_ns(self) -> int:
        return self._clock.monotonic_ns() if self._clock is not None else 0

    # derived outputs -----------------------------------------------------------------
    @property
    def prescale(self) -> int:
        """The PRE_SCALE register."""
        return self._registers[REG_PRE_SCALE]

    @property
    def period_s(self) -> float:
        """PWM period: ``4096·(PRE_SCALE + 1) / oscillator_hz``."""
        return COUNTS_PER_PERIOD * (self.prescale + 1) / self.oscillator_hz

    @property
    def frequency_hz(self) -> float:
        """PWM frequency, the inverse of :attr:`period_s`."""
        return 1.0 / self.period_s

    @property
    def oscillator_running(self) -> bool:
        """SLEEP is 0 and (with a clock) the 500 µs start-up has passed."""
        if self._registers[REG_MODE1] & MODE1_SLEEP or self._awake_since_ns is None:
            return False
        return self._now_ns() - self._awake_since_ns >= (
            OSCILLATOR_STARTUP_NS if self._clock is not None else 0
        )

    @property
    def outputs_running(self) -> bool:
        """The oscillator runs and no restart is pending."""
        return self.oscillator_running and not self._halted

    def led_registers(self, channel: int) -> tuple[int, int, int, int]:
        """``(ON_L, ON_H, OFF_L, OFF_H)`` of a channel."""
        base = self._led_base(channel)
        regs = self._registers
        return regs[base], regs[base + 1], regs[base + 2], regs[base + 3]

    def counts(self, channel: int) -> int:
        """High time of a channel in counts of 4096, from its registers alone.

        0 when full OFF (which wins over full ON), 4096 when full ON, else
        ``(OFF − ON) mod 4096``.
        """
        on_l, on_h, off_l, off_h = self.led_registers(channel)
        if off_h & LED_H_FULL:
            return 0
        if on_h & LED_H_FULL:
            return COUNTS_PER_PERIOD
        on = ((on_h & 0x0F) << 8) | on_l
        off = ((off_h & 0x0F) << 8) | off_l
        return (off - on) % COUNTS_PER_PERIOD

    def pulse_us(self, channel: int) -> float | None:
        """High time of the pulse on a channel's pin in µs, or None when the pin stays low.

        None when the channel is full OFF, its high time is zero, the oscillator sleeps
        (or is still starting), or outputs are stopped waiting for RESTART. A full-ON
        channel returns the whole period.
        """
        high_counts = self.counts(channel)
        if high_counts == 0 or not self.outputs_running:
            return None
        return high_counts * self.period_s * US_PER_S / COUNTS_PER_PERIOD

    def _led_base(self, channel: int) -> int:
        if not 0 <= channel < N_CHANNELS:
            raise ValueError(f"PCA9685 channel {channel} outside 0..{N_CHANNELS - 1}")
        return REG_LED0_ON_L + BYTES_PER_LED * channel
