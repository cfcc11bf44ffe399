"""The seams of the hardware layer: what a bus, a DRDY line, an ADC driver and a signal
source must offer, and the frame record an ADC driver returns.

These are structural protocols (duck typing checked by mypy). Real implementations live in
:mod:`emgd.hw` (``spidev``, smbus2, RPi.GPIO/gpiod); simulated ones in :mod:`emgd.sim`.
This module holds no behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class SpiBus(Protocol):
    """The subset of py-spidev's ``SpiDev`` that the drivers use.

    ``xfer2`` clocks the whole list in one CS-low window and returns the bytes read.
    """

    mode: int
    max_speed_hz: int
    bits_per_word: int

    def xfer2(
        self,
        values: list[int],
        speed_hz: int = 0,
        delay_usecs: int = 0,
        bits_per_word: int = 0,
    ) -> list[int]: ...

    def close(self) -> None: ...


@runtime_checkable
class WindowedSpiBus(SpiBus, Protocol):
    """An SPI bus that can run several CS-low windows in one call (one kernel syscall).

    On Linux this is one ``SPI_IOC_MESSAGE(N)`` ioctl with ``cs_change`` set between the
    transfers; the simulator implements it natively. Each element of ``windows`` is clocked
    in its own CS-low window; the reply has one ``bytes`` per window.
    """

    def xfer_windows(
        self, windows: Sequence[bytes], speed_hz: int = 0, delay_usecs: int = 0
    ) -> list[bytes]: ...


class I2CBus(Protocol):
    """The ``busio.I2C`` methods that ``adafruit_bus_device.I2CDevice`` calls.

    ``writeto_then_readfrom`` may receive the *same* bytearray as out and in buffer.
    Failed transfers (NACK) raise :class:`OSError`.
    """

    def try_lock(self) -> bool: ...

    def unlock(self) -> None: ...

    def writeto(
        self, address: int, buffer: bytes | bytearray, *, start: int = 0, end: int | None = None
    ) -> None: ...

    def readfrom_into(
        self, address: int, buffer: bytearray, *, start: int = 0, end: int | None = None
    ) -> None: ...

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
    ) -> None: ...


class DrdyLine(Protocol):
    """The ADS1299 DRDY pin (active low): wait for its falling edge.

    ``wait_falling_edge`` returns the monotonic timestamp (ns) of the newest falling edge
    that arrived since the previous call, or ``None`` after ``timeout_s`` with no edge.
    Edges that arrived in between are not returned individually; the driver detects them
    from the timestamp gap.
    """

    def wait_falling_edge(self, timeout_s: float) -> int | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Frame:
    """One multichannel sample as read from an ADC.

    Attributes
    ----------
    index:
        Sequence number of the conversion, counting from the first frame after start,
        including frames that were lost (so gaps in ``index`` are lost frames).
    timestamp_ns:
        Monotonic time of the conversion (DRDY edge, or the pacing deadline for MCP3008).
    emg_uv:
        Shape ``(n_channels,)``, input-referred voltage in µV (front-end gain removed).
    railed:
        Per-channel bitmask: bit c set when channel c sits at the converter's full scale.
    lead_off_p, lead_off_n:
        Per-channel lead-off bitmasks from the ADS1299 status word (0 on other ADCs).
    """

    index: int
    timestamp_ns: int
    emg_uv: FloatArray
    railed: int = 0
    lead_off_p: int = 0
    lead_off_n: int = 0


@dataclass(slots=True)
class AcquisitionStats:
    """Running counters an ADC driver keeps; read them any time, they only grow."""

    frames_read: int = 0
    frames_lost: int = 0
    frames_stale: int = 0
    frames_railed: int = 0
    frames_invalid: int = 0
    timeouts: int = 0
    railed_per_channel: list[int] = field(default_factory=list)


class AdcDriver(Protocol):
    """What the acquisition loop needs of an ADC driver (ADS1299 or MCP3008)."""

    @property
    def n_channels(self) -> int: ...

    @property
    def sample_rate_hz(self) -> float: ...

    @property
    def stats(self) -> AcquisitionStats: ...

    def start(self) -> None:
        """Begin conversions (after init and configuration)."""
        ...

    def read_frame(self, timeout_s: float) -> Frame | None:
        """Wait for and return the next frame, or ``None`` after ``timeout_s``."""
        ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class SignalSource(Protocol):
    """Where a simulated ADC gets its analogue input.

    ``generate`` returns the next ``n_samples`` samples, shape ``(n_samples, n_channels)``,
    in µV at the electrodes, sampled at ``sample_rate_hz``. Calls continue one stream; the
    rate may change between calls (the chip was reconfigured).
    """

    @property
    def n_channels(self) -> int: ...

    def generate(self, n_samples: int, sample_rate_hz: float) -> FloatArray: ...
