"""The client side of ``emgd calibrate``: the guided EMG session and servo end-point setting.

This module owns what the wearer sees and types: the explanation, the prompts, the 3-2-1
countdowns, the progress bar (redrawn in place on a terminal, plain lines otherwise), the
summary table, and for ``emgd calibrate servos`` the nudge keys and the ``[servo.<finger>]``
lines to paste into the config. It talks to the running daemon only through the status
socket (``calibrate.*``, ``servo.set_pulse``, ``pause``/``resume``, ``status``); every
command is confirmed by polling ``calibrate.progress`` until the daemon says it applied it.
It computes nothing and writes no file: the daemon records, computes and saves, and the
config file stays the administrator's to edit. Time comes from an injected clock.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TextIO

from emgd.clock import NS_PER_S, Clock
from emgd.errors import CalibrationError, EmgdError
from emgd.hw.servo_math import MAX_SERVO_PULSE_US, MIN_SERVO_PULSE_US
from emgd.poses import FINGERS, GESTURE_NAMES

# --- Defaults and timings ----------------------------------------------------------------
DEFAULT_REST_S = 5.0
DEFAULT_GESTURE_S = 4.0
DEFAULT_COUNTDOWN_S = 3
POLL_S = 0.05  # progress polling while waiting for the daemon
DRAW_S = 0.1  # progress bar redraw interval on a terminal
PLAIN_STEP = 0.25  # plain output: one line per quarter of a recording
COMMAND_TIMEOUT_S = 5.0  # the daemon applies a command at its next hop (20 ms)
RECORD_MARGIN_S = 5.0  # a recording may take this much longer than asked (filter settling)
KEEPALIVE_S = 5.0  # heartbeat while a prompt waits for Enter (the daemon gives up at 30 s)
BAR_CELLS = 30
EXIT_CANCELLED = 130
# Servo end points.
SERVO_STEP_US = 10.0
SERVO_BIG_STEP_US = 50.0
# Single keys on a terminal → commands of the line mode.
KEY_COMMANDS: Mapping[str, str] = {
    "+": "+",
    "=": "+",
    "-": "-",
    "_": "-",
    "]": "++",
    ">": "++",
    "[": "--",
    "<": "--",
    "\r": "",
    "\n": "",
    "s": "s",
    "q": "q",
}


class Caller(Protocol):
    """What the session needs of :class:`emgd.client.status_client.StatusClient`."""

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> object: ...


class CalibrationCancelled(EmgdError):
    """The session ended before it finished (cancelled, timed out, or resumed)."""

    exit_code = 6


def _sleep_s(clock: Clock, seconds: float) -> None:
    clock.sleep_until_ns(clock.monotonic_ns() + round(seconds * NS_PER_S))


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CalibrationError(f"the daemon answered {what} with {value!r}, not an object")
    return value


class GuidedSession:
    """One guided calibration through the daemon.

    Parameters
    ----------
    client:
        A connected status client (privileged).
    clock:
        Countdowns and polling.
    out:
        Where the wearer reads.
    ask:
        Shows a prompt and waits for Enter (``input``); unused with ``yes``.
    tty:
        Redraw the progress bar in place (else one plain line per quarter).
    keepalive:
        Context manager factory that keeps the session alive while ``ask`` waits.
    """

    def __init__(
        self,
        client: Caller,
        clock: Clock,
        out: TextIO,
        *,
        ask: Callable[[str], str] = input,
        yes: bool = False,
        tty: bool = False,
        keepalive: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.out = out
        self.ask = ask
        self.yes = yes
        self.tty = tty
        self.keepalive = keepalive or contextlib.nullcontext
        self.started = False

    # ---------------------------------------------------------------- protocol helpers
    def progress(self) -> dict[str, Any]:
        return _dict(self.client.call("calibrate.progress"), "calibrate.progress")

    def command(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send a command and wait until the loop applied it; raise its refusal."""
        reply = _dict(self.client.call(method, params), method)
        seq = reply.get("seq")
        if not isinstance(seq, int):
            raise CalibrationError(f"the daemon answered {method} without a sequence number")
        deadline_ns = self.clock.monotonic_ns() + round(COMMAND_TIMEOUT_S * NS_PER_S)
        while True:
            progress = self.progress()
            if int(progress.get("applied_seq", 0)) >= seq:
                error = _dict(progress.get("outcomes", {}), "outcomes").get(str(seq))
                if error:
                    raise CalibrationError(str(error))
                return progress
            if self.clock.monotonic_ns() > deadline_ns:
                raise CalibrationError(
                    f"the daemon did not apply {method} within {COMMAND_TIMEOUT_S:g} s "
                    "(is its control loop running?)"
                )
            _sleep_s(self.clock, POLL_S)

    def _prompt(self, text: str) -> None:
        if self.yes:
            return
        with self.keepalive():
            self.ask(text)

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    # ---------------------------------------------------------------- the session
    def run(
        self, gestures: Sequence[str], rest_s: float, gesture_s: float, countdown_s: int
    ) -> int:
        """The whole session; returns the exit code (0 saved, 6 refused)."""
        self._write(
            "emgd calibrate: the hand holds still while your EMG is measured.\n"
            f"First relax for {rest_s:g} s, then make each gesture ({', '.join(gestures)}) "
            f"as strongly as you comfortably can for {gesture_s:g} s.\n"
            "Ctrl-C cancels at any time; the previous calibration then stays in use.\n"
        )
        self._prompt("Press Enter to start… ")
        self.command("calibrate.start")
        self.started = True
        phases = [("rest", rest_s, "Relax your hand and forearm completely.")]
        phases += [
            (g, gesture_s, f"Make the '{g}' gesture as strongly as you comfortably can, hold it.")
            for g in gestures
        ]
        for phase, seconds, instruction in phases:
            self._write(f"\n{phase}: {instruction}\n")
            self._prompt("Press Enter when ready… ")
            self._countdown(countdown_s)
            self.command("calibrate.record", {"phase": phase, "seconds": seconds})
            self._follow(phase, seconds)
        self._write("\ncomputing…\n")
        self.command("calibrate.finish")
        result = self._wait_result()
        self.started = False
        return self._report(result)

    def cancel(self) -> None:
        """Best effort: end the session (and wait for it) so the daemon resumes at once."""
        if not self.started:
            return
        self.started = False
        with contextlib.suppress(EmgdError, OSError):
            self.command("calibrate.cancel")

    def _countdown(self, countdown_s: int) -> None:
        for k in range(countdown_s, 0, -1):
            self._write(f"{k}… ")
            _sleep_s(self.clock, 1.0)
        self._write("go!\n")

    def _follow(self, phase: str, seconds: float) -> None:
        deadline_ns = self.clock.monotonic_ns() + round((seconds + RECORD_MARGIN_S) * NS_PER_S)
        next_plain = PLAIN_STEP
        while True:
            p = self.progress()
            if not p.get("active"):
                self._ended(p)
            done = phase in p.get("recorded_s", {}) and p.get("phase") != phase
            fraction = 1.0 if done else float(p.get("fraction", 0.0))
            rms = [float(v) for v in p.get("rms_uv", [])]
            if self.tty:
                self._write("\r" + progress_line(fraction, rms) + ("\n" if done else ""))
            else:
                while fraction >= next_plain - 1e-9:
                    self._write(progress_line(fraction, rms) + "\n")
                    next_plain += PLAIN_STEP
            if done:
                return
            if self.clock.monotonic_ns() > deadline_ns:
                raise CalibrationError(f"recording {phase!r} did not finish in time")
            _sleep_s(self.clock, DRAW_S if self.tty else POLL_S)

    def _ended(self, progress: Mapping[str, Any]) -> None:
        self.started = False
        result = progress.get("result") or {}
        reason = result.get("reason", "the session ended") if isinstance(result, dict) else ""
        raise CalibrationCancelled(f"calibration ended by the daemon: {reason}")

    def _wait_result(self) -> dict[str, Any]:
        deadline_ns = self.clock.monotonic_ns() + round(COMMAND_TIMEOUT_S * NS_PER_S)
        while True:
            p = self.progress()
            if not p.get("active") and isinstance(p.get("result"), dict):
                return dict(p["result"])
            if self.clock.monotonic_ns() > deadline_ns:
                raise CalibrationError("the daemon did not report the calibration result")
            _sleep_s(self.clock, POLL_S)

    def _report(self, result: Mapping[str, Any]) -> int:
        summary = result.get("summary")
        if isinstance(summary, dict):
            self._write("\n" + summary_table(summary))
        if result.get("outcome") == "saved":
            self._write(
                f"saved as {result.get('identity')} ({result.get('path')}); "
                "the daemon uses it now\n"
            )
            return 0
        self._write(
            f"refused: {result.get('reason', 'unknown reason')}\n"
            "the previous calibration stays in use\n"
        )
        return CalibrationError.exit_code


def progress_line(fraction: float, rms_uv: Sequence[float]) -> str:
    """``[#########.....]  60 %  RMS µV 12 8 …`` for one moment of a recording."""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * BAR_CELLS)
    levels = " ".join(f"{v:.0f}" for v in rms_uv)
    return f"[{'#' * filled}{'.' * (BAR_CELLS - filled)}] {100 * fraction:3.0f} %  RMS µV {levels}"


def _figure(value: object, digits: int) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{digits}f}"


def summary_table(summary: Mapping[str, Any]) -> str:
    """The per-channel table: noise floor, effort level, SNR and problems."""
    lines = [f"{'channel':<9}{'noise µV':>9}{'effort µV':>11}{'SNR dB':>8}  verdict"]
    for ch in summary.get("channels", []):
        problem = ch.get("problem")
        lines.append(
            f"  ch{ch.get('channel')!s:<5}{_figure(ch.get('noise_floor_uv'), 2):>9}"
            f"{_figure(ch.get('effort_level_uv'), 1):>11}{_figure(ch.get('snr_db'), 1):>8}  "
            + ("ok" if not problem else f"BAD: {problem}")
        )
    bad = summary.get("bad_channels") or []
    lines.append("bad channels: " + (", ".join(f"ch{c}" for c in bad) if bad else "none"))
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def heartbeat(make_client: Callable[[], Caller], interval_s: float = KEEPALIVE_S) -> Iterator[None]:
    """Poll ``calibrate.progress`` from a helper thread while the wearer reads a prompt."""
    stop = threading.Event()

    def beat() -> None:
        client = make_client()
        while not stop.wait(interval_s):
            with contextlib.suppress(EmgdError, OSError):
                client.call("calibrate.progress")
        close = getattr(client, "close", None)
        if callable(close):
            close()

    thread = threading.Thread(target=beat, name="emgd-calibrate-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(interval_s + 1.0)


def calibrate_main(
    client: Caller,
    clock: Clock,
    out: TextIO,
    *,
    gestures: Sequence[str] = GESTURE_NAMES,
    rest_s: float = DEFAULT_REST_S,
    gesture_s: float = DEFAULT_GESTURE_S,
    countdown_s: int = DEFAULT_COUNTDOWN_S,
    yes: bool = False,
    tty: bool = False,
    ask: Callable[[str], str] = input,
    keepalive: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
) -> int:
    """``emgd calibrate``: returns 0 when saved, 6 when refused, 130 on Ctrl-C."""
    session = GuidedSession(client, clock, out, ask=ask, yes=yes, tty=tty, keepalive=keepalive)
    try:
        return session.run(gestures, rest_s, gesture_s, countdown_s)
    except KeyboardInterrupt:
        session.cancel()
        out.write("\ncancelled: the session ended and the hand follows the model again\n")
        return EXIT_CANCELLED
    except BaseException:
        session.cancel()
        raise


# ------------------------------------------------------------------ servo end points


def parse_nudge(command: str, pulse_us: float) -> float | None:
    """The pulse after one command (``+``, ``-``, ``++``, ``--`` or a number); None if not one.

    The result is kept within 300–2700 µs.
    """
    steps = {"+": SERVO_STEP_US, "-": -SERVO_STEP_US, "++": SERVO_BIG_STEP_US}
    steps["--"] = -SERVO_BIG_STEP_US
    if command in steps:
        value = pulse_us + steps[command]
    else:
        try:
            value = float(command)
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
    return min(MAX_SERVO_PULSE_US, max(MIN_SERVO_PULSE_US, value))


def servo_lines(finger: str, open_us: float, flexed_us: float) -> str:
    """The ``[servo.<finger>]`` block for the config (min/max and the mirroring they imply)."""
    return (
        f"[servo.{finger}]\n"
        f"min_pulse_us = {min(open_us, flexed_us):.0f}\n"
        f"max_pulse_us = {max(open_us, flexed_us):.0f}\n"
        f"inverted = {'true' if open_us > flexed_us else 'false'}\n"
    )


def servos_main(
    client: Caller,
    out: TextIO,
    read_command: Callable[[str], str],
    start_pulses_us: Mapping[str, tuple[float, float]],
    *,
    fingers: Sequence[str] = FINGERS,
) -> int:
    """``emgd calibrate servos``: set each finger's open and flexed pulse interactively.

    Parameters
    ----------
    client:
        A privileged status client.
    read_command:
        Shows a prompt, returns one command: ``+``/``-`` (±10 µs), ``++``/``--`` (±50 µs),
        a number (µs), empty (accept), ``s`` (skip the finger), ``q`` (stop).
    start_pulses_us:
        Finger → (open pulse, flexed pulse) the config gives now.

    Returns
    -------
    int
        0 (the lines are printed even after ``q``).
    """
    state = _dict(client.call("status"), "status").get("state")
    was_held = state == "hold"
    out.write(
        "emgd calibrate servos: the daemon holds the hand while one servo at a time moves.\n"
        "keys: + / - nudge 10 µs, ++ / -- 50 µs (on a terminal ] and [), a number sets µs,\n"
        "Enter accepts, s skips the finger, q stops.\n"
    )
    blocks: list[str] = []
    touched: list[str] = []
    try:
        for finger in fingers:
            ends: list[float] = []
            quit_all = False
            for end_name, start_us in zip(("open", "flexed"), start_pulses_us[finger], strict=True):
                out.write(f"\n{finger}: move to the fully {end_name} end\n")
                pulse_us = float(start_us)
                touched.append(finger)
                client.call("servo.set_pulse", {"finger": finger, "pulse_us": pulse_us})
                while True:
                    command = read_command(f"{finger} {end_name} {pulse_us:.0f} µs> ").strip()
                    if command in ("", "s", "q"):
                        break
                    new_us = parse_nudge(command, pulse_us)
                    if new_us is None:
                        out.write(f"? {command!r}: use + - ++ -- a number, Enter, s or q\n")
                        continue
                    pulse_us = new_us
                    client.call("servo.set_pulse", {"finger": finger, "pulse_us": pulse_us})
                if command in ("s", "q"):
                    quit_all = command == "q"
                    break
                ends.append(pulse_us)
            client.call("servo.set_pulse", {"finger": finger, "pulse_us": None})
            if len(ends) == 2:
                if ends[0] == ends[1]:
                    out.write(f"{finger}: both ends at {ends[0]:.0f} µs; skipped\n")
                else:
                    blocks.append(servo_lines(finger, ends[0], ends[1]))
            if quit_all:
                break
    finally:
        for finger in dict.fromkeys(touched):
            with contextlib.suppress(EmgdError, OSError):
                client.call("servo.set_pulse", {"finger": finger, "pulse_us": None})
        if not was_held:
            with contextlib.suppress(EmgdError, OSError):
                client.call("resume")
    if blocks:
        out.write("\nPaste into /etc/emgd/emgd.toml (replacing these keys), then restart emgd:\n\n")
        out.write("\n".join(blocks))
    else:
        out.write("\nno servo end points set\n")
    return 0


@contextlib.contextmanager
def terminal_keys(stream: Any) -> Iterator[Callable[[str], str]]:
    """Single-key commands from a terminal (no Enter needed), mapped by :data:`KEY_COMMANDS`."""
    import termios
    import tty

    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def read(prompt: str) -> str:
        sys.stdout.write("\r\033[K" + prompt)
        sys.stdout.flush()
        while True:
            key = stream.read(1)
            if key in KEY_COMMANDS:
                return KEY_COMMANDS[key]
            if key == "":
                return "q"

    try:
        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
