"""Tests of the live-view text rendering."""

from __future__ import annotations

import math

import numpy as np

from emgd.client.liveview import level_bar, render_line, render_screen
from emgd.service.monitor import HopSummary


def summary(**changes: object) -> HopSummary:
    values: dict[str, object] = dict(
        time_s=12.5,
        frames=20,
        rms_uv=np.array([10.0, 200.0, 0.0, math.nan]),
        railed_mask=0b0010,
        lead_off_mask=0b0100,
        commanded_deg=(30.0, 60.0, 90.0, 120.0, 180.0),
        counts=(123, 184, 245, 307, 512),
        pulses_us=(600.5, None, 1500.0, 1833.3, 2500.0),
        hand_deg=(29.0, 58.0, 88.0, 118.0, 179.0),
        intent_deg=(30.0, 60.0, 90.0, 120.0, 180.0),
        frames_read=12_480,
        frames_lost=3,
        frames_stale=1,
        frames_invalid=0,
        timeouts=0,
        achieved_rate_hz=999.9,
    )
    values.update(changes)
    return HopSummary(**values)  # type: ignore[arg-type]


def test_level_bar_fills_in_proportion_and_clips() -> None:
    assert level_bar(0.0, 100.0, width=10) == "·" * 10
    assert level_bar(50.0, 100.0, width=10) == "█" * 5 + "·" * 5
    assert level_bar(500.0, 100.0, width=10) == "█" * 10
    assert level_bar(math.nan, 100.0, width=4) == "????"


def test_screen_shows_counters_flags_and_fingers() -> None:
    text = render_screen(summary(), "HEADER")
    assert text.startswith("HEADER")
    assert "lost 3" in text and "stale 1" in text
    ch2 = next(line for line in text.splitlines() if line.strip().startswith("ch2 "))
    assert "RAILED" in ch2 and "LEAD-OFF" not in ch2
    ch3 = next(line for line in text.splitlines() if line.strip().startswith("ch3 "))
    assert "LEAD-OFF" in ch3
    little = next(line for line in text.splitlines() if line.strip().startswith("little"))
    assert little.split() == ["little", "180.0", "512", "2500.0", "179.0", "180.0"]
    index = next(line for line in text.splitlines() if line.strip().startswith("index"))
    assert "—" in index  # a released channel has no pulse


def test_line_summarises_one_hop() -> None:
    line = render_line(summary(hand_deg=None))
    assert line.startswith("t=   12.5s rate=  999.9Hz read=12480 lost=3 stale=1")
    assert "hand" not in line
    assert line.endswith("cmd  30.0  60.0  90.0 120.0 180.0")
