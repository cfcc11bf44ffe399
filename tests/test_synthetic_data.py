"""Tests of emgd.data.synthetic: seeded recordings from the synthetic sEMG model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from emgd.data.recording import Recording
from emgd.data.synthetic import synthetic_recordings
from emgd.errors import DatasetError
from emgd.poses import proportional_target_deg


@pytest.fixture(scope="module")
def three() -> list[Recording]:
    return synthetic_recordings(5, n_recordings=3, duration_s=4.0, n_channels=4)


def test_shapes_and_provenance(three: list[Recording]) -> None:
    assert len(three) == 3
    for rep, rec in enumerate(three):
        assert rec.emg.shape == (4000, 4)
        assert rec.targets_deg.shape == (4000, 5)
        assert (rec.rep, rec.participant, rec.dataset, rec.emg_unit) == (
            rep,
            "seed5",
            "synthetic",
            "uV",
        )
        assert rec.label_names == ("rest", "open", "power", "chuck", "pinch")
        assert rec.label_poses == rec.label_names


def test_same_seed_same_data_other_seed_differs(three: list[Recording]) -> None:
    again = synthetic_recordings(5, n_recordings=1, duration_s=4.0, n_channels=4)[0]
    np.testing.assert_array_equal(again.emg, three[0].emg)
    np.testing.assert_array_equal(again.targets_deg, three[0].targets_deg)
    other = synthetic_recordings(6, n_recordings=1, duration_s=4.0, n_channels=4)[0]
    assert not np.allclose(other.emg, three[0].emg)


def test_reps_are_consecutive_pieces_of_one_stream(three: list[Recording]) -> None:
    whole = synthetic_recordings(5, n_recordings=1, duration_s=8.0, n_channels=4)[0]
    np.testing.assert_allclose(whole.emg[4000:], three[1].emg, atol=1e-9)
    np.testing.assert_allclose(whole.targets_deg[4000:], three[1].targets_deg, atol=1e-9)


def test_held_targets_match_label_and_effort(three: list[Recording]) -> None:
    checked = 0
    for rec in three:
        held = np.flatnonzero(np.all(np.diff(rec.targets_deg, axis=0) == 0.0, axis=1))
        for k in held[::97]:
            pose = str(rec.poses()[k])
            expected = proportional_target_deg(pose, float(rec.effort[k]))
            np.testing.assert_allclose(rec.targets_deg[k], expected, atol=1e-9)
            checked += 1
    assert checked > 20


def test_emg_grows_with_effort(three: list[Recording]) -> None:
    # muscles fire harder in a gesture than at rest: compare RMS of rest vs. the gestures
    emg = np.concatenate([r.emg for r in three])
    poses = np.concatenate([r.poses() for r in three])
    assert 0 < (poses == "rest").sum() < poses.size
    rest_rms = np.sqrt((emg[poses == "rest"] ** 2).mean())
    active_rms = np.sqrt((emg[poses != "rest"] ** 2).mean())
    assert active_rms > 1.5 * rest_rms


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_recordings": 0}, r"n_recordings must be an integer >= 1"),
        ({"n_recordings": 1, "duration_s": -1.0}, r"duration_s must be > 0"),
        ({"n_recordings": 1, "duration_s": 1e-6}, r"must be in \[1, "),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        synthetic_recordings(1, **kwargs)
