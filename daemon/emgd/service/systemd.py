"""sd_notify: tell systemd about readiness, status, watchdog pings and shutdown.

The protocol is one datagram of newline-separated ``KEY=value`` lines sent to the
``AF_UNIX`` socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract
namespace); the kernel attaches the sender's credentials. Outside systemd (no
``$NOTIFY_SOCKET``) every call is a no-op returning False. This module only sends; the
runner decides when.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    """A connected sd_notify sender, or a no-op outside systemd.

    Parameters
    ----------
    env:
        Where to read ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` (default ``os.environ``).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | None = None
        if address:
            self._address = "\0" + address[1:] if address.startswith("@") else address
        watchdog = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        self.watchdog_usec: int | None = None
        for_us = not watchdog_pid or watchdog_pid == str(os.getpid())
        if watchdog.isdigit() and int(watchdog) > 0 and for_us:
            self.watchdog_usec = int(watchdog)
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self._address is not None

    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half the watchdog timeout, or None without a watchdog."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2e6

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines, e.g. ``notify(READY=1, STATUS="running")``."""
        if self._address is None:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items())
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.sendto(payload.encode("utf-8"), self._address)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
