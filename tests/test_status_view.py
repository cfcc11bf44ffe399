"""Tests of emgd.client.status_view: table rendering, JSON mode and the --watch loop."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emgd.client.liveview import CLEAR_HOME
from emgd.client.status_client import DaemonUnavailable, RemoteError
from emgd.client.status_view import (
    example_snapshot,
    format_uptime,
    render_status,
    render_watch_line,
    render_watch_screen,
    status_main,
)
from emgd.clock import NS_PER_S, FakeClock
from emgd.errors import exit_code_for
from emgd.service.status_server import PeerCred, StatusServer


class Daemon:
    """A tiny stand-in daemon: ``status`` returns the example with a growing uptime."""

    def __init__(self) -> None:
        self.calls = 0
        self.snapshot = example_snapshot()

    def status(self, params: dict[str, Any], peer: PeerCred) -> object:
        self.calls += 1
        snap = copy.deepcopy(self.snapshot)
        snap["uptime_s"] = 100.0 + self.calls
        snap["angles_deg"]["commanded"][0] = 10.0 * self.calls
        return snap


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "v.sock"


@pytest.fixture
def daemon(sock_path: Path) -> Iterator[Daemon]:
    fake = Daemon()
    with StatusServer(sock_path, {"status": fake.status}):
        yield fake


# --- the table --------------------------------------------------------------------------------


def test_table_rows_of_the_example() -> None:
    lines = render_status(example_snapshot()).splitlines()
    assert lines[0] == "emgd 0.1.0 — RUNNING, up 1 h 02 min 05 s"
    assert "faults        none" in lines
    assert "model         tcn-5f3a9c21  (/var/lib/emgd/model.onnx)" in lines
    assert "calibration   cal-7b1e09aa  (created 2025-01-12T10:31:00Z)" in lines
    assert "acquisition   set 1000.0 Hz   achieved 999.8 Hz   frames 3725112" in lines
    assert (
        "              lost 0   stale 2   railed 12   invalid 0   timeouts 0   overrun 0" in lines
    )
    assert "latency ms         p50      p99" in lines
    assert "  infer           2.10     3.40" in lines
    assert "  end_to_end      3.60     5.20" in lines
    assert "channel         RMS µV  railed  lead-off  mains" in lines
    assert "  ch4              7.5  no      yes       0.41" in lines
    assert "  ch8            400.0  yes     no        0.00" in lines
    assert "finger          command°    model°   intent°     hand°" in lines
    assert "  thumb             12.0      11.8      10.0      12.1" in lines
    assert "  little            30.0      29.5      31.0      30.2" in lines
    assert lines[-2] == "lsl           3 outlets   pushed 372528   queued 2   dropped 0   failed 0"
    assert lines[-1] == "socket        clients 1   requests 532   errors 0   dropped 0"


def test_lsl_row_says_off_and_is_absent_for_older_daemons() -> None:
    snap = example_snapshot()
    snap["lsl"] = None
    assert "lsl           off" in render_status(snap).splitlines()
    del snap["lsl"]
    assert not any(line.startswith("lsl ") for line in render_status(snap).splitlines())


def test_missing_optional_fields_render_as_dash() -> None:
    snap = example_snapshot()
    snap["calibration"] = None
    snap["angles_deg"]["intent"] = None
    snap["angles_deg"]["hand"] = None
    snap["channels"][0]["rms_uv"] = float("nan")
    snap["channels"][1]["mains_ratio"] = None
    snap["faults"] = ["stale samples", "i2c NACK at 0x40"]
    lines = render_status(snap).splitlines()
    assert "calibration   —" in lines
    assert "  thumb             12.0      11.8         —         —" in lines
    assert "  ch1                —  no      no        0.02" in lines
    assert "  ch2             41.0  no      no        —" in lines
    assert "faults        stale samples, i2c NACK at 0x40" in lines


def test_empty_snapshot_still_renders() -> None:
    lines = render_status({}).splitlines()
    assert lines[0] == "emgd — — —, up —"
    assert "calibration   —" in lines
    assert "  thumb                —         —         —         —" in lines
    assert "  acquire            —        —" in lines
    assert "socket        clients —   requests —   errors —   dropped —" in lines


@pytest.mark.parametrize(
    ("uptime_s", "text"),
    [
        (0.4, "0 s"),
        (42.9, "42 s"),
        (303.0, "5 min 03 s"),
        (3725.4, "1 h 02 min 05 s"),
        (3 * 86400 + 4 * 3600 + 5 * 60 + 7, "3 d 04 h 05 min"),
        (None, "—"),
        (-1.0, "—"),
    ],
)
def test_format_uptime(uptime_s: float | None, text: str) -> None:
    assert format_uptime(uptime_s) == text


def test_watch_renderings_of_the_example() -> None:
    screen = render_watch_screen(example_snapshot()).splitlines()
    assert screen[0] == "emgd 0.1.0 — RUNNING, up 1 h 02 min 05 s   (Ctrl-C ends)"
    # ch4: 7.5 µV of 200 µV full scale on 30 cells → round(1.125) = 1 cell.
    assert "  ch4         7.5   █" + "·" * 29 + "  LEAD-OFF" in screen
    assert "  ch8       400.0   " + "█" * 30 + "  RAILED" in screen
    # thumb commanded 12° of 180° → 2 cells; intent 10.0, hand 12.1.
    assert "  thumb       12.0   ██" + "·" * 28 + "     10.0    12.1" in screen
    line = render_watch_line(example_snapshot())
    assert line == (
        "state=running up=3725.4s rate=999.8Hz lost=0 stale=2 railed=12 invalid=0 "
        "rms=94.3uV e2e_p99=5.20ms cmd  12.0  40.5  38.0  35.2  30.0"
    )


# --- the command ------------------------------------------------------------------------------


def test_table_mode_through_the_socket(daemon: Daemon, sock_path: Path) -> None:
    out = io.StringIO()
    assert status_main(stdout=out, socket_path=sock_path) == 0
    expected = daemon.snapshot | {"uptime_s": 101.0}
    expected["angles_deg"] = dict(expected["angles_deg"], commanded=[10.0, 40.5, 38.0, 35.2, 30.0])
    assert out.getvalue() == render_status(expected) + "\n"
    assert "emgd 0.1.0 — RUNNING, up 1 min 41 s" in out.getvalue()


def test_json_mode_round_trip(daemon: Daemon, sock_path: Path) -> None:
    out = io.StringIO()
    assert status_main(stdout=out, socket_path=sock_path, json_output=True) == 0
    got = json.loads(out.getvalue())
    want = example_snapshot()
    want["uptime_s"] = 101.0
    want["angles_deg"]["commanded"][0] = 10.0
    assert got == want


def test_not_running_message(tmp_path: Path) -> None:
    path = tmp_path / "gone.sock"
    with pytest.raises(DaemonUnavailable) as info:
        status_main(stdout=io.StringIO(), socket_path=path)
    assert str(info.value) == f"emgd is not running (no socket at {path})"
    assert exit_code_for(info.value) == 9
    with pytest.raises(DaemonUnavailable):  # --watch fails the same way at start
        status_main(stdout=io.StringIO(), socket_path=path, watch=True, clock=FakeClock())


def test_status_that_is_not_an_object_is_an_error(sock_path: Path) -> None:
    with StatusServer(sock_path, {"status": lambda params, peer: [1, 2]}):
        with pytest.raises(RemoteError, match="status result is not a JSON object") as info:
            status_main(stdout=io.StringIO(), socket_path=sock_path)
        assert exit_code_for(info.value) == 10


def test_watch_line_mode_two_refreshes(daemon: Daemon, sock_path: Path) -> None:
    out = io.StringIO()  # not a TTY: one plain line per refresh
    clock = FakeClock()
    start_ns = clock.monotonic_ns()
    code = status_main(stdout=out, socket_path=sock_path, watch=True, clock=clock, max_refreshes=2)
    assert code == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("state=running up=101.0s rate=999.8Hz")
    assert lines[1].startswith("state=running up=102.0s rate=999.8Hz")
    assert lines[0].endswith("cmd  10.0  40.5  38.0  35.2  30.0")
    assert lines[1].endswith("cmd  20.0  40.5  38.0  35.2  30.0")
    assert CLEAR_HOME not in out.getvalue()
    assert clock.monotonic_ns() - start_ns == 1 * NS_PER_S  # one wait of the 1 s line period
    assert daemon.calls == 2


def test_watch_screen_mode_two_refreshes(daemon: Daemon, sock_path: Path) -> None:
    out = io.StringIO()
    clock = FakeClock()
    start_ns = clock.monotonic_ns()
    status_main(
        stdout=out,
        socket_path=sock_path,
        watch=True,
        full_screen=True,
        clock=clock,
        max_refreshes=2,
    )
    frames = out.getvalue().split(CLEAR_HOME)
    assert frames[0] == ""
    assert len(frames) == 3
    assert "up 1 min 41 s" in frames[1]
    assert "up 1 min 42 s" in frames[2]
    # thumb: 10° then 20° of 180° → 2 then 3 cells.
    assert "  thumb       10.0   ██" + "·" * 28 in frames[1]
    assert "  thumb       20.0   ███" + "·" * 27 in frames[2]
    assert clock.monotonic_ns() - start_ns == NS_PER_S // 5  # ~5 Hz


def test_watch_json_mode_one_line_per_refresh(daemon: Daemon, sock_path: Path) -> None:
    out = io.StringIO()
    status_main(
        stdout=out,
        socket_path=sock_path,
        watch=True,
        json_output=True,
        clock=FakeClock(),
        max_refreshes=2,
    )
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["uptime_s"] for line in lines] == [101.0, 102.0]


class InterruptingClock(FakeClock):
    """Ctrl-C arrives during the first wait."""

    def sleep_until_ns(self, deadline_ns: int) -> None:
        raise KeyboardInterrupt


def test_watch_ctrl_c_exits_0(daemon: Daemon, sock_path: Path) -> None:
    out = io.StringIO()
    assert (
        status_main(stdout=out, socket_path=sock_path, watch=True, clock=InterruptingClock()) == 0
    )
    assert len(out.getvalue().splitlines()) == 1


def test_watch_keeps_going_when_the_daemon_goes_away(sock_path: Path) -> None:
    fake = Daemon()
    server = StatusServer(sock_path, {"status": fake.status})
    server.start()

    class StopDaemonClock(FakeClock):
        def sleep_until_ns(self, deadline_ns: int) -> None:
            server.stop()
            super().sleep_until_ns(deadline_ns)

    out = io.StringIO()
    code = status_main(
        stdout=out, socket_path=sock_path, watch=True, clock=StopDaemonClock(), max_refreshes=2
    )
    assert code == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("state=running")
    assert lines[1] == f"emgd is not running (no socket at {sock_path}); retrying"
