"""Tests of emgd.errors: the exit code of each branch, the stdlib base each error can be
caught as, plain one-line messages, and exit_code_for."""

from __future__ import annotations

import errno
import pickle

import pytest

from emgd.errors import (
    CalibrationError,
    ConfigError,
    DatasetError,
    EmgdError,
    HardwareError,
    HardwareInitError,
    HardwareIOError,
    MissingDependencyError,
    ModelError,
    RecordingError,
    describe_os_error,
    exit_code_for,
)

# The documented exit codes, written out by hand (the CLI and the unit file rely on them).
EXPECTED_EXIT_CODES: list[tuple[type[EmgdError], int]] = [
    (EmgdError, 1),
    (ConfigError, 2),
    (MissingDependencyError, 3),
    (HardwareError, 4),
    (HardwareInitError, 4),
    (HardwareIOError, 5),
    (CalibrationError, 6),
    (ModelError, 7),
    (DatasetError, 8),
    (RecordingError, 12),
]

STDLIB_BASES: list[tuple[type[EmgdError], type[BaseException]]] = [
    (ConfigError, ValueError),
    (MissingDependencyError, ImportError),
    (HardwareError, OSError),
    (HardwareInitError, OSError),
    (HardwareIOError, OSError),
    (CalibrationError, ValueError),
    (ModelError, ValueError),
    (DatasetError, ValueError),
    (RecordingError, OSError),
]


@pytest.mark.parametrize(("cls", "code"), EXPECTED_EXIT_CODES)
def test_exit_code_per_class(cls: type[EmgdError], code: int) -> None:
    assert cls.exit_code == code
    assert exit_code_for(cls("something went wrong")) == code


def test_every_deliberate_failure_has_a_nonzero_exit_code_and_the_specific_ones_differ() -> None:
    codes = {cls: code for cls, code in EXPECTED_EXIT_CODES}
    assert all(code != 0 for code in codes.values())
    specific = [codes[c] for c in (ConfigError, MissingDependencyError, HardwareInitError)]
    specific += [codes[c] for c in (HardwareIOError, CalibrationError, ModelError, DatasetError)]
    assert len(set(specific)) == len(specific)


@pytest.mark.parametrize(("cls", "base"), STDLIB_BASES)
def test_each_error_is_an_instance_of_its_stdlib_base(
    cls: type[EmgdError], base: type[BaseException]
) -> None:
    error = cls("adc.channels = 9: must be at most 8")
    assert isinstance(error, EmgdError)
    assert isinstance(error, base)
    with pytest.raises(base):
        raise error


def test_the_hardware_errors_split_into_init_and_io() -> None:
    assert issubclass(HardwareInitError, HardwareError)
    assert issubclass(HardwareIOError, HardwareError)
    assert not issubclass(HardwareInitError, HardwareIOError)
    assert not issubclass(HardwareIOError, HardwareInitError)
    with pytest.raises(HardwareError):
        raise HardwareIOError("PCA9685 at 0x40: NACK writing LED0_ON_L")


def test_config_error_is_a_value_error_with_the_plain_message() -> None:
    message = "/etc/emgd/emgd.toml: adc.channels = 9: must be at most 8"
    error = ConfigError(message)
    assert isinstance(error, ValueError)
    assert str(error) == message


@pytest.mark.parametrize("cls", [HardwareError, HardwareInitError, HardwareIOError])
def test_hardware_errors_are_os_errors_whose_str_is_the_plain_message(
    cls: type[HardwareError],
) -> None:
    message = "ADS1299 ID register = 0x00 (expected 0x3E): no chip on /dev/spidev0.0?"
    error = cls(message)
    assert isinstance(error, OSError)
    assert str(error) == message
    assert error.errno is None
    assert error.strerror is None


def test_hardware_error_keeps_a_message_that_looks_like_errno_arguments() -> None:
    # A plain OSError given two arguments turns them into errno and strerror; a hardware
    # error takes one message only, so its text is never reinterpreted.
    error = HardwareIOError("6")
    assert str(error) == "6"
    assert error.errno is None
    with pytest.raises(TypeError):
        HardwareIOError(errno.ENXIO, "No such device")  # type: ignore[arg-type, call-arg]


def test_hardware_error_is_not_turned_into_an_os_error_subclass() -> None:
    # OSError(errno.ENOENT, ...) becomes FileNotFoundError; ours keeps its own class.
    error = HardwareInitError("gpiochip0 line 25 busy")
    assert type(error) is HardwareInitError
    assert not isinstance(error, FileNotFoundError)


@pytest.mark.parametrize(("cls", "_"), EXPECTED_EXIT_CODES)
def test_errors_survive_pickling_with_their_message(cls: type[EmgdError], _: int) -> None:
    # The acquisition process hands errors to the runner through a pipe.
    error = cls("I2C bus 1: EREMOTEIO at 0x40")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == "I2C bus 1: EREMOTEIO at 0x40"


def test_missing_dependency_error_is_an_import_error() -> None:
    error = MissingDependencyError("adc.ads1299.drdy = 'gpiod' needs pip install 'emgd[pi5]'")
    assert isinstance(error, ImportError)
    assert str(error) == "adc.ads1299.drdy = 'gpiod' needs pip install 'emgd[pi5]'"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (KeyboardInterrupt(), 130),
        (RuntimeError("bug"), 1),
        (ValueError("not ours"), 1),
        (OSError(errno.EIO, "I/O error"), 1),
        (ImportError("no module named spidev"), 1),
        (SystemExit(9), 1),
    ],
)
def test_exit_code_for_exceptions_that_are_not_ours(exc: BaseException, code: int) -> None:
    assert exit_code_for(exc) == code


def test_exit_code_for_a_subclass_defined_elsewhere_inherits_its_branch() -> None:
    class SpiTimeout(HardwareIOError):
        pass

    assert exit_code_for(SpiTimeout("DRDY silent for 50 ms")) == 5


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OSError(errno.ENXIO, "No such device or address"), "ENXIO (No such device or address)"),
        (OSError(errno.EREMOTEIO, "Remote I/O error"), "EREMOTEIO (Remote I/O error)"),
        (PermissionError(errno.EACCES, "Permission denied"), "EACCES (Permission denied)"),
        (OSError("no errno here"), "no errno here"),
    ],
)
def test_describe_os_error(exc: OSError, expected: str) -> None:
    assert describe_os_error(exc) == expected


def test_describe_os_error_with_an_unknown_errno_shows_the_number() -> None:
    text = describe_os_error(OSError(9999, "weird"))
    assert text.startswith("9999 (")
