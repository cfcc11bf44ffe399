"""The TAC test figures on hand-made traces whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from emgd.errors import InvalidParams
from emgd.offline.tac import TacParams, score_target, summarise

TARGET = np.full(5, 100.0)
P = TacParams(tolerance_deg=10.0, dwell_s=1.0, limit_s=5.0)


def _trace(points: list[tuple[float, float]], hop_s: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-constant trace: (until_s, angle of all five fingers)."""
    times, angles = [], []
    t = 0.0
    for until_s, angle in points:
        while t < until_s - 1e-9:
            times.append(t)
            angles.append([angle] * 5)
            t = round(t + hop_s, 6)
    return np.array(times), np.array(angles, dtype=float)


def test_straight_move_completes_with_the_entry_time_and_efficiency_one() -> None:
    t = np.arange(0, 4, 0.1)
    a = np.repeat(np.minimum(t * 100.0, 100.0)[:, None], 5, axis=1)  # 0 -> 100 in 1 s
    r = score_target("power", None, TARGET, onset_s=0.0, times_s=t, angles_deg=a, params=P)
    assert r.completed
    assert r.completion_time_s == pytest.approx(0.9)  # first sample at 90 deg
    assert r.path_efficiency == pytest.approx(1.0)
    assert r.overshoot_count == 0 and r.overshoot_deg == 0.0


def test_detour_lowers_efficiency_and_overshoot_is_counted() -> None:
    # Start at 0, jump to 130 (past the box by 20), back to 100, hold.
    t, a = _trace([(0.5, 0.0), (1.0, 95.0), (1.5, 130.0), (4.0, 100.0)])
    r = score_target("power", 0.5, TARGET, onset_s=0.0, times_s=t, angles_deg=a, params=P)
    assert r.completed
    assert r.completion_time_s == pytest.approx(1.5)
    assert r.overshoot_count == 1
    assert r.overshoot_deg == pytest.approx(20.0)
    # Path until the successful entry at 100: 0->95->130->100 = 95+35+30 = 160 per finger;
    # straight 0->100 = 100 per finger (the sqrt(5) cancels).
    assert r.path_efficiency == pytest.approx(100.0 / 160.0)


def test_short_holds_do_not_complete_and_limit_is_enforced() -> None:
    # In the box for 0.5 s at a time, then reaching it only after the limit.
    t, a = _trace([(1.0, 100.0), (2.0, 0.0), (2.5, 100.0), (5.5, 0.0), (8.0, 100.0)])
    r = score_target("chuck", None, TARGET, onset_s=0.0, times_s=t, angles_deg=a, params=P)
    assert not r.completed
    assert r.completion_time_s is None and r.path_efficiency is None
    assert r.overshoot_count == 2


def test_hand_already_on_target_completes_at_once() -> None:
    t, a = _trace([(3.0, 100.0)])
    r = score_target("rest", None, TARGET, onset_s=0.0, times_s=t, angles_deg=a, params=P)
    assert r.completed and r.completion_time_s == 0.0 and r.path_efficiency == 1.0


def test_samples_before_onset_are_ignored() -> None:
    t, a = _trace([(2.0, 100.0), (6.0, 0.0)])
    r = score_target("power", None, TARGET, onset_s=2.0, times_s=t, angles_deg=a, params=P)
    assert not r.completed


def test_summary_per_target_and_overall() -> None:
    t, a = _trace([(3.0, 100.0)])
    ok = score_target("power", None, TARGET, onset_s=0.0, times_s=t, angles_deg=a, params=P)
    t2, a2 = _trace([(3.0, 0.0)])
    miss = score_target("power", None, TARGET, onset_s=0.0, times_s=t2, angles_deg=a2, params=P)
    other = score_target("open", 0.5, TARGET, onset_s=0.0, times_s=t, angles_deg=a, params=P)
    s = summarise([ok, miss, other])
    assert s["overall"]["n_targets"] == 3
    assert s["overall"]["completion_rate"] == pytest.approx(2 / 3)
    assert s["per_target"]["power"]["completion_rate"] == 0.5
    assert s["per_target"]["power"]["mean_completion_time_s"] == 0.0
    assert s["per_target"]["open@0.5"]["n_completed"] == 1
    assert summarise([miss])["overall"]["mean_path_efficiency"] is None


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidParams, match="angles"):
        score_target(
            "power",
            None,
            TARGET,
            onset_s=0.0,
            times_s=np.zeros(3),
            angles_deg=np.zeros((3, 4)),
            params=P,
        )
    with pytest.raises(InvalidParams, match="backwards"):
        score_target(
            "power",
            None,
            TARGET,
            onset_s=0.0,
            times_s=[1.0, 0.0],
            angles_deg=np.zeros((2, 5)),
            params=P,
        )
    with pytest.raises(InvalidParams, match="dwell_s"):
        TacParams(dwell_s=20.0, limit_s=15.0)
