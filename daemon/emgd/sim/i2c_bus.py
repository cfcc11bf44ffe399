"""A simulated I²C bus with the ``busio.I2C`` interface, and the contract for targets on it.

The bus owns addressing, the bus lock and the transfer log: devices are attached by 7-bit
address, an absent address is not acknowledged (``OSError`` with ``ENXIO``, as the kernel
reports it), and each call is one transaction (START … STOP; the combined write-then-read
uses a repeated START). Fault injection makes the next transfers NACK. The bus does not
interpret register contents (that is the target's job) and does not model bus timing,
clock stretching or the general-call address.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import NoReturn, Protocol

#: Usable 7-bit target addresses; 0x00–0x07 and 0x78–0x7F are reserved by the I²C spec.
MIN_TARGET_ADDRESS = 0x08
MAX_TARGET_ADDRESS = 0x77


class I2CNack(Exception):
    """Raised by a simulated target to NACK a data byte (the bus turns it into OSError)."""


class SimI2CTarget(Protocol):
    """A chip model answering on a simulated I²C bus.

    ``write`` receives the data bytes of one write message after the address was
    acknowledged (empty for a probe); ``stop`` is True when a STOP follows (False before a
    repeated START). ``read`` returns ``n_bytes`` clocked out by the target. Either raises
    :class:`I2CNack` to refuse a byte; bytes before it have been taken.
    """

    def write(self, data: bytes, *, stop: bool) -> None: ...

    def read(self, n_bytes: int) -> bytes: ...


class TransferKind(Enum):
    """Which ``busio.I2C`` call produced a transfer."""

    WRITE = "write"
    READ = "read"
    WRITE_READ = "write_read"


@dataclass(frozen=True, slots=True)
class I2CTransfer:
    """One transaction as seen on the wires.

    Attributes
    ----------
    kind:
        The call that produced it.
    address:
        7-bit target address.
    tx:
        Bytes written after the address (empty for a probe or a plain read).
    rx:
        Bytes read (empty for a write or when the transfer failed).
    error:
        ``errno`` of the NACK that ended the transfer, or None when it completed.
    """

    kind: TransferKind
    address: int
    tx: bytes
    rx: bytes
    error: int | None = None


def _nack(code: int, address: int, what: str) -> OSError:
    return OSError(code, f"{os.strerror(code)}: I2C address 0x{address:02X} {what}")


class SimI2CBus:
    """A ``busio.I2C`` look-alike with simulated targets behind it.

    Parameters
    ----------
    log_limit:
        How many transfers to keep in :attr:`log` (oldest dropped first); 0 keeps none.
    """

    def __init__(self, log_limit: int = 0) -> None:
        if log_limit < 0:
            raise ValueError(f"log_limit must be >= 0, got {log_limit}")
        self.log: deque[I2CTransfer] = deque(maxlen=log_limit)
        self.transfers_total = 0
        self._targets: dict[int, SimI2CTarget] = {}
        self._locked = False
        self._nacks_pending = 0

    # wiring --------------------------------------------------------------------------
    def attach(self, address: int, device: SimI2CTarget) -> None:
        """Connect ``device`` at 7-bit ``address`` (one device per address)."""
        if not MIN_TARGET_ADDRESS <= address <= MAX_TARGET_ADDRESS:
            raise ValueError(
                f"I2C address 0x{address:02X} outside the 7-bit target range "
                f"0x{MIN_TARGET_ADDRESS:02X}..0x{MAX_TARGET_ADDRESS:02X}"
            )
        if address in self._targets:
            raise ValueError(f"I2C address 0x{address:02X} already has a device attached")
        self._targets[address] = device

    def detach(self, address: int) -> None:
        """Disconnect the device at ``address`` (it stops acknowledging)."""
        if address not in self._targets:
            raise ValueError(f"no device attached at I2C address 0x{address:02X}")
        del self._targets[address]

    def inject_nack(self, n_transfers: int = 1) -> None:
        """Make the next ``n_transfers`` transfers fail with ``EREMOTEIO`` (address NACK)."""
        if n_transfers < 0:
            raise ValueError(f"n_transfers must be >= 0, got {n_transfers}")
        self._nacks_pending += n_transfers

    def clear_log(self) -> None:
        """Forget the logged transfers."""
        self.log.clear()

    def scan(self) -> list[int]:
        """Addresses that acknowledge (sorted), like ``busio.I2C.scan``."""
        self._require_lock("scan")
        return sorted(self._targets)

    # busio.I2C API -------------------------------------------------------------------
    def try_lock(self) -> bool:
        """Take the bus lock; False if it is already held (not reentrant)."""
        if self._locked:
            return False
        self._locked = True
        return True

    def unlock(self) -> None:
        """Release the bus lock."""
        if not self._locked:
            raise RuntimeError("simulated I2C bus: unlock() without a held lock")
        self._locked = False

    def writeto(
        self, address: int, buffer: bytes | bytearray, *, start: int = 0, end: int | None = None
    ) -> None:
        """Write ``buffer[start:end]`` to ``address`` then STOP; an empty write is a probe."""
        self._require_lock("writeto")
        data = bytes(buffer[start : len(buffer) if end is None else end])
        target = self._begin(TransferKind.WRITE, address, data)
        try:
            target.write(data, stop=True)
        except I2CNack as exc:
            self._fail(TransferKind.WRITE, address, data, errno.EREMOTEIO, str(exc))
        self._record(I2CTransfer(TransferKind.WRITE, address, data, b""))

    def readfrom_into(
        self, address: int, buffer: bytearray, *, start: int = 0, end: int | None = None
    ) -> None:
        """Read ``end − start`` bytes from ``address`` into ``buffer[start:end]``."""
        self._require_lock("readfrom_into")
        stop = len(buffer) if end is None else end
        target = self._begin(TransferKind.READ, address, b"")
        try:
            data = self._read(target, stop - start)
        except I2CNack as exc:
            self._fail(TransferKind.READ, address, b"", errno.EREMOTEIO, str(exc))
        buffer[start:stop] = data
        self._record(I2CTransfer(TransferKind.READ, address, b"", data))

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
        """Write, repeated START, read. ``buffer_out`` may be ``buffer_in``: the out slice
        is copied before anything is stored in the in slice."""
        self._require_lock("writeto_then_readfrom")
        data_out = bytes(buffer_out[out_start : len(buffer_out) if out_end is None else out_end])
        stop = len(buffer_in) if in_end is None else in_end
        kind = TransferKind.WRITE_READ
        target = self._begin(kind, address, data_out)
        try:
            target.write(data_out, stop=False)
            data_in = self._read(target, stop - in_start)
        except I2CNack as exc:
            self._fail(kind, address, data_out, errno.EREMOTEIO, str(exc))
        buffer_in[in_start:stop] = data_in
        self._record(I2CTransfer(kind, address, data_out, data_in))

    def deinit(self) -> None:
        """Accepted for interface parity with ``busio.I2C``."""

    # internals -----------------------------------------------------------------------
    def _require_lock(self, call: str) -> None:
        if not self._locked:
            raise RuntimeError(f"simulated I2C bus: {call}() called without holding the bus lock")

    def _begin(self, kind: TransferKind, address: int, tx: bytes) -> SimI2CTarget:
        if self._nacks_pending:
            self._nacks_pending -= 1
            self._fail(kind, address, tx, errno.EREMOTEIO, "NACK (injected fault)")
        target = self._targets.get(address)
        if target is None:
            self._fail(kind, address, tx, errno.ENXIO, "address not acknowledged")
        return target

    def _read(self, target: SimI2CTarget, n_bytes: int) -> bytes:
        if n_bytes < 0:
            raise ValueError(f"read of {n_bytes} bytes (end before start)")
        data = bytes(target.read(n_bytes))
        if len(data) != n_bytes:
            raise AssertionError(f"target returned {len(data)} bytes for {n_bytes} requested")
        return data

    def _fail(self, kind: TransferKind, address: int, tx: bytes, code: int, what: str) -> NoReturn:
        self._record(I2CTransfer(kind, address, tx, b"", code))
        raise _nack(code, address, what)

    def _record(self, transfer: I2CTransfer) -> None:
        self.transfers_total += 1
        self.log.append(transfer)

    def transfers(self, kinds: Iterable[TransferKind] | None = None) -> list[I2CTransfer]:
        """The logged transfers, optionally only those of the given kinds."""
        if kinds is None:
            return list(self.log)
        wanted = set(kinds)
        return [t for t in self.log if t.kind in wanted]
