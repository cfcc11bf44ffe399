"""Tests of emgd.offline.metrics: every expected value is worked out by hand in a comment."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.errors import ConfigError
from emgd.offline.metrics import (
    held_at,
    mae_by_gesture,
    mae_by_time_since_start,
    mae_per_finger_deg,
    mean_ignoring_nan,
    pearson_r,
    r2_per_finger,
    ramp_correlation,
    summarise,
)


def test_mae_by_hand() -> None:
    pred = np.array([[10, 0, 0, 0, 0], [20, 5, 0, 0, 0]], dtype=float)
    target = np.array([[0, 0, 0, 0, 0], [30, 0, 0, 0, 9]], dtype=float)
    # thumb |10| and |−10| → 10; index 0 and 5 → 2.5; little 0 and 9 → 4.5
    np.testing.assert_allclose(mae_per_finger_deg(pred, target), [10, 2.5, 0, 0, 4.5])


def test_r2_by_hand() -> None:
    target = np.zeros((3, 5))
    target[:, 0] = [0, 2, 4]  # mean 2, SS_tot = 4 + 0 + 4 = 8
    target[:, 1] = [0, 2, 4]
    pred = np.zeros((3, 5))
    pred[:, 0] = [1, 2, 3]  # SS_res = 1 + 0 + 1 = 2 → R² = 1 − 2/8 = 0.75
    pred[:, 1] = [2, 2, 2]  # predicting the mean → R² = 0
    got = r2_per_finger(pred, target)
    assert got[0] == pytest.approx(0.75)
    assert got[1] == pytest.approx(0.0)
    assert all(math.isnan(v) for v in got[2:])  # constant targets: undefined
    assert mean_ignoring_nan(got) == pytest.approx(0.375)
    assert math.isnan(mean_ignoring_nan([math.nan]))


def test_pearson_by_hand() -> None:
    # x − x̄ = (−1, 0, 1), y − ȳ = (−7/3, −1/3, 8/3): r = 5 / (√2·√114/3) = 15/√228
    assert pearson_r([1, 2, 3], [2, 4, 7]) == pytest.approx(15.0 / math.sqrt(228.0))
    assert pearson_r([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson_r([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ConfigError, match="equal length"):
        pearson_r([1, 2], [1, 2, 3])


def _ramp(goal: float, n: int = 5) -> np.ndarray:
    p = np.linspace(0.2, 0.8, n)
    return np.repeat((30.0 + p * (goal - 30.0))[:, None], 5, axis=1)


def test_ramp_correlation_signed_towards_the_gesture() -> None:
    # hand open: the target falls from 30·0.8 = 24 to 30·0.2 = 6 degrees as effort rises
    target_open = _ramp(0.0)
    assert target_open[0, 0] == pytest.approx(24.0) and target_open[-1, 0] == pytest.approx(6.0)
    falling = np.repeat(np.array([[20.0], [18], [15], [9], [1]]), 5, axis=1)
    assert ramp_correlation(falling, target_open) > 0.95
    assert ramp_correlation(falling[::-1], target_open) < -0.95
    # a flexing ramp followed exactly, with an offset: r = 1
    target_power = _ramp(180.0)
    assert ramp_correlation(target_power + 7.0, target_power) == pytest.approx(1.0)


def test_ramp_correlation_edge_cases() -> None:
    assert ramp_correlation(np.full((5, 5), 90.0), _ramp(180.0)) == 0.0  # no effort signal
    assert math.isnan(ramp_correlation(_ramp(180.0), np.full((5, 5), 30.0)))  # rest "ramp"


def test_summarise() -> None:
    target = np.zeros((2, 5))
    target[:, 0] = [0, 10]
    pred = target + 1.0
    # MAE 1 everywhere; thumb R² = 1 − 2/50 = 0.96; other fingers constant → None
    report = summarise(pred, target)
    assert report["mae_deg"] == dict.fromkeys(["thumb", "index", "middle", "ring", "little"], 1.0)
    assert report["mae_mean_deg"] == 1.0
    assert report["r2"]["thumb"] == pytest.approx(0.96)
    assert report["r2"]["index"] is None
    assert report["r2_mean"] == pytest.approx(0.96)
    assert report["n"] == 2


def test_mae_by_time_since_start_bins_by_hand() -> None:
    target = np.zeros((5, 5))
    pred = np.zeros((5, 5))
    pred[:, 0] = [10, 20, 5, 50, 0]  # mean over fingers: 2, 4, 1, 10, 0
    since_s = [0.0, 0.2, 0.3, 1.5, 7.0]
    got = mae_by_time_since_start(pred, target, since_s)
    # 0-0.25 s: (2 + 4) / 2; 0.25-0.5 s: 1; 0.5-1 s: nothing; 1-2 s: 10; 2 s on: 0
    assert got == {"0-0.25s": 3.0, "0.25-0.5s": 1.0, "0.5-1s": None, "1-2s": 10.0, "2s+": 0.0}
    assert list(mae_by_time_since_start(pred, target, since_s, (0.0, 1.0))) == ["0-1s"]
    with pytest.raises(ConfigError, match="time since start"):
        mae_by_time_since_start(pred, target, since_s[:4])
    with pytest.raises(ConfigError, match="must increase"):
        mae_by_time_since_start(pred, target, since_s, (0.0, 1.0, 1.0))


def test_mae_by_gesture_splits_the_steady_hold_by_hand() -> None:
    target = np.zeros((5, 5))
    pred = np.zeros((5, 5))
    pred[:, 1] = [10, 20, 5, 50, 0]  # mean over fingers: 2, 4, 1, 10, 0
    gestures = ["pinch", "pinch", "rest", "pinch", "rest"]
    since_s = [0.5, 1.0, 0.2, 3.0, 0.9]
    got = mae_by_gesture(pred, target, gestures, since_s)
    assert list(got) == ["pinch", "rest"]
    # pinch: all (2 + 4 + 10) / 3; held from 1 s: (4 + 10) / 2
    assert got["pinch"] == {"n": 3, "mae_deg": 16 / 3, "steady_n": 2, "steady_mae_deg": 7.0}
    # rest never reaches 1 s into its recording
    assert got["rest"] == {"n": 2, "mae_deg": 0.5, "steady_n": 0, "steady_mae_deg": None}
    assert mae_by_gesture(pred, target, gestures, since_s, 0.0)["rest"]["steady_mae_deg"] == 0.5
    with pytest.raises(ConfigError, match="one gesture"):
        mae_by_gesture(pred, target, gestures[:4], since_s)
    with pytest.raises(ConfigError, match="one gesture"):
        mae_by_gesture(pred, target, gestures, [0.0, 1.0, float("nan"), 2.0, 3.0])


@pytest.mark.parametrize(
    ("pred", "target"),
    [
        (np.zeros((3, 4)), np.zeros((3, 4))),
        (np.zeros((3, 5)), np.zeros((2, 5))),
        (np.zeros((0, 5)), np.zeros((0, 5))),
        (np.full((1, 5), np.nan), np.zeros((1, 5))),
    ],
)
def test_bad_shapes(pred: np.ndarray, target: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="metrics"):
        mae_per_finger_deg(pred, target)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-180, 180), min_size=3, max_size=30),
    st.floats(0.1, 10.0),
    st.floats(-50.0, 50.0),
)
def test_pearson_invariant_to_positive_affine_maps(
    xs: list[float], scale: float, shift: float
) -> None:
    x = np.asarray(xs)
    if np.ptp(x) < 1e-3:
        return
    y = np.sin(x) + 0.1 * x
    if np.ptp(y) < 1e-3:
        return
    assert pearson_r(scale * x + shift, y) == pytest.approx(pearson_r(x, y), abs=1e-9)


def test_held_at_reads_the_latest_update_at_or_before_each_instant() -> None:
    values = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    held = held_at([0, 4, 5, 6, 9, 20], [5, 9, 12], values, [-1.0, -10.0])
    expected = [[-1, -10], [-1, -10], [1, 10], [1, 10], [2, 20], [3, 30]]
    np.testing.assert_array_equal(held, expected)
    assert held_at([], [5], values[:1], [0.0, 0.0]).shape == (0, 2)
