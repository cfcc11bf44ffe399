"""Tests of the pose-mixture head over gesture classes (ModelSpec.gestures) on synthetic data.

Several gestures may share a pose (3DC: seven of eleven classes are the relaxed hand); the
softmax then runs over the gestures and each class pulls toward its own pose.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from emgd.data.recording import Recording
from emgd.errors import ConfigError, DatasetError
from emgd.model.network import EmgNet
from emgd.model.spec import ModelSpec
from emgd.offline.stream import build_stream, class_index, gestures_of
from emgd.poses import POSE_NAMES, pose_angles_deg
from emgd.training.settings import (
    SPEC_SETTINGS,
    TrainConfig,
    has_graded_effort,
    recipe_gestures,
    recipe_spec_for,
    spec_with_settings,
)
from emgd.training.sharpness import SHARPNESS_CANDIDATES, pick_sharpness, with_sharpness
from emgd.training.train import train_model

FS_HZ = 500.0
N_CHANNELS = 3
# Two rest-pose gestures, one power: the 3DC situation in small.
GESTURES = (("no_motion", "rest"), ("wrist_flexion", "rest"), ("power_grip", "power"))
SPEC = ModelSpec(
    sample_rate_hz=FS_HZ,
    n_channels=N_CHANNELS,
    common_length=4,
    mlp=(16,),
    hop_s=0.04,
    head="pose_mixture",
    gestures=GESTURES,
)


def _recording(label: str, pose: str, n: int = 400, rep: int = 0) -> Recording:
    rng = np.random.default_rng(n + rep)
    return Recording(
        emg=rng.normal(0.0, 1.0, (n, N_CHANNELS)),
        sample_rate_hz=FS_HZ,
        targets_deg=np.tile(pose_angles_deg(pose), (n, 1)),
        effort=np.ones(n),
        label_names=(label,),
        label_poses=(pose,),
        label_index=np.zeros(n, dtype=np.int64),
        dataset="synthetic",
        participant="seed0",
        session="",
        rep=rep,
        condition="",
        source=f"{label}_{rep}.csv",
        emg_unit="uV",
    )


def test_head_has_one_logit_per_gesture_plus_effort() -> None:
    assert SPEC.head_inputs == len(GESTURES) + 1
    assert SPEC.mlp_sizes[-1] == 4
    assert SPEC.class_poses == ("rest", "rest", "power")
    assert SPEC.class_labels == ("no_motion", "wrist_flexion", "power_grip")
    default = dataclasses.replace(SPEC, gestures=())
    assert default.class_poses == POSE_NAMES
    assert default.head_inputs == len(POSE_NAMES) + 1


def test_each_gesture_pulls_toward_its_own_pose() -> None:
    net = EmgNet(SPEC, seed=0)
    big = 50.0
    # All weight on wrist flexion (a rest gesture), full effort: the rest pose.
    flexion = torch.tensor([[0.0, big, 0.0, big]])
    assert net.angles_from_logits(flexion).tolist() == [[30.0] * 5]
    # Power at effort 0.5: 30 + 0.5·150 = 105.
    power = torch.tensor([[0.0, 0.0, big, 0.0]])
    assert net.angles_from_logits(power).tolist() == [[105.0] * 5]
    # Half on each rest gesture: still rest, whatever the effort.
    split_rest = torch.tensor([[big, big, 0.0, big]])
    assert torch.allclose(net.angles_from_logits(split_rest), torch.full((1, 5), 30.0))


# ----------------------------------------------------------------------------- whole poses

WHOLE = dataclasses.replace(SPEC, graded_effort=False)


def test_without_graded_effort_the_head_commits_whole_poses() -> None:
    assert WHOLE.head_inputs == len(GESTURES)  # no effort output
    net = EmgNet(WHOLE, seed=0)
    assert net.head[-1].out_features == len(GESTURES)
    big = 50.0
    # All on power: the whole power pose, where a graded head at effort 0.5 gives 105.
    assert net.angles_from_logits(torch.tensor([[0.0, 0.0, big]])).tolist() == [[180.0] * 5]
    # Half power, half a rest gesture: halfway, from the class weights alone.
    half = net.angles_from_logits(torch.tensor([[0.0, big, big]]))
    assert torch.allclose(half, torch.full((1, 5), 105.0))
    # The whole forward pass runs and stays within the poses.
    emg = torch.randn(2, N_CHANNELS, WHOLE.window_samples)
    with torch.no_grad():
        out = net(emg, torch.full((2, WHOLE.history_inputs), 30.0))
    assert out.shape == (2, 5) and float(out.min()) >= 30.0 and float(out.max()) <= 180.0


def test_graded_effort_survives_the_spec_dict_round_trip_and_defaults_to_true() -> None:
    data = WHOLE.to_dict()
    assert data["graded_effort"] is False
    assert ModelSpec.from_dict(data) == WHOLE
    del data["graded_effort"]  # a model written before the switch had an effort output
    assert ModelSpec.from_dict(data).graded_effort is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"head": "direct", "graded_effort": False}, "only for head 'pose_mixture'"),
        ({"head": "pose_mixture", "graded_effort": "no"}, "graded_effort = 'no' must be true"),
    ],
)
def test_bad_graded_effort_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelSpec(**kwargs)  # type: ignore[arg-type]


def _graded(label: str, pose: str, effort: float) -> Recording:
    rec = _recording(label, pose)
    return dataclasses.replace(rec, effort=np.full(rec.emg.shape[0], effort))


def test_the_recipe_learns_an_effort_only_for_data_with_partial_poses() -> None:
    whole = [_recording(label, pose) for label, pose in GESTURES]
    assert not has_graded_effort(whole)
    assert recipe_spec_for(whole).graded_effort is False
    # A relaxed hand recorded at 20 % effort is still the whole rest pose.
    assert not has_graded_effort([*whole, _graded("no_motion", "rest", 0.2)])
    # A grip held at half effort is part way: the head needs its effort.
    partial = [*whole, _graded("power_grip", "power", 0.5)]
    assert has_graded_effort(partial)
    assert recipe_spec_for(partial).graded_effort is True


def test_graded_effort_is_a_spec_setting_of_train() -> None:
    assert SPEC_SETTINGS["graded_effort"] == "bool"
    assert spec_with_settings(["spec.graded_effort=false"], SPEC) == WHOLE
    assert spec_with_settings(["spec.graded_effort=yes"], WHOLE) == SPEC
    with pytest.raises(ConfigError, match=r"spec\.graded_effort=maybe: expected true or false"):
        spec_with_settings(["spec.graded_effort=maybe"], SPEC)


def test_gestures_survive_the_spec_dict_round_trip() -> None:
    data = SPEC.to_dict()
    assert data["gestures"] == [list(g) for g in GESTURES]
    assert ModelSpec.from_dict(data) == SPEC
    # A spec written before gestures existed reads as one class per pose.
    del data["gestures"]
    assert ModelSpec.from_dict(data).gestures == ()


@pytest.mark.parametrize(
    ("gestures", "head", "message"),
    [
        ((("a", "fist"),), "pose_mixture", "gesture 'a' maps to pose 'fist'"),
        ((("a", "rest"), ("a", "power")), "pose_mixture", "repeat a label"),
        ((("a", "rest"),), "direct", "only used by head 'pose_mixture'"),
        ((("a", "rest", "x"),), "pose_mixture", "list of \\[label, pose\\] pairs"),
        (tuple((f"g{i}", "rest") for i in range(65)), "pose_mixture", "more than 64"),
    ],
)
def test_bad_gestures_are_refused_by_name(
    gestures: tuple[tuple[str, str], ...], head: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelSpec(head=head, gestures=gestures)


def test_bad_gestures_from_metadata_are_refused() -> None:
    data = SPEC.to_dict()
    data["gestures"] = "rest"
    with pytest.raises(ConfigError, match="gestures"):
        ModelSpec.from_dict(data)


def test_gestures_of_lists_labels_in_first_appearance() -> None:
    recs = [
        _recording("power_grip", "power"),
        _recording("no_motion", "rest"),
        _recording("power_grip", "power", rep=1),
        _recording("wrist_flexion", "rest"),
    ]
    assert gestures_of(recs) == (
        ("power_grip", "power"),
        ("no_motion", "rest"),
        ("wrist_flexion", "rest"),
    )


def test_gestures_of_refuses_a_label_with_two_poses() -> None:
    recs = [_recording("grip", "power"), _recording("grip", "chuck", rep=1)]
    with pytest.raises(DatasetError, match=r"grip_1\.csv: label 'grip' is pose 'chuck'"):
        gestures_of(recs)


def test_class_index_follows_the_gesture_not_the_pose() -> None:
    recs = [
        _recording("no_motion", "rest", n=100),
        _recording("wrist_flexion", "rest", n=150),
        _recording("power_grip", "power", n=50),
    ]
    stream = build_stream(recs)
    classes = class_index(stream, GESTURES)
    assert classes.tolist() == [0] * 100 + [1] * 150 + [2] * 50
    # Without gestures the classes are the poses (rest 0, power 2).
    assert class_index(stream, ()).tolist() == [0] * 250 + [2] * 50


def test_class_index_names_a_gesture_the_model_lacks() -> None:
    stream = build_stream([_recording("no_motion", "rest"), _recording("pinch_grip", "pinch")])
    with pytest.raises(DatasetError, match=r"pinch_grip_0\.csv: gesture 'pinch_grip' is not one"):
        class_index(stream, GESTURES)


def test_training_refuses_data_with_a_gesture_the_spec_lacks() -> None:
    recs = [_recording("no_motion", "rest", n=2000, rep=rep) for rep in range(2)] + [
        _recording("pinch_grip", "pinch", n=2000, rep=rep) for rep in range(2)
    ]
    with pytest.raises(DatasetError, match="gesture 'pinch_grip' is not one"):
        train_model(recs, spec=SPEC, max_minutes=0.1)


def test_recipe_trains_over_the_data_gestures_unless_they_are_the_poses() -> None:
    recs = [
        _recording(label, pose, n=2500, rep=rep) for rep in range(3) for label, pose in GESTURES
    ]
    assert recipe_gestures(recs) == GESTURES
    result = train_model(recs, max_minutes=0.05, config=TrainConfig(max_epochs=1))
    assert result.spec.gestures == GESTURES
    # Every target a whole pose: one logit per gesture and no effort output.
    assert result.spec.graded_effort is False
    assert result.spec.head_inputs == 3
    # Labels that are pose names: one class per pose, as the pose table has it.
    poses = [_recording(pose, pose, rep=rep) for rep in range(2) for pose in ("rest", "open")]
    assert recipe_gestures(poses) == ()


# ----------------------------------------------------------------------------- sharpness


def test_sharpness_commits_the_mixture_to_the_likeliest_gesture() -> None:
    net = EmgNet(SPEC, seed=0)
    # Power twice as likely in logits as each rest gesture, full effort.
    logits = torch.tensor([[0.0, 0.0, 1.0, 50.0]])
    soft = net.angles_from_logits(logits, sharpness=1.0)
    sharp = net.angles_from_logits(logits, sharpness=8.0)
    p_power = math.exp(1.0) / (2.0 + math.exp(1.0))
    assert soft[0, 0].item() == pytest.approx(30.0 + 150.0 * p_power, abs=1e-3)
    assert sharp[0, 0].item() > 179.0
    # The spec's value is the default, and a spec round trip keeps it.
    sharp_spec = dataclasses.replace(SPEC, class_sharpness=8.0)
    assert torch.equal(EmgNet(sharp_spec, seed=0).angles_from_logits(logits), sharp)
    assert ModelSpec.from_dict(sharp_spec.to_dict()).class_sharpness == 8.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"head": "pose_mixture", "class_sharpness": 0.5}, "class_sharpness"),
        ({"head": "direct", "class_sharpness": 2.0}, "only used by head 'pose_mixture'"),
    ],
)
def test_bad_sharpness_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelSpec(**kwargs)  # type: ignore[arg-type]


def test_training_picks_the_sharpness_of_best_validation_and_reports_every_candidate() -> None:
    recs = [
        _recording(label, pose, n=2500, rep=rep) for rep in range(3) for label, pose in GESTURES
    ]
    result = train_model(recs, max_minutes=0.05, config=TrainConfig(max_epochs=1))
    report = result.report["class_sharpness"]
    rows = report["candidates"]
    assert [row["sharpness"] for row in rows] == list(SHARPNESS_CANDIDATES)
    best = min(rows, key=lambda row: row["val_mae_deg"])  # no ramps here: MAE alone decides
    assert report["chosen"] == best["sharpness"] == result.spec.class_sharpness
    assert result.net.spec.class_sharpness == result.spec.class_sharpness
    assert result.report["validation"]["mae_mean_deg"] == pytest.approx(best["val_mae_deg"])


def _row(sharpness: float, mae: float, ramp: float | None) -> dict[str, float | None]:
    return {"sharpness": sharpness, "val_mae_deg": mae, "val_ramp_r": ramp}


def test_pick_sharpness_never_trades_proportional_control_for_mae() -> None:
    # No ramps in the validation data: the lowest MAE wins.
    assert pick_sharpness([_row(1, 9.0, None), _row(2, 7.0, None), _row(4, 7.5, None)]) == 2
    # Ramps: sharper halves the MAE but loses 0.05 of ramp correlation: not eligible.
    assert pick_sharpness([_row(1, 8.0, 0.80), _row(2, 4.0, 0.75), _row(4, 7.9, 0.79)]) == 4
    # Within the tolerance of sharpness 1's correlation it counts.
    assert pick_sharpness([_row(1, 8.0, 0.80), _row(2, 7.0, 0.785)]) == 2
    # A candidate whose ramp could not be scored does not count when sharpness 1's could.
    assert pick_sharpness([_row(1, 8.0, 0.80), _row(2, 1.0, None)]) == 1


def test_stop_on_sharpest_stops_on_the_better_of_both_validation_scores() -> None:
    recs = [
        _recording(label, pose, n=2500, rep=rep) for rep in range(3) for label, pose in GESTURES
    ]
    config = TrainConfig(max_epochs=3, patience_epochs=3, stop_on_sharpest=True)
    result = train_model(recs, max_minutes=0.5, config=config)
    assert result.history and all("val_mae_sharpest_deg" in row for row in result.history)
    # Each member of the recipe's ensemble stops on its own rows.
    for index, member in enumerate(result.report["members"]):
        rows = [row for row in result.history if row["member"] == index]
        scores = [min(row["val_mae_deg"], row["val_mae_sharpest_deg"]) for row in rows]
        assert member["best_val_mae_deg"] == min(scores)
        assert member["best_epoch"] == rows[int(np.argmin(scores))]["epoch"]
    # Off by default: one validation replay per epoch.
    plain = train_model(recs, max_minutes=0.5, config=TrainConfig(max_epochs=1))
    assert "val_mae_sharpest_deg" not in plain.history[0]


def test_scoring_a_sharpness_leaves_the_global_torch_generator_alone() -> None:
    net = EmgNet(SPEC, seed=0)
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    with_sharpness(net, 8.0)
    assert torch.equal(torch.rand(3), want)
