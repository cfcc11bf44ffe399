"""Tests of ``emgd record``'s client side against the real recording service on a fake clock
(the caller plays the daemon's loop: it feeds the hops the clock has run through)."""

from __future__ import annotations

import datetime as dt
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyedflib
import pytest

from emgd.client.record_cli import (
    EXIT_STOPPED,
    build_protocol,
    cue_words,
    record_main,
    summary_table,
)
from emgd.clock import NS_PER_S, FakeClock
from emgd.config import load_config
from emgd.data.bdf_writer import BdfSessionWriter, SessionHeader
from emgd.dsp.filters import FilterSpec
from emgd.errors import ConfigError
from emgd.recording.header import device_header
from emgd.recording.protocol import Protocol
from emgd.recording.session import RecordingService

FS_HZ = 1000
HOP = 20
HOP_NS = HOP * NS_PER_S // FS_HZ
START = dt.datetime(2026, 12, 7, 10, 0, 0)
SHORT = Protocol(gestures=("power",), reps=1, hold_s=1.0, rest_s=1.0, lead_in_s=1.0)


class LoopedService:
    """A :class:`RecordingService` whose loop runs, on each call, the hops the shared fake
    clock has passed through since the last call (a quiet rest, a strong gesture)."""

    def __init__(self, tmp_path: Path, interrupt_after: int | None = None) -> None:
        self.clock = FakeClock()
        config = load_config(env={}, overrides=["adc.channels=2"])
        self.queue: list[Any] = []
        self.events: list[str] = []

        def make(path: Path, header: SessionHeader) -> BdfSessionWriter:
            return BdfSessionWriter(path, header, sync=False)

        self.service = RecordingService(
            FilterSpec(mains_hz=50.0),
            device_header(config, START),
            tmp_path / "recordings",
            self.clock,
            submit=self.queue.append,
            hold=lambda: self.events.append("hold"),
            release=lambda: self.events.append("release"),
            make_writer=make,
        )
        self.handlers = self.service.handlers()
        self.loop_ns = self.clock.monotonic_ns()
        self.index = 0
        self.rng = np.random.default_rng(5)
        self.progress_calls = 0
        self.interrupt_after = interrupt_after
        self.methods: list[str] = []

    def _hops(self) -> None:
        while self.loop_ns + HOP_NS <= self.clock.monotonic_ns():
            while self.queue:
                self.queue.pop(0)()
            cue = (self.service.snapshot.get("progress") or {}).get("cue") or {}
            sd = 50.0 if cue.get("pose") not in (None, "rest") else 2.0
            emg = self.rng.normal(0.0, sd, (HOP, 2))
            index = np.arange(self.index, self.index + HOP, dtype=np.int64)
            self.index += HOP
            zeros = np.zeros(HOP, dtype=np.uint32)
            self.service.on_frames(index, emg, zeros, zeros)
            self.loop_ns += HOP_NS
            self.service.tick(self.loop_ns)
        if self.service.snapshot.get("active") and not self.service.snapshot.get("recording"):
            time.sleep(0.001)  # the writer thread is closing the file: give it real time

    def call(self, method: str, params: Any = None) -> object:
        self.methods.append(method)
        self._hops()
        if method == "record.progress":
            self.progress_calls += 1
            if self.interrupt_after is not None and self.progress_calls == self.interrupt_after:
                self.interrupt_after = None
                raise KeyboardInterrupt
        result = self.handlers[method](dict(params or {}), None)
        while self.queue:  # commands reach the loop at its next hop
            self.queue.pop(0)()
        return result


def test_a_whole_session_shows_cues_countdowns_and_the_summary(tmp_path: Path) -> None:
    host = LoopedService(tmp_path)
    out = io.StringIO()
    code = record_main(host, host.clock, out, SHORT)
    text = out.getvalue()
    assert code == 0, text
    assert "protocol default: 1 × (power) at effort 1; hold 1 s, rest 1 s" in text
    assert "cue 1/3 rep 0/1: REST for 1 s" in text
    assert "cue 2/3 rep 1/1: POWER for 1 s" in text
    assert "  POWER in 1…" in text  # the countdown before the gesture
    assert "rest µV" in text and "power µV" in text and "SNR dB" in text
    assert "lost 0 in 0 gap(s)" in text and "done: every cue recorded" in text
    assert host.events == ["hold", "release"]
    path = next((tmp_path / "recordings").glob("*.bdf"))
    assert str(path) in text
    with pyedflib.EdfReader(str(path)) as reader:
        texts = list(reader.readAnnotations()[2])
    assert "cue gesture=power effort=1 rep=1 start" in texts


def test_ctrl_c_stops_the_recording_and_shows_what_the_file_holds(tmp_path: Path) -> None:
    host = LoopedService(tmp_path, interrupt_after=25)
    out = io.StringIO()
    code = record_main(host, host.clock, out, SHORT)
    text = out.getvalue()
    assert code == EXIT_STOPPED
    assert "record.stop" in host.methods and host.events == ["hold", "release"]
    assert "stopped: the hand follows the model again" in text
    assert "cues 1/3" in text or "cues 2/3" in text
    path = next((tmp_path / "recordings").glob("*.bdf"))
    with pyedflib.EdfReader(str(path)) as reader:
        assert reader.readAnnotations()[2][-1].startswith("session end frames=")


def test_a_terminal_gets_one_redrawn_line(tmp_path: Path) -> None:
    host = LoopedService(tmp_path)
    out = io.StringIO()
    assert record_main(host, host.clock, out, SHORT, tty=True) == 0
    text = out.getvalue()
    assert "\r\033[K[" in text and "→ POWER\n" in text and "rep 1/1  POWER" in text


def test_overrides_go_over_the_file_and_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('name = "mine"\ngestures = ["open"]\nreps = 4\n')
    p = build_protocol(path, {"reps": 2, "efforts": [0.5]})
    assert (p.name, p.gestures, p.reps, p.efforts) == ("mine", ("open",), 2, (0.5,))
    with pytest.raises(ConfigError, match=r"^the command line: reps = 0"):
        build_protocol(path, {"reps": 0})
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        path.write_text("bogus = 1\n")
        build_protocol(path, {})


def test_cue_words_and_an_empty_summary() -> None:
    assert cue_words({"pose": "rest"}) == "REST"
    assert cue_words({"pose": "pinch", "effort": 0.3, "effort_text": "0.3"}) == "PINCH at 30 %"
    ramp = {"pose": "chuck", "effort": 0.4, "effort_text": "0.2:0.8"}
    assert cue_words(ramp) == "CHUCK 20 % → 80 %"
    table = summary_table({"summary": {"labels": ["rest"], "channels": []}})
    assert "rest µV" in table and "lost 0" in table


def test_the_command_refuses_a_bad_protocol_in_one_line_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emgd.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("reps = 2\nholds = 3\n")
    code = main(["record", "--protocol", str(bad), "--socket", str(tmp_path / "none.sock")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == ConfigError.exit_code and len(err) == 1
    assert str(bad) in err[0] and "unknown key 'holds'" in err[0]
    code = main(["record", "--efforts", "lots", "--socket", str(tmp_path / "none.sock")])
    assert code == ConfigError.exit_code
    assert "--efforts 'lots'" in capsys.readouterr().err
