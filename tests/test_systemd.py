"""Tests of sd_notify against a real datagram socket in tmp_path."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from emgd.service.systemd import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(1.0)
    try:
        yield sock, path
    finally:
        sock.close()


def test_outside_systemd_everything_is_a_no_op() -> None:
    n = Notifier(env={})
    assert not n.enabled
    assert n.ready("x") is False
    assert n.watchdog_interval_s() is None


def test_ready_status_watchdog_and_stopping_datagrams(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    n = Notifier(env={"NOTIFY_SOCKET": path})
    assert n.ready("running at 1000 Hz")
    assert sock.recv(4096) == b"READY=1\nSTATUS=running at 1000 Hz"
    assert n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"
    n.close()


def test_abstract_namespace_address() -> None:
    name = f"emgd-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(1.0)
    try:
        assert Notifier(env={"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert sock.recv(4096) == b"STATUS=hello"
    finally:
        sock.close()


def test_watchdog_interval_is_half_the_timeout_and_respects_watchdog_pid() -> None:
    n = Notifier(env={"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "2000000"})
    assert n.watchdog_interval_s() == 1.0
    other = Notifier(env={"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval_s() is None  # the watchdog belongs to PID 1, not us


def test_a_vanished_socket_does_not_raise() -> None:
    n = Notifier(env={"NOTIFY_SOCKET": "/nonexistent/socket"})
    assert n.enabled
    assert n.watchdog() is False
