"""The client side of ``emgd test``: the target display and the TAC report table.

This module owns what the wearer sees during a target-achievement control test run by the
daemon (``tac.*`` on the status socket): the current target pose and effort, the hand's
five commanded angles against the target's tolerance band, the time left and the dwell
progress (redrawn in place on a terminal, a plain line per change otherwise), and the table
of the report at the end. Ctrl-C stops the test in the daemon and prints its partial
report, marked so. It scores nothing and writes no file: the daemon scores and stores.
Time comes from an injected clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TextIO

from emgd.client.calibrate_cli import Caller
from emgd.clock import NS_PER_S, Clock
from emgd.errors import EmgdError
from emgd.poses import FINGERS

POLL_S = 0.1
COMMAND_TIMEOUT_S = 5.0
RESULT_TIMEOUT_S = 5.0
BAR_CELLS = 20
EXIT_STOPPED = 130
EXIT_NOT_STORED = 1


class TacClientError(EmgdError, RuntimeError):
    """The daemon refused or did not apply a ``tac.*`` command."""


def _sleep_s(clock: Clock, seconds: float) -> None:
    clock.sleep_until_ns(clock.monotonic_ns() + round(seconds * NS_PER_S))


def _progress(client: Caller) -> dict[str, Any]:
    reply = client.call("tac.progress")
    if not isinstance(reply, dict):
        raise TacClientError(f"the daemon answered tac.progress with {type(reply).__name__}")
    return reply


def _command(client: Caller, clock: Clock, method: str, params: Mapping[str, Any]) -> None:
    """Send a command and wait until the loop applied it; raise its refusal."""
    reply = client.call(method, params)
    seq = reply.get("seq") if isinstance(reply, dict) else None
    if not isinstance(seq, int):
        raise TacClientError(f"the daemon answered {method} without a sequence number")
    deadline_ns = clock.monotonic_ns() + round(COMMAND_TIMEOUT_S * NS_PER_S)
    while True:
        progress = _progress(client)
        if int(progress.get("applied_seq", 0)) >= seq:
            error = progress.get("outcomes", {}).get(str(seq))
            if error:
                raise TacClientError(f"{method}: {error}")
            return
        if clock.monotonic_ns() > deadline_ns:
            raise TacClientError(
                f"the daemon did not apply {method} within {COMMAND_TIMEOUT_S:g} s"
            )
        _sleep_s(clock, POLL_S)


def _target_name(pose: object, effort: object) -> str:
    return f"{pose}" if effort is None else f"{pose} at {100 * float(str(effort)):.0f} % effort"


def display_lines(progress: Mapping[str, Any], tolerance_deg: float) -> list[str]:
    """The target display for one progress snapshot (``phase`` rest or target)."""
    head = f"target {progress['index'] + 1}/{progress['n_targets']}: "
    name = _target_name(progress.get("pose"), progress.get("effort"))
    left = float(progress.get("time_left_s", 0.0))
    if progress.get("phase") == "rest":
        return [f"{head}relax; next {name} in {left:4.1f} s"]
    cells = round(BAR_CELLS * float(progress.get("dwell_fraction", 0.0)))
    bar = "#" * cells + "." * (BAR_CELLS - cells)
    lines = [f"{head}{name}   {left:4.1f} s left   hold [{bar}]"]
    target = progress.get("target_deg") or []
    hand = progress.get("hand_deg") or []
    for finger, want, have in zip(FINGERS, target, hand, strict=False):
        mark = "ok" if abs(have - want) <= tolerance_deg else ("flex" if have < want else "open")
        lines.append(
            f"  {finger:7s} {have:6.1f} deg   target {want:6.1f} +-{tolerance_deg:g}   {mark}"
        )
    return lines


def _fmt(value: object, digits: int) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.{digits}f}"


def report_table(report: Mapping[str, Any]) -> str:
    """The per-target and overall figures of a report, as a text table."""
    title = (
        f"TAC test of {report.get('model', '?')}: tolerance +-{report['tolerance_deg']:g} deg, "
        f"dwell {report['dwell_s']:g} s, limit {report['limit_s']:g} s"
    )
    if report.get("partial"):
        title += f"   PARTIAL ({len(report.get('targets', []))} of {report['n_planned']} targets)"
    rows = [title, "target            done   rate   time s  path eff  overshoots  max deg"]

    def row(name: str, agg: Mapping[str, Any]) -> str:
        done = f"{agg['n_completed']}/{agg['n_targets']}"
        rate = agg.get("completion_rate")
        return (
            f"{name:16s}  {done:5s}  {_fmt(None if rate is None else 100 * rate, 0):>4s} %  "
            f"{_fmt(agg['mean_completion_time_s'], 2):>6s}  "
            f"{_fmt(agg['mean_path_efficiency'], 2):>8s}  "
            f"{_fmt(agg['mean_overshoot_count'], 1):>10s}  {_fmt(agg['max_overshoot_deg'], 1):>7s}"
        )

    for name, agg in report.get("per_target", {}).items():
        rows.append(row(name, agg))
    rows.append(row("overall", report["overall"]))
    return "\n".join(rows) + "\n"


class TargetDisplay:
    """Draws progress snapshots: in place on a terminal, else a line per change."""

    def __init__(self, out: TextIO, *, tty: bool) -> None:
        self.out = out
        self.tty = tty
        self._drawn = 0
        self._last_key: tuple[Any, ...] | None = None

    def draw(self, progress: Mapping[str, Any], tolerance_deg: float) -> None:
        lines = display_lines(progress, tolerance_deg)
        if self.tty:
            if self._drawn:
                self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self.out.write("\n".join(lines) + "\n")
            self._drawn = len(lines)
        else:
            key = (progress.get("index"), progress.get("phase"))
            if key != self._last_key:
                self.out.write(lines[0] + "\n")
                self._last_key = key
        self.out.flush()


def _wait_result(client: Caller, clock: Clock, session: int) -> dict[str, Any]:
    deadline_ns = clock.monotonic_ns() + round(RESULT_TIMEOUT_S * NS_PER_S)
    while True:
        progress = _progress(client)
        if progress.get("session") == session and not progress.get("active"):
            result = progress.get("result")
            if isinstance(result, dict):
                return result
        if clock.monotonic_ns() > deadline_ns:
            raise TacClientError("the daemon did not end the TAC test")
        _sleep_s(clock, POLL_S)


def tac_main(
    client: Caller,
    clock: Clock,
    out: TextIO,
    *,
    reps: int = 1,
    tolerance_deg: float = 15.0,
    dwell_s: float = 1.0,
    limit_s: float = 15.0,
    rest_s: float = 3.0,
    poses: list[str] | None = None,
    json_output: bool = False,
    tty: bool = False,
) -> int:
    """``emgd test``: 0 when the report was stored, 1 when not, 130 when stopped (Ctrl-C).

    Raises
    ------
    TacClientError
        When the daemon refuses the test (the message says why).
    """
    params: dict[str, Any] = {
        "reps": reps,
        "tolerance_deg": tolerance_deg,
        "dwell_s": dwell_s,
        "limit_s": limit_s,
        "rest_s": rest_s,
    }
    if poses is not None:
        params["poses"] = poses
    _command(client, clock, "tac.start", params)
    session = int(_progress(client).get("session", 0))
    display = None if json_output else TargetDisplay(out, tty=tty)
    if display is not None:
        out.write("TAC test: the model drives the hand; bring it to each target and hold it.\n")
    interrupted = False
    try:
        while True:
            progress = _progress(client)
            if progress.get("session") != session or not progress.get("active"):
                break
            shown = progress.get("progress")
            if display is not None and isinstance(shown, dict) and shown.get("phase") != "done":
                display.draw(shown, float(progress.get("tolerance_deg") or tolerance_deg))
            _sleep_s(clock, POLL_S)
    except KeyboardInterrupt:
        interrupted = True
        _command(client, clock, "tac.stop", {})
    result = _wait_result(client, clock, session)
    report = result.get("report", {})
    if json_output:
        out.write(json.dumps(result, indent=2) + "\n")
    else:
        out.write("\n" + report_table(report))
        outcome = result.get("outcome")
        if outcome == "stored":
            out.write(f"stored in {result.get('stored_in')}\n")
        else:
            out.write(f"not stored: {result.get('reason', outcome)}\n")
    if result.get("outcome") == "stored":
        return 0
    return EXIT_STOPPED if interrupted else EXIT_NOT_STORED
