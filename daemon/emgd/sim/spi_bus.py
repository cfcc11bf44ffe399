"""A simulated SPI bus with py-spidev's ``SpiDev`` interface, wired to one chip model.

The bus owns the CS line: every ``xfer2``/``xfer`` call is one CS-low window, and
``xfer_windows`` runs several windows in one call (what one ``SPI_IOC_MESSAGE(N)`` ioctl
does on Linux). It checks mode and clock speed against what the chip accepts and keeps a
log of windows for byte-level tests. It does not model timing inside a window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from emgd.errors import HardwareIOError


class SpiChip(Protocol):
    """A chip model behind a simulated SPI bus."""

    #: SPI modes (0..3) the chip accepts.
    allowed_modes: frozenset[int]
    #: Highest SCLK the chip is specified for, in Hz.
    max_sclk_hz: int

    def transfer(self, tx: bytes) -> bytes:
        """Clock ``tx`` in during one CS-low window; return the bytes clocked out."""
        ...


@dataclass(frozen=True, slots=True)
class SpiWindow:
    """One CS-low window as seen on the wires."""

    tx: bytes
    rx: bytes
    speed_hz: int
    mode: int


class SimSpiDev:
    """A ``spidev.SpiDev`` look-alike whose far end is ``chip``.

    Parameters
    ----------
    chip:
        The chip model that answers each CS window.
    log_limit:
        How many windows to keep in :attr:`log` (oldest dropped first); 0 keeps none.
    """

    def __init__(self, chip: SpiChip, log_limit: int = 0) -> None:
        self.chip = chip
        self.mode = 0
        self.max_speed_hz = 125_000_000  # what the Pi device tree sets; drivers must lower it
        self.bits_per_word = 8
        self.cshigh = False
        self.lsbfirst = False
        self.closed = False
        self.log: list[SpiWindow] = []
        self._log_limit = log_limit
        self.windows_total = 0

    # py-spidev API -------------------------------------------------------------------
    def open(self, bus: int, device: int) -> None:
        """Accepted for interface parity; the simulated bus is always open."""
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def fileno(self) -> int:
        """There is no file descriptor behind a simulated bus."""
        raise OSError("simulated SPI bus has no file descriptor")

    def xfer2(
        self,
        values: list[int],
        speed_hz: int = 0,
        delay_usecs: int = 0,
        bits_per_word: int = 0,
    ) -> list[int]:
        rx = self._window(bytes(values), speed_hz)
        # py-spidev overwrites the list it was given and returns it.
        values[:] = list(rx)
        return values

    def xfer(
        self,
        values: list[int],
        speed_hz: int = 0,
        delay_usecs: int = 0,
        bits_per_word: int = 0,
    ) -> list[int]:
        return self.xfer2(values, speed_hz, delay_usecs, bits_per_word)

    def readbytes(self, n: int) -> list[int]:
        return list(self._window(bytes(n), 0))

    def writebytes(self, values: list[int]) -> None:
        self._window(bytes(values), 0)

    # multi-window extension (WindowedSpiBus) -------------------------------------------
    def xfer_windows(
        self, windows: Sequence[bytes], speed_hz: int = 0, delay_usecs: int = 0
    ) -> list[bytes]:
        return [self._window(bytes(w), speed_hz) for w in windows]

    # internals -------------------------------------------------------------------------
    def _window(self, tx: bytes, speed_hz: int) -> bytes:
        if self.closed:
            raise HardwareIOError("simulated SPI bus: transfer on a closed bus")
        speed = speed_hz or self.max_speed_hz
        if self.mode not in self.chip.allowed_modes:
            raise HardwareIOError(
                f"simulated SPI bus: {type(self.chip).__name__} does not answer in SPI mode "
                f"{self.mode} (accepts {sorted(self.chip.allowed_modes)})"
            )
        if speed > self.chip.max_sclk_hz:
            raise HardwareIOError(
                f"simulated SPI bus: SCLK {speed} Hz exceeds {type(self.chip).__name__}'s "
                f"{self.chip.max_sclk_hz} Hz"
            )
        if self.bits_per_word != 8:
            raise HardwareIOError(f"simulated SPI bus: bits_per_word {self.bits_per_word} != 8")
        rx = self.chip.transfer(tx)
        if len(rx) != len(tx):
            raise AssertionError(f"chip model returned {len(rx)} bytes for {len(tx)} clocked")
        self.windows_total += 1
        if self._log_limit:
            self.log.append(SpiWindow(tx, rx, speed, self.mode))
            if len(self.log) > self._log_limit:
                del self.log[0]
        return rx
