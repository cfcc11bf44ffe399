"""The watchdog during start-up work that runs after READY (the signal chain's filter design).

systemd arms a ``Type=notify`` unit's watchdog when READY=1 arrives, and the control loop's
own pings only start with its first hop. Whatever the daemon does between the two (building
the signal chain imports scipy.signal: 0.7–1.6 s on a desktop, several times that on a slow
Pi) must not let ``WatchdogSec`` run out. This module owns that gap: a context manager that
pings once on entry, then from a thread every half watchdog interval while the block runs,
and once on exit, for at most ``max_s`` (a start-up that hangs is still caught). It reads
the time from the injected clock and sends through the injected notifier; it must not ping
outside its block, and it knows nothing of what the block does.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from emgd.clock import NS_PER_S, Clock
from emgd.service.systemd import Notifier

log = logging.getLogger("emgd.runner")

#: Longest start-up block kept alive; after it the watchdog is left to fire.
DEFAULT_MAX_S = 30.0
#: How often the thread looks at the clock (real seconds).
DEFAULT_POLL_S = 0.02


class StartupKeepalive:
    """Ping ``WATCHDOG=1`` while a block of start-up work runs in the calling thread.

    Parameters
    ----------
    notifier:
        The sd_notify sender; without a watchdog (``watchdog_interval_s()`` is None) the
        keepalive does nothing.
    clock:
        Where ping times come from.
    max_s:
        Stop pinging once the block has run this long (clock time).
    poll_s:
        Real time between the thread's looks at the clock.

    Attributes
    ----------
    last_ping_ns:
        Clock time of the latest ping (0 before the first).
    pings_ns:
        Clock time of every ping sent, in order.
    checked_ns:
        Clock time of the thread's latest look at the clock.
    """

    def __init__(
        self,
        notifier: Notifier,
        clock: Clock,
        *,
        max_s: float = DEFAULT_MAX_S,
        poll_s: float = DEFAULT_POLL_S,
    ) -> None:
        self._notifier = notifier
        self._clock = clock
        self._max_ns = round(max_s * NS_PER_S)
        self._poll_s = poll_s
        interval_s = notifier.watchdog_interval_s()
        self._interval_ns = None if interval_s is None else round(interval_s * NS_PER_S)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_ns = 0
        self.last_ping_ns = 0
        self.pings_ns: list[int] = []
        self.checked_ns = 0

    def _ping(self, now_ns: int) -> None:
        self._notifier.watchdog()
        self.last_ping_ns = now_ns
        self.pings_ns.append(now_ns)

    def __enter__(self) -> StartupKeepalive:
        if self._interval_ns is None:
            return self
        self._start_ns = self._clock.monotonic_ns()
        self._ping(self._start_ns)
        self._thread = threading.Thread(target=self._run, name="emgd-startup-watchdog", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._interval_ns is not None
        expired = False
        while not self._stop.wait(self._poll_s):
            now_ns = self._clock.monotonic_ns()
            if not expired and now_ns - self._start_ns > self._max_ns:
                expired = True
                log.error(
                    "start-up work still running after %.0f s: no more watchdog pings",
                    self._max_ns / NS_PER_S,
                )
            if not expired and now_ns - self.last_ping_ns >= self._interval_ns:
                self._ping(now_ns)
            self.checked_ns = now_ns

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if exc_type is None:
            self._ping(self._clock.monotonic_ns())
