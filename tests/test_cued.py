"""Tests of the daemon's simulated wearer: idle until cued, then a person following cues."""

from __future__ import annotations

import numpy as np
import pytest

from emgd.errors import ConfigError
from emgd.poses import pose_angles_deg
from emgd.sim.cued import CuedWearer, build_wearer, cue_source
from emgd.sim.person import MAX_REACTION_S, MIN_REACTION_S, Person
from emgd.sim.synthetic_emg import SyntheticEmg
from emgd.sim.trajectory import ConstantPose, PoseSequence

T_S = np.arange(0.0, 20.0, 0.01)


def test_until_cued_the_wearer_is_its_idle_trajectory_exactly() -> None:
    wearer = build_wearer("sequence", 3, PoseSequence(3))
    np.testing.assert_array_equal(wearer.angles_deg(T_S), PoseSequence(3).angles_deg(T_S))
    assert not wearer.cued
    rest = build_wearer("rest", 3, PoseSequence(3))
    np.testing.assert_array_equal(rest.angles_deg(T_S), Person(3).angles_deg(T_S))


def test_a_cue_changes_nothing_before_the_reaction_then_reaches_the_pose() -> None:
    idle = ConstantPose(pose_angles_deg("open"))
    wearer = CuedWearer(Person(5), idle=idle)
    before = wearer.angles_deg(T_S)
    wearer.cue("power", 1.0, at_s=5.0)
    after = wearer.angles_deg(T_S)
    assert wearer.cued
    first_change_s = T_S[np.any(after != before, axis=1)][0]
    assert 5.0 + MIN_REACTION_S <= first_change_s <= 5.0 + MAX_REACTION_S + 0.01
    np.testing.assert_array_equal(after[T_S < 5.0 + MIN_REACTION_S], before[T_S < 5.2])
    # Held a few seconds later: near the power grip, far from the idle open hand.
    held = after[(T_S > 8.0) & (T_S < 10.0)].mean(axis=0)
    power = pose_angles_deg("power")
    assert np.abs(held - power).max() < 0.2 * np.abs(power - pose_angles_deg("open")).max()
    # The blend is continuous: no jump between samples 10 ms apart.
    assert np.abs(np.diff(after, axis=0)).max() < 10.0


def test_cue_source_cues_an_in_process_generator_at_its_stream_time() -> None:
    emg = SyntheticEmg(build_wearer("sequence", 1, PoseSequence(1)), n_channels=2, seed=1)
    emg.generate(1234, 1000.0)
    assert cue_source(emg, "pinch", 0.5)
    wearer = emg.trajectory
    assert isinstance(wearer, CuedWearer)
    assert wearer.person.responses[0].cue_s == emg.time_s == 1.234
    with pytest.raises(ConfigError, match="fist"):
        cue_source(emg, "fist", 0.5)
    plain = SyntheticEmg(PoseSequence(1), n_channels=2, seed=1)
    assert not cue_source(plain, "pinch", 0.5)
