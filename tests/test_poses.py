"""Tests of emgd.poses: the datasets README table and the proportional target."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emgd.errors import ConfigError
from emgd.poses import (
    EFFORT_OF_CONTRACTION_INTENSITY_LEVEL,
    FINGERS,
    GESTURE_NAMES,
    POSE_ANGLES_DEG,
    POSE_NAMES,
    POSE_OF_3DC_CLASS,
    POSE_OF_CONTRACTION_INTENSITY_CLASS,
    pose_angles_deg,
    proportional_target_deg,
    proportional_targets_deg,
)


def test_finger_order() -> None:
    assert FINGERS == ("thumb", "index", "middle", "ring", "little")


def test_pose_table_matches_datasets_readme() -> None:
    assert dict(POSE_ANGLES_DEG) == {
        "rest": (30, 30, 30, 30, 30),
        "open": (0, 0, 0, 0, 0),
        "power": (180, 180, 180, 180, 180),
        "chuck": (110, 110, 110, 180, 180),
        "pinch": (110, 110, 30, 30, 30),
    }
    assert set(POSE_NAMES) == set(POSE_ANGLES_DEG)
    assert "rest" not in GESTURE_NAMES


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        POSE_ANGLES_DEG["rest"] = (0.0, 0.0, 0.0, 0.0, 0.0)  # type: ignore[index]


def test_pose_angles_returns_a_fresh_array() -> None:
    a = pose_angles_deg("chuck")
    a[0] = 0.0
    np.testing.assert_array_equal(pose_angles_deg("chuck"), [110, 110, 110, 180, 180])


def test_dataset_class_mappings() -> None:
    assert [POSE_OF_3DC_CLASS[c] for c in range(11)] == ["rest"] * 7 + [
        "power",
        "open",
        "chuck",
        "pinch",
    ]
    assert POSE_OF_CONTRACTION_INTENSITY_CLASS == {"C1": "rest", "C6": "chuck", "C7": "open"}
    assert EFFORT_OF_CONTRACTION_INTENSITY_LEVEL["20P"] == 0.2
    assert EFFORT_OF_CONTRACTION_INTENSITY_LEVEL["MVC"] == 1.0
    assert EFFORT_OF_CONTRACTION_INTENSITY_LEVEL["Medium"] == 0.5


@pytest.mark.parametrize(
    ("pose", "effort", "expected"),
    [
        ("power", 0.5, [105, 105, 105, 105, 105]),
        ("pinch", 0.5, [70, 70, 30, 30, 30]),
        ("chuck", 0.2, [46, 46, 46, 60, 60]),
        ("open", 0.7, [9, 9, 9, 9, 9]),
        ("rest", 0.9, [30, 30, 30, 30, 30]),
        ("chuck", 0.0, [30, 30, 30, 30, 30]),
        ("chuck", 1.0, [110, 110, 110, 180, 180]),
    ],
)
def test_proportional_target_by_hand(pose: str, effort: float, expected: list[float]) -> None:
    np.testing.assert_allclose(proportional_target_deg(pose, effort), expected, atol=1e-12)


@pytest.mark.parametrize("effort", [-0.01, 1.01, math.nan, math.inf])
def test_effort_out_of_range_is_refused(effort: float) -> None:
    with pytest.raises(ConfigError, match="effort"):
        proportional_target_deg("power", effort)


def test_unknown_pose_is_named() -> None:
    with pytest.raises(ConfigError, match="'fist'"):
        pose_angles_deg("fist")


def test_vectorised_efforts_reject_bad_values_with_index() -> None:
    with pytest.raises(ConfigError, match="index 2"):
        proportional_targets_deg("power", [0.1, 0.2, 1.5])


@given(st.sampled_from(POSE_NAMES), st.floats(0.0, 1.0))
def test_target_lies_between_rest_and_goal(pose: str, effort: float) -> None:
    target = proportional_target_deg(pose, effort)
    rest = np.array(POSE_ANGLES_DEG["rest"])
    goal = np.array(POSE_ANGLES_DEG[pose])
    assert np.all(target >= np.minimum(rest, goal) - 1e-9)
    assert np.all(target <= np.maximum(rest, goal) + 1e-9)


@given(st.sampled_from(POSE_NAMES), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_distance_from_rest_grows_with_effort(pose: str, p1: float, p2: float) -> None:
    lo, hi = min(p1, p2), max(p1, p2)
    rest = np.array(POSE_ANGLES_DEG["rest"])
    d_lo = np.abs(proportional_target_deg(pose, lo) - rest)
    d_hi = np.abs(proportional_target_deg(pose, hi) - rest)
    assert np.all(d_hi >= d_lo - 1e-9)


@given(st.sampled_from(POSE_NAMES), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8))
def test_vectorised_matches_scalar(pose: str, efforts: list[float]) -> None:
    many = proportional_targets_deg(pose, efforts)
    assert many.shape == (len(efforts), 5)
    for row, p in zip(many, efforts, strict=True):
        np.testing.assert_allclose(row, proportional_target_deg(pose, p), atol=1e-12)
