"""Tests of emgd.sim.trajectory: minimum jerk, keyframes, constant poses, PoseSequence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.errors import ConfigError
from emgd.poses import GESTURE_NAMES, proportional_target_deg
from emgd.sim.trajectory import (
    ConstantPose,
    KeyframeTrajectory,
    PoseSequence,
    Trajectory,
    minimum_jerk,
)

REST = [30.0] * 5
POWER = [180.0] * 5


def test_minimum_jerk_values_by_hand() -> None:
    # 10τ³ − 15τ⁴ + 6τ⁵ at τ = 0.25: 0.15625 − 0.05859375 + 0.005859375
    got = minimum_jerk(np.array([-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0]))
    np.testing.assert_allclose(got, [0.0, 0.0, 0.103515625, 0.5, 0.896484375, 1.0, 1.0], atol=1e-15)


def test_minimum_jerk_has_zero_end_velocity() -> None:
    h = 1e-6
    v0 = (minimum_jerk(np.array([h]))[0] - minimum_jerk(np.array([0.0]))[0]) / h
    v1 = (minimum_jerk(np.array([1.0]))[0] - minimum_jerk(np.array([1.0 - h]))[0]) / h
    assert abs(v0) < 1e-6
    assert abs(v1) < 1e-6


def test_constant_pose() -> None:
    traj: Trajectory = ConstantPose.from_pose("pinch", 0.5)
    out = traj.angles_deg(np.array([0.0, 3.0, 1e6]))
    np.testing.assert_array_equal(out, [[70, 70, 30, 30, 30]] * 3)
    assert traj.angles_deg(np.empty(0)).shape == (0, 5)


def test_keyframes_by_hand() -> None:
    traj = KeyframeTrajectory([0.0, 1.0, 2.0], [REST, POWER, POWER])
    t = np.array([-1.0, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 10.0])
    got = traj.angles_deg(t)[:, 2]
    # 30 + s(τ)·150
    expected = [30, 30, 30 + 0.103515625 * 150, 105, 180, 180, 180, 180]
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_single_keyframe_holds() -> None:
    traj = KeyframeTrajectory([5.0], [POWER])
    np.testing.assert_array_equal(traj.angles_deg(np.array([0.0, 9.0])), [POWER, POWER])


def test_from_pose_steps_layout() -> None:
    traj = KeyframeTrajectory.from_pose_steps(
        [("power", 0.5, 0.5, 2.0), ("open", 1.0, 0.25, 1.0)], start_hold_s=1.0
    )
    np.testing.assert_allclose(traj.times_s, [0.0, 1.0, 1.5, 3.5, 3.75, 4.75])
    got = traj.angles_deg(np.array([0.5, 2.0, 4.0]))
    np.testing.assert_allclose(got, [REST, [105.0] * 5, [0.0] * 5])


@pytest.mark.parametrize(
    ("times", "angles", "match"),
    [
        ([0.0, 1.0, 1.0], [REST, REST, REST], r"time\[2\] = 1.0"),
        ([0.0, 1.0], [REST], "2 times"),
        ([0.0], [[30.0, 30.0, 30.0, 30.0]], "5 columns"),
        ([0.0, 1.0], [REST, [30.0, 30.0, 200.0, 30.0, 30.0]], r"200.0 at index \(1, 2\)"),
        ([0.0, 1.0], [REST, [30.0, np.nan, 30.0, 30.0, 30.0]], "outside"),
    ],
)
def test_bad_keyframes_are_refused(
    times: list[float], angles: list[list[float]], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        KeyframeTrajectory(times, angles)


def test_pose_sequence_is_deterministic_and_order_independent() -> None:
    t = np.linspace(0.0, 120.0, 5001)
    a = PoseSequence(7).angles_deg(t)
    fresh = PoseSequence(7)
    perm = np.random.default_rng(0).permutation(t.shape[0])
    b = np.empty_like(a)
    b[perm] = fresh.angles_deg(t[perm])
    np.testing.assert_array_equal(a, b)
    chunked = PoseSequence(7)
    c = np.concatenate([chunked.angles_deg(part) for part in np.array_split(t, 17)])
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, PoseSequence(8).angles_deg(t))


def test_pose_sequence_rebuilds_after_pruning() -> None:
    seq = PoseSequence(3)
    early = np.linspace(0.0, 30.0, 301)
    reference = PoseSequence(3).angles_deg(early)
    seq.angles_deg(np.array([30_000.0]))  # far enough to prune the early keyframes
    np.testing.assert_array_equal(seq.angles_deg(early), reference)


def test_pose_sequence_statistics() -> None:
    seq = PoseSequence(11, hold_s=(1.5, 3.0), transition_s=(0.3, 0.8), effort=(0.4, 0.9))
    t = np.arange(0.0, 600.0, 0.01)
    angles = seq.angles_deg(t)
    assert angles.min() >= 0.0
    assert angles.max() <= 180.0
    labels = [seq.pose_at(float(x)) for x in t[::10]]
    seen = {pose for pose, _ in labels}
    assert seen == {"rest", *GESTURE_NAMES}
    efforts = [e for pose, e in labels if pose != "rest"]
    assert min(efforts) >= 0.4
    assert max(efforts) <= 0.9
    # Label changes mark new targets: each lasts one transition plus one hold.
    t_lab = t[::10]
    change = [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]]
    durations = np.diff(t_lab[change])
    assert durations.min() >= 1.8 - 0.11
    assert durations.max() <= 3.8 + 0.11
    # Returns to rest between gestures sometimes, but not always.
    after_gesture = [
        labels[j][0] == "rest" for i, j in itertools.pairwise(change) if labels[i][0] != "rest"
    ]
    assert 0.15 < np.mean(after_gesture) < 0.7


def test_pose_sequence_holds_proportional_targets() -> None:
    seq = PoseSequence(5)
    t = np.arange(0.0, 200.0, 0.05)
    angles = seq.angles_deg(t)
    at_target = [
        np.allclose(angles[i], proportional_target_deg(*seq.pose_at(float(x))))
        for i, x in enumerate(t)
    ]
    # Holds (1.5-3 s) dominate transitions (0.3-0.8 s).
    assert 0.6 < np.mean(at_target) < 0.95


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hold_s": (3.0, 1.0)}, "hold_s"),
        ({"transition_s": (0.0, 1.0)}, "transition_s"),
        ({"effort": (0.5, 1.2)}, "effort"),
        ({"poses": ("power", "fist")}, "'fist'"),
        ({"poses": ()}, "at least one"),
        ({"rest_probability": 1.5}, "rest_probability"),
    ],
)
def test_pose_sequence_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PoseSequence(0, **kwargs)  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.floats(0.0, 500.0))
def test_pose_sequence_is_continuous(seed: int, t0: float) -> None:
    seq = PoseSequence(seed)
    t = t0 + np.arange(0.0, 1.0, 1e-3)
    a = seq.angles_deg(t)
    # The fastest transition (0.3 s, 180°) peaks at 1.875·180/0.3 = 1125 °/s: < 1.2° per ms.
    assert np.abs(np.diff(a, axis=0)).max() < 1.2
