"""Tests of emgd.client.status_client against a real StatusServer and hand-made broken servers."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emgd.client.status_client import (
    DaemonAccessDenied,
    DaemonTimeout,
    DaemonUnavailable,
    RemoteError,
    StatusClient,
    socket_path,
)
from emgd.errors import EmgdError, exit_code_for
from emgd.service.status_server import (
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PERMISSION_DENIED,
    TOO_MANY_CLIENTS,
    PeerCred,
    StatusServer,
)


def echo(params: dict[str, Any], peer: PeerCred) -> object:
    return {"params": params}


def pause(params: dict[str, Any], peer: PeerCred) -> object:
    return "paused"


HANDLERS = {"echo": echo, "pause": pause}


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "c.sock"


@pytest.fixture
def server(sock_path: Path) -> Iterator[StatusServer]:
    with StatusServer(sock_path, HANDLERS) as srv:
        yield srv


class RawServer:
    """A one-connection server thread: after the first request it sends ``reply`` (None:
    nothing) and then waits for the client to hang up; ``close_at_once`` hangs up itself."""

    def __init__(self, path: Path, reply: bytes | None, close_at_once: bool = False) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(os.fspath(path))
        self.listener.listen(1)
        self.reply = reply
        self.close_at_once = close_at_once
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(5.0)
            try:
                conn.recv(65536)
                if self.close_at_once:
                    return
                if self.reply is not None:
                    conn.sendall(self.reply)
                while conn.recv(65536):  # until the client hangs up
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5.0)


def test_call_returns_result_and_reuses_one_connection(
    server: StatusServer, sock_path: Path
) -> None:
    with StatusClient(sock_path) as client:
        assert client.call("echo", {"finger": 2}) == {"params": {"finger": 2}}
        assert client.call("echo") == {"params": {}}
        assert client.call("pause") == "paused"
    counters = server.counters()
    assert (counters.connections, counters.requests) == (1, 3)


def test_not_running_message_and_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "absent.sock"
    with pytest.raises(DaemonUnavailable) as info:
        StatusClient(path).call("status")
    assert str(info.value) == f"emgd is not running (no socket at {path})"
    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value, EmgdError)
    assert exit_code_for(info.value) == 9


def test_stale_socket_means_not_running(sock_path: Path) -> None:
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(sock_path))
    dead.close()
    with pytest.raises(DaemonUnavailable, match=r"^emgd is not running \(nobody listening on "):
        StatusClient(sock_path).call("status")


def test_permission_denied_message(monkeypatch: pytest.MonkeyPatch, sock_path: Path) -> None:
    class Refusing(socket.socket):
        def connect(self, address: Any) -> None:
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(socket, "socket", Refusing)  # the module status_client uses
    with pytest.raises(DaemonAccessDenied) as info:
        StatusClient(sock_path).call("status")
    assert str(info.value) == (
        f"permission denied on {sock_path}: add your user to the emgd group (then log in again)"
    )
    assert isinstance(info.value, PermissionError)
    assert exit_code_for(info.value) == 9


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_permission_denied_for_a_real_other_user() -> None:
    """A user outside the socket's group gets the "add your user" message (fork, setuid)."""
    with tempfile.TemporaryDirectory(prefix="emgd-") as folder:
        os.chmod(folder, 0o755)  # tmp_path's parents are private to root
        path = Path(folder) / "c.sock"
        with StatusServer(path, HANDLERS):  # mode 0660, owner root, group root
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: drop to nobody, try, report, _exit
                try:
                    os.close(read_fd)
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    try:
                        StatusClient(path).call("status")
                        text = "connected"
                    except DaemonAccessDenied as exc:
                        text = f"DaemonAccessDenied: {exc}"
                    os.write(write_fd, text.encode())
                finally:
                    os._exit(0)
            os.close(write_fd)
            with os.fdopen(read_fd, "rb") as pipe:
                text = pipe.read().decode()
            os.waitpid(pid, 0)
    assert text == (
        f"DaemonAccessDenied: permission denied on {path}: add your user to the emgd group "
        "(then log in again)"
    )


def test_timeout_when_the_daemon_never_answers(sock_path: Path) -> None:
    mute = RawServer(sock_path, reply=None)
    t0 = time.monotonic()
    client = StatusClient(sock_path, timeout_s=0.2)
    with pytest.raises(DaemonTimeout) as info:
        client.call("status")
    client.close()
    assert time.monotonic() - t0 < 2.0
    assert str(info.value) == f"emgd did not answer 'status' within 0.2 s on {sock_path}"
    assert isinstance(info.value, TimeoutError)
    assert exit_code_for(info.value) == 9
    mute.close()


def test_timeout_when_the_listen_queue_is_full(sock_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.fspath(sock_path))
    listener.listen(0)  # never accepts
    fillers = []
    for _ in range(4):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(os.fspath(sock_path))
        except BlockingIOError:
            s.close()
            break
        fillers.append(s)
    with pytest.raises(DaemonTimeout, match="did not accept a connection"):
        StatusClient(sock_path, timeout_s=0.2).call("status")
    for s in fillers:
        s.close()
    listener.close()


def test_daemon_closing_without_answer(sock_path: Path) -> None:
    rude = RawServer(sock_path, reply=None, close_at_once=True)
    with pytest.raises(DaemonUnavailable, match=r"closed the connection .* before answering 'x'"):
        StatusClient(sock_path).call("x")
    rude.close()


def test_remote_error_carries_code_and_message(server: StatusServer, sock_path: Path) -> None:
    client = StatusClient(sock_path)
    with pytest.raises(RemoteError) as info:
        client.call("launch")
    assert info.value.code == METHOD_NOT_FOUND
    assert info.value.method == "launch"
    assert str(info.value).startswith("emgd refused 'launch': unknown method 'launch'")
    assert exit_code_for(info.value) == 10
    assert not info.value.permission_denied
    assert client.call("echo") == {"params": {}}  # the connection is still good
    client.close()


def test_permission_denied_reply(sock_path: Path) -> None:
    with StatusServer(
        sock_path,
        HANDLERS,
        privileged=frozenset({"pause"}),
        allowed_uids=frozenset({os.getuid() + 1}),
    ):
        with pytest.raises(RemoteError) as info:
            StatusClient(sock_path).call("pause")
        assert info.value.code == PERMISSION_DENIED
        assert info.value.permission_denied


def test_too_many_clients_reply(sock_path: Path) -> None:
    with StatusServer(sock_path, HANDLERS, max_clients=1):
        first = StatusClient(sock_path)
        assert first.call("echo") == {"params": {}}
        with pytest.raises(RemoteError) as info:
            StatusClient(sock_path).call("echo")
        assert info.value.code == TOO_MANY_CLIENTS
        first.close()


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (b"not json\n", "reply is not JSON"),
        (b"[1]\n", "not a JSON object"),
        (b'{"id": 99, "result": 1}\n', "reply id 99 is not 1"),
        (b'{"id": 1}\n', "neither 'result' nor 'error'"),
        (b'{"id": 1, "error": "bad"}\n', "malformed error reply"),
    ],
)
def test_malformed_replies(sock_path: Path, reply: bytes, words: str) -> None:
    raw = RawServer(sock_path, reply=reply)
    client = StatusClient(sock_path)
    with pytest.raises(RemoteError, match=words) as info:
        client.call("status")
    assert info.value.code == PARSE_ERROR
    client.close()
    raw.close()


def test_reconnects_after_the_daemon_restarts(sock_path: Path) -> None:
    client = StatusClient(sock_path)
    with StatusServer(sock_path, HANDLERS):
        assert client.call("echo") == {"params": {}}
    with pytest.raises(DaemonUnavailable, match="not running"):
        client.call("echo")  # retried once on a fresh connection: no socket now
    with StatusServer(sock_path, HANDLERS) as second:
        assert client.call("echo", {"a": 1}) == {"params": {"a": 1}}
        assert second.counters().connections == 1
    client.close()


def test_restart_between_calls_is_invisible(sock_path: Path) -> None:
    client = StatusClient(sock_path)
    with StatusServer(sock_path, HANDLERS):
        assert client.call("echo") == {"params": {}}
    with StatusServer(sock_path, HANDLERS):
        assert client.call("echo") == {"params": {}}  # old connection dead, new one works
    client.close()


def test_socket_path_resolution() -> None:
    assert socket_path(env={}) == Path("/run/emgd/emgd.sock")
    assert socket_path(env={"RUNTIME_DIRECTORY": "/run/a:/run/b"}) == Path("/run/a/emgd.sock")
    assert socket_path("/tmp/x", env={"RUNTIME_DIRECTORY": "/run/a"}) == Path("/tmp/x/emgd.sock")


def test_bad_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        StatusClient("/x.sock", timeout_s=0)
