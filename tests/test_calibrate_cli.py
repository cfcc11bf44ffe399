"""Tests of ``emgd calibrate`` and ``emgd calibrate servos``: the text helpers on their own,
then the guided flows against a real daemon on the simulated board over its socket."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import pytest

from emgd.client.calibrate_cli import (
    calibrate_main,
    parse_nudge,
    progress_line,
    servo_lines,
    servos_main,
    summary_table,
)
from emgd.client.status_client import RemoteError, StatusClient
from emgd.clock import SystemClock
from emgd.service.status_server import INVALID_PARAMS
from tests.test_calibration_session import Wearer, live, needs_model

__all__ = ["live"]  # a module fixture shared with the daemon-side tests (small_model: conftest)


# --------------------------------------------------------------------------- text


def test_progress_line_draws_a_bar_and_the_levels() -> None:
    assert progress_line(0.5, [12.4, 3.6]) == "[" + "#" * 15 + "." * 15 + "]  50 %  RMS µV 12 4"
    assert progress_line(1.7, []) == "[" + "#" * 30 + "] 100 %  RMS µV "


def test_summary_table_lists_figures_and_bad_channels() -> None:
    summary = {
        "channels": [
            {"channel": 1, "noise_floor_uv": 1.5, "effort_level_uv": 48.25, "snr_db": 30.12},
            {
                "channel": 2,
                "noise_floor_uv": 0.0,
                "effort_level_uv": 0.0,
                "snr_db": None,
                "problem": "flat during effort",
            },
        ],
        "bad_channels": [2],
    }
    assert summary_table(summary) == (
        "channel   noise µV  effort µV  SNR dB  verdict\n"
        "  ch1         1.50       48.2    30.1  ok\n"
        "  ch2         0.00        0.0       —  BAD: flat during effort\n"
        "bad channels: ch2\n"
    )


def test_nudges_stay_within_the_servo_range() -> None:
    assert parse_nudge("+", 1500.0) == 1510.0
    assert parse_nudge("--", 1500.0) == 1450.0
    assert parse_nudge("--", 320.0) == 300.0
    assert parse_nudge("++", 2690.0) == 2700.0
    assert parse_nudge("1234", 1500.0) == 1234.0
    assert parse_nudge("5000", 1500.0) == 2700.0
    assert parse_nudge("up", 1500.0) is None
    assert parse_nudge("nan", 1500.0) is None


def test_servo_lines_mirror_when_open_is_the_longer_pulse() -> None:
    assert servo_lines("ring", 620.4, 2380.0) == (
        "[servo.ring]\nmin_pulse_us = 620\nmax_pulse_us = 2380\ninverted = false\n"
    )
    assert servo_lines("ring", 2380.0, 620.0) == (
        "[servo.ring]\nmin_pulse_us = 620\nmax_pulse_us = 2380\ninverted = true\n"
    )


# --------------------------------------------------------------------------- with a daemon


def cli_args(daemon: Any, *extra: str) -> list[str]:
    return [
        "calibrate",
        "--socket",
        str(daemon.socket_path),
        "--yes",
        "--rest-seconds",
        "0.6",
        "--seconds",
        "0.4",
        "--countdown",
        "0",
        *extra,
    ]


@needs_model
def test_the_guided_cli_saves_and_the_daemon_uses_it(live: tuple[Any, Wearer]) -> None:
    from emgd.cli import main

    daemon, wearer = live
    wearer.flat_channel = None
    out = io.StringIO()
    assert main(cli_args(daemon, "--gestures", "open,power"), stdout=out) == 0
    text = out.getvalue()
    identity = daemon.status()["calibration"]["identity"]
    deadline = time.monotonic() + 5.0
    while f"saved as {identity} " not in text and time.monotonic() < deadline:
        time.sleep(0.05)
        identity = daemon.status()["calibration"]["identity"]
    assert f"saved as {identity} (" in text
    assert "Make the 'power' gesture" in text and "go!" in text
    assert text.count("] 100 %") == 3  # rest, open, power: plain progress lines
    assert "bad channels: none" in text
    assert not daemon._safety.paused


@needs_model
def test_a_flat_channel_is_refused_with_exit_code_6(live: tuple[Any, Wearer]) -> None:
    daemon, wearer = live
    wearer.flat_channel = 1
    out = io.StringIO()
    try:
        with StatusClient(daemon.socket_path) as client:
            code = calibrate_main(
                client,
                SystemClock(),
                out,
                gestures=("chuck",),
                rest_s=0.6,
                gesture_s=0.4,
                countdown_s=0,
                yes=True,
                tty=True,
            )
    finally:
        wearer.flat_channel = None
    text = out.getvalue()
    assert code == 6
    assert "refused: calibration refused: ch2: flat during effort" in text
    assert "BAD: flat during effort" in text and "bad channels: ch2" in text
    assert "\r[" in text  # redrawn in place on a terminal
    assert not daemon._safety.paused


@needs_model
def test_ctrl_c_cancels_the_session_and_the_hand_resumes(live: tuple[Any, Wearer]) -> None:
    daemon, _ = live
    prompts: list[str] = []
    beats: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        if len(prompts) == 2:  # "ready for rest?" after the session started
            assert daemon._safety.paused or _eventually(lambda: daemon._safety.paused)
            raise KeyboardInterrupt
        return ""

    class Beat:
        def __enter__(self) -> None:
            beats.append("in")

        def __exit__(self, *exc: object) -> None:
            beats.append("out")

    out = io.StringIO()
    with StatusClient(daemon.socket_path) as client:
        code = calibrate_main(client, SystemClock(), out, countdown_s=0, ask=ask, keepalive=Beat)
        progress = client.call("calibrate.progress")
    assert code == 130
    assert len(prompts) == 2 and beats == ["in", "out", "in", "out"]
    assert isinstance(progress, dict) and not progress["active"]
    assert progress["result"]["outcome"] == "cancelled"
    assert _eventually(lambda: not daemon._safety.paused)
    assert "cancelled" in out.getvalue()


def _eventually(predicate: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@needs_model
def test_servo_end_points_reach_the_simulated_pca9685(live: tuple[Any, Wearer]) -> None:
    daemon, _ = live
    pca = daemon._servo.pca
    assert pca is not None
    # The CLI resumes only a daemon that was running: let the status show the last resume.
    assert _eventually(lambda: daemon.status()["state"] != "hold")
    seen: list[float | None] = []
    # Default thumb (output 0) calibration: open 500 µs, flexed 2500 µs.
    script = iter(["-", "-", "", "++", "2300", "", "s", "q"])

    def read_command(prompt: str) -> str:
        command = next(script)
        if prompt.startswith("thumb"):
            # The 50 Hz frame is 20000 µs in 4096 counts: 4.9 µs per count.
            want = float(prompt.split()[2])
            assert _eventually(lambda: abs((pca.pulse_us(0) or 0.0) - want) < 5.0), prompt
            seen.append(pca.pulse_us(0))
        return command

    out = io.StringIO()
    starts = {f: (500.0, 2500.0) for f in ("thumb", "index", "middle", "ring", "little")}
    with StatusClient(daemon.socket_path) as client:
        assert servos_main(client, out, read_command, starts) == 0
    text = out.getvalue()
    assert "[servo.thumb]\nmin_pulse_us = 480\nmax_pulse_us = 2300\ninverted = false\n" in text
    assert "[servo.index]" not in text and "[servo.middle]" not in text
    expected = [500.0, 490.0, 480.0, 2500.0, 2550.0, 2300.0]
    assert len(seen) == len(expected)
    assert all(abs(a - b) < 5.0 for a, b in zip(seen, expected, strict=True) if a is not None)
    assert _eventually(lambda: not daemon._safety.paused and not daemon._servo_pulse_us)


@needs_model
def test_set_pulse_refuses_bad_params(live: tuple[Any, Wearer]) -> None:
    daemon, _ = live
    with StatusClient(daemon.socket_path) as client:
        for params in (
            {"finger": "thumb", "pulse_us": 200},
            {"finger": "wrist", "pulse_us": 1500},
            {"finger": "thumb", "pulse_us": "1500"},
        ):
            with pytest.raises(RemoteError) as info:
                client.call("servo.set_pulse", params)
            assert info.value.code == INVALID_PARAMS
