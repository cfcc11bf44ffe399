"""The one exception tree of emgd, and the CLI exit code each branch maps to.

Every error raised on purpose by emgd derives from :class:`EmgdError` and from the stdlib
exception it resembles, so callers can catch either. Messages are one line and name what
was wrong and where (file, key, register, address). This module owns no behaviour.
"""

from __future__ import annotations

import errno
import os


class EmgdError(Exception):
    """Base of every error emgd raises deliberately."""

    exit_code: int = 1


class ConfigError(EmgdError, ValueError):
    """A config file, key or value is missing, unknown or out of range."""

    exit_code = 2


class MissingDependencyError(EmgdError, ImportError):
    """A backend was selected whose Python package is not installed (names the extra)."""

    exit_code = 3


class HardwareError(EmgdError, OSError):
    """Something went wrong talking to a chip."""

    exit_code = 4

    def __init__(self, message: str) -> None:
        # OSError's constructor would reinterpret (errno, strerror); keep a plain message.
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class HardwareInitError(HardwareError):
    """A chip is absent, answers with the wrong ID, or a register did not read back."""

    exit_code = 4


class HardwareIOError(HardwareError):
    """A transfer failed while running (NACK, garbage frame, lost DRDY)."""

    exit_code = 5


class CalibrationError(EmgdError, ValueError):
    """A calibration file is corrupt or a calibration session produced unusable data."""

    exit_code = 6


class ModelError(EmgdError, ValueError):
    """A model file is unreadable or its contract does not match the config."""

    exit_code = 7


class DatasetError(EmgdError, ValueError):
    """A dataset file is missing or malformed (names the file and line)."""

    exit_code = 8


class InvalidParams(EmgdError, ValueError):
    """A status-socket request's params are wrong; the server replies ``invalid params``."""


class RecordingError(EmgdError, OSError):
    """A recording file could not be written (disk full, I/O error); names the file."""

    exit_code = 12

    def __init__(self, message: str) -> None:
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def exit_code_for(exc: BaseException) -> int:
    """Return the documented exit code for an exception (1 for anything unexpected)."""
    if isinstance(exc, EmgdError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


def describe_os_error(exc: OSError) -> str:
    """One-line description of an OSError, e.g. ``ENXIO (No such device or address)``."""
    if exc.errno is None:
        return str(exc)
    name = os.strerror(exc.errno)
    code = errno.errorcode.get(exc.errno, str(exc.errno))
    return f"{code} ({name})"
