"""The status socket's server: newline-delimited JSON requests over a Unix socket, served by
one background thread.

This module owns the socket file (stale-file replacement, mode, group), the connections,
the wire protocol (one JSON object per line, ``{"id", "method", "params"}`` answered by
``{"id", "result"}`` or ``{"id", "error": {"code", "message"}}``), the peer-credential check
of state-changing methods (``SO_PEERCRED``) and the counters shown in ``emgd status``. It
knows nothing about what the methods do: the daemon passes in a table of handlers.

Threading contract: every handler runs **in the server thread**, one at a time, while the
control loop keeps running. A handler must therefore return quickly and must only read an
immutable snapshot the loop published (a frozen object or a dict the loop no longer
mutates) or enqueue a command for the loop to apply at its next hop; it must never lock
anything the loop holds or touch hardware. The control loop never waits on this thread.
Garbage, oversize lines, floods of connections, clients that stop reading and clients that
vanish are handled inside the thread and never raise out of it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import selectors
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emgd.errors import EmgdError, InvalidParams, describe_os_error

log = logging.getLogger("emgd.status")

# --- Error codes on the wire (JSON-RPC 2.0 values; -32000..-32099 are ours) ---------------
PARSE_ERROR = -32700  # the line is not valid UTF-8 JSON
INVALID_REQUEST = -32600  # not an object, bad id/method type, line too long
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602  # params not an object, or the handler raised InvalidParams
INTERNAL_ERROR = -32603  # the handler raised something unexpected (a bug)
PERMISSION_DENIED = -32001  # privileged method, peer credentials not allowed
REQUEST_FAILED = -32002  # the handler raised an EmgdError (message says why)
TOO_MANY_CLIENTS = -32003  # sent once to a connection refused beyond max_clients

ERROR_NAMES: Mapping[int, str] = {
    PARSE_ERROR: "parse error",
    INVALID_REQUEST: "invalid request",
    METHOD_NOT_FOUND: "method not found",
    INVALID_PARAMS: "invalid params",
    INTERNAL_ERROR: "internal error",
    PERMISSION_DENIED: "permission denied",
    REQUEST_FAILED: "request failed",
    TOO_MANY_CLIENTS: "too many clients",
}

# --- Limits and timings ------------------------------------------------------------------
DEFAULT_MODE = 0o660
DEFAULT_MAX_LINE_BYTES = 65_536
DEFAULT_MAX_CLIENTS = 64
DEFAULT_MAX_PENDING_BYTES = 1 << 20  # unsent replies per client before it is dropped
READ_CHUNK_BYTES = 16_384  # read per wake-up per client: bounds the time one client holds us
SEND_CHUNK_BYTES = 262_144
ACCEPTS_PER_WAKE = 64  # so a connection flood cannot starve the clients already connected
ACCEPT_BACKOFF_S = 0.1  # pause accepting after EMFILE/ENFILE instead of spinning
LISTEN_BACKLOG = 512  # the kernel caps it at net.core.somaxconn
PROBE_TIMEOUT_S = 0.5  # connect() to an existing socket file to see whether it is live
STOP_JOIN_TIMEOUT_S = 5.0
SUN_PATH_MAX_BYTES = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
METHOD_NAME_SHOWN_CHARS = 64  # longest method name echoed back in an error message

# struct ucred from <sys/socket.h>: pid_t pid; uid_t uid; gid_t gid; (3 × 32-bit)
#   byte 0      4      8      12
#        | pid  | uid  | gid  |
UCRED_FORMAT = "iII"
UCRED_BYTES = struct.calcsize(UCRED_FORMAT)


class StatusSocketError(EmgdError, OSError):
    """The status socket could not be created (path in use, not a socket, no permission)."""

    exit_code = 11

    def __init__(self, message: str) -> None:
        # OSError's constructor would reinterpret (errno, strerror); keep a plain message.
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class PeerCred:
    """The connecting process as the kernel saw it at ``connect()`` (``SO_PEERCRED``)."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True)
class SocketCounters:
    """Counters of the status socket since start (a snapshot; safe to keep).

    ``clients`` is the number connected now; ``connections`` every accepted connection;
    ``requests`` every request line; ``errors`` every error reply; ``dropped`` clients cut
    off for an oversize line or for not reading their replies; ``refused`` connections closed
    at once because ``max_clients`` were connected.
    """

    clients: int = 0
    connections: int = 0
    requests: int = 0
    errors: int = 0
    dropped: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as the ``socket`` section of the status snapshot."""
        return {
            "clients": self.clients,
            "connections": self.connections,
            "requests": self.requests,
            "errors": self.errors,
            "dropped": self.dropped,
            "refused": self.refused,
        }


Handler = Callable[[dict[str, Any], PeerCred], object]


class _Client:
    """One connection's buffers and state; touched only by the server thread."""

    __slots__ = ("cred", "events", "inbuf", "open", "outbuf", "sock", "want_close")

    def __init__(self, sock: socket.socket, cred: PeerCred) -> None:
        self.sock = sock
        self.cred = cred
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.events = selectors.EVENT_READ
        self.want_close = False  # close once outbuf has drained
        self.open = True


class StatusServer:
    """A Unix-socket JSON-lines server running in one background thread.

    Parameters
    ----------
    path:
        Socket file, e.g. ``/run/emgd/emgd.sock``. Its folder must exist.
    handlers:
        Method name → ``handler(params, peer) -> result``; ``result`` must be JSON-ready
        (non-finite floats are sent as ``null``). Handlers run in the server thread: see
        the module docstring for what they may do. Raise :class:`InvalidParams` for bad
        params and any :class:`~emgd.errors.EmgdError` for a refused request.
    privileged:
        Methods that change the daemon's state; an entry ending in ``.*`` covers every
        method with that prefix (``"calibrate.*"``). Callers must pass the credential check.
    allowed_uids:
        Peers with these uids may call privileged methods (default: root and this process).
    allowed_gid:
        Peers in this group may call privileged methods too, as their primary group or a
        supplementary one (``usermod -aG emgd alice``: read from the peer process's
        ``/proc/<pid>/status``); when given, the socket file is also handed to this group.
    proc_root:
        Where ``/proc`` is (tests).
    mode:
        Permission bits of the socket file.
    max_line_bytes:
        Longest request line; a longer one gets an error and the connection is closed.
    max_clients:
        Connections served at once; more are accepted, sent one error and closed.
    max_pending_bytes:
        Unsent reply bytes allowed per client; beyond it the client is dropped.
    """

    def __init__(
        self,
        path: Path,
        handlers: Mapping[str, Handler],
        *,
        privileged: frozenset[str] = frozenset(),
        allowed_uids: frozenset[int] | None = None,
        allowed_gid: int | None = None,
        mode: int = DEFAULT_MODE,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        proc_root: Path = Path("/proc"),
    ) -> None:
        if max_line_bytes < 2 or max_clients < 1 or max_pending_bytes < 1:
            raise ValueError(
                f"status server limits must be positive: max_line_bytes={max_line_bytes}, "
                f"max_clients={max_clients}, max_pending_bytes={max_pending_bytes}"
            )
        self.path = Path(path)
        self._handlers: dict[str, Handler] = dict(handlers)
        self._privileged_exact = frozenset(p for p in privileged if not p.endswith(".*"))
        self._privileged_prefixes = tuple(p[:-1] for p in privileged if p.endswith(".*"))
        self.allowed_uids = (
            frozenset({0, os.getuid()}) if allowed_uids is None else frozenset(allowed_uids)
        )
        self.allowed_gid = allowed_gid
        self._proc_root = proc_root
        self.mode = mode
        self.max_line_bytes = max_line_bytes
        self.max_clients = max_clients
        self.max_pending_bytes = max_pending_bytes

        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._inode: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket file
        self._clients: dict[int, _Client] = {}
        self._accept_paused_until_s: float | None = None
        # Counters: written by the server thread only, read by anyone (ints are atomic).
        self._connections = 0
        self._requests = 0
        self._errors = 0
        self._dropped = 0
        self._refused = 0

    # --- public API -----------------------------------------------------------------------

    def start(self) -> None:
        """Create the socket file and start serving. Raises :class:`StatusSocketError`."""
        if self._thread is not None:
            raise RuntimeError("StatusServer.start() called twice")
        self._listener = self._create_socket()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="emgd-status", daemon=True)
        self._thread.start()
        log.info("status socket listening on %s (mode %o)", self.path, self.mode)

    def stop(self) -> None:
        """Close every connection, stop the thread and remove the socket file (idempotent)."""
        self._stopping.set()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(STOP_JOIN_TIMEOUT_S)
        if self._thread is not None and self._thread.is_alive():
            log.warning("status server thread did not stop within %.1f s", STOP_JOIN_TIMEOUT_S)
        else:
            self._close_all()  # the thread closed them already; this covers start() failures
        self._remove_socket_file()

    @property
    def running(self) -> bool:
        """True while the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def counters(self) -> SocketCounters:
        """A snapshot of the counters (callable from any thread)."""
        return SocketCounters(
            clients=len(self._clients),
            connections=self._connections,
            requests=self._requests,
            errors=self._errors,
            dropped=self._dropped,
            refused=self._refused,
        )

    def is_privileged(self, method: str) -> bool:
        """Whether ``method`` needs the peer-credential check."""
        return method in self._privileged_exact or method.startswith(self._privileged_prefixes)

    def peer_allowed(self, cred: PeerCred) -> bool:
        """Whether a peer may call privileged methods."""
        if cred.uid in self.allowed_uids:
            return True
        if self.allowed_gid is None:
            return False
        return cred.gid == self.allowed_gid or self.allowed_gid in self._groups_of(cred.pid)

    def _groups_of(self, pid: int) -> frozenset[int]:
        """The supplementary groups of a peer process (empty if it cannot be read).

        The pid comes from SO_PEERCRED, taken when the peer connected; the peer is still
        connected while its request is handled, so the pid is still its own.
        """
        try:
            text = (self._proc_root / str(pid) / "status").read_text()
        except OSError:
            return frozenset()
        for line in text.splitlines():
            if line.startswith("Groups:"):
                return frozenset(int(g) for g in line.split()[1:] if g.isdigit())
        return frozenset()

    def handle_line(self, line: bytes, cred: PeerCred) -> bytes:
        """Answer one request line (without its newline); returns the reply line with ``\\n``.

        Public so the protocol can be tested without a socket; never raises.
        """
        self._requests += 1
        reply = self._reply_for(line, cred)
        try:
            encoded = _encode(reply)
        except (TypeError, ValueError) as exc:
            log.error("status socket: a result is not JSON: %s", exc)
            reply = _error_reply(
                reply.get("id"), INTERNAL_ERROR, f"internal error: result is not JSON: {exc}"
            )
            encoded = _encode(reply)
        if "error" in reply:
            self._errors += 1
        return encoded

    def __enter__(self) -> StatusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- socket file ----------------------------------------------------------------------

    def _create_socket(self) -> socket.socket:
        path = self.path
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        if len(os.fsencode(tmp)) > SUN_PATH_MAX_BYTES:
            raise StatusSocketError(
                f"status socket path {path} is too long: {len(os.fsencode(tmp))} bytes with "
                f"its temporary suffix, a Unix socket allows {SUN_PATH_MAX_BYTES}"
            )
        if not path.parent.is_dir():
            raise StatusSocketError(f"status socket folder {path.parent} does not exist")
        self._check_existing(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _unlink_quietly(tmp)
            # Bind under a temporary name, fix mode and group, then rename into place, so
            # the socket never exists at `path` with the umask's permissions.
            sock.bind(os.fspath(tmp))
            if self.allowed_gid is not None:
                os.chown(tmp, -1, self.allowed_gid)
            os.chmod(tmp, self.mode)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
            os.replace(tmp, path)
            st = os.stat(path)
            self._inode = (st.st_dev, st.st_ino)
        except OSError as exc:
            sock.close()
            _unlink_quietly(tmp)
            group = "" if self.allowed_gid is None else f" for group {self.allowed_gid}"
            raise StatusSocketError(
                f"cannot create status socket {path}{group}: {describe_os_error(exc)}"
            ) from exc
        return sock

    @staticmethod
    def _check_existing(path: Path) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise StatusSocketError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(PROBE_TIMEOUT_S)
        try:
            probe.connect(os.fspath(path))
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("replacing stale status socket %s (nobody listening)", path)
            return
        except OSError as exc:
            raise StatusSocketError(
                f"cannot tell whether {path} is in use: {describe_os_error(exc)}"
            ) from exc
        finally:
            probe.close()
        raise StatusSocketError(f"another emgd is already serving {path}; stop it first")

    def _remove_socket_file(self) -> None:
        if self._inode is None:
            return
        try:
            st = os.lstat(self.path)
        except OSError:
            self._inode = None
            return
        if (st.st_dev, st.st_ino) == self._inode:  # never delete a successor's socket
            _unlink_quietly(self.path)
        self._inode = None

    # --- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None
        try:
            while not self._stopping.is_set():
                for key, mask in selector.select(self._select_timeout_s()):
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        self._drain_wake()
                    else:
                        self._serve(key.data, mask)
                self._maybe_resume_accept()
        except Exception:
            # Last resort: a bug here must not take the daemon down; it stops the socket.
            log.exception("status server thread failed; status socket closed")
        finally:
            self._close_all()

    def _select_timeout_s(self) -> float | None:
        if self._accept_paused_until_s is None:
            return None
        return max(0.0, self._accept_paused_until_s - time.monotonic())

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # EMFILE/ENFILE/ENOBUFS: stop accepting briefly instead of spinning on a
                # listener that stays readable.
                log.warning("status socket: accept failed: %s", describe_os_error(exc))
                self._pause_accept()
                return
            self._connections += 1
            if len(self._clients) >= self.max_clients:
                self._refuse(sock)
                continue
            try:
                sock.setblocking(False)
                cred = _peer_cred(sock)
            except OSError:
                sock.close()
                continue
            client = _Client(sock, cred)
            assert self._selector is not None
            self._selector.register(sock, selectors.EVENT_READ, client)
            self._clients[sock.fileno()] = client

    def _refuse(self, sock: socket.socket) -> None:
        self._refused += 1
        self._errors += 1
        reply = _error_reply(
            None, TOO_MANY_CLIENTS, f"too many clients ({self.max_clients} connected); try later"
        )
        try:
            sock.setblocking(False)
            sock.send(_encode(reply), socket.MSG_NOSIGNAL)
        except OSError:
            pass
        sock.close()

    def _pause_accept(self) -> None:
        assert self._selector is not None and self._listener is not None
        if self._accept_paused_until_s is None:
            self._selector.unregister(self._listener)
        self._accept_paused_until_s = time.monotonic() + ACCEPT_BACKOFF_S

    def _maybe_resume_accept(self) -> None:
        until = self._accept_paused_until_s
        if until is None or time.monotonic() < until:
            return
        assert self._selector is not None and self._listener is not None
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._accept_paused_until_s = None

    def _serve(self, client: _Client, mask: int) -> None:
        if not client.open:
            return
        try:
            if mask & selectors.EVENT_READ and not client.want_close:
                self._read(client)
            if client.open:
                self._flush(client)
        except Exception:
            log.exception("status socket: client pid %d failed; closing it", client.cred.pid)
            self._close(client)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(READ_CHUNK_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(client)
            return
        if not data:  # the peer shut down its side: finish sending, then close
            client.want_close = True
            client.inbuf.clear()
            return
        client.inbuf += data
        self._process_lines(client)

    def _process_lines(self, client: _Client) -> None:
        buf = client.inbuf
        start = 0
        while True:
            newline = buf.find(b"\n", start)
            end = len(buf) if newline < 0 else newline
            if end - start > self.max_line_bytes:
                self._oversize(client)
                return
            if newline < 0:
                break
            line = bytes(buf[start:newline]).strip()
            start = newline + 1
            if line:
                client.outbuf += self.handle_line(line, client.cred)
                if len(client.outbuf) > self.max_pending_bytes:
                    self._drop(client, "does not read its replies")
                    return
        del buf[:start]

    def _oversize(self, client: _Client) -> None:
        self._requests += 1
        self._errors += 1
        self._dropped += 1
        message = f"request line longer than {self.max_line_bytes} bytes; closing the connection"
        client.outbuf += _encode(_error_reply(None, INVALID_REQUEST, message))
        client.inbuf.clear()
        client.want_close = True
        log.warning("status socket: pid %d sent an oversize line; closing", client.cred.pid)

    def _flush(self, client: _Client) -> None:
        out = client.outbuf
        while out:
            try:
                sent = client.sock.send(out[:SEND_CHUNK_BYTES], socket.MSG_NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # vanished client (EPIPE, ECONNRESET)
                self._close(client)
                return
            del out[:sent]
        if not out and client.want_close:
            self._close(client)
            return
        events = selectors.EVENT_WRITE if out else 0
        if not client.want_close:
            events |= selectors.EVENT_READ
        if events != client.events:
            assert self._selector is not None
            self._selector.modify(client.sock, events, client)
            client.events = events

    def _drop(self, client: _Client, why: str) -> None:
        self._dropped += 1
        log.warning("status socket: dropping client pid %d: %s", client.cred.pid, why)
        self._close(client)

    def _close(self, client: _Client) -> None:
        if not client.open:
            return
        client.open = False
        self._clients.pop(client.sock.fileno(), None)
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(client.sock)
        client.sock.close()
        client.inbuf.clear()
        client.outbuf.clear()

    def _close_all(self) -> None:
        for client in list(self._clients.values()):
            self._close(client)
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        if self._selector is not None:
            self._selector.close()

    # --- protocol -------------------------------------------------------------------------

    def _reply_for(self, line: bytes, cred: PeerCred) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except RecursionError:
            return _error_reply(None, PARSE_ERROR, "parse error: JSON nested too deeply")
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            return _error_reply(None, PARSE_ERROR, f"parse error: {exc}")
        if not isinstance(request, dict):
            kind = type(request).__name__
            return _error_reply(
                None, INVALID_REQUEST, f"invalid request: expected a JSON object, got {kind}"
            )
        request_id = request.get("id")
        if request_id is not None and (
            isinstance(request_id, bool) or not isinstance(request_id, str | int | float)
        ):
            return _error_reply(
                None, INVALID_REQUEST, "invalid request: 'id' must be a string, number or null"
            )
        method = request.get("method")
        if not isinstance(method, str):
            return _error_reply(
                request_id, INVALID_REQUEST, "invalid request: 'method' must be a string"
            )
        shown = _shown(method)
        params = request.get("params")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return _error_reply(
                request_id, INVALID_PARAMS, f"invalid params: 'params' of {shown} must be an object"
            )
        handler = self._handlers.get(method)
        if handler is None:
            known = ", ".join(sorted(self._handlers))
            return _error_reply(
                request_id, METHOD_NOT_FOUND, f"unknown method {shown} (known: {known})"
            )
        if self.is_privileged(method) and not self.peer_allowed(cred):
            return _error_reply(request_id, PERMISSION_DENIED, self._denied_message(shown, cred))
        try:
            result = handler(params, cred)
        except InvalidParams as exc:
            return _error_reply(request_id, INVALID_PARAMS, f"invalid params for {shown}: {exc}")
        except EmgdError as exc:
            return _error_reply(request_id, REQUEST_FAILED, str(exc))
        except Exception as exc:
            log.exception("status socket: handler of %s failed", shown)
            return _error_reply(
                request_id,
                INTERNAL_ERROR,
                f"internal error in {shown}: {type(exc).__name__}: {exc}",
            )
        return {"id": request_id, "result": result}

    def _denied_message(self, shown: str, cred: PeerCred) -> str:
        uids = ", ".join(str(u) for u in sorted(self.allowed_uids))
        who = f"uid in {{{uids}}}"
        if self.allowed_gid is not None:
            who += f" or group {self.allowed_gid}"
        return (
            f"permission denied: {shown} changes the daemon's state and needs {who} "
            f"(caller pid {cred.pid} uid {cred.uid} gid {cred.gid})"
        )


# --- helpers ----------------------------------------------------------------------------


def _peer_cred(sock: socket.socket) -> PeerCred:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED_BYTES)
    pid, uid, gid = struct.unpack(UCRED_FORMAT, raw)
    return PeerCred(pid=pid, uid=uid, gid=gid)


def _error_reply(request_id: object, code: int, message: str) -> dict[str, Any]:
    return {"id": request_id, "error": {"code": code, "message": message}}


def _shown(method: str) -> str:
    if len(method) > METHOD_NAME_SHOWN_CHARS:
        method = method[: METHOD_NAME_SHOWN_CHARS - 1] + "…"
    return repr(method)


def _encode(reply: Mapping[str, Any]) -> bytes:
    """One reply line. Non-finite floats become ``null`` (they are not JSON)."""
    try:
        text = json.dumps(reply, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        text = json.dumps(
            _finite_or_none(reply), allow_nan=False, ensure_ascii=False, separators=(",", ":")
        )
    return text.encode() + b"\n"


def _finite_or_none(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
