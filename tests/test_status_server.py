"""Tests of emgd.service.status_server over a real Unix socket in tmp_path."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.errors import ConfigError, InvalidParams
from emgd.service.status_limits import StatusLimits
from emgd.service.status_server import (
    IDLE_TIMEOUT,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PERMISSION_DENIED,
    RATE_LIMITED,
    REQUEST_FAILED,
    TOO_MANY_CLIENTS,
    PeerCred,
    SocketCounters,
    StatusServer,
    StatusSocketError,
)

FAST_REPLY_S = 0.5  # generous bound for "still answers quickly" on a loaded CI machine
WAIT_S = 5.0


def echo(params: dict[str, Any], peer: PeerCred) -> object:
    return params


def whoami(params: dict[str, Any], peer: PeerCred) -> object:
    return {"pid": peer.pid, "uid": peer.uid, "gid": peer.gid}


def boom(params: dict[str, Any], peer: PeerCred) -> object:
    raise RuntimeError("kaput")


def refuse(params: dict[str, Any], peer: PeerCred) -> object:
    raise ConfigError("model.path = /nope: file not found")


def needs_finger(params: dict[str, Any], peer: PeerCred) -> object:
    if "finger" not in params:
        raise InvalidParams("'finger' is required")
    return params["finger"]


def not_json(params: dict[str, Any], peer: PeerCred) -> object:
    return {"when": object()}


def nan_result(params: dict[str, Any], peer: PeerCred) -> object:
    return {"rms_uv": [1.5, float("nan"), float("inf")]}


BLOB = "x" * 4000


def blob(params: dict[str, Any], peer: PeerCred) -> object:
    return BLOB


HANDLERS = {
    "echo": echo,
    "whoami": whoami,
    "boom": boom,
    "refuse": refuse,
    "needs_finger": needs_finger,
    "not_json": not_json,
    "nan": nan_result,
    "blob": blob,
}


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    path = tmp_path / "s.sock"
    assert len(os.fsencode(path)) < 80, "tmp_path too long for a Unix socket"
    return path


@pytest.fixture
def server(sock_path: Path) -> Iterator[StatusServer]:
    srv = StatusServer(sock_path, HANDLERS, privileged=frozenset({"whoami"}))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


class Conn:
    """A blocking test client speaking raw bytes."""

    def __init__(self, path: Path, timeout_s: float = WAIT_S) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.sock.connect(os.fspath(path))
                break
            except BlockingIOError:  # listen backlog full for a moment: EAGAIN on AF_UNIX
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed with {self.buf!r} pending")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send(json.dumps(request).encode() + b"\n")
        reply = json.loads(self.line())
        assert isinstance(reply, dict)
        return reply

    def at_eof(self) -> bool:
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return True
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


# --- protocol ---------------------------------------------------------------------------------


def test_round_trip_exact_bytes(server: StatusServer, sock_path: Path) -> None:
    conn = Conn(sock_path)
    conn.send(b'{"id": 1, "method": "echo", "params": {"a": [1, 2], "b": "\xc2\xb5V"}}\n')
    assert conn.line() == '{"id":1,"result":{"a":[1,2],"b":"µV"}}\n'.encode()
    conn.send(b'{"id": "x", "method": "echo"}\r\n')  # no params, CRLF ending
    assert conn.line() == b'{"id":"x","result":{}}\n'
    conn.close()


def test_several_requests_in_one_write_answered_in_order(server: StatusServer, sock_path: Path):
    conn = Conn(sock_path)
    conn.send(
        b"".join(b'{"id":%d,"method":"echo","params":{"n":%d}}\n' % (i, i) for i in range(50))
    )
    for i in range(50):
        assert json.loads(conn.line()) == {"id": i, "result": {"n": i}}
    conn.close()


def test_request_split_across_writes(server: StatusServer, sock_path: Path) -> None:
    conn = Conn(sock_path)
    for piece in (b'{"id":7,"me', b'thod":"ec', b'ho","params":{}', b"}\n"):
        conn.send(piece)
        time.sleep(0.01)
    assert conn.line() == b'{"id":7,"result":{}}\n'
    conn.close()


def test_garbage_line_gets_parse_error_and_connection_stays_usable(
    server: StatusServer, sock_path: Path
) -> None:
    conn = Conn(sock_path)
    conn.send(b"hello there\n")
    reply = json.loads(conn.line())
    assert reply["id"] is None
    assert reply["error"]["code"] == PARSE_ERROR == -32700
    assert reply["error"]["message"].startswith("parse error: ")
    conn.send(b"\xff\xfe\n")  # not UTF-8
    assert json.loads(conn.line())["error"]["code"] == PARSE_ERROR
    conn.send(b"[" * 100_00 + b"\n")  # deeper than the parser recurses
    assert json.loads(conn.line())["error"]["code"] == PARSE_ERROR
    assert conn.call({"id": 2, "method": "echo"}) == {"id": 2, "result": {}}
    conn.close()


@pytest.mark.parametrize(
    ("line", "code", "words"),
    [
        (b"[1, 2]", INVALID_REQUEST, "expected a JSON object, got list"),
        (b"42", INVALID_REQUEST, "got int"),
        (b'{"id": {"a": 1}, "method": "echo"}', INVALID_REQUEST, "'id' must be"),
        (b'{"id": true, "method": "echo"}', INVALID_REQUEST, "'id' must be"),
        (b'{"id": 3}', INVALID_REQUEST, "'method' must be a string"),
        (b'{"id": 3, "method": 5}', INVALID_REQUEST, "'method' must be a string"),
        (b'{"id": 3, "method": "echo", "params": [1]}', INVALID_PARAMS, "must be an object"),
    ],
)
def test_invalid_requests(
    server: StatusServer, sock_path: Path, line: bytes, code: int, words: str
) -> None:
    conn = Conn(sock_path)
    conn.send(line + b"\n")
    reply = json.loads(conn.line())
    assert reply["error"]["code"] == code
    assert words in reply["error"]["message"]
    conn.close()


def test_unknown_method_names_it_and_lists_known(server: StatusServer, sock_path: Path) -> None:
    conn = Conn(sock_path)
    reply = conn.call({"id": 9, "method": "launch"})
    assert reply["id"] == 9
    assert reply["error"]["code"] == METHOD_NOT_FOUND == -32601
    assert reply["error"]["message"].startswith("unknown method 'launch' (known: blob, boom,")
    long_name = "m" * 5000
    message = conn.call({"id": 10, "method": long_name})["error"]["message"]
    assert len(message) < 400  # the name is shortened, not echoed whole
    conn.close()


def test_handler_exceptions_become_errors_and_server_keeps_running(
    server: StatusServer, sock_path: Path
) -> None:
    conn = Conn(sock_path)
    reply = conn.call({"id": 1, "method": "boom"})
    assert reply["error"] == {
        "code": INTERNAL_ERROR,
        "message": "internal error in 'boom': RuntimeError: kaput",
    }
    reply = conn.call({"id": 2, "method": "refuse"})
    assert reply["error"] == {
        "code": REQUEST_FAILED,
        "message": "model.path = /nope: file not found",
    }
    reply = conn.call({"id": 3, "method": "needs_finger"})
    assert reply["error"]["code"] == INVALID_PARAMS
    assert reply["error"]["message"] == "invalid params for 'needs_finger': 'finger' is required"
    assert conn.call({"id": 4, "method": "needs_finger", "params": {"finger": 2}})["result"] == 2
    reply = conn.call({"id": 5, "method": "not_json"})
    assert reply["id"] == 5
    assert reply["error"]["code"] == INTERNAL_ERROR
    assert server.running
    assert conn.call({"id": 6, "method": "echo"}) == {"id": 6, "result": {}}
    conn.close()
    counters = server.counters()
    assert (counters.requests, counters.errors) == (6, 4)


def test_non_finite_floats_are_sent_as_null(server: StatusServer, sock_path: Path) -> None:
    conn = Conn(sock_path)
    conn.send(b'{"id":1,"method":"nan"}\n')
    assert conn.line() == b'{"id":1,"result":{"rms_uv":[1.5,null,null]}}\n'
    conn.close()


def test_half_closed_client_still_gets_its_reply(server: StatusServer, sock_path: Path) -> None:
    conn = Conn(sock_path)
    conn.send(b'{"id":1,"method":"echo"}\n')
    conn.sock.shutdown(socket.SHUT_WR)
    assert conn.line() == b'{"id":1,"result":{}}\n'
    assert conn.at_eof()
    conn.close()


# --- abuse ------------------------------------------------------------------------------------


def test_oversize_line_gets_error_and_is_closed(sock_path: Path) -> None:
    with StatusServer(sock_path, HANDLERS, max_line_bytes=1024) as srv:
        other = Conn(sock_path)
        conn = Conn(sock_path)
        conn.send(b'{"id":1,"method":"echo","params":{"pad":"' + b"p" * 2000)  # no newline yet
        reply = json.loads(conn.line())
        assert reply == {
            "id": None,
            "error": {
                "code": INVALID_REQUEST,
                "message": "request line longer than 1024 bytes; closing the connection",
            },
        }
        assert conn.at_eof()
        conn.close()
        # A complete line over the limit is refused too; one just under it is served.
        conn = Conn(sock_path)
        conn.send(b"x" * 1100 + b"\n")
        assert json.loads(conn.line())["error"]["code"] == INVALID_REQUEST
        assert conn.at_eof()
        conn.close()
        empty = json.dumps({"id": 2, "method": "echo", "params": {"p": ""}})
        pad = "p" * (1024 - len(empty))  # exactly at the limit
        assert other.call({"id": 2, "method": "echo", "params": {"p": pad}})["id"] == 2
        other.close()
        assert srv.counters().dropped == 2


def test_2000_connect_close_and_200_idle_clients_do_not_slow_an_active_one(
    sock_path: Path,
) -> None:
    # One uid holds all of them here, and the active client asks as fast as it can.
    # (At the shipped 50 ms/s of CPU the 2000 cycles take ~6 s to clear: more here.)
    roomy = StatusLimits(
        max_clients_per_uid=300, max_requests_per_s=10_000.0, max_cpu_ms_per_s=500.0
    )
    with StatusServer(sock_path, HANDLERS, max_clients=300, limits=roomy) as srv:
        idle = [Conn(sock_path) for _ in range(200)]
        active = Conn(sock_path)
        cycles_done = threading.Event()

        def churn() -> None:
            for i in range(2000):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(os.fspath(sock_path))
                if i % 3 == 0:
                    s.sendall(b'{"id":0,"method":"echo"}\n')  # and vanish without reading
                s.close()
            cycles_done.set()

        churner = threading.Thread(target=churn)
        churner.start()
        worst_s = 0.0
        n = 0
        while not cycles_done.is_set() or n < 20:
            t0 = time.monotonic()
            assert active.call({"id": n, "method": "echo", "params": {"n": n}})["result"] == {
                "n": n
            }
            worst_s = max(worst_s, time.monotonic() - t0)
            n += 1
        churner.join()
        assert worst_s < FAST_REPLY_S, f"slowest reply {worst_s * 1e3:.0f} ms"
        # Every connection is accepted, at the pace the server's CPU budget allows.
        wait_for(lambda: srv.counters().connections == 2201, "every connection accepted")
        wait_for(lambda: srv.counters().clients == 201, "churned connections to close")
        for conn in idle:
            conn.close()
        active.close()
        wait_for(lambda: srv.counters().clients == 0, "idle clients to close")


def test_connections_beyond_max_clients_are_refused_and_counted(sock_path: Path) -> None:
    with StatusServer(sock_path, HANDLERS, max_clients=4) as srv:
        conns = [Conn(sock_path) for _ in range(4)]
        for i, conn in enumerate(conns):
            assert conn.call({"id": i, "method": "echo"})["id"] == i  # all four registered
        extra = Conn(sock_path)
        reply = json.loads(extra.line())
        assert reply["id"] is None
        assert reply["error"]["code"] == TOO_MANY_CLIENTS
        assert "too many clients (4 connected)" in reply["error"]["message"]
        assert extra.at_eof()
        extra.close()
        assert srv.counters().refused == 1
        conns.pop().close()
        wait_for(lambda: srv.counters().clients == 3, "a slot to free up")
        again = Conn(sock_path)
        assert again.call({"id": 5, "method": "echo"})["id"] == 5
        for conn in [*conns, again]:
            conn.close()


def test_client_that_never_reads_is_dropped_and_others_continue(sock_path: Path) -> None:
    with StatusServer(sock_path, HANDLERS, max_pending_bytes=65536) as srv:
        reader = Conn(sock_path)
        flooder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        flooder.settimeout(WAIT_S)
        flooder.connect(os.fspath(sock_path))
        batch = b'{"id":1,"method":"blob"}\n' * 200  # 200 × 4 kB of replies per write
        cut_off = False
        for _ in range(500):
            try:
                flooder.sendall(batch)
            except OSError:  # EPIPE / ECONNRESET once the server dropped us
                cut_off = True
                break
            assert reader.call({"id": 2, "method": "echo"})["id"] == 2
            if srv.counters().dropped:
                break
        wait_for(lambda: srv.counters().dropped == 1, "the flooder to be dropped")
        if not cut_off:
            with pytest.raises(OSError):
                for _ in range(100):
                    flooder.sendall(batch)
        flooder.close()
        t0 = time.monotonic()
        assert reader.call({"id": 3, "method": "echo"}) == {"id": 3, "result": {}}
        assert time.monotonic() - t0 < FAST_REPLY_S
        assert srv.counters().clients == 1
        reader.close()


def test_vanished_clients_do_not_disturb_the_server(server: StatusServer, sock_path: Path):
    for _ in range(50):
        conn = Conn(sock_path)
        conn.send(b'{"id":1,"method":"blob"}\n' * 20)
        conn.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        conn.close()  # reset while replies are in flight
    survivor = Conn(sock_path)
    assert survivor.call({"id": 1, "method": "echo"}) == {"id": 1, "result": {}}
    survivor.close()
    assert server.running


# --- credentials ------------------------------------------------------------------------------


def test_peer_credentials_are_the_callers(server: StatusServer, sock_path: Path) -> None:
    conn = Conn(sock_path)
    assert conn.call({"id": 1, "method": "whoami"})["result"] == {
        "pid": os.getpid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
    }
    conn.close()


def test_privileged_method_refused_for_a_peer_not_allowed(sock_path: Path) -> None:
    calls: list[PeerCred] = []

    def pause(params: dict[str, Any], peer: PeerCred) -> object:
        calls.append(peer)
        return "paused"

    other_uid = os.getuid() + 4242
    handlers = {"pause": pause, "calibrate.start": pause, "status": echo}
    with StatusServer(
        sock_path,
        handlers,
        privileged=frozenset({"pause", "calibrate.*"}),
        allowed_uids=frozenset({other_uid}),
        allowed_gid=None,
    ):
        conn = Conn(sock_path)
        reply = conn.call({"id": 1, "method": "pause"})
        assert reply["error"]["code"] == PERMISSION_DENIED == -32001
        message = reply["error"]["message"]
        assert message.startswith(
            "permission denied: 'pause' changes the daemon's state and needs "
            f"uid in {{{other_uid}}}"
        )
        assert f"uid {os.getuid()} gid {os.getgid()}" in message
        assert (
            conn.call({"id": 2, "method": "calibrate.start"})["error"]["code"] == PERMISSION_DENIED
        )
        assert conn.call({"id": 3, "method": "status"})["result"] == {}  # read-only: allowed
        assert calls == []
        conn.close()


def test_privileged_method_accepted_by_uid_or_by_gid(sock_path: Path) -> None:
    def pause(params: dict[str, Any], peer: PeerCred) -> object:
        return "paused"

    for uids, gid in ((None, None), (frozenset({os.getuid() + 1}), os.getgid())):
        with StatusServer(
            sock_path,
            {"pause": pause},
            privileged=frozenset({"pause"}),
            allowed_uids=uids,
            allowed_gid=gid,
        ):
            conn = Conn(sock_path)
            assert conn.call({"id": 1, "method": "pause"}) == {"id": 1, "result": "paused"}
            conn.close()


def test_peer_allowed_rules() -> None:
    srv = StatusServer(
        Path("/nonexistent/s.sock"),
        {},
        privileged=frozenset({"pause", "calibrate.*"}),
        allowed_uids=frozenset({0, 998}),
        allowed_gid=997,
    )
    assert srv.peer_allowed(PeerCred(pid=1, uid=998, gid=100))
    assert srv.peer_allowed(PeerCred(pid=1, uid=1000, gid=997))
    assert not srv.peer_allowed(PeerCred(pid=1, uid=1000, gid=1000))
    assert srv.is_privileged("pause")
    assert srv.is_privileged("calibrate.rest")
    assert not srv.is_privileged("calibrate")
    assert not srv.is_privileged("status")


# --- socket file ------------------------------------------------------------------------------


def test_socket_file_mode_0660_and_group(sock_path: Path) -> None:
    with StatusServer(sock_path, HANDLERS, allowed_gid=os.getgid()):
        st_ = os.stat(sock_path)
        assert stat.S_ISSOCK(st_.st_mode)
        assert stat.S_IMODE(st_.st_mode) == 0o660
        assert st_.st_gid == os.getgid()
        assert [p.name for p in sock_path.parent.iterdir()] == [sock_path.name]  # no temp left
    with StatusServer(sock_path, HANDLERS, mode=0o600):
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600


def test_stale_socket_file_is_replaced(sock_path: Path) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(sock_path))
    dead.close()  # leaves the file behind, nobody listening
    old_inode = os.stat(sock_path).st_ino
    with StatusServer(sock_path, HANDLERS):
        assert os.stat(sock_path).st_ino != old_inode
        conn = Conn(sock_path)
        assert conn.call({"id": 1, "method": "echo"})["result"] == {}
        conn.close()


def test_refuses_to_start_over_a_live_server(server: StatusServer, sock_path: Path) -> None:
    second = StatusServer(sock_path, HANDLERS)
    with pytest.raises(StatusSocketError, match=r"another emgd is already serving .*s\.sock"):
        second.start()
    second.stop()  # harmless, and must not remove the first server's socket
    conn = Conn(sock_path)
    assert conn.call({"id": 1, "method": "echo"})["result"] == {}
    conn.close()


def test_refuses_to_replace_a_regular_file(sock_path: Path) -> None:
    sock_path.write_text("precious")
    with pytest.raises(StatusSocketError, match="exists and is not a socket"):
        StatusServer(sock_path, HANDLERS).start()
    assert sock_path.read_text() == "precious"


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    srv = StatusServer(tmp_path / "nope" / "s.sock", HANDLERS)
    with pytest.raises(StatusSocketError, match=r"folder .*nope does not exist") as info:
        srv.start()
    assert info.value.exit_code == 11


def test_stop_removes_socket_and_is_idempotent(sock_path: Path) -> None:
    srv = StatusServer(sock_path, HANDLERS)
    srv.start()
    conn = Conn(sock_path)
    assert conn.call({"id": 1, "method": "echo"})["result"] == {}
    srv.stop()
    assert not srv.running
    assert not sock_path.exists()
    assert conn.at_eof()  # open connections are closed
    conn.close()
    srv.stop()


def test_counters_snapshot(server: StatusServer, sock_path: Path) -> None:
    conn = Conn(sock_path)
    conn.call({"id": 1, "method": "echo"})
    conn.call({"id": 2, "method": "nope"})
    counters = server.counters()
    assert counters == SocketCounters(
        clients=1,
        connections=1,
        requests=2,
        errors=1,
        dropped=0,
        refused=0,
        cpu_s=counters.cpu_s,
        cpu_peak_ms_per_s=counters.cpu_peak_ms_per_s,
    )
    assert 0 < counters.cpu_s < 1.0
    assert counters.as_dict() == {
        "clients": 1,
        "connections": 1,
        "requests": 2,
        "errors": 1,
        "dropped": 0,
        "refused": 0,
        "idle_dropped": 0,
        "rate_limited": 0,
        "evicted": 0,
        "reserved": 0,
        "cpu_s": counters.cpu_s,
        "cpu_peak_ms_per_s": counters.cpu_peak_ms_per_s,
        "throttled": 0,
    }
    conn.close()


# --- properties (no socket) -------------------------------------------------------------------

PEER = PeerCred(pid=1, uid=os.getuid(), gid=os.getgid())
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(line=st.binary(max_size=200).filter(lambda b: b"\n" not in b))
def test_any_line_gets_exactly_one_well_formed_reply(line: bytes) -> None:
    srv = StatusServer(Path("/nonexistent/s.sock"), HANDLERS)
    reply_line = srv.handle_line(line, PEER)
    assert reply_line.endswith(b"\n")
    assert reply_line.count(b"\n") == 1
    reply = json.loads(reply_line)
    assert set(reply) in ({"id", "result"}, {"id", "error"})


@settings(max_examples=200, deadline=None)
@given(params=st.dictionaries(st.text(max_size=8), json_values, max_size=5), rid=st.integers())
def test_params_round_trip_through_echo(params: dict[str, Any], rid: int) -> None:
    srv = StatusServer(Path("/nonexistent/s.sock"), HANDLERS)
    request = json.dumps({"id": rid, "method": "echo", "params": params}).encode()
    assert json.loads(srv.handle_line(request, PEER)) == {"id": rid, "result": params}


NOBODY_ID = 65534


def run_as_nobody(path: Path, request: bytes) -> bytes:
    """Fork, drop to uid/gid 65534 in the child, send ``request`` and return the reply line."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only socket calls, then _exit
        status = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(NOBODY_ID)
            os.setuid(NOBODY_ID)
            conn = Conn(path)
            conn.send(request)
            os.write(write_fd, conn.line())
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        reply = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return reply


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_privileged_method_refused_for_a_real_other_user() -> None:
    handlers = {"pause": lambda params, peer: "paused", "whoami": whoami}
    # tmp_path's parents are private to root; the other user needs a folder it can enter.
    with tempfile.TemporaryDirectory(prefix="emgd-") as folder:
        os.chmod(folder, 0o755)
        sock_path = Path(folder) / "s.sock"
        server = StatusServer(sock_path, handlers, privileged=frozenset({"pause"}), mode=0o666)
        server.start()
        try:
            check_nobody_is_refused(sock_path)
        finally:
            server.stop()


def check_nobody_is_refused(sock_path: Path) -> None:
    reply = json.loads(run_as_nobody(sock_path, b'{"id":1,"method":"pause"}\n'))
    assert reply["error"]["code"] == PERMISSION_DENIED
    assert f"uid {NOBODY_ID} gid {NOBODY_ID}" in reply["error"]["message"]
    reply = json.loads(run_as_nobody(sock_path, b'{"id":2,"method":"whoami"}\n'))
    assert reply["result"]["uid"] == NOBODY_ID
    assert reply["result"]["gid"] == NOBODY_ID


def test_a_supplementary_group_member_is_allowed(tmp_path: Path) -> None:
    # `usermod -aG emgd alice`: emgd is one of alice's supplementary groups, not her primary.
    for pid, groups in ((4242, "4 24 997"), (4343, "4 24")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "status").write_text(f"Name:\tpython\nGroups:\t{groups} \n")
    srv = StatusServer(
        Path("/nonexistent/s.sock"),
        {},
        privileged=frozenset({"pause"}),
        allowed_uids=frozenset({0}),
        allowed_gid=997,
        proc_root=tmp_path,
    )
    assert srv.peer_allowed(PeerCred(pid=4242, uid=1000, gid=1000))
    assert not srv.peer_allowed(PeerCred(pid=4343, uid=1000, gid=1000))
    assert not srv.peer_allowed(PeerCred(pid=5555, uid=1000, gid=1000))  # gone: no groups


# --- limits (issue 29): idle clients, per-uid and reserved slots, rates, CPU ------------------

OPERATOR_REPLY_S = 0.1  # `emgd status` must still answer this fast while others hold the socket


def status_handlers() -> tuple[dict[str, Any], list[int]]:
    """A ``status`` method that counts its calls."""
    calls: list[int] = []

    def status(params: dict[str, Any], peer: PeerCred) -> object:
        calls.append(1)
        return {"state": "running", "uptime_s": 1.0}

    return {"status": status, "echo": echo}, calls


def timed_status_call(sock_path: Path) -> float:
    """Seconds for a fresh `emgd status` client to connect and get its answer."""
    from emgd.client.status_client import StatusClient

    t0 = time.monotonic()
    with StatusClient(sock_path, timeout_s=WAIT_S) as client:
        assert client.call("status") == {"state": "running", "uptime_s": 1.0}
    return time.monotonic() - t0


def test_idle_client_is_dropped_with_an_error_and_an_asking_one_kept(sock_path: Path) -> None:
    from emgd.clock import FakeClock

    clock = FakeClock()
    limits = StatusLimits(idle_timeout_s=10.0)
    with StatusServer(sock_path, HANDLERS, limits=limits, clock=clock) as srv:
        silent = Conn(sock_path)
        watcher = Conn(sock_path)
        assert watcher.call({"id": 1, "method": "echo"})["id"] == 1
        clock.advance_ns(6 * 10**9)
        assert watcher.call({"id": 2, "method": "echo"})["id"] == 2  # asks: keeps its slot
        assert srv.counters().idle_dropped == 0
        clock.advance_ns(6 * 10**9)  # silent: 12 s without a request; watcher: 6 s
        assert watcher.call({"id": 3, "method": "echo"})["id"] == 3
        reply = json.loads(silent.line())
        assert reply["error"]["code"] == IDLE_TIMEOUT
        assert "idle for 10 s without a complete request" in reply["error"]["message"]
        assert silent.at_eof()
        assert srv.counters().idle_dropped == 1
        assert watcher.call({"id": 4, "method": "echo"})["id"] == 4
        silent.close()
        watcher.close()


def test_500_idle_connections_of_one_uid_do_not_lock_out_emgd_status(sock_path: Path) -> None:
    handlers, _ = status_handlers()
    with StatusServer(sock_path, handlers) as srv:  # the shipped limits: 64 in all, 16 a uid
        idle = [Conn(sock_path) for _ in range(500)]
        wait_for(lambda: srv.counters().connections == 500, "every connection accepted")
        assert srv.counters().clients == 16  # the uid's limit; the rest were refused
        time.sleep(1.1)  # idle long enough to be evicted for their own uid's newcomer
        evicted = srv.counters().evicted  # (some may have aged 1 s while 500 connected)
        took_s = timed_status_call(sock_path)
        assert took_s < OPERATOR_REPLY_S, f"emgd status took {took_s * 1e3:.0f} ms"
        assert srv.counters().evicted == evicted + 1
        for conn in idle:
            conn.close()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to hold connections as another user")
def test_500_idle_connections_of_another_user_leave_root_a_slot() -> None:
    handlers, _ = status_handlers()
    limits = StatusLimits(max_clients_per_uid=64)  # one user may fill the whole total
    with tempfile.TemporaryDirectory(prefix="emgd-") as folder:
        os.chmod(folder, 0o755)
        sock_path = Path(folder) / "s.sock"
        with StatusServer(sock_path, handlers, mode=0o666, limits=limits) as srv:
            ready_r, ready_w = os.pipe()
            done_r, done_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: nobody holds 500 silent connections until told to stop
                status = 1
                try:
                    os.setgroups([])
                    os.setgid(NOBODY_ID)
                    os.setuid(NOBODY_ID)
                    held = [Conn(sock_path) for _ in range(500)]
                    os.write(ready_w, b"x")
                    os.read(done_r, 1)
                    del held
                    status = 0
                finally:
                    os._exit(status)
            try:
                assert os.read(ready_r, 1) == b"x"
                wait_for(lambda: srv.counters().connections == 500, "nobody's connections")
                assert srv.counters().clients == 64  # the total is full
                took_s = timed_status_call(sock_path)  # root: through the reserve
                assert took_s < OPERATOR_REPLY_S, f"emgd status took {took_s * 1e3:.0f} ms"
                assert srv.counters().reserved == 1
            finally:
                os.write(done_w, b"x")
                os.waitpid(pid, 0)
                for fd in (ready_r, ready_w, done_r, done_w):
                    os.close(fd)


def test_a_flood_of_10000_requests_that_never_reads_is_cut_off_after_its_burst(
    sock_path: Path,
) -> None:
    handlers, calls = status_handlers()
    limits = StatusLimits()  # 50 requests/s, bursts of 2 s
    with StatusServer(sock_path, handlers, limits=limits) as srv:
        operator = Conn(sock_path)
        flooder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        flooder.settimeout(WAIT_S)
        flooder.connect(os.fspath(sock_path))
        flood = b'{"id":1,"method":"status"}\n' * 10_000
        cut_off = False
        try:
            flooder.sendall(flood)
        except OSError:  # EPIPE / ECONNRESET: the server cut us off mid-flood
            cut_off = True
        wait_for(lambda: srv.counters().rate_limited == 1, "the flooder to be cut off")
        if not cut_off:  # the whole flood fitted in the buffers: the next write fails
            with pytest.raises(OSError):
                for _ in range(100):
                    flooder.sendall(flood)
        burst = round(2.0 * limits.max_requests_per_s)
        assert burst <= len(calls) <= burst + 10  # the rest of the flood was never handled
        took_s = time.monotonic()
        assert operator.call({"id": 2, "method": "status"})["id"] == 2
        assert time.monotonic() - took_s < OPERATOR_REPLY_S
        counters = srv.counters()
        assert counters.clients == 1
        assert counters.cpu_s < 1.0
        flooder.close()
        operator.close()


def test_the_first_request_beyond_the_rate_gets_an_error_before_the_cut_off(
    sock_path: Path,
) -> None:
    limits = StatusLimits(max_requests_per_s=5.0)  # bursts of 10
    with StatusServer(sock_path, HANDLERS, limits=limits) as srv:
        conn = Conn(sock_path)
        conn.send(b"".join(b'{"id":%d,"method":"echo"}\n' % i for i in range(12)))
        replies = [json.loads(conn.line()) for _ in range(11)]
        assert [r["id"] for r in replies[:10]] == list(range(10))
        error = replies[10]["error"]
        assert error["code"] == RATE_LIMITED
        assert "more than 5 requests/s" in error["message"]
        assert "closing the connection" in error["message"]
        assert conn.at_eof()
        assert srv.counters().rate_limited == 1
        conn.close()


def test_bytes_beyond_the_byte_rate_get_an_error_before_the_cut_off(sock_path: Path) -> None:
    limits = StatusLimits(max_bytes_per_s=4096.0)  # bursts of 8 KiB
    with StatusServer(sock_path, HANDLERS, limits=limits) as srv:
        conn = Conn(sock_path)
        with contextlib.suppress(OSError):  # the server may cut us off mid-write
            conn.send(b" " * 20_000)  # no newline: one long, slow-to-finish request
        reply = json.loads(conn.line())
        assert reply["error"]["code"] == RATE_LIMITED
        assert "more than 4096 bytes/s" in reply["error"]["message"]
        assert srv.counters().rate_limited == 1
        conn.close()


def test_the_server_threads_cpu_per_second_stays_within_its_budget(sock_path: Path) -> None:
    def burn(params: dict[str, Any], peer: PeerCred) -> object:
        end = time.thread_time_ns() + 1_000_000  # 1 ms of CPU per request
        while time.thread_time_ns() < end:
            pass
        return "done"

    limits = StatusLimits(max_cpu_ms_per_s=40.0, max_requests_per_s=1000.0)
    with StatusServer(sock_path, {"burn": burn}, limits=limits) as srv:
        conns = [Conn(sock_path, timeout_s=30.0) for _ in range(2)]
        t0 = time.monotonic()
        for conn in conns:
            conn.send(b'{"id":1,"method":"burn"}\n' * 50)
        for conn in conns:
            for _ in range(50):
                assert json.loads(conn.line())["result"] == "done"
        elapsed_s = time.monotonic() - t0
        counters = srv.counters()
        assert counters.throttled >= 10  # 100 ms of work at 4 ms per 100 ms slice
        assert elapsed_s > 1.5  # ~2.5 s: the work was spread, not done at once
        assert counters.cpu_peak_ms_per_s < 40.0 * 1.5
        for conn in conns:
            conn.close()


def test_the_server_thread_runs_at_the_fifo_priority_it_is_given(sock_path: Path) -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(5))
    except PermissionError:
        pytest.skip("SCHED_FIFO not permitted here")
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    with StatusServer(sock_path, {"echo": echo}, fifo_priority=7) as srv:
        conn = Conn(sock_path)
        conn.send(b'{"id":1,"method":"echo"}\n')
        assert json.loads(conn.line())["id"] == 1  # the thread has applied its policy
        thread = srv._thread
        assert thread is not None and thread.native_id is not None
        assert os.sched_getscheduler(thread.native_id) == os.SCHED_FIFO
        assert os.sched_getparam(thread.native_id).sched_priority == 7
        conn.close()
    # The caller's own policy is untouched: only the server thread changed.
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
