"""The servo board: five finger servos on an NXP PCA9685, driven through ``adafruit_pca9685``.

This module owns bringing the chip up at the servo frame rate, turning five finger angles
into one I²C write of PWM counts, releasing and re-energising the servos, and reading the
counts back. It uses :mod:`emgd.hw.servo_math` for every number and the Adafruit library
(with its ``I2CDevice``) for every bus access, on an injected ``busio.I2C``-like object, so
the same code runs on a Pi (:class:`emgd.hw.i2c_smbus.SMBus2I2C` or Blinka) and on
:class:`emgd.sim.i2c_bus.SimI2CBus`. It must not decide angles, limits or timing (that is
the safety layer and the runner) and it never sleeps except inside the library's own
``frequency`` setter.

Register layout written per channel (``pwm_regs`` element n at 0x06 + 4n, AI on)::

    byte  0        1        2         3
        ON_L     ON_H     OFF_L     OFF_H
        0x00     0x00     OFF[7:0]  000 F OFF[11:8]     F = full OFF (bit 4)

A contiguous block of five channels starting at channel c is one 21-byte write:
``[0x06 + 4c, (ON_L, ON_H, OFF_L, OFF_H) × 5]``.

Start-up and what the outputs see
---------------------------------
The library's constructor probes the address and writes MODE1 = 0x00, which it cannot be
talked out of. That write wakes a sleeping chip and clears AI and ALLCALL, but on a chip
that is already running it leaves the oscillator and every LED register alone, so a
holding servo keeps its pulse. Then:

* **cold start** (PRE_SCALE differs from the wanted value, or a restart is pending, e.g.
  after power-up): the library's ``frequency`` setter runs (sleep, PRE_SCALE, wake, 5 ms,
  RESTART|AI). Outputs stop for about 5 ms; after power-up they are all full OFF anyway.
* **warm start** (daemon restart while the hand holds a pose: PRE_SCALE already right and
  no restart pending): only MODE1 = AI (0x20) is written. The oscillator never stops and
  the servos keep their last pulses without a glitch.

Both paths then read PRE_SCALE and MODE1 back and refuse a chip that does not hold them.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

from emgd.errors import ConfigError, HardwareInitError, HardwareIOError, MissingDependencyError
from emgd.errors import describe_os_error as _describe
from emgd.hw.interfaces import I2CBus
from emgd.hw.servo_math import (
    DEFAULT_REFERENCE_CLOCK_HZ,
    MAX_COUNT,
    ServoCalibration,
    angle_to_pulse_us,
    frequency_for,
    prescale_for,
    pulse_us_to_counts,
)

# ---- register map (the parts this driver touches) ------------------------------------------
REG_MODE1 = 0x00
REG_LED0_ON_L = 0x06
REG_PRE_SCALE = 0xFE
BYTES_PER_CHANNEL = 4
MODE1_RESTART = 0x80
MODE1_AI = 0x20
MODE1_SLEEP = 0x10
#: OFF register value with the full-OFF bit (OFF_H bit 4) set: the channel stays low.
FULL_OFF = 0x1000
COUNT_MASK = 0x0FFF

DEFAULT_ADDRESS = 0x40
DEFAULT_FREQUENCY_HZ = 50.0
MIN_ADDRESS = 0x08
MAX_ADDRESS = 0x77


def _import_pca9685() -> Any:
    try:
        adafruit_pca9685 = importlib.import_module("adafruit_pca9685")
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise MissingDependencyError(
            f"the PCA9685 servo board needs adafruit-circuitpython-pca9685 ({exc}); "
            "install emgd with its default dependencies"
        ) from exc
    return adafruit_pca9685


class ServoBoard:
    """Five (or any number of) finger servos on one PCA9685.

    Parameters
    ----------
    i2c:
        A ``busio.I2C``-like bus (see :class:`emgd.hw.interfaces.I2CBus`).
    servos:
        One calibration per finger, in finger order (thumb, index, middle, ring, little);
        channels must be distinct.
    address:
        7-bit I²C address of the chip (0x40 with no address jumpers).
    frequency_hz:
        Servo frame rate; the chip's actual rate is set by the integer PRE_SCALE and is
        available as :attr:`frequency_hz`.
    reference_clock_hz:
        The chip's oscillator, nominally 25 MHz; calibrate it per board for exact pulses.

    Raises
    ------
    ConfigError
        Bad address, no servos, duplicate channels or an unreachable frequency.
    HardwareInitError
        Nothing answers at ``address``, a transfer fails, or the registers do not read back.
    """

    def __init__(
        self,
        i2c: I2CBus,
        servos: Sequence[ServoCalibration],
        *,
        address: int = DEFAULT_ADDRESS,
        frequency_hz: float = DEFAULT_FREQUENCY_HZ,
        reference_clock_hz: float = DEFAULT_REFERENCE_CLOCK_HZ,
    ) -> None:
        if not MIN_ADDRESS <= address <= MAX_ADDRESS:
            raise ConfigError(
                f"PCA9685 I2C address 0x{address:02X} outside 0x{MIN_ADDRESS:02X}.."
                f"0x{MAX_ADDRESS:02X}"
            )
        if not servos:
            raise ConfigError("servo board: at least one servo calibration is needed")
        channels = [cal.channel for cal in servos]
        if len(set(channels)) != len(channels):
            raise ConfigError(f"servo board: servo channels {channels} are not distinct")
        try:
            self._prescale = prescale_for(frequency_hz, reference_clock_hz)
        except ValueError as exc:
            raise ConfigError(f"servo board: {exc}") from exc
        self._servos = tuple(servos)
        self._address = address
        self._reference_clock_hz = reference_clock_hz
        self._frequency_hz = frequency_for(self._prescale, reference_clock_hz)
        first = min(channels)
        self._block_first: int | None = (
            first if sorted(channels) == list(range(first, first + len(channels))) else None
        )
        self._last_counts: tuple[int, ...] | None = None
        self._closed = False
        self.warm_start = False
        library = _import_pca9685()
        try:
            # Probe + MODE1 = 0x00 (see the module docstring).
            self._pca = library.PCA9685(
                i2c, address=address, reference_clock_speed=reference_clock_hz
            )
            self._start_oscillator()
        except ValueError as exc:
            if "No I2C device" not in str(exc):
                raise
            raise HardwareInitError(
                f"PCA9685: no device answers at I2C address 0x{address:02X} "
                "(check SDA/SCL wiring, VCC and the A0-A5 address jumpers)"
            ) from exc
        except OSError as exc:
            if isinstance(exc, HardwareInitError):
                raise
            raise HardwareInitError(
                f"PCA9685 at I2C address 0x{address:02X}: initialisation transfer failed: "
                f"{_describe(exc)}"
            ) from exc

    # start-up ------------------------------------------------------------------------
    def _start_oscillator(self) -> None:
        pca = self._pca
        mode1 = int(pca.mode1_reg)
        prescale = int(pca.prescale_reg)
        if prescale == self._prescale and not mode1 & (MODE1_RESTART | MODE1_SLEEP):
            pca.mode1_reg = mode1 | MODE1_AI  # warm start: outputs keep running
            self.warm_start = True
        else:
            pca.frequency = self._frequency_hz  # cold start: the library's sleep/wake dance
        prescale = int(pca.prescale_reg)
        mode1 = int(pca.mode1_reg)
        if prescale != self._prescale:
            raise HardwareInitError(
                f"PCA9685 at I2C address 0x{self._address:02X}: PRE_SCALE (0xFE) reads "
                f"0x{prescale:02X}, wrote 0x{self._prescale:02X}"
            )
        if mode1 & (MODE1_SLEEP | MODE1_AI) != MODE1_AI:
            raise HardwareInitError(
                f"PCA9685 at I2C address 0x{self._address:02X}: MODE1 (0x00) reads "
                f"0x{mode1:02X}, expected AI set and SLEEP clear"
            )

    # properties ----------------------------------------------------------------------
    @property
    def address(self) -> int:
        """7-bit I²C address."""
        return self._address

    @property
    def prescale(self) -> int:
        """PRE_SCALE value in use."""
        return self._prescale

    @property
    def frequency_hz(self) -> float:
        """Actual PWM frequency from the prescale and the reference clock."""
        return self._frequency_hz

    @property
    def servos(self) -> tuple[ServoCalibration, ...]:
        """Calibrations in finger order."""
        return self._servos

    @property
    def last_counts(self) -> tuple[int, ...] | None:
        """OFF counts last written by :meth:`write_angles` or :meth:`write_counts` (None
        before the first): the pulses the servos hold now."""
        return self._last_counts

    # output --------------------------------------------------------------------------
    def angles_to_counts(self, angles_deg: Sequence[float]) -> tuple[int, ...]:
        """12-bit OFF counts for one angle per servo (pure arithmetic, no I/O).

        Raises
        ------
        ValueError
            Wrong number of angles or a non-finite angle.
        """
        if len(angles_deg) != len(self._servos):
            raise ValueError(
                f"servo board: got {len(angles_deg)} angles for {len(self._servos)} servos"
            )
        counts = []
        for angle_deg, cal in zip(angles_deg, self._servos, strict=True):
            angle = float(angle_deg)
            if not math.isfinite(angle):
                raise ValueError(f"servo channel {cal.channel}: angle {angle!r} is not finite")
            counts.append(pulse_us_to_counts(angle_to_pulse_us(angle, cal), self._frequency_hz))
        return tuple(counts)

    def write_angles(self, angles_deg: Sequence[float]) -> tuple[int, ...]:
        """Command one flexion angle per servo; return the OFF counts written.

        All angles are checked before any byte is sent. Contiguous channels go out as one
        auto-increment write, otherwise one write per channel.

        Raises
        ------
        ValueError
            Wrong number of angles or a non-finite angle (nothing is written).
        HardwareIOError
            The transfer failed (names the address and errno).
        """
        counts = self.angles_to_counts(angles_deg)
        self._write_off_values(counts)
        self._last_counts = counts
        return counts

    def release(self) -> None:
        """Set the full-OFF bit on every servo channel: no pulses, the servos go limp."""
        self._write_off_values(tuple(FULL_OFF for _ in self._servos))

    def hold(self) -> tuple[int, ...] | None:
        """Re-send the last commanded counts (re-energise after :meth:`release`).

        The PCA9685 keeps pulsing on its own, so holding a pose needs no traffic; this is
        for bringing released servos back to the last pose. Returns the counts sent, or
        None when nothing was commanded yet (nothing is written then).
        """
        if self._last_counts is None:
            return None
        self._write_off_values(self._last_counts)
        return self._last_counts

    def read_counts(self) -> tuple[int, ...]:
        """Read back the OFF registers of the servo channels, in finger order.

        Each value is the 12-bit OFF count, or :data:`FULL_OFF` (4096) for a channel whose
        full-OFF bit is set.
        """
        self._check_open()
        off_values: dict[int, int] = {}
        try:
            if self._block_first is not None:
                n = len(self._servos)
                buf = bytearray(1 + BYTES_PER_CHANNEL * n)
                buf[0] = REG_LED0_ON_L + BYTES_PER_CHANNEL * self._block_first
                with self._pca.i2c_device as device:
                    device.write_then_readinto(buf, buf, out_end=1, in_start=1)
                for k in range(n):
                    base = 1 + BYTES_PER_CHANNEL * k
                    off_values[self._block_first + k] = buf[base + 2] | (buf[base + 3] << 8)
            else:
                for cal in self._servos:
                    off_values[cal.channel] = int(self._pca.pwm_regs[cal.channel][1])
        except OSError as exc:
            raise self._io_error("read of the LED registers", exc) from exc
        return tuple(
            FULL_OFF if off_values[cal.channel] & FULL_OFF else off_values[cal.channel] & COUNT_MASK
            for cal in self._servos
        )

    def close(self, release: bool = False) -> None:
        """Stop using the board. The chip keeps its last pulses unless ``release``."""
        if self._closed:
            return
        try:
            if release:
                self.release()
        finally:
            self._closed = True

    def write_counts(self, counts: Sequence[int]) -> None:
        """Write raw 12-bit OFF counts, one per servo in finger order (servo end-point
        calibration; normal output goes through :meth:`write_angles`)."""
        self._write_off_values(counts)
        self._last_counts = tuple(int(c) for c in counts)

    # internals -----------------------------------------------------------------------
    def _write_off_values(self, off_values: Sequence[int]) -> None:
        """Write ``(ON = 0, OFF = value)`` for each servo, values in finger order."""
        self._check_open()
        for cal, value in zip(self._servos, off_values, strict=True):
            if not (0 <= value <= MAX_COUNT or value == FULL_OFF):
                raise ValueError(f"servo channel {cal.channel}: OFF value {value} not 12-bit")
        by_channel = {
            cal.channel: value for cal, value in zip(self._servos, off_values, strict=True)
        }
        try:
            if self._block_first is not None:
                buf = bytearray([REG_LED0_ON_L + BYTES_PER_CHANNEL * self._block_first])
                for channel in range(self._block_first, self._block_first + len(by_channel)):
                    value = by_channel[channel]
                    buf += bytes((0x00, 0x00, value & 0xFF, value >> 8))
                with self._pca.i2c_device as device:
                    device.write(buf)
            else:
                for cal in self._servos:
                    self._pca.pwm_regs[cal.channel] = (0, by_channel[cal.channel])
        except OSError as exc:
            channels = ",".join(str(cal.channel) for cal in self._servos)
            raise self._io_error(f"write of channels {channels}", exc) from exc

    def _io_error(self, what: str, exc: OSError) -> HardwareIOError:
        return HardwareIOError(
            f"PCA9685 at I2C address 0x{self._address:02X}: {what} failed: {_describe(exc)}"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise HardwareIOError(
                f"PCA9685 at I2C address 0x{self._address:02X}: board is closed",
            )
