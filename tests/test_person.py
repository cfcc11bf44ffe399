"""Tests of emgd.sim.person: reaction, reach, imperfect hold, causality and determinism."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from emgd.errors import ConfigError
from emgd.poses import pose_angles_deg
from emgd.sim import person as person_mod
from emgd.sim.person import Person
from emgd.sim.synthetic_emg import SyntheticEmg

FS_HZ = 1000.0


def _cued(seed: int = 1) -> Person:
    p = Person(seed)
    p.cue("power", 0.8, at_s=1.0)
    p.cue("open", 0.6, at_s=4.0)
    p.cue("rest", 0.0, at_s=7.0)
    return p


def test_reacts_after_a_drawn_delay_and_reaches_with_minimum_jerk() -> None:
    delays = []
    for seed in range(30):
        p = Person(seed)
        p.cue("power", 1.0, at_s=2.0)
        r = p.responses[0]
        delays.append(r.start_s - r.cue_s)
        t = np.linspace(0.0, r.start_s, 200)
        # Nothing moves before the reaction is over (only the hold's wander and tremor).
        assert np.abs(p.angles_deg(t) - pose_angles_deg("rest")).max() < 8.0
        planned = p._planned(np.array([r.start_s, (r.start_s + r.end_s) / 2, r.end_s]))
        np.testing.assert_allclose(planned[0], pose_angles_deg("rest"))
        np.testing.assert_allclose(planned[1], (r.from_deg + r.to_deg) / 2)  # symmetric ramp
        np.testing.assert_allclose(planned[2], r.to_deg)
        assert 0.35 <= r.end_s - r.start_s <= 1.0
    assert min(delays) >= person_mod.MIN_REACTION_S
    assert max(delays) <= person_mod.MAX_REACTION_S
    assert np.std(delays) > 0.05  # drawn per cue, not fixed


def test_effort_lands_near_the_cue_and_the_hold_is_imperfect() -> None:
    landed = []
    for seed in range(40):
        p = Person(seed)
        p.cue("power", 0.6, at_s=0.0)
        r = p.responses[0]
        rest = pose_angles_deg("rest")
        full = pose_angles_deg("power") - rest
        landed.append(float(((r.to_deg - rest) / full)[2]))
        hold = p.angles_deg(np.arange(r.end_s, r.end_s + 10.0, 1.0 / FS_HZ))
        wobble = hold - hold.mean(axis=0)
        # Effort wander (a few % of the reach), drift and tremor: a few degrees, up to the
        # reach's ±15 % at most; not a frozen hand and not a wild one.
        reach_deg = float(np.abs(r.to_deg - rest).max())
        assert 1.0 < float(np.abs(wobble).max()) < 0.15 * reach_deg + 3 * person_mod.DRIFT_DEG + 1
        fine = np.diff(hold[:, 1])
        assert np.abs(fine).max() > 0.0
    landed_arr = np.array(landed)
    assert np.all(np.abs(landed_arr / 0.6 - 1.0) <= person_mod.EFFORT_ERROR + 1e-9)
    assert landed_arr.std() > 0.02


def test_a_new_cue_changes_only_the_future() -> None:
    p = Person(4)
    p.cue("chuck", 0.9, at_s=1.0)
    t = np.arange(0.0, 12.0, 1.0 / FS_HZ)
    before = p.angles_deg(t)
    p.cue("open", 1.0, at_s=5.0)
    after = p.angles_deg(t)
    unchanged = t < 5.0 + person_mod.MIN_REACTION_S
    np.testing.assert_array_equal(after[unchanged], before[unchanged])
    assert np.abs(after[t > 8.0] - before[t > 8.0]).max() > 30.0
    np.testing.assert_allclose(
        after[-1], p.responses[-1].to_deg, atol=person_mod.DRIFT_DEG * 3 + 5.0
    )


def test_a_cue_during_a_movement_starts_from_where_the_hand_is() -> None:
    p = Person(2)
    p.cue("power", 1.0, at_s=0.0)
    first = p.responses[0]
    p.cue("open", 1.0, at_s=first.start_s + 0.05 - person_mod.MIN_REACTION_S)
    second = p.responses[1]
    assert second.start_s >= first.start_s
    assert second.start_s < first.end_s  # interrupts the reach
    np.testing.assert_allclose(second.from_deg, p._planned(np.array([second.start_s]))[0])
    assert not np.allclose(second.from_deg, first.to_deg)
    # The path is continuous at the switch.
    t = np.array([second.start_s - 1e-6, second.start_s + 1e-6])
    assert np.abs(np.diff(p._planned(t), axis=0)).max() < 0.1


def test_deterministic_in_any_query_order_and_picklable() -> None:
    t = np.arange(0.0, 10.0, 0.01)
    a = _cued(1)
    b = pickle.loads(pickle.dumps(_cued(1)))
    shuffled = np.random.default_rng(0).permutation(t.size)
    np.testing.assert_array_equal(a.angles_deg(t)[shuffled], b.angles_deg(t[shuffled]))
    assert not np.allclose(a.angles_deg(t), _cued(2).angles_deg(t))


def test_pose_at_follows_the_movements() -> None:
    p = _cued(3)
    first, second, _ = p.responses
    assert p.pose_at(first.start_s - 0.01) == ("rest", 0.0)
    assert p.pose_at(first.start_s) == ("power", 0.8)
    assert p.pose_at(second.cue_s + 0.01) == ("power", 0.8)  # still reacting
    assert p.pose_at(second.start_s + 0.01) == ("open", 0.6)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("fist", 0.5, 1.0), "unknown pose"),
        (("power", 1.5, 1.0), "effort"),
        (("power", float("nan"), 1.0), "effort"),
        (("power", 0.5, float("inf")), "at_s"),
        (("power", 0.5, 0.5), "time order"),
    ],
)
def test_bad_cues_are_config_errors(args: tuple[str, float, float], match: str) -> None:
    p = Person(0)
    p.cue("pinch", 0.5, at_s=1.0)
    with pytest.raises(ConfigError, match=match):
        p.cue(*args)
    assert len(p.responses) == 1  # nothing half-applied


def test_bad_seed_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="seed"):
        Person(-1)


def test_drives_the_synthetic_wearer() -> None:
    p = Person(0)
    p.cue("power", 1.0, at_s=0.5)
    src = SyntheticEmg(p, seed=0, mains_hz=0.0, artefact_rate_hz=0.0)
    emg, angles = src.generate_with_targets(3000, FS_HZ)
    quiet = emg[:500].std()
    strong = emg[2000:].std()
    assert strong > 5 * quiet
    # The targets are the person's angles (wander and drift included).
    np.testing.assert_array_equal(angles, p.angles_deg(np.arange(3000) / FS_HZ))
    assert np.abs(angles[-1] - p.responses[0].to_deg).max() < 25.0
