"""Tests of the real DRDY backends with fake ``RPi.GPIO`` and ``gpiod`` modules.

Neither package works off a Raspberry Pi, so fakes are installed into ``sys.modules``;
import failures are produced with a meta-path finder, as the real import system would.
"""

from __future__ import annotations

import enum
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from emgd.clock import FakeClock
from emgd.errors import ConfigError, HardwareInitError, HardwareIOError, MissingDependencyError
from emgd.hw.drdy import GpiodDrdy, RpiGpioDrdy, open_drdy


class FailingFinder(importlib.abc.MetaPathFinder):
    """Makes importing ``name`` raise ``error`` (as RPi.GPIO does off a Pi)."""

    def __init__(self, name: str, error: Exception) -> None:
        self.name = name
        self.error = error

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == self.name or fullname.startswith(self.name + "."):
            raise self.error
        return None


def block_import(monkeypatch: pytest.MonkeyPatch, name: str, error: Exception) -> None:
    for key in list(sys.modules):
        if key == name or key.startswith(name + "."):
            monkeypatch.delitem(sys.modules, key)
    monkeypatch.setattr(sys, "meta_path", [FailingFinder(name, error), *sys.meta_path])


# --- fake RPi.GPIO ------------------------------------------------------------------------------


class FakeGpio(types.ModuleType):
    BCM = 11
    IN = 1
    FALLING = 32
    PUD_UP = 22

    def __init__(self, setup_error: Exception | None = None) -> None:
        super().__init__("RPi.GPIO")
        self.setup_error = setup_error
        self.callbacks: dict[int, Callable[[int], None]] = {}
        self.calls: list[tuple[Any, ...]] = []

    def setwarnings(self, on: bool) -> None:
        self.calls.append(("setwarnings", on))

    def setmode(self, mode: int) -> None:
        self.calls.append(("setmode", mode))

    def setup(self, pin: int, direction: int, pull_up_down: int = 0) -> None:
        if self.setup_error is not None:
            raise self.setup_error
        self.calls.append(("setup", pin, direction, pull_up_down))

    def add_event_detect(self, pin: int, edge: int, callback: Callable[[int], None]) -> None:
        self.calls.append(("add_event_detect", pin, edge))
        self.callbacks[pin] = callback

    def remove_event_detect(self, pin: int) -> None:
        self.calls.append(("remove_event_detect", pin))

    def cleanup(self, pin: int) -> None:
        self.calls.append(("cleanup", pin))


def install_gpio(monkeypatch: pytest.MonkeyPatch, gpio: FakeGpio) -> None:
    package = types.ModuleType("RPi")
    package.GPIO = gpio  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "RPi", package)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", gpio)


def test_rpi_gpio_missing_names_the_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    block_import(monkeypatch, "RPi", ModuleNotFoundError("No module named 'RPi'"))
    with pytest.raises(MissingDependencyError, match=r"emgd\[pi\].*emgd\[pi5\]"):
        open_drdy("rpi_gpio", pin=25)


def test_rpi_gpio_not_a_pi_is_a_clear_init_error(monkeypatch: pytest.MonkeyPatch) -> None:
    block_import(monkeypatch, "RPi", RuntimeError("This module can only be run on a Raspberry Pi!"))
    with pytest.raises(HardwareInitError, match="not a Raspberry Pi"):
        open_drdy("rpi_gpio", pin=25)


def test_rpi_gpio_on_pi5_suggests_rpi_lgpio(monkeypatch: pytest.MonkeyPatch) -> None:
    install_gpio(
        monkeypatch, FakeGpio(RuntimeError("Cannot determine SOC peripheral base address"))
    )
    with pytest.raises(HardwareInitError, match=r"GPIO25.*rpi-lgpio"):
        open_drdy("rpi_gpio", pin=25)


def test_rpi_gpio_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    gpio = FakeGpio()
    install_gpio(monkeypatch, gpio)
    clock = FakeClock(start_ns=5_000)
    line = open_drdy("rpi_gpio", pin=25, clock=clock)
    assert isinstance(line, RpiGpioDrdy)
    assert ("setup", 25, FakeGpio.IN, FakeGpio.PUD_UP) in gpio.calls
    assert ("add_event_detect", 25, FakeGpio.FALLING) in gpio.calls
    callback = gpio.callbacks[25]
    callback(25)
    clock.advance_ns(1_000)
    callback(25)
    assert line.wait_falling_edge(1.0) == 6_000  # the newest edge
    assert line.edges_total == 2
    assert line.edges_skipped == 1
    assert line.wait_falling_edge(0.001) is None  # nothing new
    line.close()
    assert ("remove_event_detect", 25) in gpio.calls
    with pytest.raises(HardwareIOError, match="closed"):
        line.wait_falling_edge(0.0)


def test_bad_pin_and_kind() -> None:
    with pytest.raises(ConfigError, match="pin 99"):
        open_drdy("rpi_gpio", pin=99)
    with pytest.raises(ConfigError, match=r"'wiringpi' .*'rpi_gpio', 'gpiod'"):
        open_drdy("wiringpi", pin=25)


# --- fake gpiod v2 ----------------------------------------------------------------------------


class EventType(enum.Enum):
    RISING_EDGE = 1
    FALLING_EDGE = 2


@dataclass
class FakeEvent:
    event_type: EventType
    timestamp_ns: int
    line_seqno: int
    line_offset: int = 25


class FakeRequest:
    def __init__(self) -> None:
        self.batches: list[list[FakeEvent]] = []
        self.waits: list[timedelta] = []
        self.released = False
        self.error: OSError | None = None

    def wait_edge_events(self, timeout: timedelta) -> bool:
        self.waits.append(timeout)
        if self.error is not None:
            raise self.error
        return bool(self.batches)

    def read_edge_events(self) -> list[FakeEvent]:
        return self.batches.pop(0)

    def release(self) -> None:
        self.released = True


def install_gpiod(monkeypatch: pytest.MonkeyPatch, request_error: OSError | None = None) -> Any:
    gpiod = types.ModuleType("gpiod")
    line = types.ModuleType("gpiod.line")
    for name, members in (
        ("Direction", "AS_IS INPUT OUTPUT"),
        ("Edge", "NONE RISING FALLING BOTH"),
        ("Bias", "AS_IS PULL_UP PULL_DOWN DISABLED"),
        ("Clock", "MONOTONIC REALTIME HTE"),
    ):
        setattr(line, name, enum.Enum(name, members))
    state: dict[str, Any] = {"request": FakeRequest()}

    def line_settings(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    def request_lines(path: str, consumer: str, config: dict[int, Any]) -> FakeRequest:
        if request_error is not None:
            raise request_error
        state.update(path=path, consumer=consumer, config=config)
        request: FakeRequest = state["request"]
        return request

    gpiod.LineSettings = line_settings  # type: ignore[attr-defined]
    gpiod.request_lines = request_lines  # type: ignore[attr-defined]
    gpiod.EdgeEvent = types.SimpleNamespace(Type=EventType)  # type: ignore[attr-defined]
    gpiod.line = line  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    monkeypatch.setitem(sys.modules, "gpiod.line", line)
    return state


def test_gpiod_missing_names_the_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    block_import(monkeypatch, "gpiod", ModuleNotFoundError("No module named 'gpiod'"))
    with pytest.raises(MissingDependencyError, match=r"libgpiod v2.*emgd\[pi5\]"):
        open_drdy("gpiod", pin=25, chip="gpiochip0")


def test_gpiod_v1_api_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    install_gpiod(monkeypatch)
    monkeypatch.delattr(sys.modules["gpiod"], "request_lines")
    with pytest.raises(MissingDependencyError, match=r"v1 API.*gpiod >= 2\.1"):
        open_drdy("gpiod", pin=25)


def test_gpiod_request_failure_names_chip_and_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    install_gpiod(monkeypatch, OSError(16, "Device or resource busy"))
    with pytest.raises(HardwareInitError, match=r"line 25 on /dev/gpiochip4: EBUSY"):
        open_drdy("gpiod", pin=25, chip="gpiochip4")


def test_gpiod_edges_newest_timestamp_and_seqno_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    state = install_gpiod(monkeypatch)
    line = open_drdy("gpiod", pin=25, chip="gpiochip0")
    assert isinstance(line, GpiodDrdy)
    assert state["path"] == "/dev/gpiochip0"
    settings = state["config"][25]
    line_module: Any = sys.modules["gpiod.line"]
    assert settings["edge_detection"] == line_module.Edge.FALLING
    assert settings["event_clock"] == line_module.Clock.MONOTONIC
    request: FakeRequest = state["request"]
    falling = EventType.FALLING_EDGE
    request.batches = [
        [FakeEvent(falling, 1_000, 1), FakeEvent(falling, 2_000, 2)],
        [FakeEvent(EventType.RISING_EDGE, 2_500, 3), FakeEvent(falling, 3_000, 3)],
    ]
    assert line.wait_falling_edge(0.5) == 3_000  # drains both batches, newest wins
    assert request.waits[0] == timedelta(seconds=0.5)
    assert line.edges_total == 3
    assert line.edges_skipped == 2
    request.batches = [[FakeEvent(falling, 9_000, 7)]]  # seqno 4-6 dropped by the kernel
    assert line.wait_falling_edge(0.5) == 9_000
    assert line.edges_skipped == 5
    assert line.wait_falling_edge(0.01) is None
    line.close()
    assert request.released


def test_gpiod_read_error_is_an_io_error(monkeypatch: pytest.MonkeyPatch) -> None:
    state = install_gpiod(monkeypatch)
    line = open_drdy("gpiod", pin=25)
    state["request"].error = OSError(5, "Input/output error")
    with pytest.raises(HardwareIOError, match="EIO"):
        line.wait_falling_edge(0.1)
