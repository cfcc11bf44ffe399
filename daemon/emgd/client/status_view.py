"""``emgd status``: the daemon's status snapshot as a table, as JSON, or as a live view.

This module owns the snapshot's schema as the CLI reads it (:func:`example_snapshot` shows
every field), its text renderings and the ``status`` command's loop (:func:`status_main`).
Rendering is pure and tolerant: a missing, null or non-finite field prints as "—" instead
of failing, so an older or newer daemon still shows what it has. It must not build
snapshots (the daemon does) nor parse command-line arguments (``emgd.cli`` does).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from emgd.client.status_client import (
    DEFAULT_SOCKET_PATH,
    DEFAULT_TIMEOUT_S,
    DaemonUnavailable,
    RemoteError,
    StatusClient,
)
from emgd.clock import NS_PER_S, Clock, SystemClock
from emgd.config import FINGERS
from emgd.service.latency import STAGES
from emgd.service.status_server import PARSE_ERROR

STATUS_METHOD = "status"
DASH = "—"
SCREEN_REFRESH_S = 0.2  # ~5 Hz on a terminal
LINE_REFRESH_S = 1.0  # one line per second into a pipe or a log
RMS_FULL_SCALE_UV = 200.0  # RMS drawn as a full bar (strong sEMG reaches a few hundred µV)
ANGLE_FULL_SCALE_DEG = 180.0
WATCH_BAR_WIDTH = 30
LABEL_WIDTH = 14
#: Latency stages in pipeline order (snapshot keys under ``latency_ms``).
LATENCY_STAGES = STAGES
#: Acquisition counters in the order shown (snapshot keys under ``acquisition``).
ACQUISITION_COUNTERS = ("lost", "stale", "railed", "invalid", "timeouts", "overrun")
#: Angle rows of the finger table: (snapshot key under ``angles_deg``, column title).
ANGLE_SOURCES = (("commanded", "command°"), ("model", "model°"), ("intent", "intent°"))
HAND_SOURCE = ("hand", "hand°")
SOCKET_COUNTERS = ("clients", "requests", "errors", "dropped")
#: LSL publisher counters shown: (title, snapshot key under ``lsl``).
LSL_COUNTERS = (
    ("pushed", "pushed_chunks"),
    ("queued", "queued_chunks"),
    ("dropped", "dropped_chunks"),
    ("failed", "failed_chunks"),
)


def example_snapshot() -> dict[str, Any]:
    """A complete status snapshot with plausible values (for tests and documentation).

    Every key the daemon's ``status`` method returns is here; ``channels`` has one entry per
    EMG channel and every ``angles_deg`` list has one value per finger (thumb first).
    """
    return {
        "state": "running",
        "faults": [],
        "uptime_s": 3725.4,
        "version": "0.1.0",
        "config_path": "/etc/emgd/emgd.toml",
        "model": {"identity": "tcn-5f3a9c21", "path": "/var/lib/emgd/model.onnx"},
        "calibration": {"identity": "cal-7b1e09aa", "created": "2025-01-12T10:31:00Z"},
        "hardware": {"adc": "ADS1299 (8 ch) on spidev0.0", "servo": "PCA9685 at 0x40 on i2c-1"},
        "acquisition": {
            "sample_rate_hz": 1000.0,
            "achieved_rate_hz": 999.8,
            "frames": 3725112,
            "lost": 0,
            "stale": 2,
            "railed": 12,
            "invalid": 0,
            "timeouts": 0,
            "overrun": 0,
        },
        "latency_ms": {
            "acquire": {"p50": 0.12, "p99": 0.41},
            "filter": {"p50": 0.35, "p99": 0.62},
            "window": {"p50": 0.05, "p99": 0.09},
            "infer": {"p50": 2.1, "p99": 3.4},
            "safety": {"p50": 0.03, "p99": 0.06},
            "i2c_write": {"p50": 0.55, "p99": 0.98},
            "end_to_end": {"p50": 3.6, "p99": 5.2},
        },
        "channels": [
            {"rms_uv": 23.4, "railed": False, "lead_off": False, "mains_ratio": 0.02},
            {"rms_uv": 41.0, "railed": False, "lead_off": False, "mains_ratio": 0.05},
            {"rms_uv": 12.9, "railed": False, "lead_off": False, "mains_ratio": 0.01},
            {"rms_uv": 7.5, "railed": False, "lead_off": True, "mains_ratio": 0.41},
            {"rms_uv": 88.2, "railed": False, "lead_off": False, "mains_ratio": 0.03},
            {"rms_uv": 150.7, "railed": False, "lead_off": False, "mains_ratio": 0.02},
            {"rms_uv": 31.1, "railed": False, "lead_off": False, "mains_ratio": 0.04},
            {"rms_uv": 400.0, "railed": True, "lead_off": False, "mains_ratio": 0.00},
        ],
        "angles_deg": {
            "commanded": [12.0, 40.5, 38.0, 35.2, 30.0],
            "model": [11.8, 41.0, 37.6, 35.0, 29.5],
            "intent": [10.0, 42.0, 40.0, 36.0, 31.0],
            "hand": [12.1, 40.2, 38.1, 35.0, 30.2],
        },
        "socket": {"clients": 1, "requests": 532, "errors": 0, "dropped": 0},
        "lsl": {
            "streams": {
                "emg": {
                    "name": "emgd EMG",
                    "source_id": "emgd-ads1299-10000000c0ffee01-1a2b3c4d:emg",
                },
                "angles": {
                    "name": "emgd angles",
                    "source_id": "emgd-ads1299-10000000c0ffee01-1a2b3c4d:angles",
                },
                "markers": {
                    "name": "emgd markers",
                    "source_id": "emgd-ads1299-10000000c0ffee01-1a2b3c4d:markers",
                },
            },
            "offered_chunks": 372530,
            "pushed_chunks": 372528,
            "dropped_chunks": 0,
            "failed_chunks": 0,
            "queued_chunks": 2,
            "dropped_by_stream": {},
            "clock_offset_s": 0.0,
            "sample_period_ns": 1000012.5,
            "sample_clock_resets": 0,
        },
    }


# --- the table ------------------------------------------------------------------------------


def render_status(snapshot: Mapping[str, Any]) -> str:
    """The human table of ``emgd status`` (no trailing newline)."""
    s = snapshot
    lines = [_headline(s)]
    faults = _get(s, "faults")
    fault_text = ", ".join(str(f) for f in faults) if isinstance(faults, list) and faults else ""
    lines.append(_row("faults", fault_text or ("none" if isinstance(faults, list) else DASH)))
    lines.append(_row("config", _text(_get(s, "config_path"))))
    lines.append(_row("model", _identity(_get(s, "model", "identity"), _get(s, "model", "path"))))
    created = _get(s, "calibration", "created")
    lines.append(
        _row(
            "calibration",
            _identity(
                _get(s, "calibration", "identity"),
                None if created is None else f"created {_text(created)}",
            ),
        )
    )
    lines.append(
        _row(
            "hardware",
            f"adc {_text(_get(s, 'hardware', 'adc'))} · "
            f"servo {_text(_get(s, 'hardware', 'servo'))}",
        )
    )
    lines.append("")

    acq = _get(s, "acquisition")
    lines.append(
        _row(
            "acquisition",
            f"set {_num(_get(acq, 'sample_rate_hz'), 1)} Hz   "
            f"achieved {_num(_get(acq, 'achieved_rate_hz'), 1)} Hz   "
            f"frames {_int(_get(acq, 'frames'))}",
        )
    )
    lines.append(
        " " * LABEL_WIDTH
        + "   ".join(f"{name} {_int(_get(acq, name))}" for name in ACQUISITION_COUNTERS)
    )
    lines.append("")

    lines.append(f"{'latency ms':<{LABEL_WIDTH}}{'p50':>8}{'p99':>9}")
    for stage in LATENCY_STAGES:
        p50 = _num(_get(s, "latency_ms", stage, "p50"), 2, 8)
        p99 = _num(_get(s, "latency_ms", stage, "p99"), 2, 9)
        lines.append(f"  {stage:<{LABEL_WIDTH - 2}}{p50}{p99}")
    lines.append("")

    lines.append(f"{'channel':<{LABEL_WIDTH}}{'RMS µV':>8}  {'railed':<8}{'lead-off':<10}mains")
    channels = _get(s, "channels")
    if isinstance(channels, list) and channels:
        for c, ch in enumerate(channels):
            lines.append(
                f"  {'ch' + str(c + 1):<{LABEL_WIDTH - 2}}{_num(_get(ch, 'rms_uv'), 1, 8)}  "
                f"{_yes_no(_get(ch, 'railed')):<8}{_yes_no(_get(ch, 'lead_off')):<10}"
                f"{_num(_get(ch, 'mains_ratio'), 2)}"
            )
    else:
        lines.append(f"  {DASH}")
    lines.append("")

    sources = (*ANGLE_SOURCES, HAND_SOURCE)
    lines.append(f"{'finger':<{LABEL_WIDTH}}" + "".join(f"{title:>10}" for _, title in sources))
    for i, finger in enumerate(FINGERS):
        cells = "".join(_num(_angle(s, key, i), 1, 10) for key, _ in sources)
        lines.append(f"  {finger:<{LABEL_WIDTH - 2}}{cells}")
    lines.append("")

    if "lsl" in s:  # older daemons have no LSL outlets
        lines.append(_row("lsl", _lsl_text(_get(s, "lsl"))))
    sock = _get(s, "socket")
    counters = "   ".join(f"{name} {_int(_get(sock, name))}" for name in SOCKET_COUNTERS)
    lines.append(_row("socket", counters))
    return "\n".join(lines)


def _lsl_text(lsl: object) -> str:
    """The LSL outlets' line: off, or the publisher's chunk counters."""
    if not isinstance(lsl, Mapping):
        return "off"
    streams = _get(lsl, "streams")
    n_streams = len(streams) if isinstance(streams, Mapping) else 0
    return f"{n_streams} outlets   " + "   ".join(
        f"{name} {_int(_get(lsl, key))}" for name, key in LSL_COUNTERS
    )


def render_json(snapshot: Mapping[str, Any], *, indent: int | None = 2) -> str:
    """The snapshot as JSON (``indent=None``: one line, for ``--watch --json``)."""
    separators = None if indent is not None else (",", ":")
    return json.dumps(snapshot, indent=indent, ensure_ascii=False, separators=separators)


# --- the live view --------------------------------------------------------------------------


def render_watch_screen(snapshot: Mapping[str, Any]) -> str:
    """The full-screen live view: headline, counters, level bars, finger angles."""
    from emgd.client.liveview import level_bar

    s = snapshot
    acq = _get(s, "acquisition")
    lines = [_headline(s) + "   (Ctrl-C ends)", ""]
    lines.append(
        f"rate {_num(_get(acq, 'achieved_rate_hz'), 1)} / {_num(_get(acq, 'sample_rate_hz'), 1)} Hz"
        + "".join(f"   {name} {_int(_get(acq, name))}" for name in ACQUISITION_COUNTERS[:4])
        + f"   end-to-end p99 {_num(_get(s, 'latency_ms', 'end_to_end', 'p99'), 2)} ms"
    )
    lines.append("")
    lines.append(f"channel   RMS µV   level (0–{RMS_FULL_SCALE_UV:g} µV)".ljust(52) + "flags")
    channels = _get(s, "channels")
    for c, ch in enumerate(channels if isinstance(channels, list) else []):
        rms = _finite(_get(ch, "rms_uv"))
        flags = [
            name for key, name in (("railed", "RAILED"), ("lead_off", "LEAD-OFF")) if _get(ch, key)
        ]
        bar = level_bar(math.nan if rms is None else rms, RMS_FULL_SCALE_UV, WATCH_BAR_WIDTH)
        lines.append(f"  ch{c + 1:<4}{_num(rms, 1, 9)}   {bar}  {' '.join(flags)}".rstrip())
    lines.append("")
    lines.append(
        f"finger    command°  angle (0–{ANGLE_FULL_SCALE_DEG:g}°)".ljust(53) + "intent°   hand°"
    )
    for i, finger in enumerate(FINGERS):
        cmd = _angle(s, "commanded", i)
        bar = level_bar(math.nan if cmd is None else cmd, ANGLE_FULL_SCALE_DEG, WATCH_BAR_WIDTH)
        lines.append(
            f"  {finger:<7}{_num(cmd, 1, 9)}   {bar}  "
            f"{_num(_angle(s, 'intent', i), 1, 7)} {_num(_angle(s, 'hand', i), 1, 7)}"
        )
    return "\n".join(lines)


def render_watch_line(snapshot: Mapping[str, Any]) -> str:
    """One line per refresh for pipes and logs: state, rate, counters, mean RMS, angles."""
    s = snapshot
    acq = _get(s, "acquisition")
    channels = _get(s, "channels")
    rms = [_finite(_get(ch, "rms_uv")) for ch in (channels if isinstance(channels, list) else [])]
    known = [r for r in rms if r is not None]
    mean_rms = sum(known) / len(known) if known else None
    angles = " ".join(_num(_angle(s, "commanded", i), 1, 5) for i in range(len(FINGERS)))
    return (
        f"state={_text(_get(s, 'state'))} up={_num(_get(s, 'uptime_s'), 1)}s "
        f"rate={_num(_get(acq, 'achieved_rate_hz'), 1)}Hz "
        + " ".join(f"{name}={_int(_get(acq, name))}" for name in ACQUISITION_COUNTERS[:4])
        + f" rms={_num(mean_rms, 1)}uV"
        f" e2e_p99={_num(_get(s, 'latency_ms', 'end_to_end', 'p99'), 2)}ms cmd {angles}"
    )


# --- the command ----------------------------------------------------------------------------


def fetch_snapshot(client: StatusClient) -> dict[str, Any]:
    """Call the daemon's ``status`` method; raises :class:`RemoteError` if it is no object."""
    result = client.call(STATUS_METHOD)
    if not isinstance(result, dict):
        raise RemoteError(STATUS_METHOD, PARSE_ERROR, "status result is not a JSON object")
    return result


def status_main(
    *,
    stdout: TextIO,
    socket_path: Path = DEFAULT_SOCKET_PATH,
    json_output: bool = False,
    watch: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    refresh_s: float | None = None,
    full_screen: bool | None = None,
    clock: Clock | None = None,
    max_refreshes: int | None = None,
) -> int:
    """Run ``emgd status``; returns the exit code (0).

    Parameters
    ----------
    stdout:
        Where the table, JSON or live view goes.
    socket_path:
        The daemon's socket (see :func:`emgd.client.status_client.socket_path`).
    json_output:
        Print the snapshot as JSON (with ``watch``: one compact JSON line per refresh).
    watch:
        Refresh until Ctrl-C (which ends with 0). Full screen on a terminal, one line per
        refresh otherwise. If the daemon goes away after the first refresh, the view says so
        and keeps retrying.
    refresh_s:
        Refresh period (default 0.2 s full screen, 1 s in line or JSON mode).
    full_screen:
        Force the full-screen view on or off (default: whether ``stdout`` is a terminal).
    clock:
        Paces the refreshes (default :class:`~emgd.clock.SystemClock`).
    max_refreshes:
        Stop after this many refreshes (tests); None = until Ctrl-C.

    Raises
    ------
    DaemonUnavailable
        Not running, access denied, or no answer (exit code 9): one-line message.
    RemoteError
        The daemon refused the request (exit code 10).
    """
    with StatusClient(socket_path, timeout_s=timeout_s) as client:
        if not watch:
            snapshot = fetch_snapshot(client)
            stdout.write((render_json(snapshot) if json_output else render_status(snapshot)) + "\n")
            stdout.flush()
            return 0
        screen = (stdout.isatty() if full_screen is None else full_screen) and not json_output
        period_s = refresh_s or (SCREEN_REFRESH_S if screen else LINE_REFRESH_S)
        return _watch(
            client,
            stdout,
            screen=screen,
            json_output=json_output,
            period_s=period_s,
            clock=clock,
            max_refreshes=max_refreshes,
        )


def _watch(
    client: StatusClient,
    out: TextIO,
    *,
    screen: bool,
    json_output: bool,
    period_s: float,
    clock: Clock | None,
    max_refreshes: int | None,
) -> int:
    from emgd.client.liveview import CLEAR_HOME

    clock = SystemClock() if clock is None else clock
    period_ns = max(1, round(period_s * NS_PER_S))
    next_ns = clock.monotonic_ns()
    refreshes = 0
    try:
        while max_refreshes is None or refreshes < max_refreshes:
            try:
                snapshot = fetch_snapshot(client)
            except DaemonUnavailable as exc:
                if refreshes == 0:
                    raise
                text = f"{exc}; retrying"
            else:
                if json_output:
                    text = render_json(snapshot, indent=None)
                elif screen:
                    text = render_watch_screen(snapshot)
                else:
                    text = render_watch_line(snapshot)
            out.write((CLEAR_HOME if screen else "") + text + "\n")
            out.flush()
            refreshes += 1
            if max_refreshes is not None and refreshes >= max_refreshes:
                break
            next_ns = max(next_ns + period_ns, clock.monotonic_ns())  # no burst after a stall
            clock.sleep_until_ns(next_ns)
    except KeyboardInterrupt:
        pass
    return 0


# --- formatting helpers ---------------------------------------------------------------------


def _headline(s: Mapping[str, Any]) -> str:
    state = _get(s, "state")
    state_text = state.upper() if isinstance(state, str) and state else DASH
    return (
        f"emgd {_text(_get(s, 'version'))} — {state_text}, "
        f"up {format_uptime(_finite(_get(s, 'uptime_s')))}"
    )


def format_uptime(uptime_s: float | None) -> str:
    """``42 s``, ``5 min 03 s``, ``1 h 02 min 05 s``, ``3 d 04 h 05 min``; "—" if unknown."""
    if uptime_s is None or uptime_s < 0:
        return DASH
    total_s = int(uptime_s)
    days, rest = divmod(total_s, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h {minutes:02d} min"
    if hours:
        return f"{hours} h {minutes:02d} min {seconds:02d} s"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


def _row(label: str, value: str) -> str:
    return f"{label:<{LABEL_WIDTH}}{value}"


def _get(value: object, *keys: str) -> object:
    """``value[k1][k2]…``, or None as soon as a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _num(value: object, decimals: int, width: int = 0) -> str:
    number = _finite(value)
    if number is None:
        return DASH.rjust(width)
    return f"{number:{width}.{decimals}f}"


def _int(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        return DASH
    return str(value)


def _text(value: object) -> str:
    return value if isinstance(value, str) and value else DASH


def _yes_no(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return DASH


def _identity(identity: object, detail: str | object) -> str:
    if not isinstance(identity, str) or not identity:
        return DASH
    if isinstance(detail, str) and detail:
        return f"{identity}  ({detail})"
    return identity


def _angle(s: Mapping[str, Any], source: str, finger: int) -> float | None:
    values = _get(s, "angles_deg", source)
    if not isinstance(values, Sequence) or isinstance(values, str) or finger >= len(values):
        return None
    return _finite(values[finger])
