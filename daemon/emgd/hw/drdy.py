"""The ADS1299 DRDY line on a Raspberry Pi: falling-edge waits through RPi.GPIO or libgpiod v2.

This module owns the two real implementations of :class:`~emgd.hw.interfaces.DrdyLine` and
the factory that picks one by name. Each imports its GPIO package only when it is chosen,
turns a missing package into :class:`~emgd.errors.MissingDependencyError` naming the pip
extra, and turns "not a Raspberry Pi" into :class:`~emgd.errors.HardwareInitError`. It must
not talk SPI, know the chip's timing or count frames (the driver does that from timestamps).

* ``rpi_gpio``: ``RPi.GPIO`` (Pi 4 and earlier) or ``rpi-lgpio`` (Pi 5; same module name).
  Edges arrive on the library's callback thread and are stamped there with the injected
  clock (user-space time: tens of µs of jitter).
* ``gpiod``: libgpiod v2 Python bindings (``gpiod >= 2.1``). Edges are stamped by the kernel
  on CLOCK_MONOTONIC (the clock :class:`~emgd.clock.SystemClock` reads); line sequence
  number gaps reveal edges the kernel dropped on buffer overflow.
"""

from __future__ import annotations

import importlib
import threading
from datetime import timedelta
from types import ModuleType
from typing import Any, Final

from emgd.clock import Clock, SystemClock
from emgd.errors import (
    ConfigError,
    HardwareInitError,
    HardwareIOError,
    MissingDependencyError,
    describe_os_error,
)
from emgd.hw.interfaces import DrdyLine

DRDY_KINDS: Final = ("rpi_gpio", "gpiod")
DEFAULT_GPIO_CHIP: Final = "gpiochip0"  # Pi 4, and Pi 5 on kernels >= 6.6.45
CONSUMER: Final = "emgd-drdy"
MAX_BCM_PIN: Final = 53
NOT_A_PI_TEXT: Final = "can only be run on a raspberry pi"
EXTRA_HINT: Final = (
    "install the Pi extra: pip install 'emgd[pi]' (RPi.GPIO / gpiod, Pi 4) or "
    "'emgd[pi5]' (rpi-lgpio / gpiod, Pi 5)"
)


def _check_pin(pin: int) -> None:
    if not 0 <= pin <= MAX_BCM_PIN:
        raise ConfigError(f"DRDY pin {pin} is not a BCM GPIO number (0..{MAX_BCM_PIN})")


def _import_rpi_gpio() -> ModuleType:
    try:
        return importlib.import_module("RPi.GPIO")
    except ImportError as exc:
        raise MissingDependencyError(
            f"DRDY backend 'rpi_gpio' needs the RPi.GPIO module ({exc}); {EXTRA_HINT}"
        ) from exc
    except RuntimeError as exc:
        if NOT_A_PI_TEXT in str(exc).lower():
            raise HardwareInitError(
                "DRDY backend 'rpi_gpio': RPi.GPIO refuses to load because this machine is "
                "not a Raspberry Pi (or /proc/device-tree is hidden); use the simulated board "
                "off the Pi"
            ) from exc
        raise HardwareInitError(f"DRDY backend 'rpi_gpio': RPi.GPIO failed to load: {exc}") from exc


class RpiGpioDrdy:
    """DRDY through ``RPi.GPIO`` / ``rpi-lgpio`` edge-detect callbacks.

    Parameters
    ----------
    pin:
        BCM GPIO number of DRDY.
    clock:
        Stamps each edge in the callback (SystemClock on the Pi).

    Attributes
    ----------
    edges_total:
        Falling edges seen since opening.
    edges_skipped:
        Edges that arrived while an earlier one was still unconsumed (only the newest is
        returned; the driver counts the frames from the timestamp gap).
    """

    def __init__(self, pin: int, *, clock: Clock | None = None) -> None:
        _check_pin(pin)
        gpio = _import_rpi_gpio()
        self._gpio = gpio
        self._pin = pin
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._condition = threading.Condition()
        self._pending_ns: int | None = None
        self._closed = False
        self.edges_total = 0
        self.edges_skipped = 0
        try:
            gpio.setwarnings(False)
            gpio.setmode(gpio.BCM)
            gpio.setup(pin, gpio.IN, pull_up_down=gpio.PUD_UP)
            gpio.add_event_detect(pin, gpio.FALLING, callback=self._on_edge)
        except RuntimeError as exc:
            hint = ""
            if "peripheral base address" in str(exc):
                hint = " (a Raspberry Pi 5 needs rpi-lgpio instead of RPi.GPIO: 'emgd[pi5]')"
            raise HardwareInitError(
                f"DRDY backend 'rpi_gpio': cannot watch GPIO{pin} for falling edges: {exc}{hint}"
            ) from exc

    def _on_edge(self, channel: int) -> None:
        now_ns = self._clock.monotonic_ns()
        with self._condition:
            self.edges_total += 1
            if self._pending_ns is not None:
                self.edges_skipped += 1
            self._pending_ns = now_ns
            self._condition.notify()

    def wait_falling_edge(self, timeout_s: float) -> int | None:
        """Timestamp (ns) of the newest edge since the previous call, or None on timeout."""
        with self._condition:
            if self._closed:
                raise HardwareIOError(f"DRDY GPIO{self._pin}: wait on a closed line")
            self._condition.wait_for(lambda: self._pending_ns is not None, max(0.0, timeout_s))
            edge_ns, self._pending_ns = self._pending_ns, None
            return edge_ns

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._gpio.remove_event_detect(self._pin)
            self._gpio.cleanup(self._pin)
        except RuntimeError as exc:
            raise HardwareIOError(f"DRDY GPIO{self._pin}: release failed: {exc}") from exc


def _import_gpiod() -> tuple[ModuleType, ModuleType]:
    try:
        gpiod = importlib.import_module("gpiod")
        line = importlib.import_module("gpiod.line")
    except ImportError as exc:
        raise MissingDependencyError(
            f"DRDY backend 'gpiod' needs the libgpiod v2 Python bindings ({exc}); {EXTRA_HINT}"
        ) from exc
    if not hasattr(gpiod, "request_lines"):
        raise MissingDependencyError(
            "DRDY backend 'gpiod': the installed gpiod module is the v1 API "
            "(python3-libgpiod 1.x); emgd needs gpiod >= 2.1: " + EXTRA_HINT
        )
    return gpiod, line


def _chip_path(chip: str) -> str:
    return chip if chip.startswith("/") else f"/dev/{chip}"


class GpiodDrdy:
    """DRDY through a libgpiod v2 line request with falling-edge detection.

    Parameters
    ----------
    chip:
        GPIO chip name or path (``gpiochip0`` or ``/dev/gpiochip0``; on a Pi 5 with a
        kernel older than 6.6.45 the header is ``gpiochip4``).
    pin:
        Line offset on that chip (the BCM number on the header chip).

    Attributes
    ----------
    edges_total:
        Falling-edge events read since opening.
    edges_skipped:
        Events read but not returned individually (several pending at one call) plus
        events the kernel dropped (gaps in the line sequence number).
    """

    def __init__(self, chip: str, pin: int) -> None:
        _check_pin(pin)
        gpiod, line = _import_gpiod()
        self._path = _chip_path(chip)
        self._pin = pin
        self._closed = False
        self._last_seqno: int | None = None
        self.edges_total = 0
        self.edges_skipped = 0
        settings = gpiod.LineSettings(
            direction=line.Direction.INPUT,
            edge_detection=line.Edge.FALLING,
            bias=line.Bias.PULL_UP,
            event_clock=line.Clock.MONOTONIC,
        )
        self._falling: Any = gpiod.EdgeEvent.Type.FALLING_EDGE
        try:
            self._request: Any = gpiod.request_lines(
                self._path, consumer=CONSUMER, config={pin: settings}
            )
        except OSError as exc:
            raise HardwareInitError(
                f"DRDY backend 'gpiod': cannot request line {pin} on {self._path}: "
                f"{describe_os_error(exc)}"
            ) from exc

    def wait_falling_edge(self, timeout_s: float) -> int | None:
        """Timestamp (ns) of the newest edge since the previous call, or None on timeout."""
        if self._closed:
            raise HardwareIOError(f"DRDY {self._path} line {self._pin}: wait on a closed line")
        request = self._request
        newest_ns: int | None = None
        try:
            ready = request.wait_edge_events(timedelta(seconds=max(0.0, timeout_s)))
            while ready:
                for event in request.read_edge_events():
                    if event.event_type != self._falling:
                        continue
                    self.edges_total += 1
                    if self._last_seqno is not None:
                        self.edges_skipped += max(0, event.line_seqno - self._last_seqno - 1)
                    self._last_seqno = event.line_seqno
                    if newest_ns is not None:
                        self.edges_skipped += 1
                    newest_ns = int(event.timestamp_ns)
                ready = request.wait_edge_events(timedelta(0))
        except OSError as exc:
            raise HardwareIOError(
                f"DRDY {self._path} line {self._pin}: reading edge events failed: "
                f"{describe_os_error(exc)}"
            ) from exc
        return newest_ns

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._request.release()


def open_drdy(
    kind: str, *, pin: int, chip: str = DEFAULT_GPIO_CHIP, clock: Clock | None = None
) -> DrdyLine:
    """Open the DRDY line with the backend named in config.

    Parameters
    ----------
    kind:
        ``"rpi_gpio"`` (RPi.GPIO or rpi-lgpio) or ``"gpiod"`` (libgpiod v2).
    pin:
        BCM GPIO number of DRDY.
    chip:
        GPIO chip for ``gpiod`` (ignored by ``rpi_gpio``).
    clock:
        Edge time stamping for ``rpi_gpio`` (gpiod uses kernel timestamps).

    Raises
    ------
    ConfigError
        Unknown ``kind`` or a bad pin.
    MissingDependencyError
        The backend's package is not installed (names the pip extra).
    HardwareInitError
        Not a Raspberry Pi, or the line cannot be requested.
    """
    if kind == "rpi_gpio":
        return RpiGpioDrdy(pin, clock=clock)
    if kind == "gpiod":
        return GpiodDrdy(chip, pin)
    raise ConfigError(f"DRDY backend {kind!r} is not one of {list(DRDY_KINDS)}")
