"""The status socket's client: one request, one reply, with one-line errors a person can act
on.

This module owns the client side of the wire protocol (see :mod:`emgd.service.status_server`) and
the translation of socket failures into :class:`DaemonUnavailable` and its subclasses, and
of error replies into :class:`RemoteError`. It keeps one connection open across calls (so
``emgd status --watch`` does not reconnect five times a second) and reconnects after any
failure. It must not interpret results: that is the caller's job.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emgd.errors import EmgdError, describe_os_error
from emgd.service.status_server import ERROR_NAMES, PARSE_ERROR, PERMISSION_DENIED

DEFAULT_RUNTIME_DIR = Path("/run/emgd")
SOCKET_NAME = "emgd.sock"
DEFAULT_SOCKET_PATH = DEFAULT_RUNTIME_DIR / SOCKET_NAME
DEFAULT_TIMEOUT_S = 2.0
SERVICE_GROUP = "emgd"
RECV_CHUNK_BYTES = 65_536
MAX_REPLY_BYTES = 16 << 20  # a reply longer than this is treated as a broken daemon


class DaemonUnavailable(EmgdError, ConnectionError):
    """The daemon cannot be reached: not running, socket not accessible, or no answer."""

    exit_code = 9

    def __init__(self, message: str) -> None:
        # OSError's constructor would reinterpret (errno, strerror); keep a plain message.
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DaemonAccessDenied(DaemonUnavailable, PermissionError):
    """The socket exists but this user may not connect to it."""


class DaemonTimeout(DaemonUnavailable, TimeoutError):
    """The daemon accepted the connection but did not answer in time."""


class RemoteError(EmgdError):
    """The daemon answered with an error reply.

    Attributes
    ----------
    code:
        The reply's error code (see :mod:`emgd.service.status_server`).
    method:
        The method that was called.
    """

    exit_code = 10

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"emgd refused {method!r}: {message}")
        self.method = method
        self.code = code
        self.remote_message = message

    @property
    def permission_denied(self) -> bool:
        """True for a privileged method refused because of the caller's credentials."""
        return self.code == PERMISSION_DENIED


def socket_path(runtime_dir: str = "", env: Mapping[str, str] | None = None) -> Path:
    """Where the daemon's socket is: ``runtime_dir``, else ``$RUNTIME_DIRECTORY``, else
    ``/run/emgd``; the file is ``emgd.sock`` in it.

    ``$RUNTIME_DIRECTORY`` (set by systemd for the service) may list several folders
    separated by ``:``; the first is used.
    """
    env = os.environ if env is None else env
    folder = runtime_dir or env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return (Path(folder) if folder else DEFAULT_RUNTIME_DIR) / SOCKET_NAME


class StatusClient:
    """Calls methods of a running daemon over its status socket.

    Parameters
    ----------
    path:
        The socket file.
    timeout_s:
        Longest wait for connecting plus the whole reply of one call.
    """

    def __init__(
        self, path: Path | str = DEFAULT_SOCKET_PATH, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"StatusClient timeout_s must be positive, got {timeout_s}")
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._inbuf = bytearray()
        self._next_id = 1

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> object:
        """Call ``method`` and return its result.

        Raises
        ------
        DaemonUnavailable
            No socket, nobody listening, connection lost (or its subclasses
            :class:`DaemonAccessDenied` and :class:`DaemonTimeout`).
        RemoteError
            The daemon answered with an error (``.code`` says which).
        """
        deadline_s = time.monotonic() + self.timeout_s
        if self._sock is None:
            return self._call_once(method, params, deadline_s)
        try:
            return self._call_once(method, params, deadline_s)
        except (DaemonAccessDenied, DaemonTimeout):
            raise
        except DaemonUnavailable:
            # The kept-open connection may belong to a daemon that restarted since the last
            # call: try once more on a fresh connection before giving up.
            return self._call_once(method, params, deadline_s)

    def _call_once(
        self, method: str, params: Mapping[str, Any] | None, deadline_s: float
    ) -> object:
        request_id = self._next_id
        self._next_id += 1
        request = {"id": request_id, "method": method, "params": dict(params or {})}
        line = json.dumps(request, separators=(",", ":")).encode() + b"\n"
        try:
            sock = self._connected(deadline_s)
            self._send(sock, line, method, deadline_s)
            reply = self._read_reply(sock, method, deadline_s)
            # Replies come in request order and a failed call closes the connection, so the
            # next line answers this request (or is an error the server could not tie to it).
            if reply.get("id") != request_id and not (reply.get("id") is None and "error" in reply):
                raise RemoteError(
                    method, PARSE_ERROR, f"reply id {reply.get('id')!r} is not {request_id}"
                )
        except BaseException:
            self.close()  # the connection's state is unknown now
            raise
        error = reply.get("error")
        if error is not None:
            if not isinstance(error, dict):
                self.close()
                raise RemoteError(method, PARSE_ERROR, f"malformed error reply: {error!r}")
            code = error.get("code")
            code = code if isinstance(code, int) else PARSE_ERROR
            message = str(error.get("message") or ERROR_NAMES.get(code, "error"))
            raise RemoteError(method, code, message)
        if "result" not in reply:
            self.close()
            raise RemoteError(method, PARSE_ERROR, "reply has neither 'result' nor 'error'")
        return reply["result"]

    def close(self) -> None:
        """Close the connection (the next call reconnects)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._inbuf.clear()

    def __enter__(self) -> StatusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------

    def _connected(self, deadline_s: float) -> socket.socket:
        if self._sock is not None:
            return self._sock
        path = self.path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A non-blocking AF_UNIX connect fails at once with EAGAIN while the daemon's listen
        # queue is full; a blocking one waits for room, for at most SO_SNDTIMEO.
        sock.settimeout(None)
        wait_s = _remaining_s(deadline_s)
        seconds = int(wait_s)
        timeval = struct.pack("ll", seconds, int((wait_s - seconds) * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        try:
            sock.connect(os.fspath(path))
        except FileNotFoundError:
            sock.close()
            raise DaemonUnavailable(f"emgd is not running (no socket at {path})") from None
        except ConnectionRefusedError:
            sock.close()
            raise DaemonUnavailable(
                f"emgd is not running (nobody listening on {path}; stale socket)"
            ) from None
        except PermissionError:
            sock.close()
            raise DaemonAccessDenied(
                f"permission denied on {path}: add your user to the {SERVICE_GROUP} group "
                "(then log in again)"
            ) from None
        except (TimeoutError, BlockingIOError):
            sock.close()
            raise DaemonTimeout(
                f"emgd did not accept a connection on {path} within {self.timeout_s:g} s"
            ) from None
        except OSError as exc:
            sock.close()
            raise DaemonUnavailable(
                f"cannot connect to emgd at {path}: {describe_os_error(exc)}"
            ) from exc
        self._sock = sock
        self._inbuf.clear()
        return sock

    def _send(self, sock: socket.socket, line: bytes, method: str, deadline_s: float) -> None:
        sock.settimeout(_remaining_s(deadline_s))
        try:
            sock.sendall(line)
        except TimeoutError:
            raise DaemonTimeout(
                f"emgd did not take the {method!r} request within {self.timeout_s:g} s "
                f"on {self.path}"
            ) from None
        except (BrokenPipeError, ConnectionResetError) as exc:
            # The server may have answered (e.g. "too many clients") and closed before
            # reading the request: that answer is still waiting in our receive buffer.
            if self._drain_pending(sock):
                return
            raise DaemonUnavailable(
                f"emgd closed the connection on {self.path} before {method!r} was sent: "
                f"{describe_os_error(exc)}"
            ) from exc
        except OSError as exc:
            raise DaemonUnavailable(
                f"emgd closed the connection on {self.path} before {method!r} was sent: "
                f"{describe_os_error(exc)}"
            ) from exc

    def _drain_pending(self, sock: socket.socket) -> bool:
        """Read whatever the server sent before closing; True if it holds a whole line."""
        sock.settimeout(0.05)
        try:
            while True:
                data = sock.recv(RECV_CHUNK_BYTES)
                if not data:
                    break
                self._inbuf += data
        except OSError:
            pass
        return b"\n" in self._inbuf

    def _read_reply(self, sock: socket.socket, method: str, deadline_s: float) -> dict[str, Any]:
        buf = self._inbuf
        while True:
            newline = buf.find(b"\n")
            if newline >= 0:
                line = bytes(buf[:newline])
                del buf[: newline + 1]
                break
            if len(buf) > MAX_REPLY_BYTES:
                raise RemoteError(method, PARSE_ERROR, f"reply longer than {MAX_REPLY_BYTES} bytes")
            sock.settimeout(_remaining_s(deadline_s))
            try:
                data = sock.recv(RECV_CHUNK_BYTES)
            except TimeoutError:
                raise DaemonTimeout(
                    f"emgd did not answer {method!r} within {self.timeout_s:g} s on {self.path}"
                ) from None
            except OSError as exc:
                raise DaemonUnavailable(
                    f"emgd dropped the connection on {self.path} while answering {method!r}: "
                    f"{describe_os_error(exc)}"
                ) from exc
            if not data:
                raise DaemonUnavailable(
                    f"emgd closed the connection on {self.path} before answering {method!r}"
                )
            buf += data
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise RemoteError(method, PARSE_ERROR, f"reply is not JSON: {exc}") from None
        if not isinstance(reply, dict):
            raise RemoteError(method, PARSE_ERROR, "reply is not a JSON object")
        return reply


def _remaining_s(deadline_s: float) -> float:
    """Time left before ``deadline_s``; a tiny positive value once it has passed, so the
    socket call times out at once instead of blocking forever (0 would mean non-blocking)."""
    return max(1e-3, deadline_s - time.monotonic())
