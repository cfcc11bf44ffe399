"""The Linux SPI adapter: open ``/dev/spidevB.D`` with py-spidev and batch CS windows.

This module owns the real SPI bus on a Raspberry Pi: it imports ``spidev`` lazily, turns a
missing package, a missing device node or a permission problem into one-line errors that say
what to do, always sets mode, word size and clock (the Pi device tree leaves 125 MHz), and
implements :class:`~emgd.hw.interfaces.WindowedSpiBus` by running several CS-low windows in
one ``SPI_IOC_MESSAGE(N)`` ioctl, falling back to one ``xfer2`` per window when the kernel
refuses. It knows nothing about any chip: it must not interpret the bytes it moves.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emgd.errors import (
    HardwareInitError,
    HardwareIOError,
    MissingDependencyError,
    describe_os_error,
)

# --- kernel ABI (include/uapi/linux/spi/spidev.h) -----------------------------------------
#
# struct spi_ioc_transfer, 32 bytes, same layout on 32- and 64-bit userland:
#
#   offset  size  field
#   ------  ----  -------------------------------------------------------------
#        0     8  tx_buf            user address of the bytes to send (u64)
#        8     8  rx_buf            user address the received bytes go to (u64)
#       16     4  len               bytes in this transfer
#       20     4  speed_hz          SCLK for this transfer (0 = device default)
#       24     2  delay_usecs       wait after the transfer, before CS changes
#       26     1  bits_per_word     0 = device default
#       27     1  cs_change         1 = deselect (CS high) before the next transfer
#       28     1  tx_nbits          0 = single-wire
#       29     1  rx_nbits          0 = single-wire
#       30     1  word_delay_usecs  gap between words
#       31     1  pad
#
# SPI_IOC_MESSAGE(N) = _IOW('k', 0, char[32 * N]):
#
#   bits 31..30  direction = 01 (write)          -> 0x4000_0000
#   bits 29..16  size      = 32 * N (14 bits, so N <= 511)
#   bits 15..8   type      = ord('k') = 0x6B
#   bits  7..0   number    = 0
SPI_IOC_TRANSFER_SIZE_BYTES = 32
SPI_IOC_MAGIC = ord("k")
_IOC_WRITE_BITS = 0x4000_0000
_IOC_SIZE_SHIFT = 16
_IOC_SIZE_LIMIT_BYTES = 1 << 14
#: Most transfers one SPI_IOC_MESSAGE(N) can carry (its size field is 14 bits).
MAX_TRANSFERS_PER_MESSAGE = (_IOC_SIZE_LIMIT_BYTES - 1) // SPI_IOC_TRANSFER_SIZE_BYTES

#: The spidev module parameter that bounds the total bytes of one message.
SPIDEV_BUFSIZ_PATH = Path("/sys/module/spidev/parameters/bufsiz")
#: The kernel's default for that parameter.
DEFAULT_SPIDEV_BUFSIZ_BYTES = 4096

#: errno values with which a kernel or a non-spidev file refuses SPI_IOC_MESSAGE(N).
_REFUSED_ERRNOS = frozenset({errno.EINVAL, errno.ENOTTY, errno.EMSGSIZE, errno.EOPNOTSUPP})

_SPI_MODES = (0, 1, 2, 3)


class SpiIocTransfer(ctypes.Structure):
    """One ``struct spi_ioc_transfer`` (see the layout at the top of this module)."""

    _fields_ = (
        ("tx_buf", ctypes.c_uint64),
        ("rx_buf", ctypes.c_uint64),
        ("len", ctypes.c_uint32),
        ("speed_hz", ctypes.c_uint32),
        ("delay_usecs", ctypes.c_uint16),
        ("bits_per_word", ctypes.c_uint8),
        ("cs_change", ctypes.c_uint8),
        ("tx_nbits", ctypes.c_uint8),
        ("rx_nbits", ctypes.c_uint8),
        ("word_delay_usecs", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
    )


def spi_ioc_message(n_transfers: int) -> int:
    """Return the ioctl request number ``SPI_IOC_MESSAGE(n_transfers)``.

    Parameters
    ----------
    n_transfers:
        Number of ``spi_ioc_transfer`` structs in the message, 1..511.
    """
    if not 1 <= n_transfers <= MAX_TRANSFERS_PER_MESSAGE:
        raise ValueError(
            f"SPI_IOC_MESSAGE: {n_transfers} transfers is outside 1..{MAX_TRANSFERS_PER_MESSAGE}"
        )
    size_bytes = SPI_IOC_TRANSFER_SIZE_BYTES * n_transfers
    return _IOC_WRITE_BITS | (size_bytes << _IOC_SIZE_SHIFT) | (SPI_IOC_MAGIC << 8)


def read_spidev_bufsiz(path: Path = SPIDEV_BUFSIZ_PATH) -> int:
    """Read the spidev ``bufsiz`` module parameter; the kernel default if it is unreadable."""
    try:
        value = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return DEFAULT_SPIDEV_BUFSIZ_BYTES
    return value if value > 0 else DEFAULT_SPIDEV_BUFSIZ_BYTES


@dataclass(slots=True)
class _Message:
    """A prepared ``SPI_IOC_MESSAGE(N)``: transfer array and the buffers it points into.

    ``first_window`` and ``n_windows`` say which slice of the caller's windows it carries;
    ``slices`` are ``(offset, length)`` of each window inside ``tx``/``rx``.
    """

    request: int
    transfers: ctypes.Array[SpiIocTransfer]
    tx: ctypes.Array[ctypes.c_char]
    rx: ctypes.Array[ctypes.c_char]
    total_bytes: int
    first_window: int
    n_windows: int
    slices: tuple[tuple[int, int], ...]


def _prepare_message(
    lengths: Sequence[int], first_window: int, speed_hz: int, delay_usecs: int
) -> _Message:
    n = len(lengths)
    total = sum(lengths)
    tx = ctypes.create_string_buffer(max(total, 1))
    rx = ctypes.create_string_buffer(max(total, 1))
    transfers = (SpiIocTransfer * n)()
    tx_base = ctypes.addressof(tx)
    rx_base = ctypes.addressof(rx)
    slices: list[tuple[int, int]] = []
    offset = 0
    for i, length in enumerate(lengths):
        t = transfers[i]
        t.tx_buf = tx_base + offset
        t.rx_buf = rx_base + offset
        t.len = length
        t.speed_hz = speed_hz
        t.delay_usecs = delay_usecs
        t.bits_per_word = 0  # the device default, which open_spidev sets to 8
        # CS high between windows; never on the last (there it would mean "keep CS low").
        t.cs_change = 1 if i < n - 1 else 0
        slices.append((offset, length))
        offset += length
    return _Message(
        request=spi_ioc_message(n),
        transfers=transfers,
        tx=tx,
        rx=rx,
        total_bytes=total,
        first_window=first_window,
        n_windows=n,
        slices=tuple(slices),
    )


class LinuxSpiBus:
    """A py-spidev ``SpiDev`` plus multi-window transfers in one ioctl.

    Parameters
    ----------
    device:
        An open ``spidev.SpiDev`` (or anything with its interface and ``fileno()``).
    bufsiz_bytes:
        The spidev ``bufsiz`` limit on the bytes of one message; read from sysfs if ``None``.
    """

    def __init__(self, device: Any, *, bufsiz_bytes: int | None = None) -> None:
        self.device = device
        self.bufsiz_bytes = read_spidev_bufsiz() if bufsiz_bytes is None else bufsiz_bytes
        self._batched = True
        self._plan_key: tuple[tuple[int, ...], int, int] | None = None
        self._plan: list[_Message] = []
        #: Why batching was given up (empty while batching works).
        self.fallback_reason = ""

    # SpiDev attributes ---------------------------------------------------------------
    @property
    def mode(self) -> int:
        return int(self.device.mode)

    @mode.setter
    def mode(self, value: int) -> None:
        self.device.mode = value

    @property
    def max_speed_hz(self) -> int:
        return int(self.device.max_speed_hz)

    @max_speed_hz.setter
    def max_speed_hz(self, value: int) -> None:
        self.device.max_speed_hz = value

    @property
    def bits_per_word(self) -> int:
        return int(self.device.bits_per_word)

    @bits_per_word.setter
    def bits_per_word(self, value: int) -> None:
        self.device.bits_per_word = value

    @property
    def batched(self) -> bool:
        """True while :meth:`xfer_windows` uses one ioctl; False after it fell back."""
        return self._batched

    # SpiDev methods ------------------------------------------------------------------
    def xfer2(
        self,
        values: list[int],
        speed_hz: int = 0,
        delay_usecs: int = 0,
        bits_per_word: int = 0,
    ) -> list[int]:
        result: list[int] = self.device.xfer2(values, speed_hz, delay_usecs, bits_per_word)
        return result

    def close(self) -> None:
        self.device.close()

    def fileno(self) -> int:
        return int(self.device.fileno())

    # WindowedSpiBus ------------------------------------------------------------------
    def xfer_windows(
        self, windows: Sequence[bytes], speed_hz: int = 0, delay_usecs: int = 0
    ) -> list[bytes]:
        """Clock each element of ``windows`` in its own CS-low window; return the replies.

        All windows go in one ``SPI_IOC_MESSAGE(N)`` ioctl (more than one only when they
        exceed ``bufsiz_bytes`` or 511 transfers). If the kernel refuses the ioctl, this and
        every later call use one ``xfer2`` per window instead (see :attr:`batched`).
        """
        if not windows:
            return []
        for i, window in enumerate(windows):
            if len(window) > self.bufsiz_bytes:
                raise HardwareIOError(
                    f"SPI window {i} is {len(window)} bytes, over the spidev bufsiz of "
                    f"{self.bufsiz_bytes} bytes (raise it with spidev.bufsiz= in cmdline.txt)"
                )
        if self._batched:
            try:
                fd = self.fileno()
            except (OSError, AttributeError, ValueError) as exc:
                self._give_up_batching(f"no file descriptor ({exc})")
            else:
                replies = self._xfer_batched(
                    fd, windows, speed_hz or self.max_speed_hz, delay_usecs
                )
                if replies is not None:
                    return replies
        return [bytes(self.xfer2(list(w), speed_hz, delay_usecs)) for w in windows]

    # internals -----------------------------------------------------------------------
    def _give_up_batching(self, reason: str) -> None:
        self._batched = False
        self.fallback_reason = reason
        self._plan = []
        self._plan_key = None

    def _plan_for(
        self, lengths: tuple[int, ...], speed_hz: int, delay_usecs: int
    ) -> list[_Message]:
        key = (lengths, speed_hz, delay_usecs)
        if key == self._plan_key:
            return self._plan
        plan: list[_Message] = []
        start = 0
        group_bytes = 0
        for i, length in enumerate(lengths):
            full = (i - start) >= MAX_TRANSFERS_PER_MESSAGE
            if i > start and (group_bytes + length > self.bufsiz_bytes or full):
                plan.append(_prepare_message(lengths[start:i], start, speed_hz, delay_usecs))
                start, group_bytes = i, 0
            group_bytes += length
        plan.append(_prepare_message(lengths[start:], start, speed_hz, delay_usecs))
        self._plan_key = key
        self._plan = plan
        return plan

    def _xfer_batched(
        self, fd: int, windows: Sequence[bytes], speed_hz: int, delay_usecs: int
    ) -> list[bytes] | None:
        lengths = tuple(len(w) for w in windows)
        plan = self._plan_for(lengths, speed_hz, delay_usecs)
        replies: list[bytes] = []
        for message in plan:
            chunk = windows[message.first_window : message.first_window + message.n_windows]
            ctypes.memmove(message.tx, b"".join(chunk), message.total_bytes)
            try:
                fcntl.ioctl(fd, message.request, message.transfers)
            except OSError as exc:
                if exc.errno in _REFUSED_ERRNOS and not replies:
                    self._give_up_batching(f"SPI_IOC_MESSAGE refused: {describe_os_error(exc)}")
                    return None
                raise HardwareIOError(
                    f"SPI_IOC_MESSAGE({message.n_windows}) on fd {fd} failed: "
                    f"{describe_os_error(exc)}"
                ) from exc
            raw = message.rx.raw
            replies.extend(raw[off : off + n] for off, n in message.slices)
        return replies


def open_spidev(bus: int, device: int, *, mode: int, max_speed_hz: int) -> LinuxSpiBus:
    """Open ``/dev/spidev<bus>.<device>`` and set mode, 8-bit words and the clock.

    Parameters
    ----------
    bus, device:
        The spidev bus and chip-select numbers (``/dev/spidev0.0`` is 0, 0).
    mode:
        SPI mode 0..3 (CPOL/CPHA).
    max_speed_hz:
        SCLK in Hz. Always set: the Pi device tree leaves the node at 125 MHz.

    Raises
    ------
    MissingDependencyError
        py-spidev is not installed.
    HardwareInitError
        The device node is missing (SPI not enabled), not accessible (not in the ``spi``
        group), or refuses a setting.
    """
    path = f"/dev/spidev{bus}.{device}"
    if mode not in _SPI_MODES:
        raise HardwareInitError(f"{path}: SPI mode {mode} is not one of 0, 1, 2, 3")
    if max_speed_hz <= 0:
        raise HardwareInitError(f"{path}: max_speed_hz {max_speed_hz} must be positive")
    try:
        import spidev
    except ImportError as exc:
        raise MissingDependencyError(
            f"the spidev SPI bus needs the py-spidev package: pip install spidev ({exc})"
        ) from exc
    dev = spidev.SpiDev()
    try:
        dev.open(bus, device)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise HardwareInitError(
                f"{path} does not exist: enable SPI with 'dtparam=spi=on' in "
                "/boot/firmware/config.txt (or raspi-config) and reboot"
            ) from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise HardwareInitError(
                f"{path}: permission denied: add the service user to the 'spi' group "
                "(usermod -aG spi <user>) and log in again"
            ) from exc
        raise HardwareInitError(f"{path}: cannot open: {describe_os_error(exc)}") from exc
    for name, value in (("mode", mode), ("bits_per_word", 8), ("max_speed_hz", max_speed_hz)):
        try:
            setattr(dev, name, value)
        except (OSError, TypeError, ValueError) as exc:
            dev.close()
            raise HardwareInitError(f"{path}: cannot set {name} = {value}: {exc}") from exc
    return LinuxSpiBus(dev)
