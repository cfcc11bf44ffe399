"""The median ensemble: combining rule, module, spec counts, replay, training, export, loading."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from emgd.data.splits import Split, synthetic_split
from emgd.dsp.filters import FilterSpec
from emgd.errors import ConfigError, ModelError
from emgd.model.contract import PreprocessContract
from emgd.model.info import model_info_text
from emgd.model.spec import ModelSpec

torch = pytest.importorskip("torch")

from emgd.model.ensemble import (  # noqa: E402  (after the torch skip)
    MedianEnsemble,
    build_network,
    median_angles,
    member_seed,
)
from emgd.model.network import EmgNet  # noqa: E402
from emgd.poses import pose_angles_deg  # noqa: E402
from emgd.training.rollout import closed_loop_predict, evaluate_closed_loop  # noqa: E402
from emgd.training.settings import TrainConfig, TrainResult  # noqa: E402
from emgd.training.sharpness import with_sharpness  # noqa: E402
from emgd.training.train import load_checkpoint, save_checkpoint, train_model  # noqa: E402
from tests.test_train import BANDED, FS_HZ, N_CHANNELS  # noqa: E402

# One network: the small banded pose-mixture spec test_train trains.
ONE = BANDED
THREE = dataclasses.replace(ONE, members=3)
# Few epochs and no early stop, so a run does not depend on the machine's speed.
QUICK = TrainConfig(
    sequence_hops=20, batch_sequences=4, max_epochs=2, patience_epochs=2, learning_rate=3e-3
)


@pytest.fixture(scope="module")
def split() -> Split:
    return synthetic_split(
        3, n_train=3, n_test=1, duration_s=12.0, sample_rate_hz=FS_HZ, n_channels=N_CHANNELS
    )


@pytest.fixture(scope="module")
def trained(split: Split) -> TrainResult:
    return train_model(split, spec=THREE, seed=4, max_minutes=5.0, config=QUICK)


# ----------------------------------------------------------------------------- the rule


def test_median_of_three_ignores_one_stray_member_per_angle() -> None:
    values = torch.tensor(
        [
            [[10.0, 100.0, 50.0]],
            [[12.0, 20.0, 51.0]],
            [[170.0, 22.0, 49.0]],  # strays on the first angle only
        ]
    )
    assert median_angles(values).tolist() == [[12.0, 22.0, 50.0]]


def test_median_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    values = torch.tensor([[[10.0]], [[40.0]], [[20.0]], [[90.0]]])
    assert median_angles(values).tolist() == [[30.0]]
    assert median_angles(values[:1]).tolist() == [[10.0]]


# ----------------------------------------------------------------------------- the module


def test_ensemble_output_is_the_median_of_its_members() -> None:
    net = build_network(THREE, seed=2)
    assert isinstance(net, MedianEnsemble)
    net.eval()
    rng = np.random.default_rng(0)
    emg = torch.tensor(rng.normal(size=(2, N_CHANNELS, THREE.window_samples)), dtype=torch.float32)
    history = torch.tensor(rng.uniform(0, 180, (2, THREE.history_inputs)), dtype=torch.float32)
    with torch.no_grad():
        each = np.stack([m(emg, history).numpy() for m in net.nets])
        got = net(emg, history).numpy()
    np.testing.assert_allclose(got, np.median(each, axis=0), rtol=0, atol=1e-6)
    # The members really differ, or the median would prove nothing.
    assert np.abs(each[0] - each[1]).max() > 0.1


def test_build_network_seeds_each_member_as_a_single_network_run() -> None:
    single = build_network(ONE, seed=5)
    assert isinstance(single, EmgNet)
    net = build_network(THREE, seed=5)
    assert isinstance(net, MedianEnsemble)
    assert net.spec == THREE
    for index, member in enumerate(net.nets):
        alone = EmgNet(ONE, seed=member_seed(5, index, 3))
        for key, value in alone.state_dict().items():
            assert torch.equal(member.state_dict()[key], value), key
    assert [member_seed(5, i, 3) for i in range(3)] == [15, 16, 17]
    assert member_seed(5, 0, 1) == 5  # a single network keeps the run's seed


def test_members_must_share_one_spec_and_be_at_least_two() -> None:
    other = dataclasses.replace(ONE, mlp=(16, 16))
    with pytest.raises(ModelError, match="member 1's spec differs"):
        MedianEnsemble([EmgNet(ONE), EmgNet(other)])
    with pytest.raises(ModelError, match="at least 2 members"):
        MedianEnsemble([EmgNet(ONE)])
    with pytest.raises(ModelError, match="members = 3"):
        EmgNet(THREE)


# ----------------------------------------------------------------------------- the spec


def test_spec_counts_every_member_and_round_trips() -> None:
    for part, count in THREE.parameter_breakdown().items():
        assert count == 3 * ONE.parameter_breakdown()[part]
    assert THREE.macs_per_inference() == 3 * ONE.macs_per_inference()
    assert THREE.fixed_weight_count() == 3 * ONE.fixed_weight_count()
    net = build_network(THREE)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == THREE.parameter_count()
    assert ModelSpec.from_dict(THREE.to_dict()) == THREE
    assert THREE.member == ONE
    assert ModelSpec.from_dict({"n_channels": 2}).members == 1  # older files: one network


@pytest.mark.parametrize("members", [0, 10])
def test_a_member_count_out_of_range_is_refused_naming_it(members: int) -> None:
    with pytest.raises(ConfigError, match="members"):
        dataclasses.replace(ONE, members=members)


def test_model_info_says_how_many_members_and_how_they_combine() -> None:
    assert "members               1 (a single network)" in model_info_text(ONE)
    text = model_info_text(THREE)
    assert "3 networks of this shape" in text and "per-angle median" in text


# ----------------------------------------------------------------------------- replay


def test_closed_loop_replay_feeds_the_median_back() -> None:
    net = build_network(THREE, seed=3)
    net.eval()
    rng = np.random.default_rng(1)
    emg = rng.normal(size=(THREE.window_samples + 10 * THREE.hop_samples, N_CHANNELS))
    ends, pred = closed_loop_predict(net, emg)
    history = torch.tensor(np.tile(pose_angles_deg("rest"), 2), dtype=torch.float32)[None, :]
    signal = torch.tensor(emg.T, dtype=torch.float32)[None]
    want = []
    with torch.no_grad():
        for end in ends:
            y = net(signal[..., end - THREE.window_samples + 1 : end + 1], history)
            want.append(y[0].numpy())
            history = torch.cat([y, history[:, :5]], dim=1)
    np.testing.assert_allclose(pred, np.array(want), atol=1e-3)


def test_sharpness_applies_to_every_member() -> None:
    net = build_network(THREE, seed=1)
    sharp = with_sharpness(net, 8.0)
    assert isinstance(sharp, MedianEnsemble)
    assert sharp.spec.class_sharpness == 8.0
    assert all(m.spec.class_sharpness == 8.0 for m in sharp.nets)
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), sharp.state_dict().values(), strict=True)
    )


# ----------------------------------------------------------------------------- training


def test_each_member_trains_as_a_single_network_with_its_seed(
    split: Split, trained: TrainResult
) -> None:
    assert isinstance(trained.net, MedianEnsemble)
    ensemble = trained.net
    report = trained.report
    assert [m["seed"] for m in report["members"]] == [12, 13, 14]
    assert report["best_epoch"] is None  # one per member, in "members"
    assert {row["member"] for row in trained.history} == {0, 1, 2}
    alone = train_model(split, spec=ONE, seed=member_seed(4, 1, 3), max_minutes=5.0, config=QUICK)
    member = ensemble.nets[1]
    for key, value in alone.net.state_dict().items():
        assert torch.equal(member.state_dict()[key], value), key
    assert report["members"][1]["best_val_mae_deg"] == alone.report["best_val_mae_deg"]
    # The ensemble's own validation scores are reported, at the sharpness chosen for it.
    assert report["validation"]["mae_mean_deg"] > 0
    assert trained.spec.class_sharpness == report["class_sharpness"]["chosen"]


def test_refit_is_refused_for_an_ensemble(split: Split) -> None:
    with pytest.raises(ConfigError, match="refit_all"):
        train_model(split, spec=THREE, max_minutes=0.1, config=TrainConfig(refit_all=True))


def test_ensemble_checkpoint_round_trip(tmp_path: Path, split: Split, trained: TrainResult) -> None:
    path = tmp_path / "ens.pt"
    save_checkpoint(trained, path)
    back = load_checkpoint(path)
    assert isinstance(back.net, MedianEnsemble)
    got = evaluate_closed_loop(back, split.test)
    want = evaluate_closed_loop(trained, split.test)
    assert got["mae_mean_deg"] == want["mae_mean_deg"]


# ----------------------------------------------------------------------------- export


def test_exported_ensemble_runs_in_onnxruntime_as_in_torch(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from emgd.bench.micro import load_onnx_weights
    from emgd.model.export import export_onnx
    from emgd.model.runtime import OnnxModel

    net = build_network(THREE, seed=6)
    assert isinstance(net, MedianEnsemble)
    contract = PreprocessContract.for_spec(THREE, FilterSpec(mains_hz=50.0))
    path = tmp_path / "ens.onnx"
    max_diff = export_onnx(net, THREE, contract, {}, path)
    assert max_diff < 1e-3
    model = OnnxModel(path)
    assert model.spec == THREE
    rng = np.random.default_rng(3)
    window = rng.normal(size=(THREE.window_samples, N_CHANNELS)).astype(np.float32)
    history = np.tile(pose_angles_deg("rest"), 2).astype(np.float32)
    got = model.infer(window, history)
    emg = torch.from_numpy(np.ascontiguousarray(window.T))[None]
    with torch.no_grad():
        each = np.stack([m(emg, torch.from_numpy(history)[None])[0].numpy() for m in net.nets])
    np.testing.assert_allclose(got, np.median(each, axis=0), atol=1e-3)
    # The benchmark's PyTorch twin loads every member's weights back from the file.
    twin = build_network(THREE, seed=99)
    assert load_onnx_weights(twin, path) == len(net.state_dict())
    for key, value in net.state_dict().items():
        assert torch.equal(twin.state_dict()[key], value), key


# ----------------------------------------------------------------------------- rotated validation


def test_rotated_folds_hold_out_each_block_of_reps_in_turn(split: Split) -> None:
    from emgd.training.fit import split_validation

    recs = split.train  # reps 0, 1, 2
    held = [{r.rep for r in split_validation(recs, 1, fold=k)[1]} for k in range(4)]
    assert held == [{2}, {1}, {0}, {2}]
    fit, val = split_validation(recs, 1, fold=1)
    assert {r.rep for r in fit} == {0, 2} and len(fit) + len(val) == len(recs)
    assert {r.rep for r in split_validation(recs, 2, fold=1)[1]} == {0, 2}  # cyclic
    assert split_validation(recs, 3, fold=1) == (list(recs), [])  # nothing left to fit


def test_rotated_validation_trains_each_member_on_other_reps(
    split: Split, trained: TrainResult
) -> None:
    rotated = train_model(
        split,
        spec=THREE,
        seed=4,
        max_minutes=5.0,
        config=dataclasses.replace(QUICK, rotate_validation=True),
    )
    assert isinstance(rotated.net, MedianEnsemble) and isinstance(trained.net, MedianEnsemble)
    assert [m["validation_reps"] for m in rotated.report["members"]] == [[2], [1], [0]]
    assert [m["validation_reps"] for m in trained.report["members"]] == [[2], [2], [2]]
    # Member 0 keeps the last rep, so it is the plain ensemble's member 0; the others differ.
    same = [
        all(
            torch.equal(a, b)
            for a, b in zip(
                rotated.net.nets[i].state_dict().values(),
                trained.net.nets[i].state_dict().values(),
                strict=True,
            )
        )
        for i in range(3)
    ]
    assert same == [True, False, False]
    # The sharpness is scored on each member's own held-out rep: its row is their mean.
    sharpness = rotated.report["class_sharpness"]
    assert sharpness["scored_on"] == "each member's own reps"
    chosen = next(r for r in sharpness["candidates"] if r["sharpness"] == sharpness["chosen"])
    validation = rotated.report["validation"]
    assert chosen["val_mae_deg"] == pytest.approx(np.mean(validation["member_mae_deg"]))
    assert rotated.spec.class_sharpness == sharpness["chosen"]
    from emgd.training.publish import _sharpness_lines

    assert "chosen on each member's own reps (closed-loop MAE" in _sharpness_lines(sharpness)[1]
    assert set(rotated.report["history_effect"]) == {
        "val_mae_own_history_deg",
        "val_mae_rest_history_deg",
    }
