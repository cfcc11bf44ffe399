"""Tests of emgd.training.train (and its numpy helper emgd.offline.stream) on small data."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from emgd.data.recording import Recording
from emgd.data.splits import Split, synthetic_split
from emgd.errors import ConfigError, DatasetError
from emgd.model.ensemble import MedianEnsemble
from emgd.model.network import EmgNet
from emgd.model.spec import SILENCE_KERNEL, ModelSpec
from emgd.offline.stream import build_stream, hop_ends, protocol_order
from emgd.poses import pose_angles_deg
from emgd.training.features import features_at, standardise_bands
from emgd.training.fit import (
    LOSS_SCALE_DEG,
    drop_maps,
    epoch_learning_rate,
    sequence_gains,
    shift_electrodes,
    shuffled_pieces,
)
from emgd.training.rollout import closed_loop_predict, evaluate_closed_loop
from emgd.training.settings import (
    TrainConfig,
    TrainResult,
    config_with_settings,
    recipe_spec,
    spec_with_settings,
)
from emgd.training.sharpness import SHARPNESS_CANDIDATES
from emgd.training.train import load_checkpoint, save_checkpoint, train_model

FS_HZ = 500.0
N_CHANNELS = 4
SMALL = ModelSpec(
    sample_rate_hz=FS_HZ,
    n_channels=N_CHANNELS,
    common_length=8,
    mlp=(32, 16),
    hop_s=0.04,
    head="pose_mixture",
)
POOLED = ModelSpec(
    sample_rate_hz=FS_HZ,
    n_channels=N_CHANNELS,
    common_length=3,
    mlp=(32, 16),
    hop_s=0.04,
    head="pose_mixture",
    pool_s=0.05,
)
BANDED = dataclasses.replace(SMALL, band_amplitude_s=0.03)
# The recipe's pieces and steps (4 per step) on a small, quick problem.
FAST = TrainConfig(
    sequence_hops=20, batch_sequences=4, max_epochs=12, patience_epochs=12, learning_rate=3e-3
)


@pytest.fixture(scope="module")
def split() -> Split:
    return synthetic_split(
        3, n_train=3, n_test=1, duration_s=12.0, sample_rate_hz=FS_HZ, n_channels=N_CHANNELS
    )


@pytest.fixture(scope="module")
def trained(split: Split) -> TrainResult:
    return train_model(split, spec=SMALL, seed=7, max_minutes=2.0, config=FAST)


def _silence_taps(net: EmgNet) -> list[float]:
    branch = net.branch_modules[3]
    first = branch.layers[0]
    weight = first.weight
    assert isinstance(weight, torch.Tensor)
    return [float(v) for v in weight.reshape(-1)]


# ----------------------------------------------------------------------------- stream


def test_hop_ends_start_at_the_first_complete_window() -> None:
    assert hop_ends(100, 30, 20).tolist() == [29, 49, 69, 89]
    assert hop_ends(29, 30, 20).tolist() == []
    assert hop_ends(30, 30, 7).tolist() == [29]


def _ci_recording(rep: int, level: str, cls: str, pose: str) -> Recording:
    return Recording.single_gesture(
        np.ones((10, 2)),
        1000.0,
        label={"C1": "no_movement", "C6": "chuck_grip", "C7": "hand_open"}[cls],
        pose=pose,
        effort=0.5,
        dataset="contraction",
        participant="S9",
        rep=rep,
        condition=level,
        source=f"S9_{level}_{cls}_R{rep}.csv",
    )


def test_contraction_streams_are_ordered_by_rep_then_level_then_class() -> None:
    recs = [
        _ci_recording(2, "20P", "C1", "rest"),
        _ci_recording(1, "30P", "C1", "rest"),
        _ci_recording(1, "20P", "C7", "open"),
        _ci_recording(1, "20P", "C6", "chuck"),
        _ci_recording(1, "20P", "C1", "rest"),
    ]
    names = [r.source for r in protocol_order(recs)]
    assert names == [
        "S9_20P_C1_R1.csv",
        "S9_20P_C6_R1.csv",
        "S9_20P_C7_R1.csv",
        "S9_30P_C1_R1.csv",
        "S9_20P_C1_R2.csv",
    ]


def test_stream_marks_rest_labels_and_poses(split: Split) -> None:
    stream = build_stream(split.train)
    assert stream.n_samples == 3 * 6000
    assert stream.filter_spec.mains_hz == 50.0
    # rest_mask is exactly where the synthetic label is "rest" (pose index 0).
    labels = np.concatenate([rec.labels() for rec in split.train])
    assert np.array_equal(stream.rest_mask, labels == "rest")
    assert np.array_equal(stream.pose_index == 0, labels == "rest")
    assert stream.file_starts.tolist() == [0, 6000, 12000, 18000]


def _numbered_recording(n: int, first: int, source: str) -> Recording:
    """A recording whose channel 0 counts first, first + 1, … (to trace every sample)."""
    emg = np.stack([np.arange(first, first + n, dtype=float), np.zeros(n)], axis=1)
    return Recording.single_gesture(
        emg,
        100.0,
        label="rest",
        pose="rest",
        effort=0.0,
        dataset="synthetic",
        participant="seed0",
        source=source,
    )


def test_a_piece_keeps_its_samples_targets_and_provenance() -> None:
    rec = _numbered_recording(50, 0, "a")
    piece = rec.piece(10, 30)
    assert piece.emg[:, 0].tolist() == list(range(10, 30))
    assert np.array_equal(piece.targets_deg, rec.targets_deg[10:30])
    assert (piece.participant, piece.source) == ("seed0", "a[10:30]")
    with pytest.raises(DatasetError, match=r"a: piece 30:30 is empty"):
        rec.piece(30, 30)
    with pytest.raises(DatasetError, match=r"piece 40:51 is empty or outside its 50 samples"):
        rec.piece(40, 51)


@pytest.mark.parametrize("k", [1, 2, 3, 9])
def test_shuffled_pieces_use_every_sample_once_in_long_enough_pieces(k: int) -> None:
    recs = [_numbered_recording(500, 1000 * i, f"r{i}") for i in range(4)]
    recs.append(_numbered_recording(150, 9000, "short"))  # room for one 1 s piece only
    pieces = shuffled_pieces(
        recs, np.random.default_rng(k), pieces_per_recording=k, min_piece_s=1.0
    )
    samples = np.concatenate([p.emg[:, 0] for p in pieces])
    expected = np.concatenate([r.emg[:, 0] for r in recs])
    assert sorted(samples.tolist()) == sorted(expected.tolist())
    assert min(p.n_samples for p in pieces) >= 100
    assert len(pieces) == 4 * min(k, 5) + 1
    for p in pieces:  # each piece is a contiguous run of its recording
        assert np.all(np.diff(p.emg[:, 0]) == 1.0)
    if k > 1:  # and the order is shuffled
        firsts = [p.emg[0, 0] for p in pieces]
        assert firsts != sorted(firsts)


def test_build_stream_can_keep_the_given_order(split: Split) -> None:
    reversed_recs = list(reversed(split.train))
    kept = build_stream(reversed_recs, keep_order=True)
    assert [r.source for r in kept.recordings] == [r.source for r in reversed_recs]
    assert [r.source for r in build_stream(reversed_recs).recordings] == [
        r.source for r in protocol_order(reversed_recs)
    ]


def test_training_on_shuffled_pieces_runs_and_reports_it(split: Split) -> None:
    config = TrainConfig(sequence_hops=10, batch_sequences=4, max_epochs=2, pieces_per_recording=3)
    result = train_model(split, spec=SMALL, seed=0, max_minutes=1.0, config=config)
    assert result.report["config"]["pieces_per_recording"] == 3
    assert result.report["epochs_run"] == 2


def test_electrode_shift_mixes_each_channel_with_its_ring_neighbour() -> None:
    x = torch.tensor([[[1.0], [2.0], [4.0]], [[1.0], [2.0], [4.0]], [[1.0], [2.0], [4.0]]])
    out = shift_electrodes(x, [0.25, -0.5, 0.0])
    # +0.25: towards c + 1 (channel 2 wraps to 0); −0.5: towards c − 1 (0 wraps to 2)
    expected = [[1.25, 2.5, 3.25], [2.5, 1.5, 3.0], [1.0, 2.0, 4.0]]
    np.testing.assert_allclose(out[:, :, 0].numpy(), expected)
    with pytest.raises(ConfigError, match=r"one value in \[-1, 1\] per sequence, got \[1.5\]"):
        shift_electrodes(x[:1], [1.5])


def test_intensity_jitter_scales_every_channel_of_a_sequence_alike() -> None:
    # Alone, one gain per sequence, the same on each channel, log-sd as configured.
    only = TrainConfig(gain_jitter=0.0, intensity_jitter=0.3)
    gains = sequence_gains(np.random.default_rng(3), 4000, 6, only).numpy()
    assert gains.shape == (4000, 6, 1)
    np.testing.assert_allclose(gains, np.broadcast_to(gains[:, :1], gains.shape))
    assert np.log(gains[:, 0, 0]).std() == pytest.approx(0.3, abs=0.015)
    # Off (the default), the gains are the per-channel ones drawn as before it existed.
    plain = sequence_gains(np.random.default_rng(3), 5, 6, TrainConfig()).numpy()
    expected = np.exp(np.random.default_rng(3).normal(0.0, 0.15, (5, 6, 1)))
    np.testing.assert_allclose(plain, expected, rtol=1e-6)
    both = sequence_gains(
        np.random.default_rng(3), 5, 6, dataclasses.replace(only, gain_jitter=0.15)
    )
    ratio = both.numpy() / plain  # the same per-channel draw, times one gain per sequence
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), rtol=1e-5)
    assert not np.allclose(ratio, 1.0)


def test_intensity_jitter_is_refused_where_the_effort_is_a_target(split: Split) -> None:
    config = dataclasses.replace(FAST, intensity_jitter=0.3)
    assert SMALL.graded_effort
    with pytest.raises(ConfigError, match=r"intensity_jitter = 0\.3 needs a head without graded"):
        train_model(split, spec=SMALL, seed=0, max_minutes=1.0, config=config)


def test_map_dropout_zeroes_whole_sequences_of_maps_and_keeps_the_band_amplitudes() -> None:
    feats = torch.arange(1.0, 1.0 + 400 * 3 * 6).reshape(400, 3, 6)  # 4 maps, 2 bands
    out = drop_maps(feats, 4, 0.5, np.random.default_rng(0))
    maps, bands = out[..., :4], out[..., 4:]
    torch.testing.assert_close(bands, feats[..., 4:])
    dropped = (maps == 0).all(dim=2).all(dim=1)
    kept = (maps == feats[..., :4]).all(dim=2).all(dim=1)
    # Every sequence is either wholly dropped or kept unscaled, about half of each.
    assert bool((dropped ^ kept).all())
    assert 150 < int(dropped.sum()) < 250
    torch.testing.assert_close(drop_maps(feats, 4, 0.0, np.random.default_rng(0)), feats)
    assert bool((drop_maps(feats, 4, 1.0, np.random.default_rng(0))[..., :4] == 0).all())


def test_map_dropout_acts_only_with_band_amplitudes(
    split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emgd.training.fit as fit_module

    seen: list[int] = []

    def counting(feats: torch.Tensor, n_maps: int, p: float, rng: np.random.Generator) -> object:
        seen.append(n_maps)
        return drop_maps(feats, n_maps, p, rng)

    monkeypatch.setattr(fit_module, "drop_maps", counting)
    config = dataclasses.replace(FAST, sequence_hops=10, max_epochs=1, map_dropout=0.5)
    result = train_model(split, spec=BANDED, seed=0, max_minutes=1.0, config=config)
    assert result.report["config"]["map_dropout"] == 0.5
    assert np.isfinite(result.history[0]["train_loss"])
    assert seen and set(seen) == {BANDED.map_feature_count}
    seen.clear()
    train_model(split, spec=SMALL, seed=0, max_minutes=1.0, config=config)
    assert seen == []  # without band amplitudes only the history would be left


def _script_validation(monkeypatch: pytest.MonkeyPatch, offsets: list[float]) -> None:
    """Replace the closed-loop replay by one prediction per call, further off the target
    as the offset grows, so the validation MAE of epoch k follows ``offsets[k]``."""
    import emgd.training.fit
    import emgd.training.sharpness
    import emgd.training.train

    remaining = iter(offsets)

    def scripted(net: object, emg_norm: object, **kwargs: object) -> tuple[object, object]:
        return np.array([0]), np.full((1, 5), 1000.0 + next(remaining, 0.0))

    # Every closed-loop replay of the training modules (validation, sharpness, history effect).
    for module in (emgd.training.fit, emgd.training.sharpness, emgd.training.train):
        monkeypatch.setattr(module, "closed_loop_predict", scripted)


def test_refit_all_trains_again_on_every_rep_for_the_best_epoch_count(
    split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script_validation(monkeypatch, [5.0, 3.0, 4.0, 6.0])  # epoch 2 of 4 is the best
    config = dataclasses.replace(FAST, sequence_hops=10, max_epochs=4, refit_all=True)
    # A budget no machine reaches: epochs, not the clock, end both fits.
    result = train_model(split, spec=SMALL, seed=1, max_minutes=10.0, config=config)
    assert (result.report["best_epoch"], result.report["refit_epochs"]) == (2, 2)
    # Four validated epochs on reps 0-1, then two unvalidated ones on every rep.
    assert ["val_mae_deg" in row for row in result.history] == [True] * 4 + [False] * 2
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4, 1, 2]


def test_learning_rate_drops_after_epochs_without_a_better_validation(
    split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script_validation(monkeypatch, [5.0, 6.0, 7.0, 8.0, 4.0, 5.0, 6.0])
    config = TrainConfig(
        sequence_hops=10,
        batch_sequences=4,
        max_epochs=7,
        patience_epochs=8,
        learning_rate=2e-2,
        lr_drop_factor=0.5,
        lr_drop_after_epochs=2,
    )
    # A budget no machine reaches: the 7 epochs end the fit, not the clock.
    result = train_model(split, spec=SMALL, seed=1, max_minutes=10.0, config=config)
    # stale runs: epochs 2-4 (cut after the 2nd stale epoch, epoch 3) and 6-7 (cut at 7);
    # each row holds the rate the next epoch uses.
    lr = 2e-2
    assert [row["learning_rate"] for row in result.history] == pytest.approx(
        [lr, lr, lr / 2, lr / 2, lr / 2, lr / 2, lr / 4]
    )


def test_cosine_decay_anneals_the_rate_over_max_epochs(
    split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script_validation(monkeypatch, [5.0, 4.0, 3.0, 2.0])
    config = TrainConfig(
        sequence_hops=10,
        batch_sequences=4,
        max_epochs=4,
        patience_epochs=8,
        learning_rate=2e-2,
        cosine_decay=True,
    )
    result = train_model(split, spec=SMALL, seed=1, max_minutes=10.0, config=config)
    # Epoch e trains at lr (1 + cos(pi (e - 1) / 4)) / 2; each row holds the next epoch's.
    lr = 2e-2
    half = [(1 + math.cos(math.pi * e / 4)) / 2 for e in range(1, 5)]
    assert [row["learning_rate"] for row in result.history] == pytest.approx([lr * h for h in half])
    assert epoch_learning_rate(config, 1) == pytest.approx(lr)
    assert epoch_learning_rate(config, 5) == pytest.approx(0.0, abs=1e-12)
    # Drops multiply the annealed rate; without cosine_decay the rate is flat.
    assert epoch_learning_rate(config, 3, 0.5) == pytest.approx(lr * 0.25)
    flat = dataclasses.replace(config, cosine_decay=False)
    assert [epoch_learning_rate(flat, e) for e in (1, 3, 5)] == pytest.approx([lr] * 3)


# ----------------------------------------------------------------------------- features


@pytest.mark.parametrize(
    "spec", [SMALL, POOLED, BANDED], ids=["recent-steps", "pooled", "band-amplitudes"]
)
def test_stream_features_equal_windowed_features(spec: ModelSpec) -> None:
    net = EmgNet(spec, seed=3)
    if spec.band_amplitude_s is not None:
        raw = torch.randn(30, N_CHANNELS, len(spec.plans), generator=torch.Generator())
        net.set_band_standardisation(raw)
    generator = torch.Generator().manual_seed(0)
    window, hop = spec.window_samples, spec.hop_samples
    emg = torch.randn(2, N_CHANNELS, window + 9 * hop + 5, generator=generator)
    ends = [window - 1 + 5 + hop * i for i in range(10)]
    with torch.no_grad():
        got = features_at(net, emg, ends)
        want = torch.stack(
            [net.flat_features(emg[..., e - window + 1 : e + 1]) for e in ends], dim=1
        )
    assert got.shape == (2, 10, spec.feature_count)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_pooling_averages_steps_by_hand() -> None:
    # At 500 Hz 0.05 s is 25 steps at stride 1, 12.5 → 13 at stride 2, 25/6 → 4 at stride 6.
    assert [POOLED.pool_steps(p) for p in POOLED.plans] == [25, 13, 4, 13]
    type_i = POOLED.plans[0]
    assert POOLED.branch_input_samples(type_i) == type_i.receptive_field_samples + 3 * 25 - 1
    assert ModelSpec().pool_s is None
    assert ModelSpec().min_window_samples == 1729


def test_split_head_equals_the_forward_pass() -> None:
    net = EmgNet(SMALL, seed=4)
    generator = torch.Generator().manual_seed(1)
    emg = torch.randn(3, N_CHANNELS, SMALL.window_samples, generator=generator)
    history = torch.rand(3, SMALL.history_inputs, generator=generator) * 180.0
    with torch.no_grad():
        want = net(emg, history)
        projection = net.project_features(net.flat_features(emg))
        got = net.angles_from_logits(net.logits_from_projection(projection, history))
    assert torch.allclose(got, want, atol=1e-4)


def test_pose_mixture_output_by_hand() -> None:
    net = EmgNet(SMALL, seed=0)
    big = 50.0
    # All weight on power (index 2), effort logit 0 -> e = 0.5: 30 + 0.5·(180 − 30) = 105.
    power = torch.tensor([[0.0, 0.0, big, 0.0, 0.0, 0.0]])
    assert net.angles_from_logits(power).tolist() == [[105.0] * 5]
    # All weight on open, effort logit +big -> e = 1: the open pose, 0 everywhere.
    open_full = torch.tensor([[0.0, big, 0.0, 0.0, 0.0, big]])
    assert net.angles_from_logits(open_full).tolist() == [[0.0] * 5]
    # Chuck at effort 0.5: 30 + 0.5·(110 − 30) = 70 and 30 + 0.5·150 = 105.
    chuck = torch.tensor([[0.0, 0.0, 0.0, big, 0.0, 0.0]])
    assert net.angles_from_logits(chuck).tolist() == [[70.0, 70.0, 70.0, 105.0, 105.0]]


def test_pose_mixture_needs_five_outputs() -> None:
    with pytest.raises(ConfigError, match="pose_mixture"):
        ModelSpec(n_outputs=4, head="pose_mixture")
    with pytest.raises(ConfigError, match="head = 'softmax'"):
        ModelSpec(head="softmax")
    assert ModelSpec().head == "direct"
    assert ModelSpec(head="pose_mixture").mlp_sizes[-1] == 6


# ----------------------------------------------------------------------------- replay


def test_closed_loop_replay_equals_a_window_by_window_loop() -> None:
    net = EmgNet(SMALL, seed=5)
    net.eval()
    rng = np.random.default_rng(2)
    emg = rng.normal(size=(SMALL.window_samples + 12 * SMALL.hop_samples, N_CHANNELS))
    ends, pred = closed_loop_predict(net, emg)
    assert ends.tolist() == hop_ends(emg.shape[0], SMALL.window_samples, SMALL.hop_samples).tolist()
    history = torch.tensor(np.tile(pose_angles_deg("rest"), 2), dtype=torch.float32)[None, :]
    signal = torch.tensor(emg.T, dtype=torch.float32)[None]
    want = []
    with torch.no_grad():
        for end in ends:
            y = net(signal[..., end - SMALL.window_samples + 1 : end + 1], history)
            want.append(y[0].numpy())
            history = torch.cat([y, history[:, :5]], dim=1)
    np.testing.assert_allclose(pred, np.array(want), atol=1e-3)


# ----------------------------------------------------------------------------- training


def test_training_loss_decreases(trained: TrainResult) -> None:
    losses = [row["train_loss"] for row in trained.history]
    assert len(losses) >= 3
    assert losses[-1] < 0.8 * losses[0]


def test_trained_model_beats_always_rest_closed_loop(split: Split, trained: TrainResult) -> None:
    report = evaluate_closed_loop(trained, split.test)
    stream = build_stream(split.test, trained.filter_spec)
    ends = hop_ends(stream.n_samples, SMALL.window_samples, SMALL.hop_samples)
    rest_mae = float(np.abs(stream.targets_deg[ends] - pose_angles_deg("rest")).mean())
    assert report["mae_mean_deg"] < 0.8 * rest_mae


def test_history_inputs_change_the_closed_loop_output(split: Split, trained: TrainResult) -> None:
    own = evaluate_closed_loop(trained, split.test, history_mode="own")
    fixed = evaluate_closed_loop(trained, split.test, history_mode="rest")
    assert own["mae_mean_deg"] != fixed["mae_mean_deg"]
    assert isinstance(trained.net, EmgNet)
    first = trained.net.head[0]
    assert isinstance(first, torch.nn.Linear)
    history_weights = first.weight.detach()[:, SMALL.feature_count :]
    assert float(history_weights.abs().mean()) > 1e-3


def test_silence_kernel_is_unchanged_by_training(trained: TrainResult) -> None:
    assert isinstance(trained.net, EmgNet)
    assert _silence_taps(trained.net) == list(SILENCE_KERNEL)


def test_training_is_deterministic_for_a_seed(split: Split) -> None:
    config = TrainConfig(sequence_hops=20, batch_sequences=8, max_epochs=2)
    first = train_model(split, spec=SMALL, seed=11, max_minutes=1.0, config=config)
    second = train_model(split, spec=SMALL, seed=11, max_minutes=1.0, config=config)
    other = train_model(split, spec=SMALL, seed=12, max_minutes=1.0, config=config)
    a, b, c = (r.net.state_dict() for r in (first, second, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert first.history[-1]["train_loss"] == second.history[-1]["train_loss"]


def test_spec_must_match_the_data(split: Split) -> None:
    with pytest.raises(ConfigError, match="4 at 500 Hz"):
        train_model(split, spec=ModelSpec(n_channels=8), max_minutes=0.1)


def test_checkpoint_round_trip(tmp_path: Path, split: Split, trained: TrainResult) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(trained, path)
    back = load_checkpoint(path)
    assert back.spec == trained.spec
    assert np.array_equal(back.normaliser.scale, trained.normaliser.scale)
    assert back.filter_spec == trained.filter_spec
    got = evaluate_closed_loop(back, split.test)
    want = evaluate_closed_loop(trained, split.test)
    assert got["mae_mean_deg"] == want["mae_mean_deg"]


# ----------------------------------------------------------------------------- recipe
# The recipe's choices (docs/model.md records why) pinned from the code: a change to a default
# must be a deliberate change of this test and of the record.


@pytest.mark.parametrize(("fs_hz", "n_channels"), [(1000.0, 8), (500.0, 4), (2000.0, 10)])
def test_recipe_spec_is_the_validated_spec(fs_hz: float, n_channels: int) -> None:
    spec = recipe_spec(fs_hz, n_channels)
    assert (spec.sample_rate_hz, spec.n_channels) == (fs_hz, n_channels)
    assert spec.common_length == 10
    assert spec.dropout == 0.1
    assert spec.head == "pose_mixture"
    assert spec.band_amplitude_s == 0.2
    assert spec.members == 3
    assert spec.graded_effort is True  # by default; whole-pose data: see test_gestures
    assert recipe_spec(fs_hz, n_channels, graded_effort=False).head_inputs == 5
    # Every other field keeps its seed value.
    seed = ModelSpec(sample_rate_hz=fs_hz, n_channels=n_channels)
    assert spec == ModelSpec(
        sample_rate_hz=fs_hz,
        n_channels=n_channels,
        common_length=10,
        dropout=0.1,
        head="pose_mixture",
        band_amplitude_s=0.2,
        members=3,
    )
    assert (spec.branches, spec.stage2, spec.mlp, spec.history, spec.pool_s) == (
        seed.branches,
        seed.stage2,
        seed.mlp,
        seed.history,
        seed.pool_s,
    )


def test_train_config_defaults_are_the_recipe() -> None:
    config = TrainConfig()
    assert config.learning_rate == 1e-3
    assert config.weight_decay == 0.05
    assert config.sequence_hops == 50
    assert config.sequence_hops * recipe_spec(1000.0, 8).hop_s == pytest.approx(1.0)
    assert config.batch_sequences == 4
    assert (config.pieces_per_recording, config.min_piece_s) == (4, 1.0)
    assert config.detach_history is False  # back-propagation through the rollout
    assert LOSS_SCALE_DEG == 30.0
    assert config.pose_loss_weight == 0.3
    assert config.gain_jitter == 0.15
    assert config.map_dropout == 0.25
    assert config.history_noise_deg == 10.0
    assert (config.max_epochs, config.patience_epochs) == (60, 30)


def test_train_model_defaults_to_the_recipe_spec(split: Split) -> None:
    quick = TrainConfig(sequence_hops=10, batch_sequences=4, max_epochs=1)
    result = train_model(split, seed=0, max_minutes=0.05, config=quick)
    # The recipe spec, with the class sharpness validation chose (see test_gestures).
    chosen = result.report["class_sharpness"]["chosen"]
    assert chosen in SHARPNESS_CANDIDATES
    assert result.spec == dataclasses.replace(
        recipe_spec(FS_HZ, N_CHANNELS), class_sharpness=chosen
    )
    assert result.report["spec"]["common_length"] == 10
    assert result.report["spec"]["dropout"] == 0.1
    assert result.report["spec"]["band_amplitude_s"] == 0.2
    assert result.report["spec"]["members"] == 3
    assert isinstance(result.net, MedianEnsemble)
    # The band standardisation was set from the training stream, not left at the identity.
    for member in result.net.nets:
        assert not torch.equal(member.band_mean, torch.zeros_like(member.band_mean))


def test_settings_change_the_recipe_by_field_type() -> None:
    config = config_with_settings(
        ["pieces_per_recording=1", "learning_rate=3e-3", "refit_all=true", "refit_all=no"]
    )
    assert config.pieces_per_recording == 1 and isinstance(config.pieces_per_recording, int)
    assert config.learning_rate == 3e-3
    assert config.refit_all is False  # the later setting wins
    assert dataclasses.replace(config, pieces_per_recording=4, learning_rate=1e-3) == TrainConfig()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("pieces_per_recording", "expected KEY=VALUE"),
        ("pieces=1", "no recipe setting 'pieces' (one of: sequence_hops, "),
        ("sequence_hops=2.5", "expected a whole number"),
        ("learning_rate=fast", "expected a number"),
        ("refit_all=maybe", "expected true or false"),
        ("gain_jitter=-0.1", "must be finite and at least 0"),
        ("weight_decay=inf", "must be finite and at least 0"),
        ("batch_sequences=0", "must be at least 1"),
        ("lr_drop_factor=2", "must be at most 1"),
        ("map_dropout=1.5", "must be at most 1"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"--set {setting}")) as info:
        config_with_settings([setting])
    assert message in str(info.value)


def test_spec_settings_change_the_spec_and_leave_the_recipe_alone() -> None:
    base = recipe_spec(1000.0, 8)
    settings = ["spec.dropout=0.25", "pieces_per_recording=1", "spec.common_length=3"]
    spec = spec_with_settings([*settings, "spec.pool_s=0.02", "spec.pool_s=none"], base)
    assert spec == dataclasses.replace(base, dropout=0.25, common_length=3)
    assert isinstance(spec.common_length, int)
    assert spec_with_settings(["spec.band_amplitude_s=none"], base).band_amplitude_s is None
    assert spec_with_settings(["pieces_per_recording=1"], base) is base
    # The recipe's own parser leaves the spec settings alone.
    assert config_with_settings(settings) == TrainConfig(pieces_per_recording=1)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("spec.dropout", "expected spec.KEY=VALUE"),
        ("spec.mlp=64", "no model-spec setting 'mlp' (one of: spec.common_length, "),
        ("spec.common_length=2.5", "expected a whole number"),
        ("spec.common_length=none", "expected a whole number"),
        ("spec.pool_s=short", "expected a number or none"),
        ("spec.dropout=1.5", "model spec: dropout = 1.5 is out of range"),
        ("spec.band_amplitude_s=0", "model spec: band_amplitude_s = 0.0 is out of range"),
    ],
)
def test_a_bad_spec_setting_is_refused_naming_it(setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape("--set spec.")) as info:
        spec_with_settings([setting], recipe_spec(1000.0, 8))
    assert message in str(info.value)


def test_band_standardisation_is_set_from_the_training_stream() -> None:
    net = EmgNet(BANDED, seed=2)
    generator = torch.Generator().manual_seed(3)
    # Channels at different levels: the standardisation takes each one's own.
    levels = torch.tensor([0.1, 1.0, 3.0, 10.0]).reshape(N_CHANNELS, 1)
    emg = torch.randn(N_CHANNELS, 40 * BANDED.window_samples, generator=generator) * levels
    standardise_bands(net, emg)
    assert (net.band_mean[3] > net.band_mean[0] + 3.0).all()  # log(100) ≈ 4.6 apart
    ends = list(range(BANDED.window_samples - 1, emg.shape[-1], 97))
    with torch.no_grad():
        bands = features_at(net, emg.unsqueeze(0), ends)[0, :, -BANDED.band_feature_count :]
    torch.testing.assert_close(bands.mean(0), torch.zeros(bands.shape[1]), atol=0.1, rtol=0)
    torch.testing.assert_close(bands.std(0), torch.ones(bands.shape[1]), atol=0.2, rtol=0)
    plain = EmgNet(SMALL, seed=2)
    standardise_bands(plain, emg)  # nothing to standardise: a no-op
    assert plain.band_mean.numel() == 0
