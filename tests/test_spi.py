"""Tests of emgd.hw.spi: the spi_ioc_transfer ABI, batching, fallback and open errors."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.errors import HardwareInitError, HardwareIOError, MissingDependencyError
from emgd.hw.interfaces import WindowedSpiBus
from emgd.hw.spi import (
    LinuxSpiBus,
    SpiIocTransfer,
    open_spidev,
    read_spidev_bufsiz,
    spi_ioc_message,
)

FAKE_FD = 57


class FakeSpiDev:
    """py-spidev look-alike: xfer2 answers each byte with its bitwise complement."""

    def __init__(self, fd: int | None = FAKE_FD) -> None:
        self.mode = 0
        self.max_speed_hz = 125_000_000
        self.bits_per_word = 8
        self.fd = fd
        self.xfer2_calls: list[tuple[list[int], int, int]] = []
        self.closed = False

    def xfer2(
        self, values: list[int], speed_hz: int = 0, delay_usecs: int = 0, bits_per_word: int = 0
    ) -> list[int]:
        self.xfer2_calls.append((list(values), speed_hz, delay_usecs))
        values[:] = [v ^ 0xFF for v in values]
        return values

    def close(self) -> None:
        self.closed = True

    def fileno(self) -> int:
        if self.fd is None:
            raise OSError(errno.EBADF, "no fd")
        return self.fd


class IoctlRecorder:
    """A stand-in for fcntl.ioctl that runs SPI_IOC_MESSAGE like the kernel would.

    Each transfer's rx gets the complement of its tx, so results match FakeSpiDev.xfer2.
    """

    def __init__(self, fail_errno: int | None = None) -> None:
        self.fail_errno = fail_errno
        self.calls: list[dict[str, Any]] = []

    def __call__(self, fd: int, request: int, arg: Any, mutate_flag: bool = True) -> int:
        size_bytes = (request >> 16) & 0x3FFF
        n = size_bytes // 32
        transfers = (SpiIocTransfer * n).from_buffer(arg)
        self.calls.append(
            {
                "fd": fd,
                "request": request,
                "arg_id": id(arg),
                "lens": [t.len for t in transfers],
                "cs_change": [t.cs_change for t in transfers],
                "speed_hz": [t.speed_hz for t in transfers],
                "delay_usecs": [t.delay_usecs for t in transfers],
                "bits_per_word": [t.bits_per_word for t in transfers],
            }
        )
        if self.fail_errno is not None:
            raise OSError(self.fail_errno, "refused")
        total = 0
        for t in transfers:
            tx = ctypes.string_at(t.tx_buf, t.len)
            rx = bytes(b ^ 0xFF for b in tx)
            ctypes.memmove(t.rx_buf, rx, t.len)
            total += t.len
        return total


def complement(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in data)


# --- the kernel ABI ---------------------------------------------------------------------


def test_spi_ioc_transfer_is_32_bytes_with_kernel_offsets() -> None:
    assert ctypes.sizeof(SpiIocTransfer) == 32
    offsets = {name: getattr(SpiIocTransfer, name).offset for name, _ in SpiIocTransfer._fields_}
    assert offsets == {
        "tx_buf": 0,
        "rx_buf": 8,
        "len": 16,
        "speed_hz": 20,
        "delay_usecs": 24,
        "bits_per_word": 26,
        "cs_change": 27,
        "tx_nbits": 28,
        "rx_nbits": 29,
        "word_delay_usecs": 30,
        "pad": 31,
    }


def test_spi_ioc_message_request_numbers() -> None:
    assert spi_ioc_message(1) == 0x40206B00
    assert spi_ioc_message(2) == 0x40406B00
    assert spi_ioc_message(8) == 0x41006B00
    assert spi_ioc_message(511) == 0x7FE06B00


@pytest.mark.parametrize("n", [0, 512, -1])
def test_spi_ioc_message_rejects_counts_outside_the_size_field(n: int) -> None:
    with pytest.raises(ValueError, match=str(n)):
        spi_ioc_message(n)


def test_bufsiz_read_from_sysfs_or_default(tmp_path: Path) -> None:
    good = tmp_path / "bufsiz"
    good.write_text("65536\n")
    assert read_spidev_bufsiz(good) == 65536
    assert read_spidev_bufsiz(tmp_path / "missing") == 4096
    bad = tmp_path / "bad"
    bad.write_text("lots\n")
    assert read_spidev_bufsiz(bad) == 4096


# --- batched path ----------------------------------------------------------------------


def test_batched_windows_run_in_one_ioctl_with_cs_change_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ioctl = IoctlRecorder()
    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    dev = FakeSpiDev()
    bus = LinuxSpiBus(dev, bufsiz_bytes=4096)
    replies = bus.xfer_windows([b"\x01\x80\x00", b"\x01\x90"], speed_hz=1_000_000, delay_usecs=3)
    assert replies == [b"\xfe\x7f\xff", b"\xfe\x6f"]
    assert len(ioctl.calls) == 1
    call = ioctl.calls[0]
    assert call["fd"] == FAKE_FD
    assert call["request"] == 0x40406B00
    assert call["lens"] == [3, 2]
    assert call["cs_change"] == [1, 0]
    assert call["speed_hz"] == [1_000_000, 1_000_000]
    assert call["delay_usecs"] == [3, 3]
    assert call["bits_per_word"] == [0, 0]
    assert dev.xfer2_calls == []
    assert bus.batched is True


def test_single_window_has_no_cs_change(monkeypatch: pytest.MonkeyPatch) -> None:
    ioctl = IoctlRecorder()
    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    bus = LinuxSpiBus(FakeSpiDev(), bufsiz_bytes=4096)
    assert bus.xfer_windows([b"\x0f"], speed_hz=500_000) == [b"\xf0"]
    assert ioctl.calls[0]["request"] == 0x40206B00
    assert ioctl.calls[0]["cs_change"] == [0]


def test_speed_zero_uses_the_device_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    ioctl = IoctlRecorder()
    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    dev = FakeSpiDev()
    dev.max_speed_hz = 1_350_000
    LinuxSpiBus(dev, bufsiz_bytes=4096).xfer_windows([b"\x00", b"\x00"])
    assert ioctl.calls[0]["speed_hz"] == [1_350_000, 1_350_000]


def test_transfer_array_is_reused_while_the_shape_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    ioctl = IoctlRecorder()
    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    bus = LinuxSpiBus(FakeSpiDev(), bufsiz_bytes=4096)
    assert bus.xfer_windows([b"\x01\x02", b"\x03"], 1000) == [b"\xfe\xfd", b"\xfc"]
    assert bus.xfer_windows([b"\x10\x20", b"\x30"], 1000) == [b"\xef\xdf", b"\xcf"]
    assert bus.xfer_windows([b"\x10", b"\x30"], 1000) == [b"\xef", b"\xcf"]
    first, second, third = (c["arg_id"] for c in ioctl.calls)
    assert first == second
    assert third != first


def test_windows_over_bufsiz_are_split_into_several_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ioctl = IoctlRecorder()
    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    bus = LinuxSpiBus(FakeSpiDev(), bufsiz_bytes=8)
    windows = [b"\x01\x02\x03", b"\x04\x05\x06", b"\x07\x08\x09"]
    assert bus.xfer_windows(windows, 1000) == [complement(w) for w in windows]
    assert [c["request"] for c in ioctl.calls] == [0x40406B00, 0x40206B00]
    assert [c["lens"] for c in ioctl.calls] == [[3, 3], [3]]
    assert [c["cs_change"] for c in ioctl.calls] == [[1, 0], [0]]


def test_a_window_larger_than_bufsiz_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fcntl, "ioctl", IoctlRecorder())
    bus = LinuxSpiBus(FakeSpiDev(), bufsiz_bytes=4)
    with pytest.raises(HardwareIOError, match=r"window 1 is 5 bytes.*bufsiz of 4"):
        bus.xfer_windows([b"\x00", b"\x00" * 5])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=20))
def test_batched_replies_line_up_with_their_windows(windows: list[bytes]) -> None:
    ioctl = IoctlRecorder()
    original = fcntl.ioctl
    fcntl.ioctl = ioctl  # type: ignore[assignment]
    try:
        bus = LinuxSpiBus(FakeSpiDev(), bufsiz_bytes=64)
        assert bus.xfer_windows(windows, 1000) == [complement(w) for w in windows]
    finally:
        fcntl.ioctl = original
    assert sum(len(c["lens"]) for c in ioctl.calls) == len(windows)
    for call in ioctl.calls:
        assert sum(call["lens"]) <= 64


# --- fallback ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOTTY, errno.EMSGSIZE])
def test_refused_ioctl_falls_back_to_one_xfer2_per_window(
    monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    ioctl = IoctlRecorder(fail_errno=code)
    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    dev = FakeSpiDev()
    bus = LinuxSpiBus(dev, bufsiz_bytes=4096)
    windows = [b"\x01\x80\x00", b"\x01\x90\x00"]
    assert bus.xfer_windows(windows, 900_000, 2) == [b"\xfe\x7f\xff", b"\xfe\x6f\xff"]
    assert dev.xfer2_calls == [([1, 0x80, 0], 900_000, 2), ([1, 0x90, 0], 900_000, 2)]
    assert bus.batched is False
    assert "refused" in bus.fallback_reason
    # It remembers: the next call does not try the ioctl again.
    bus.xfer_windows(windows, 900_000)
    assert len(ioctl.calls) == 1
    assert len(dev.xfer2_calls) == 4


def test_no_file_descriptor_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    ioctl = IoctlRecorder()
    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    dev = FakeSpiDev(fd=None)
    bus = LinuxSpiBus(dev, bufsiz_bytes=4096)
    assert bus.xfer_windows([b"\x55"], 1000) == [b"\xaa"]
    assert ioctl.calls == []
    assert bus.batched is False


def test_other_ioctl_errors_are_io_errors_not_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fcntl, "ioctl", IoctlRecorder(fail_errno=errno.EIO))
    dev = FakeSpiDev()
    bus = LinuxSpiBus(dev, bufsiz_bytes=4096)
    with pytest.raises(HardwareIOError, match=r"SPI_IOC_MESSAGE\(2\) on fd 57 failed: EIO"):
        bus.xfer_windows([b"\x00", b"\x00"], 1000)
    assert bus.batched is True
    assert dev.xfer2_calls == []


def test_attributes_and_methods_delegate_to_the_spidev() -> None:
    dev = FakeSpiDev()
    bus = LinuxSpiBus(dev, bufsiz_bytes=4096)
    assert isinstance(bus, WindowedSpiBus)
    bus.mode = 3
    bus.max_speed_hz = 1_000_000
    bus.bits_per_word = 8
    assert (dev.mode, dev.max_speed_hz, dev.bits_per_word) == (3, 1_000_000, 8)
    assert (bus.mode, bus.max_speed_hz, bus.bits_per_word) == (3, 1_000_000, 8)
    assert bus.xfer2([0x0F, 0xF0], 100_000) == [0xF0, 0x0F]
    assert bus.fileno() == FAKE_FD
    bus.close()
    assert dev.closed


# --- open_spidev ------------------------------------------------------------------------


class _OpenLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []


def _fake_spidev_module(open_error: OSError | None, log: _OpenLog) -> types.ModuleType:
    class SpiDev:
        def __init__(self) -> None:
            object.__setattr__(self, "closed", False)

        def open(self, bus: int, device: int) -> None:
            log.events.append(("open", (bus, device)))
            if open_error is not None:
                raise open_error

        def __setattr__(self, name: str, value: object) -> None:
            log.events.append((name, value))
            object.__setattr__(self, name, value)

        def close(self) -> None:
            log.events.append(("close", None))

    module = types.ModuleType("spidev")
    module.SpiDev = SpiDev  # type: ignore[attr-defined]
    return module


def test_open_spidev_sets_mode_word_size_and_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    log = _OpenLog()
    monkeypatch.setitem(sys.modules, "spidev", _fake_spidev_module(None, log))
    bus = open_spidev(0, 1, mode=3, max_speed_hz=1_000_000)
    assert isinstance(bus, LinuxSpiBus)
    assert log.events == [
        ("open", (0, 1)),
        ("mode", 3),
        ("bits_per_word", 8),
        ("max_speed_hz", 1_000_000),
    ]


def test_open_spidev_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spidev", None)
    with pytest.raises(MissingDependencyError, match="pip install spidev"):
        open_spidev(0, 0, mode=0, max_speed_hz=1_000_000)


def test_open_spidev_missing_node_says_enable_spi(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory")
    monkeypatch.setitem(sys.modules, "spidev", _fake_spidev_module(missing, _OpenLog()))
    with pytest.raises(HardwareInitError, match=r"/dev/spidev0\.1 does not exist.*dtparam=spi=on"):
        open_spidev(0, 1, mode=0, max_speed_hz=1_000_000)


def test_open_spidev_permission_denied_names_the_spi_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    denied = PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setitem(sys.modules, "spidev", _fake_spidev_module(denied, _OpenLog()))
    with pytest.raises(HardwareInitError, match=r"/dev/spidev0\.0: permission denied.*'spi' group"):
        open_spidev(0, 0, mode=0, max_speed_hz=1_000_000)


def test_open_spidev_other_errors_name_the_errno(monkeypatch: pytest.MonkeyPatch) -> None:
    busy = OSError(errno.EBUSY, "busy")
    monkeypatch.setitem(sys.modules, "spidev", _fake_spidev_module(busy, _OpenLog()))
    with pytest.raises(HardwareInitError, match=r"/dev/spidev1\.0: cannot open: EBUSY"):
        open_spidev(1, 0, mode=0, max_speed_hz=1_000_000)


def test_open_spidev_refused_setting_closes_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    log = _OpenLog()
    module = _fake_spidev_module(None, log)

    def refuse_speed(self: object, name: str, value: object) -> None:
        log.events.append((name, value))
        if name == "max_speed_hz":
            raise OSError(errno.EINVAL, "bad speed")
        object.__setattr__(self, name, value)

    monkeypatch.setattr(module.SpiDev, "__setattr__", refuse_speed)
    monkeypatch.setitem(sys.modules, "spidev", module)
    with pytest.raises(HardwareInitError, match=r"cannot set max_speed_hz = 1000000"):
        open_spidev(0, 0, mode=0, max_speed_hz=1_000_000)
    assert log.events[-1] == ("close", None)


@pytest.mark.parametrize(("mode", "speed"), [(4, 1_000_000), (-1, 1_000_000), (0, 0)])
def test_open_spidev_rejects_bad_arguments_before_opening(mode: int, speed: int) -> None:
    with pytest.raises(HardwareInitError, match=r"/dev/spidev0\.0"):
        open_spidev(0, 0, mode=mode, max_speed_hz=speed)


def test_real_ioctl_on_a_non_spi_file_falls_back(tmp_path: Path) -> None:
    # The real fcntl.ioctl, handed the real ctypes array: a regular file answers ENOTTY.
    with (tmp_path / "not-spi").open("w") as handle:
        dev = FakeSpiDev(fd=handle.fileno())
        bus = LinuxSpiBus(dev, bufsiz_bytes=4096)
        assert bus.xfer_windows([b"\x01\x80\x00", b"\x01"], 1000) == [b"\xfe\x7f\xff", b"\xfe"]
    assert bus.batched is False
    assert "ENOTTY" in bus.fallback_reason
    assert len(dev.xfer2_calls) == 2
