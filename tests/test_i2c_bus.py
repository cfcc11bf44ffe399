"""Tests for emgd.sim.i2c_bus: addressing, locking, NACKs, the log and buffer handling."""

from __future__ import annotations

import errno

import pytest
from adafruit_bus_device.i2c_device import I2CDevice

from emgd.sim.i2c_bus import I2CNack, I2CTransfer, SimI2CBus, TransferKind


class EchoTarget:
    """Remembers each write; reads return the last written data plus ``offset`` per byte."""

    def __init__(self, offset: int = 1) -> None:
        self.writes: list[tuple[bytes, bool]] = []
        self.reads: list[int] = []
        self.offset = offset
        self.nack_writes = False

    def write(self, data: bytes, *, stop: bool) -> None:
        if self.nack_writes and data:
            raise I2CNack("refused")
        self.writes.append((data, stop))

    def read(self, n_bytes: int) -> bytes:
        self.reads.append(n_bytes)
        last = self.writes[-1][0] if self.writes else b""
        source = (last * (n_bytes // max(len(last), 1) + 1))[:n_bytes] or bytes(n_bytes)
        return bytes((b + self.offset) & 0xFF for b in source)


@pytest.fixture
def bus() -> SimI2CBus:
    b = SimI2CBus(log_limit=50)
    assert b.try_lock()
    return b


def test_write_reaches_the_target_with_stop_and_is_logged(bus: SimI2CBus) -> None:
    target = EchoTarget()
    bus.attach(0x40, target)
    bus.writeto(0x40, bytearray(b"\x00\x11\x22\x33"), start=1, end=3)
    assert target.writes == [(b"\x11\x22", True)]
    assert list(bus.log) == [I2CTransfer(TransferKind.WRITE, 0x40, b"\x11\x22", b"")]
    assert bus.transfers_total == 1


def test_empty_write_is_a_probe(bus: SimI2CBus) -> None:
    target = EchoTarget()
    bus.attach(0x40, target)
    bus.writeto(0x40, b"")
    assert target.writes == [(b"", True)]


def test_absent_address_nacks_with_enxio(bus: SimI2CBus) -> None:
    bus.attach(0x40, EchoTarget())
    with pytest.raises(OSError) as info:
        bus.writeto(0x41, b"\x00")
    assert info.value.errno == errno.ENXIO
    assert "0x41" in str(info.value)
    assert bus.log[-1].error == errno.ENXIO


def test_readfrom_into_fills_the_slice_only(bus: SimI2CBus) -> None:
    target = EchoTarget(offset=0)
    bus.attach(0x40, target)
    bus.writeto(0x40, b"\x07\x08")
    buf = bytearray(b"\xaa\xaa\xaa\xaa\xaa")
    bus.readfrom_into(0x40, buf, start=1, end=4)
    assert buf == bytearray(b"\xaa\x07\x08\x07\xaa")
    assert target.reads == [3]
    assert bus.log[-1] == I2CTransfer(TransferKind.READ, 0x40, b"", b"\x07\x08\x07")


def test_write_then_read_uses_repeated_start(bus: SimI2CBus) -> None:
    target = EchoTarget()
    bus.attach(0x40, target)
    buf = bytearray(b"\xfe\x00\x00")
    bus.writeto_then_readfrom(0x40, buf, buf, out_end=1, in_start=1)
    assert target.writes == [(b"\xfe", False)]  # no STOP before the read
    assert buf == bytearray(b"\xfe\xff\xff")
    assert bus.log[-1] == I2CTransfer(TransferKind.WRITE_READ, 0x40, b"\xfe", b"\xff\xff")


def test_same_buffer_out_slice_is_snapshotted_before_the_in_slice_is_filled(
    bus: SimI2CBus,
) -> None:
    target = EchoTarget(offset=1)
    bus.attach(0x40, target)
    buf = bytearray(b"\x01\x02\x03")
    # the out and in slices overlap completely
    bus.writeto_then_readfrom(0x40, buf, buf)
    assert target.writes == [(b"\x01\x02\x03", False)]
    assert buf == bytearray(b"\x02\x03\x04")


def test_works_with_memoryview_buffers(bus: SimI2CBus) -> None:
    # adafruit_register passes memoryviews of a shared buffer
    target = EchoTarget(offset=0)
    bus.attach(0x40, target)
    view = memoryview(bytearray(b"\x06\x00\x00"))
    bus.writeto_then_readfrom(0x40, view, view, out_end=1, in_start=1)  # type: ignore[arg-type]
    assert bytes(view) == b"\x06\x06\x06"


def test_transfers_need_the_lock() -> None:
    b = SimI2CBus()
    b.attach(0x40, EchoTarget())
    with pytest.raises(RuntimeError, match="writeto"):
        b.writeto(0x40, b"\x00")
    with pytest.raises(RuntimeError, match="readfrom_into"):
        b.readfrom_into(0x40, bytearray(1))
    with pytest.raises(RuntimeError, match="writeto_then_readfrom"):
        b.writeto_then_readfrom(0x40, b"\x00", bytearray(1))


def test_lock_is_not_reentrant() -> None:
    b = SimI2CBus()
    assert b.try_lock()
    assert not b.try_lock()
    b.unlock()
    assert b.try_lock()
    b.unlock()
    with pytest.raises(RuntimeError, match="unlock"):
        b.unlock()


def test_inject_nack_fails_the_next_transfers_without_reaching_the_target(
    bus: SimI2CBus,
) -> None:
    target = EchoTarget()
    bus.attach(0x40, target)
    bus.inject_nack(2)
    for _ in range(2):
        with pytest.raises(OSError) as info:
            bus.writeto(0x40, b"\x00\x01")
        assert info.value.errno == errno.EREMOTEIO
    assert target.writes == []
    bus.writeto(0x40, b"\x00\x01")
    assert target.writes == [(b"\x00\x01", True)]
    assert [t.error for t in bus.log] == [errno.EREMOTEIO, errno.EREMOTEIO, None]


def test_target_nack_becomes_eremoteio(bus: SimI2CBus) -> None:
    target = EchoTarget()
    target.nack_writes = True
    bus.attach(0x40, target)
    with pytest.raises(OSError) as info:
        bus.writeto(0x40, b"\x47")
    assert info.value.errno == errno.EREMOTEIO
    assert "refused" in str(info.value)
    buf = bytearray(2)
    with pytest.raises(OSError):
        bus.writeto_then_readfrom(0x40, b"\x47", buf)
    assert buf == bytearray(2)  # nothing read


def test_log_limit_keeps_the_newest(bus: SimI2CBus) -> None:
    small = SimI2CBus(log_limit=2)
    small.attach(0x40, EchoTarget())
    assert small.try_lock()
    for k in range(4):
        small.writeto(0x40, bytes([k]))
    assert [t.tx for t in small.log] == [b"\x02", b"\x03"]
    assert small.transfers_total == 4
    none_kept = SimI2CBus()
    none_kept.attach(0x40, EchoTarget())
    assert none_kept.try_lock()
    none_kept.writeto(0x40, b"\x00")
    assert list(none_kept.log) == []
    assert none_kept.transfers_total == 1


def test_transfers_filters_by_kind(bus: SimI2CBus) -> None:
    bus.attach(0x40, EchoTarget())
    bus.writeto(0x40, b"\x01")
    bus.readfrom_into(0x40, bytearray(1))
    assert [t.kind for t in bus.transfers([TransferKind.READ])] == [TransferKind.READ]
    bus.clear_log()
    assert bus.transfers() == []


def test_attach_rules() -> None:
    b = SimI2CBus()
    b.attach(0x40, EchoTarget())
    with pytest.raises(ValueError, match="already"):
        b.attach(0x40, EchoTarget())
    with pytest.raises(ValueError, match="0x78"):
        b.attach(0x78, EchoTarget())
    with pytest.raises(ValueError, match="0x03"):
        b.attach(0x03, EchoTarget())
    b.detach(0x40)
    with pytest.raises(ValueError):
        b.detach(0x40)
    assert b.try_lock()
    assert b.scan() == []


def test_adafruit_i2c_device_probe_against_the_sim() -> None:
    b = SimI2CBus(log_limit=10)
    b.attach(0x40, EchoTarget())
    I2CDevice(b, 0x40)  # present: one empty write
    assert [(t.kind, t.tx) for t in b.log] == [(TransferKind.WRITE, b"")]
    with pytest.raises(ValueError, match="No I2C device"):
        I2CDevice(b, 0x41)  # absent: empty write, then 1-byte read, both NACK
    assert [t.kind for t in b.log][1:] == [TransferKind.WRITE, TransferKind.READ]
    assert b.try_lock()  # the device released the lock after failing
