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

Limits (the rules live in :mod:`emgd.service.status_limits`): connections in total and per peer
uid, with a reserve beyond the total for the first connection of root and of the
service's own group, so ``emgd status`` gets in while others fill the limit; idle clients
dropped; requests and bytes per second per client, the first one beyond them answered
with an error before the cut-off; and the thread's CPU per second bounded (it sleeps out
the rest of a slice once the slice's budget is spent), so no client can cost the loop a
sample.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import select
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

from emgd.clock import NS_PER_S, Clock, SystemClock
from emgd.errors import EmgdError, InvalidParams, describe_os_error
from emgd.service.status_limits import (
    BURST_S,
    EVICTABLE_AFTER_S,
    Admit,
    CpuBudget,
    StatusLimits,
    TokenBucket,
    admit,
)

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
RATE_LIMITED = -32004  # a client went beyond its requests or bytes per second; then closed
IDLE_TIMEOUT = -32005  # no complete request for idle_timeout_s; then closed
EVICTED = -32006  # an idle connection closed to let its own uid's newer one in

ERROR_NAMES: Mapping[int, str] = {
    PARSE_ERROR: "parse error",
    INVALID_REQUEST: "invalid request",
    METHOD_NOT_FOUND: "method not found",
    INVALID_PARAMS: "invalid params",
    INTERNAL_ERROR: "internal error",
    PERMISSION_DENIED: "permission denied",
    REQUEST_FAILED: "request failed",
    TOO_MANY_CLIENTS: "too many clients",
    RATE_LIMITED: "rate limited",
    IDLE_TIMEOUT: "idle timeout",
    EVICTED: "evicted",
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
MAX_IDLE_SWEEP_NS = 1_000_000_000  # idle clients are looked for at least this often

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
    at once because ``max_clients`` (or the uid's limit) were connected; ``idle_dropped``
    clients closed after ``idle_timeout_s`` without a request; ``rate_limited`` clients cut
    off beyond their rate; ``evicted`` idle connections closed for a newer one of their uid;
    ``reserved`` connections let in beyond the total (root, the service group's first);
    ``cpu_s`` the server thread's CPU time, ``cpu_peak_ms_per_s`` its busiest second and
    ``throttled`` the CPU slices it slept out because their budget was spent.
    """

    clients: int = 0
    connections: int = 0
    requests: int = 0
    errors: int = 0
    dropped: int = 0
    refused: int = 0
    idle_dropped: int = 0
    rate_limited: int = 0
    evicted: int = 0
    reserved: int = 0
    cpu_s: float = 0.0
    cpu_peak_ms_per_s: float = 0.0
    throttled: int = 0

    def as_dict(self) -> dict[str, int | float]:
        """The counters as the ``socket`` section of the status snapshot."""
        return {
            "clients": self.clients,
            "connections": self.connections,
            "requests": self.requests,
            "errors": self.errors,
            "dropped": self.dropped,
            "refused": self.refused,
            "idle_dropped": self.idle_dropped,
            "rate_limited": self.rate_limited,
            "evicted": self.evicted,
            "reserved": self.reserved,
            "cpu_s": self.cpu_s,
            "cpu_peak_ms_per_s": self.cpu_peak_ms_per_s,
            "throttled": self.throttled,
        }


Handler = Callable[[dict[str, Any], PeerCred], object]


class _Client:
    """One connection's buffers and state; touched only by the server thread."""

    __slots__ = (
        "backlogged",
        "byte_bucket",
        "cred",
        "events",
        "inbuf",
        "last_request_ns",
        "open",
        "outbuf",
        "request_bucket",
        "requests",
        "reserved",
        "sock",
        "want_close",
    )

    def __init__(
        self, sock: socket.socket, cred: PeerCred, limits: StatusLimits, now_ns: int
    ) -> None:
        self.sock = sock
        self.cred = cred
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.events = selectors.EVENT_READ
        self.want_close = False  # close once outbuf has drained
        self.open = True
        self.reserved = False  # let in beyond max_clients (counts against the reserve)
        self.backlogged = False  # complete lines wait in inbuf (CPU budget): do not read
        self.last_request_ns = now_ns  # connect time until the first complete request
        self.requests = 0
        self.request_bucket = TokenBucket(
            limits.max_requests_per_s, max(1.0, BURST_S * limits.max_requests_per_s), now_ns
        )
        self.byte_bucket = TokenBucket(
            limits.max_bytes_per_s, BURST_S * limits.max_bytes_per_s, now_ns
        )

    @property
    def idle(self) -> bool:
        """Nothing half-read, nothing unsent: closing it loses no request or reply."""
        return not (self.inbuf or self.outbuf or self.backlogged)


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
    limits:
        Per-uid and reserved connections, idle timeout, per-client rates, CPU budget.
    clock:
        Idle timeouts and rates run on it (default :class:`~emgd.clock.SystemClock`).
    thread_cpu_ns:
        The server thread's CPU time (default :func:`time.thread_time_ns`); the CPU budget
        compares it with the real monotonic clock, whatever ``clock`` is.
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
        limits: StatusLimits | None = None,
        clock: Clock | None = None,
        thread_cpu_ns: Callable[[], int] = time.thread_time_ns,
        fifo_priority: int = 0,
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
        self.limits = StatusLimits() if limits is None else limits
        self._clock: Clock = SystemClock() if clock is None else clock
        self._thread_cpu_ns = thread_cpu_ns
        self.fifo_priority = fifo_priority
        self._budget = CpuBudget(self.limits.max_cpu_ms_per_s)
        self._by_uid: dict[int, dict[int, _Client]] = {}
        self._reserved_in_use = 0
        self._backlog: dict[int, _Client] = {}
        self._next_sweep_ns = 0
        self._sweep_ns = min(MAX_IDLE_SWEEP_NS, max(1, self.limits.idle_timeout_ns // 4))

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
        self._idle_dropped = 0
        self._rate_limited = 0
        self._evicted = 0
        self._reserved = 0

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
            idle_dropped=self._idle_dropped,
            rate_limited=self._rate_limited,
            evicted=self._evicted,
            reserved=self._reserved,
            cpu_s=self._budget.total_cpu_ns / 1e9,
            cpu_peak_ms_per_s=self._budget.peak_cpu_ms_per_s,
            throttled=self._budget.throttled_slices,
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
        self._apply_scheduling()
        selector = self._selector
        assert selector is not None
        try:
            while not self._stopping.is_set():
                self._serve_backlog()
                events = selector.select(self._select_timeout_s())
                # Connected clients first, new connections last: a connection storm spends
                # what is left of the CPU slice, not the time of those already served.
                listener_ready = False
                for key, _mask in events:
                    if key.fileobj is self._listener:
                        listener_ready = True
                    elif key.fileobj is self._wake_r:
                        self._drain_wake()
                for key, mask in events:
                    if key.data is not None:
                        self._serve(key.data, mask)
                if listener_ready and not self._spent():
                    self._accept()
                self._maybe_resume_accept()
                self._sweep_idle()
                self._sleep_out_spent_slice()
        except Exception:
            # Last resort: a bug here must not take the daemon down; it stops the socket.
            log.exception("status server thread failed; status socket closed")
        finally:
            self._close_all()

    def _apply_scheduling(self) -> None:
        """Run this thread at SCHED_FIFO ``fifo_priority`` (0: leave the normal policy).

        The daemon asks for one below the control loop's. The thread holds the GIL while
        it parses and answers; at the normal policy any busy process (a flooding client
        among them) can preempt it mid-request, and the SCHED_FIFO loop then waits for
        the GIL until this thread is scheduled again: a priority inversion that cost the
        loop 2-3 ms of end-to-end p99 under a flood on a loaded machine. Its CPU budget
        per second (``[status] max_cpu_ms_per_s``) bounds what it can take at that
        priority.
        """
        if not self.fifo_priority or not hasattr(os, "sched_setscheduler"):
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.fifo_priority))
        except OSError as exc:
            log.warning(
                "status server: SCHED_FIFO %d refused (%s): under load a flood of clients "
                "can delay the control loop",
                self.fifo_priority,
                exc,
            )

    def _select_timeout_s(self) -> float:
        if self._backlog:
            return 0.0
        timeout_ns = min(self._sweep_ns, max(0, self._next_sweep_ns - self._clock.monotonic_ns()))
        timeout_s = timeout_ns / 1e9
        if self._accept_paused_until_s is not None:
            timeout_s = min(timeout_s, self._accept_paused_until_s - time.monotonic())
        return max(0.0, timeout_s)

    def _spent(self) -> bool:
        """Whether this CPU slice's budget is used up (the server must stop serving)."""
        return self._budget.over(time.monotonic_ns(), self._thread_cpu_ns())

    def _sleep_out_spent_slice(self) -> None:
        """Once the slice's CPU budget is spent, serve nobody until the slice ends."""
        if self._spent():
            pause_s = (self._budget.resume_ns - time.monotonic_ns()) / 1e9
            if pause_s > 0:
                self._stopping.wait(pause_s)

    def _serve_backlog(self) -> None:
        """Answer lines left waiting by a spent CPU slice, oldest client first."""
        for client in list(self._backlog.values()):
            if self._spent():
                return
            self._backlog.pop(client.sock.fileno(), None)
            client.backlogged = False
            if not client.open:
                continue
            self._process_lines(client)
            if client.open:
                self._flush(client)

    def _sweep_idle(self) -> None:
        """Close clients that sent no complete request for ``idle_timeout_s``."""
        now_ns = self._clock.monotonic_ns()
        if now_ns < self._next_sweep_ns:
            return
        self._next_sweep_ns = now_ns + self._sweep_ns
        limit_ns = self.limits.idle_timeout_ns
        for client in list(self._clients.values()):
            if now_ns - client.last_request_ns >= limit_ns:
                self._idle_dropped += 1
                message = (
                    f"idle for {self.limits.idle_timeout_s:g} s without a complete request; "
                    "closing the connection (ask at least that often to keep it)"
                )
                self._say_and_close(client, IDLE_TIMEOUT, message)

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
            try:
                sock.setblocking(False)
                cred = _peer_cred(sock)
            except OSError:
                sock.close()
                continue
            self._admit(sock, cred)
            if self._spent():
                return  # the listener stays readable: the rest wait for the next slice

    def _admit(self, sock: socket.socket, cred: PeerCred) -> None:
        """Register a new connection, or refuse it, by :func:`emgd.service.status_limits.admit`."""
        own = self._by_uid.get(cred.uid, {})
        if len(own) >= self.limits.max_clients_per_uid or len(self._clients) >= self.max_clients:
            self._reap_vanished(list(self._clients.values()))  # closes not yet seen count
            own = self._by_uid.get(cred.uid, {})
        now_ns = self._clock.monotonic_ns()
        evictable = [
            c
            for c in own.values()
            if c.idle and now_ns - c.last_request_ns >= EVICTABLE_AFTER_S * NS_PER_S
        ]
        decision = admit(
            cred.uid,
            uid_clients=len(own),
            uid_has_idle=bool(evictable),
            total_clients=len(self._clients),
            reserved_in_use=self._reserved_in_use,
            max_clients=self.max_clients,
            limits=self.limits,
            privileged=lambda: self.peer_allowed(cred),
        )
        if decision is Admit.REFUSE_TOTAL:
            self._refuse(sock, f"too many clients ({self.max_clients} connected); try later")
            return
        if decision is Admit.REFUSE_UID:
            self._refuse(
                sock,
                f"too many clients ({len(own)} connected) from uid {cred.uid}, none idle for "
                f"{EVICTABLE_AFTER_S:g} s; try later",
            )
            return
        if decision is Admit.EVICT_OWN:
            oldest = min(evictable, key=lambda c: (c.requests > 0, c.last_request_ns))
            self._evicted += 1
            self._say_and_close(
                oldest,
                EVICTED,
                f"uid {cred.uid} opened more than {len(own)} connections: this idle one is "
                "closed to let the newest in",
            )
        client = _Client(sock, cred, self.limits, now_ns)
        if decision is Admit.RESERVED:
            client.reserved = True
            self._reserved_in_use += 1
            self._reserved += 1
        assert self._selector is not None
        self._selector.register(sock, selectors.EVENT_READ, client)
        self._clients[sock.fileno()] = client
        self._by_uid.setdefault(cred.uid, {})[sock.fileno()] = client

    def _reap_vanished(self, clients: list[_Client]) -> None:
        """Close clients whose peer has hung up but whose close is not yet read."""
        poller = select.poll()
        by_fd = {}
        for client in clients:
            fd = client.sock.fileno()
            by_fd[fd] = client
            poller.register(fd, select.POLLHUP | select.POLLERR)
        for fd, mask in poller.poll(0):
            if mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                self._close(by_fd[fd])

    def _refuse(self, sock: socket.socket, message: str) -> None:
        self._refused += 1
        self._errors += 1
        reply = _error_reply(None, TOO_MANY_CLIENTS, message)
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
            if mask & selectors.EVENT_READ and not client.want_close and not client.backlogged:
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
        if not client.byte_bucket.take(len(data), self._clock.monotonic_ns()):
            self._over_rate(client, f"{self.limits.max_bytes_per_s:g} bytes/s")
            return
        client.inbuf += data
        self._process_lines(client)

    def _process_lines(self, client: _Client) -> None:
        buf = client.inbuf
        start = 0
        now_ns = self._clock.monotonic_ns()
        while True:
            newline = buf.find(b"\n", start)
            end = len(buf) if newline < 0 else newline
            if end - start > self.max_line_bytes:
                self._oversize(client)
                return
            if newline < 0:
                break
            if self._spent():  # answer the rest in a later slice; read nothing meanwhile
                client.backlogged = True
                self._backlog[client.sock.fileno()] = client
                break
            line = bytes(buf[start:newline]).strip()
            start = newline + 1
            if line:
                client.last_request_ns = now_ns
                client.requests += 1
                if not client.request_bucket.take(1, now_ns):
                    self._over_rate(client, f"{self.limits.max_requests_per_s:g} requests/s")
                    return
                client.outbuf += self.handle_line(line, client.cred)
                if len(client.outbuf) > self.max_pending_bytes:
                    self._drop(client, "does not read its replies")
                    return
        del buf[:start]

    def _over_rate(self, client: _Client, rate: str) -> None:
        """Answer the first request beyond a rate with an error, then cut the client off."""
        self._requests += 1
        self._errors += 1
        self._rate_limited += 1
        burst = f"{BURST_S:g} s"
        message = (
            f"rate limited: more than {rate} (bursts of {burst} allowed); closing the connection"
        )
        client.outbuf += _encode(_error_reply(None, RATE_LIMITED, message))
        client.inbuf.clear()
        client.want_close = True
        log.warning("status socket: pid %d went beyond %s; closing", client.cred.pid, rate)
        self._flush(client)  # closes it once the error is out
        if client.open:  # a client that does not read gets no more time: cut off now
            self._close(client)

    def _say_and_close(self, client: _Client, code: int, message: str) -> None:
        """Send one error line if the socket takes it now, then close (never blocks)."""
        self._errors += 1
        with contextlib.suppress(OSError):
            client.sock.send(_encode(_error_reply(None, code, message)), socket.MSG_NOSIGNAL)
        self._close(client)

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
        if not client.want_close and not client.backlogged:
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
        fd = client.sock.fileno()
        self._clients.pop(fd, None)
        self._backlog.pop(fd, None)
        own = self._by_uid.get(client.cred.uid)
        if own is not None:
            own.pop(fd, None)
            if not own:
                del self._by_uid[client.cred.uid]
        if client.reserved:
            self._reserved_in_use -= 1
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
