"""Time as an injected dependency: the one real clock and a fake one for tests.

Every stage that needs the time takes a :class:`Clock` (or a ``now_ns`` value) instead of
calling :mod:`time` itself, so a test can run a minute of EMG in milliseconds. Times are
integer nanoseconds on the monotonic clock (the same base as gpiod edge timestamps).
"""

from __future__ import annotations

import time
from typing import Protocol

NS_PER_S = 1_000_000_000


class Clock(Protocol):
    """What emgd needs of a clock."""

    def monotonic_ns(self) -> int:
        """Current monotonic time in nanoseconds."""
        ...

    def sleep_until_ns(self, deadline_ns: int) -> None:
        """Block until ``monotonic_ns() >= deadline_ns`` (returns at once if already past)."""
        ...


class SystemClock:
    """The machine's monotonic clock; sleeps with :func:`time.sleep`."""

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until_ns(self, deadline_ns: int) -> None:
        remaining_ns = deadline_ns - time.monotonic_ns()
        if remaining_ns > 0:
            time.sleep(remaining_ns / NS_PER_S)


class FakeClock:
    """A clock that only moves when told to: sleeping advances it instantly.

    Parameters
    ----------
    start_ns:
        The initial reading.
    """

    def __init__(self, start_ns: int = 1_000 * NS_PER_S) -> None:
        self._now_ns = start_ns

    def monotonic_ns(self) -> int:
        return self._now_ns

    def sleep_until_ns(self, deadline_ns: int) -> None:
        self._now_ns = max(self._now_ns, deadline_ns)

    def advance_ns(self, delta_ns: int) -> None:
        """Move the clock forward by ``delta_ns`` (negative values are refused)."""
        if delta_ns < 0:
            raise ValueError(f"a clock cannot go backwards (delta {delta_ns} ns)")
        self._now_ns += delta_ns

    def advance_s(self, delta_s: float) -> None:
        """Move the clock forward by ``delta_s`` seconds."""
        self.advance_ns(round(delta_s * NS_PER_S))
