"""A real I²C bus for the Adafruit drivers without Blinka: ``busio.I2C`` over smbus2.

This module owns opening ``/dev/i2c-N``, the bus lock the Adafruit ``I2CDevice`` spins on,
and translating each ``busio.I2C`` call into one kernel transaction: writes and combined
write-then-read go through ``I2C_RDWR`` (repeated START, no STOP in between), the empty
probe write through an SMBus quick command. NACKs surface as the kernel's ``OSError``
(``EREMOTEIO`` or ``ENXIO``), which is what ``I2CDevice`` expects; this module must not
retry, sleep or interpret register contents. The bus clock is set in ``config.txt``
(``dtparam=i2c_arm_baudrate=…``), not here. smbus2 is imported only when the adapter is
built.
"""

from __future__ import annotations

import errno
import importlib
import threading
from collections.abc import Callable
from typing import Any, Protocol

from emgd.errors import HardwareInitError, MissingDependencyError

DEFAULT_BUS_NUMBER = 1
DEV_PATH_TEMPLATE = "/dev/i2c-{}"


class SMBusLike(Protocol):
    """The parts of ``smbus2.SMBus`` this adapter uses."""

    def i2c_rdwr(self, *i2c_msgs: Any) -> None: ...

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None: ...

    def close(self) -> None: ...


def _import_smbus2() -> Any:
    try:
        smbus2 = importlib.import_module("smbus2")
    except ImportError as exc:
        raise MissingDependencyError(
            f"the I2C bus needs the smbus2 package ({exc}); install emgd with its default "
            "dependencies (pip install smbus2)"
        ) from exc
    return smbus2


def _slice_end(buffer_len: int, end: int | None) -> int:
    return buffer_len if end is None else end


class SMBus2I2C:
    """``busio.I2C`` interface on a Linux I²C adapter, via smbus2.

    Parameters
    ----------
    bus_number:
        N in ``/dev/i2c-N`` (1 is the Pi's GPIO 2/3 header bus).
    smbus_factory:
        Builds the SMBus object from ``bus_number``; defaults to ``smbus2.SMBus``. Tests
        inject a fake here.

    Raises
    ------
    MissingDependencyError
        smbus2 is not installed.
    HardwareInitError
        ``/dev/i2c-N`` is missing (I²C not enabled) or not accessible (group ``i2c``).
    """

    def __init__(
        self,
        bus_number: int = DEFAULT_BUS_NUMBER,
        *,
        smbus_factory: Callable[[int], SMBusLike] | None = None,
    ) -> None:
        self._smbus2 = _import_smbus2()
        factory: Callable[[int], SMBusLike] = (
            self._smbus2.SMBus if smbus_factory is None else smbus_factory
        )
        path = DEV_PATH_TEMPLATE.format(bus_number)
        self.bus_number = bus_number
        self._lock = threading.Lock()
        try:
            self._bus: SMBusLike | None = factory(bus_number)
        except FileNotFoundError as exc:
            raise HardwareInitError(
                f"I2C bus {path} does not exist: enable I2C with 'dtparam=i2c_arm=on' in "
                "/boot/firmware/config.txt and load the i2c-dev module (modprobe i2c-dev)"
            ) from exc
        except PermissionError as exc:
            raise HardwareInitError(
                f"I2C bus {path}: permission denied; add the service user to the 'i2c' group"
            ) from exc
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            raise HardwareInitError(f"I2C bus {path}: cannot open ({code}: {exc})") from exc

    # lock ----------------------------------------------------------------------------
    def try_lock(self) -> bool:
        """Take the bus lock without blocking; False if it is held (not reentrant)."""
        return self._lock.acquire(blocking=False)

    def unlock(self) -> None:
        """Release the bus lock."""
        if not self._lock.locked():
            raise RuntimeError(f"I2C bus {self.bus_number}: unlock() without a held lock")
        self._lock.release()

    # transfers -----------------------------------------------------------------------
    def writeto(
        self, address: int, buffer: bytes | bytearray, *, start: int = 0, end: int | None = None
    ) -> None:
        """One write with STOP; an empty slice is an address-only probe (quick command)."""
        bus = self._open_bus()
        data = bytes(buffer[start : _slice_end(len(buffer), end)])
        if data:
            bus.i2c_rdwr(self._smbus2.i2c_msg.write(address, data))
        else:
            bus.write_quick(address)

    def readfrom_into(
        self, address: int, buffer: bytearray, *, start: int = 0, end: int | None = None
    ) -> None:
        """Read ``end − start`` bytes into ``buffer[start:end]`` in one transaction."""
        bus = self._open_bus()
        stop = _slice_end(len(buffer), end)
        n_bytes = stop - start
        if n_bytes <= 0:
            raise ValueError(f"I2C read from 0x{address:02X}: empty range {start}..{stop}")
        message = self._smbus2.i2c_msg.read(address, n_bytes)
        bus.i2c_rdwr(message)
        buffer[start:stop] = bytes(message)

    def writeto_then_readfrom(
        self,
        address: int,
        buffer_out: bytes | bytearray,
        buffer_in: bytearray,
        *,
        out_start: int = 0,
        out_end: int | None = None,
        in_start: int = 0,
        in_end: int | None = None,
    ) -> None:
        """Write then read with a repeated START (one ``I2C_RDWR``).

        The out slice is copied before the transfer because ``buffer_out`` and
        ``buffer_in`` may be the same bytearray.
        """
        bus = self._open_bus()
        data_out = bytes(buffer_out[out_start : _slice_end(len(buffer_out), out_end)])
        stop = _slice_end(len(buffer_in), in_end)
        n_bytes = stop - in_start
        if n_bytes <= 0:
            raise ValueError(f"I2C read from 0x{address:02X}: empty range {in_start}..{stop}")
        i2c_msg = self._smbus2.i2c_msg
        read_message = i2c_msg.read(address, n_bytes)
        if data_out:
            bus.i2c_rdwr(i2c_msg.write(address, data_out), read_message)
        else:
            bus.i2c_rdwr(read_message)
        buffer_in[in_start:stop] = bytes(read_message)

    def close(self) -> None:
        """Close ``/dev/i2c-N`` (idempotent)."""
        if self._bus is not None:
            self._bus.close()
            self._bus = None

    def deinit(self) -> None:
        """``busio.I2C`` name for :meth:`close`."""
        self.close()

    def _open_bus(self) -> SMBusLike:
        if self._bus is None:
            raise RuntimeError(f"I2C bus {self.bus_number} is closed")
        return self._bus
