"""The client side of ``emgd record``: the guided, labelled recording through the daemon.

This module owns what the wearer sees during a recording: the protocol in one paragraph,
the cue of the moment in large words with its countdown and a progress bar (redrawn in
place on a terminal; one plain line per cue and per countdown second otherwise), and the
summary table at the end (per-channel RMS at rest and per gesture, SNR, railed and lead-off
frames, lost frames, the file). It builds the protocol (defaults, a TOML file, command-line
overrides) and sends it with ``record.start``; the daemon holds the hand, runs the cues on
its clock and writes the file. Ctrl-C sends ``record.stop`` and still shows the summary of
the file so far. It computes nothing and writes no file. Time comes from an injected clock.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO
from typing import Protocol as TypingProtocol

from emgd.clock import NS_PER_S, Clock
from emgd.errors import EmgdError, RecordingError
from emgd.recording.protocol import Protocol, from_mapping, load_protocol

POLL_S = 0.05  # plain output: progress polling
DRAW_S = 0.1  # terminal: redraw interval
COMMAND_TIMEOUT_S = 5.0  # the daemon applies a command at its next hop (20 ms)
CLOSE_TIMEOUT_S = 30.0  # the last seconds reach the disk after the last cue
END_MARGIN_S = 10.0  # a session may run this much longer than its schedule
COUNTDOWN_S = 3  # seconds counted down before each gesture
BAR_CELLS = 30
EXIT_STOPPED = 130


class Caller(TypingProtocol):
    """What the session needs of :class:`emgd.client.status_client.StatusClient`."""

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> object: ...


def _sleep_s(clock: Clock, seconds: float) -> None:
    clock.sleep_until_ns(clock.monotonic_ns() + round(seconds * NS_PER_S))


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordingError(f"the daemon answered {what} with {value!r}, not an object")
    return value


def build_protocol(
    path: Path | None, overrides: Mapping[str, Any], where: str = "the command line"
) -> Protocol:
    """The protocol file (or the defaults) with command-line values put over it.

    Raises
    ------
    ConfigError
        From the file or the overrides, naming which.
    """
    base = load_protocol(path) if path is not None else Protocol()
    if not overrides:
        return base
    return from_mapping({**base.to_mapping(), **overrides}, where)


def describe(protocol: Protocol) -> str:
    """One paragraph: what the wearer will be asked to do, and for how long."""
    levels = [f"{e:g}" for e in protocol.efforts] + [f"{a:g}→{b:g}" for a, b in protocol.ramps]
    total = protocol.total_s
    return (
        f"protocol {protocol.name}: {protocol.reps} × ({', '.join(protocol.gestures)}) at "
        f"effort {', '.join(levels)}; hold {protocol.hold_s:g} s, rest {protocol.rest_s:g} s, "
        f"{protocol.lead_in_s:g} s rest first; {int(total // 60)} min {total % 60:02.0f} s "
        "in all.\n"
    )


def cue_words(cue: Mapping[str, Any] | None) -> str:
    """``POWER at 60 %`` / ``PINCH 20 % → 80 %`` / ``REST``."""
    if not cue:
        return "…"
    pose = str(cue.get("pose", "?")).upper()
    if cue.get("pose") == "rest":
        return "REST"
    text = str(cue.get("effort_text", ""))
    if ":" in text:
        a, b = (float(v) for v in text.split(":"))
        return f"{pose} {100 * a:.0f} % → {100 * b:.0f} %"
    effort = float(cue.get("effort", 1.0))
    return pose if effort >= 1.0 else f"{pose} at {100 * effort:.0f} %"


def progress_line(progress: Mapping[str, Any], reps: int) -> str:
    """The redrawn line: bar, percentage, repetition, the cue and its countdown."""
    fraction = min(1.0, max(0.0, float(progress.get("fraction", 0.0))))
    filled = round(fraction * BAR_CELLS)
    cue = progress.get("cue") or {}
    nxt = progress.get("next_cue") or {}
    remaining = float(cue.get("remaining_s", 0.0))
    line = (
        f"[{'#' * filled}{'.' * (BAR_CELLS - filled)}] {100 * fraction:3.0f} %  "
        f"rep {cue.get('rep', 0)}/{reps}  {cue_words(cue):<22} {remaining:4.1f} s"
    )
    if nxt and nxt.get("pose") != "rest":
        line += f"  next {cue_words(nxt)}"
    lost = int(progress.get("lost_frames", 0))
    if lost:
        line += f"  lost {lost}"
    return line


class GuidedRecording:
    """One guided recording through the daemon.

    Parameters
    ----------
    client:
        A connected status client (privileged).
    clock:
        Polling and drawing.
    out:
        Where the wearer reads.
    tty:
        Redraw in place (else plain lines).
    """

    def __init__(self, client: Caller, clock: Clock, out: TextIO, *, tty: bool = False) -> None:
        self.client = client
        self.clock = clock
        self.out = out
        self.tty = tty
        self.started = False
        self._said_cue = -1
        self._said_count: tuple[int, int] | None = None

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def progress(self) -> dict[str, Any]:
        return _dict(self.client.call("record.progress"), "record.progress")

    def command(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send a command and wait until the loop applied it; raise its refusal."""
        reply = _dict(self.client.call(method, params), method)
        seq = reply.get("seq")
        if not isinstance(seq, int):
            raise RecordingError(f"the daemon answered {method} without a sequence number")
        deadline_ns = self.clock.monotonic_ns() + round(COMMAND_TIMEOUT_S * NS_PER_S)
        while True:
            progress = self.progress()
            if int(progress.get("applied_seq", 0)) >= seq:
                error = _dict(progress.get("outcomes", {}), "outcomes").get(str(seq))
                if error:
                    raise RecordingError(str(error))
                return reply
            if self.clock.monotonic_ns() > deadline_ns:
                raise RecordingError(
                    f"the daemon did not apply {method} within {COMMAND_TIMEOUT_S:g} s "
                    "(is its control loop running?)"
                )
            _sleep_s(self.clock, POLL_S)

    def run(
        self,
        protocol: Protocol,
        path: str | None = None,
        participant: str | None = None,
        ask: Callable[[str], str] | None = None,
    ) -> dict[str, Any]:
        """Start, follow the cues, return the daemon's result (outcome and summary)."""
        self._write(
            "emgd record: the hand holds still while your EMG is recorded; follow the cues.\n"
            + describe(protocol)
            + "Ctrl-C stops early; the file keeps everything recorded until then.\n"
        )
        if ask is not None:
            ask("Press Enter to start… ")
        params: dict[str, Any] = {"protocol": protocol.to_mapping()}
        if path is not None:
            params["path"] = path
        if participant is not None:
            params["participant"] = participant
        reply = self.command("record.start", params)
        self.started = True
        self._write(f"recording to {reply.get('path')}\n")
        deadline_ns = self.clock.monotonic_ns() + round(
            (protocol.total_s + END_MARGIN_S + CLOSE_TIMEOUT_S) * NS_PER_S
        )
        while True:
            p = self.progress()
            if not p.get("active") and isinstance(p.get("result"), dict):
                self.started = False
                if self.tty:
                    self._write("\n")
                return dict(p["result"])
            progress = p.get("progress")
            if isinstance(progress, dict):
                self._show(progress, protocol.reps)
            if self.clock.monotonic_ns() > deadline_ns:
                raise RecordingError("the daemon did not finish the recording in time")
            _sleep_s(self.clock, DRAW_S if self.tty else POLL_S)

    def stop(self) -> dict[str, Any] | None:
        """Best effort after Ctrl-C: stop, wait for the file to close, return the result."""
        if not self.started:
            return None
        self.started = False
        # It may have ended already (then its result is there), or the daemon is gone.
        with contextlib.suppress(EmgdError, OSError):
            self.command("record.stop")
        deadline_ns = self.clock.monotonic_ns() + round(CLOSE_TIMEOUT_S * NS_PER_S)
        while self.clock.monotonic_ns() < deadline_ns:
            try:
                p = self.progress()
            except (EmgdError, OSError):
                return None
            if not p.get("active") and isinstance(p.get("result"), dict):
                return dict(p["result"])
            _sleep_s(self.clock, POLL_S)
        return None

    def _show(self, progress: Mapping[str, Any], reps: int) -> None:
        index = int(progress.get("cue_index", -1))
        cue = progress.get("cue") or {}
        nxt = progress.get("next_cue") or {}
        if self.tty:
            if index != self._said_cue and cue:
                self._said_cue = index
                self._write("\r\033[K" + f"→ {cue_words(cue)}\n")
            self._write("\r\033[K" + progress_line(progress, reps))
            return
        if index != self._said_cue and cue:
            self._said_cue = index
            total = int(progress.get("cues_total", 0))
            self._write(
                f"[{100 * float(progress.get('fraction', 0.0)):3.0f} %] cue {index + 1}/{total}"
                f" rep {cue.get('rep', 0)}/{reps}: {cue_words(cue)} for "
                f"{float(cue.get('duration_s', 0.0)):g} s\n"
            )
        starts_in = float(nxt.get("starts_in_s", math.inf)) if nxt else math.inf
        if nxt and nxt.get("pose") != "rest" and 0 < starts_in <= COUNTDOWN_S:
            count = math.ceil(starts_in)
            if self._said_count != (index, count):
                self._said_count = (index, count)
                self._write(f"  {cue_words(nxt)} in {count}…\n")


def _figure(value: object, digits: int) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{digits}f}"


def summary_table(result: Mapping[str, Any]) -> str:
    """The end-of-session table (see the module docstring) and the file's figures."""
    s = result.get("summary") or {}
    labels = [str(k) for k in s.get("labels", [])]
    head = f"{'channel':<9}" + "".join(f"{k + ' µV':>11}" for k in labels)
    lines = [head + f"{'SNR dB':>8}{'railed':>8}{'lead-off':>9}"]
    for ch in s.get("channels", []):
        rms = ch.get("rms_uv", {})
        lines.append(
            f"  {ch.get('label', ch.get('channel'))!s:<7}"
            + "".join(f"{_figure(rms.get(k), 1):>11}" for k in labels)
            + f"{_figure(ch.get('snr_db'), 1):>8}{ch.get('railed_frames', 0):>8}"
            f"{ch.get('lead_off_frames', 0):>9}"
        )
    lines.append(
        f"frames {s.get('frames', 0)} ({_figure(s.get('seconds'), 1)} s), lost "
        f"{s.get('lost_frames', 0)} in {s.get('gaps', 0)} gap(s) (ring overrun "
        f"{s.get('overrun_frames', 0)}, writer queue {s.get('writer_dropped_frames', 0)}), "
        f"clipped samples {s.get('clipped_samples', 0)}; cues {s.get('cues_done', 0)}/"
        f"{s.get('cues_total', 0)}"
    )
    lines.append(f"file {s.get('path')} ({s.get('records_written', 0)} whole seconds on disk)")
    return "\n".join(lines) + "\n"


def record_main(
    client: Caller,
    clock: Clock,
    out: TextIO,
    protocol: Protocol,
    *,
    path: str | None = None,
    participant: str | None = None,
    tty: bool = False,
    ask: Callable[[str], str] | None = None,
) -> int:
    """``emgd record``: 0 when the protocol completed, 130 when stopped, 12 when the
    recording failed (the summary of what the file holds is shown in every case)."""
    session = GuidedRecording(client, clock, out, tty=tty)
    try:
        result = session.run(protocol, path=path, participant=participant, ask=ask)
    except KeyboardInterrupt:
        stopped = session.stop()
        out.write("\nstopped: the hand follows the model again\n")
        if stopped is not None:
            out.write(summary_table(stopped))
        return EXIT_STOPPED
    except BaseException:
        session.stop()
        raise
    out.write("\n" + summary_table(result))
    outcome = result.get("outcome")
    if outcome == "complete":
        out.write("done: every cue recorded\n")
        return 0
    out.write(f"{outcome}: {result.get('reason', 'the recording ended early')}\n")
    return EXIT_STOPPED if outcome == "stopped" else RecordingError.exit_code
