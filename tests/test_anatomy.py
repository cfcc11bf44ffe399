"""Tests of emgd.sim.anatomy: per-wearer draws, their ranges, donnings, their effect on the EMG."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from emgd.errors import ConfigError
from emgd.sim import anatomy
from emgd.sim.anatomy import draw_anatomy
from emgd.sim.motor_units import N_MUSCLES
from emgd.sim.synthetic_emg import SyntheticEmg
from emgd.sim.trajectory import ConstantPose


def test_same_seed_same_arm_other_seed_other_arm() -> None:
    a, b = draw_anatomy(3, 8, N_MUSCLES), draw_anatomy(3, 8, N_MUSCLES)
    np.testing.assert_array_equal(a.electrode_angle_deg, b.electrode_angle_deg)
    np.testing.assert_array_equal(a.muscle_size, b.muscle_size)
    other = draw_anatomy(4, 8, N_MUSCLES)
    assert other.fat_mm != a.fat_mm
    assert not np.allclose(other.skin_gain, a.skin_gain)


def test_ranges_over_many_wearers() -> None:
    arms = [draw_anatomy(seed, 8, N_MUSCLES) for seed in range(200)]
    radius = np.array([arm.forearm_radius_mm for arm in arms])
    fat = np.array([arm.fat_mm for arm in arms])
    rotation = np.array([arm.ring_rotation_deg for arm in arms])
    lo, hi = anatomy.FOREARM_RADIUS_MM_RANGE
    assert lo <= radius.min() and radius.max() <= hi and radius.std() > 2.0
    lo, hi = anatomy.FAT_MM_RANGE
    assert lo <= fat.min() and fat.max() <= hi and fat.std() > 1.5
    # Rotation: uniform in ±20°, plus the mean of 8 spacing errors (SD 4/√8 ≈ 1.4°).
    assert np.abs(rotation).max() < anatomy.RING_ROTATION_MAX_DEG + 6.0
    assert rotation.std() > 8.0
    gains = np.concatenate([arm.skin_gain for arm in arms])
    assert 0.2 < np.log(gains).std() < 0.3
    for arm in arms:
        depth = arm.muscle_depth_mm(np.full(N_MUSCLES, 10.0))
        assert depth.min() >= anatomy.MIN_MUSCLE_DEPTH_MM
        assert depth.max() <= arm.forearm_radius_mm - anatomy.MIN_MUSCLE_DEPTH_MM


def test_a_donning_turns_the_band_a_little_and_keeps_the_arm() -> None:
    usual = draw_anatomy(5, 8, N_MUSCLES)
    turns = []
    for donning in range(1, 40):
        again = draw_anatomy(5, 8, N_MUSCLES, donning=donning)
        assert again.fat_mm == usual.fat_mm
        np.testing.assert_array_equal(again.muscle_angle_offset_deg, usual.muscle_angle_offset_deg)
        np.testing.assert_array_equal(again.noise_scale, usual.noise_scale)
        turns.append(again.ring_rotation_deg - usual.ring_rotation_deg)
        # The whole ring turns together: spacing errors belong to the band, not the donning.
        np.testing.assert_allclose(
            np.diff(again.electrode_angle_deg), np.diff(usual.electrode_angle_deg)
        )
    spread = float(np.std(turns))
    assert 2.5 < spread < 8.0


@pytest.mark.parametrize("bad", [-1, 1.5, True, 2**31])
def test_bad_donning_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="donning"):
        draw_anatomy(0, 8, N_MUSCLES, donning=bad)  # type: ignore[arg-type]


def test_fat_weakens_the_signal() -> None:
    arms = [draw_anatomy(seed, 8, N_MUSCLES) for seed in range(50)]
    by_fat = sorted(arms, key=lambda arm: arm.fat_mm)
    gains = [arm.fat_gain for arm in by_fat]
    assert all(b < a for a, b in itertools.pairwise(gains))
    # Thinner than the reference layer: louder; the fattest arms lose about a third.
    assert by_fat[0].fat_mm < anatomy.REFERENCE_FAT_MM and gains[0] > 1.0
    assert by_fat[-1].fat_mm > 8.0 and 0.6 < gains[-1] < 0.8


def test_the_generator_uses_the_wearers_anatomy_and_donning() -> None:
    pose = ConstantPose.from_pose("power", 0.8)
    src = SyntheticEmg(pose, seed=2, mains_hz=0.0, artefact_rate_hz=0.0)
    expected = draw_anatomy(2, 8, N_MUSCLES)
    np.testing.assert_array_equal(src.anatomy.electrode_angle_deg, expected.electrode_angle_deg)
    moved = SyntheticEmg(pose, seed=2, mains_hz=0.0, artefact_rate_hz=0.0, donning=1)
    assert moved.anatomy.ring_rotation_deg != src.anatomy.ring_rotation_deg
    # Same spikes and noise streams, other placement: the channels' loudness changes.
    a = src.generate(4000, 2000.0)
    b = moved.generate(4000, 2000.0)
    rms_a, rms_b = np.sqrt((a * a).mean(0)), np.sqrt((b * b).mean(0))
    assert not np.allclose(rms_a, rms_b, rtol=0.05)
    np.testing.assert_allclose(rms_a.mean(), rms_b.mean(), rtol=0.5)
