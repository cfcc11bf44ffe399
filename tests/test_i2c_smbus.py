"""Tests for emgd.hw.i2c_smbus: the smbus2 adapter, with a fake SMBus (no /dev/i2c here)."""

from __future__ import annotations

import ctypes
import errno
from typing import Any

import pytest
from smbus2 import i2c_msg

from emgd.errors import HardwareInitError
from emgd.hw.i2c_smbus import SMBus2I2C
from emgd.hw.pca9685 import ServoBoard
from emgd.hw.servo_math import ServoCalibration
from emgd.sim.i2c_bus import I2CNack
from emgd.sim.pca9685_sim import Pca9685Sim

I2C_M_RD = 0x0001


class FakeSMBus:
    """Records what the kernel would receive; answers reads from a queue."""

    def __init__(self, bus_number: int) -> None:
        self.bus_number = bus_number
        self.calls: list[tuple[str, Any]] = []
        self.replies: list[bytes] = []
        self.fail_with: OSError | None = None
        self.closed = 0

    def i2c_rdwr(self, *msgs: Any) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        record = []
        for msg in msgs:
            if msg.flags & I2C_M_RD:
                data = self.replies.pop(0)
                assert len(data) == msg.len
                ctypes.memmove(msg.buf, data, msg.len)
                record.append(("read", msg.addr, msg.len))
            else:
                record.append(("write", msg.addr, bytes(msg)))
        self.calls.append(("rdwr", record))

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append(("quick", i2c_addr))

    def close(self) -> None:
        self.closed += 1


def make() -> tuple[SMBus2I2C, FakeSMBus]:
    made: list[FakeSMBus] = []

    def factory(n: int) -> FakeSMBus:
        made.append(FakeSMBus(n))
        return made[-1]

    adapter = SMBus2I2C(3, smbus_factory=factory)
    assert made[0].bus_number == 3
    return adapter, made[0]


def test_write_is_one_rdwr_message_of_the_slice() -> None:
    adapter, fake = make()
    adapter.writeto(0x40, bytearray(b"\xff\x06\x00\x00\x33\x01\xff"), start=1, end=6)
    assert fake.calls == [("rdwr", [("write", 0x40, b"\x06\x00\x00\x33\x01")])]


def test_empty_write_is_a_quick_command() -> None:
    adapter, fake = make()
    adapter.writeto(0x40, b"")
    assert fake.calls == [("quick", 0x40)]


def test_read_fills_the_slice() -> None:
    adapter, fake = make()
    fake.replies.append(b"\x12\x34")
    buf = bytearray(b"\xaa\xaa\xaa\xaa")
    adapter.readfrom_into(0x40, buf, start=1, end=3)
    assert buf == bytearray(b"\xaa\x12\x34\xaa")
    assert fake.calls == [("rdwr", [("read", 0x40, 2)])]
    with pytest.raises(ValueError, match="0x40"):
        adapter.readfrom_into(0x40, buf, start=2, end=2)


def test_write_then_read_is_one_combined_transaction_on_the_same_buffer() -> None:
    adapter, fake = make()
    fake.replies.append(b"\x79")
    buf = bytearray(b"\xfe\x00")
    adapter.writeto_then_readfrom(0x40, buf, buf, out_end=1, in_start=1)
    assert fake.calls == [("rdwr", [("write", 0x40, b"\xfe"), ("read", 0x40, 1)])]
    assert buf == bytearray(b"\xfe\x79")


def test_overlapping_out_and_in_slices_write_the_original_bytes() -> None:
    adapter, fake = make()
    fake.replies.append(b"\x09\x08\x07")
    buf = bytearray(b"\x01\x02\x03")
    adapter.writeto_then_readfrom(0x40, buf, buf)
    assert fake.calls == [("rdwr", [("write", 0x40, b"\x01\x02\x03"), ("read", 0x40, 3)])]
    assert buf == bytearray(b"\x09\x08\x07")


def test_nack_propagates_as_the_kernel_oserror() -> None:
    adapter, fake = make()
    fake.fail_with = OSError(errno.EREMOTEIO, "Remote I/O error")
    with pytest.raises(OSError) as info:
        adapter.writeto(0x40, b"\x00\x00")
    assert info.value.errno == errno.EREMOTEIO
    with pytest.raises(OSError):
        adapter.writeto(0x40, b"")


def test_lock_is_not_reentrant() -> None:
    adapter, _ = make()
    assert adapter.try_lock()
    assert not adapter.try_lock()
    adapter.unlock()
    assert adapter.try_lock()
    adapter.unlock()
    with pytest.raises(RuntimeError, match="unlock"):
        adapter.unlock()


def test_close_is_idempotent_and_final() -> None:
    adapter, fake = make()
    adapter.close()
    adapter.deinit()
    assert fake.closed == 1
    with pytest.raises(RuntimeError, match="closed"):
        adapter.writeto(0x40, b"\x00")


def _raiser(exc: OSError) -> Any:
    def factory(n: int) -> FakeSMBus:
        raise exc

    return factory


def test_missing_device_node_explains_how_to_enable_i2c() -> None:
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory")
    with pytest.raises(HardwareInitError) as info:
        SMBus2I2C(1, smbus_factory=_raiser(missing))
    message = str(info.value)
    assert "/dev/i2c-1" in message
    assert "dtparam=i2c_arm=on" in message
    assert "i2c-dev" in message


def test_permission_denied_mentions_the_i2c_group() -> None:
    denied = PermissionError(errno.EACCES, "Permission denied")
    with pytest.raises(HardwareInitError, match="'i2c' group"):
        SMBus2I2C(1, smbus_factory=_raiser(denied))


def test_other_open_errors_name_the_errno() -> None:
    with pytest.raises(HardwareInitError, match="EBUSY"):
        SMBus2I2C(2, smbus_factory=_raiser(OSError(errno.EBUSY, "busy")))


def test_real_smbus2_on_a_missing_bus_number() -> None:
    # No /dev/i2c-250 on any machine that runs the tests.
    with pytest.raises(HardwareInitError, match="/dev/i2c-250"):
        SMBus2I2C(250)


class KernelToSim:
    """An SMBus that delivers each I2C_RDWR to a simulated PCA9685, like the kernel would."""

    def __init__(self, chip: Pca9685Sim, address: int) -> None:
        self.chip = chip
        self.address = address

    def i2c_rdwr(self, *msgs: Any) -> None:
        for k, msg in enumerate(msgs):
            if msg.addr != self.address:
                raise OSError(errno.ENXIO, "No such device or address")
            try:
                if msg.flags & I2C_M_RD:
                    data = self.chip.read(msg.len)
                    ctypes.memmove(msg.buf, data, msg.len)
                else:
                    self.chip.write(bytes(msg), stop=k == len(msgs) - 1)
            except I2CNack as exc:
                raise OSError(errno.EREMOTEIO, "Remote I/O error") from exc

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        if i2c_addr != self.address:
            raise OSError(errno.ENXIO, "No such device or address")

    def close(self) -> None:
        pass


def test_servo_board_runs_over_the_adapter() -> None:
    chip = Pca9685Sim()
    adapter = SMBus2I2C(1, smbus_factory=lambda n: KernelToSim(chip, 0x40))
    servos = [
        ServoCalibration(channel=k, min_pulse_us=500.0, max_pulse_us=2500.0) for k in range(5)
    ]
    board = ServoBoard(adapter, servos)
    assert board.write_angles([0.0, 45.0, 90.0, 135.0, 180.0]) == (102, 205, 307, 410, 512)
    assert chip.prescale == 121
    assert chip.pulse_us(2) == pytest.approx(307 * 4.88)
    assert board.read_counts() == (102, 205, 307, 410, 512)
    with pytest.raises(HardwareInitError, match="0x41"):
        ServoBoard(adapter, servos, address=0x41)


def test_i2c_msg_write_copies_its_input() -> None:
    # The adapter relies on i2c_msg.write taking a copy of the bytes it is given.
    source = bytearray(b"\x01\x02")
    msg = i2c_msg.write(0x40, source)
    source[0] = 0xFF
    assert bytes(msg) == b"\x01\x02"
