"""Text rendering of monitor snapshots: a full-screen view on a terminal, one summary line
per second otherwise (journal, pipes).

Pure formatting: takes :class:`~emgd.service.monitor.HopSummary` values and returns strings; the
caller decides where they go.
"""

from __future__ import annotations

import math

from emgd.config import FINGERS
from emgd.service.monitor import HopSummary

BAR_WIDTH = 30
#: RMS shown as a full bar (µV); sEMG at strong effort reaches a few hundred µV.
BAR_FULL_SCALE_UV = 200.0
CLEAR_HOME = "\x1b[H\x1b[2J"


def level_bar(value: float, full_scale: float, width: int = BAR_WIDTH) -> str:
    """A bar of ``width`` cells filled in proportion to ``value / full_scale`` (clipped)."""
    if not math.isfinite(value) or full_scale <= 0:
        return "?" * width
    filled = min(width, max(0, round(width * value / full_scale)))
    return "█" * filled + "·" * (width - filled)


def render_screen(s: HopSummary, header: str) -> str:
    """The full-screen view: per-channel levels, counters, and the five fingers."""
    lines = [header, ""]
    lines.append(
        f"t {s.time_s:8.1f} s   rate {s.achieved_rate_hz:8.1f} Hz   frames {s.frames_read}   "
        f"lost {s.frames_lost}   stale {s.frames_stale}   invalid {s.frames_invalid}   "
        f"timeouts {s.timeouts}"
    )
    lines.append("")
    lines.append("channel   RMS µV   level (0–200 µV)                flags")
    for c, rms in enumerate(s.rms_uv):
        flags = []
        if s.railed_mask >> c & 1:
            flags.append("RAILED")
        if s.lead_off_mask >> c & 1:
            flags.append("LEAD-OFF")
        lines.append(
            f"  ch{c + 1:<2}  {rms:9.1f}   {level_bar(float(rms), BAR_FULL_SCALE_UV)}  "
            + " ".join(flags)
        )
    lines.append("")
    lines.append("finger    command°  counts  pulse µs   hand°  intent°")
    for i, finger in enumerate(FINGERS):
        pulse = s.pulses_us[i] if i < len(s.pulses_us) else None
        hand = s.hand_deg[i] if s.hand_deg is not None else None
        intent = s.intent_deg[i] if s.intent_deg is not None else None
        lines.append(
            f"  {finger:<7} {s.commanded_deg[i]:8.1f}  {s.counts[i]:6d}  "
            f"{_opt(pulse, 8, 1)}  {_opt(hand, 6, 1)}  {_opt(intent, 7, 1)}"
        )
    return "\n".join(lines)


def render_line(s: HopSummary) -> str:
    """One line for logs: time, rate, counters, mean RMS and the commanded angles."""
    mean_rms = float(s.rms_uv.mean()) if s.rms_uv.size else math.nan
    angles = " ".join(f"{a:5.1f}" for a in s.commanded_deg)
    hand = ""
    if s.hand_deg is not None:
        hand = "  hand " + " ".join(f"{a:5.1f}" for a in s.hand_deg)
    return (
        f"t={s.time_s:7.1f}s rate={s.achieved_rate_hz:7.1f}Hz read={s.frames_read} "
        f"lost={s.frames_lost} stale={s.frames_stale} invalid={s.frames_invalid} "
        f"rms={mean_rms:6.1f}uV  cmd {angles}{hand}"
    )


def _opt(value: float | None, width: int, decimals: int) -> str:
    if value is None:
        return "—".rjust(width)
    return f"{value:{width}.{decimals}f}"
