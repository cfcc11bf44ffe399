"""A hostile status-socket client for ``emgd bench --flood``: requests that are never read.

This module owns one flooding client, run in a thread of the bench while the daemon is
measured: it connects to the daemon's Unix socket, writes ``status`` requests as fast as
the socket takes them and never reads a reply; when the daemon cuts it off it connects
again, until stopped. It counts what it sent and how often it was cut off. It does not
judge the daemon's figures (:mod:`emgd.bench.suite` compares the runs).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

REQUEST = b'{"id":1,"method":"status"}\n'
REQUESTS_PER_WRITE = 100
CONNECT_RETRY_S = 0.01
STOP_JOIN_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 0.2  # a blocked write is retried, so stop() is noticed within this


class Flooder:
    """Flood ``socket_path`` with ``status`` requests from a background thread.

    Parameters
    ----------
    socket_path:
        The daemon's status socket.
    max_requests:
        Stop after writing this many requests (None: until :meth:`stop`).
    """

    def __init__(self, socket_path: Path, max_requests: int | None = None) -> None:
        self.socket_path = Path(socket_path)
        self.max_requests = max_requests
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bytes_sent = 0
        self.connections = 0
        self.cut_offs = 0
        self.refused = 0

    def __enter__(self) -> Flooder:
        self._thread = threading.Thread(target=self._run, name="emgd-bench-flood", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop flooding and wait for the thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_JOIN_TIMEOUT_S)

    @property
    def requests_sent(self) -> int:
        """Request lines written (one cut by a cut-off counts as sent)."""
        return -(-self.bytes_sent // len(REQUEST))

    @property
    def done(self) -> bool:
        """True once ``max_requests`` were written (or the flooder was stopped)."""
        return self._stop.is_set()

    def summary(self) -> dict[str, Any]:
        """What the flooder did, for the bench report."""
        return {
            "requests_sent": self.requests_sent,
            "connections": self.connections,
            "cut_offs": self.cut_offs,
            "connect_refused": self.refused,
        }

    def _left(self) -> int:
        if self.max_requests is None:
            return REQUESTS_PER_WRITE
        return min(REQUESTS_PER_WRITE, self.max_requests - self.requests_sent)

    def _run(self) -> None:
        while not self._stop.is_set() and self._left() > 0:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(SEND_TIMEOUT_S)
            try:
                sock.connect(os.fspath(self.socket_path))
            except OSError:
                self.refused += 1
                sock.close()
                self._stop.wait(CONNECT_RETRY_S)
                continue
            self.connections += 1
            try:
                self._flood(sock)
            finally:
                sock.close()
        self._stop.set()

    def _flood(self, sock: socket.socket) -> None:
        pending = b""
        while not self._stop.is_set():
            if not pending:
                n = self._left()
                if n <= 0:
                    return
                pending = REQUEST * n
            try:
                sent = sock.send(pending)
            except TimeoutError:  # the daemon is not reading us (throttled): try again
                continue
            except OSError:  # EPIPE / ECONNRESET: cut off
                self.cut_offs += 1
                self.bytes_sent = self.requests_sent * len(REQUEST)  # a cut line counts whole
                return
            self.bytes_sent += sent
            pending = pending[sent:]


def main(argv: list[str] | None = None) -> int:
    """``python -m emgd.bench.flood SOCKET REQUESTS``: flood from a process of its own (tests
    use it as the outside client it stands for); prints the summary as JSON."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m emgd.bench.flood SOCKET REQUESTS", file=sys.stderr)
        return 2
    with Flooder(Path(args[0]), max_requests=int(args[1])) as flooder:
        while not flooder.done:
            time.sleep(0.01)
    print(json.dumps(flooder.summary()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
