"""Tests of closed-loop evaluation, its report and the `emgd model info` / `emgd eval` commands.

The network here is untrained (or a hand-written runner): the figures it scores are
meaningless; what is tested is where the scores come from.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from emgd.cli import main
from emgd.data.recording import Recording
from emgd.data.splits import Split, find_datasets_root, load_split, synthetic_split
from emgd.dsp.filters import FilterSpec
from emgd.errors import CalibrationError, DatasetError, ModelError
from emgd.model.contract import PreprocessContract, default_channel_names
from emgd.model.export import json_ready
from emgd.model.spec import ModelSpec
from emgd.offline.baselines import window_samples
from emgd.offline.evaluate import (
    calibration_from_training,
    evaluate_model,
    format_report,
    format_summary,
)
from emgd.poses import pose_angles_deg

FS_HZ = 500.0
N_CH = 4
WINDOW = 60
HOP = 10
CONTRACT = PreprocessContract(
    sample_rate_hz=FS_HZ,
    n_channels=N_CH,
    channel_names=default_channel_names(N_CH),
    filter_spec=FilterSpec(mains_hz=50.0),
    window_samples=WINDOW,
    hop_samples=HOP,
)


def gesture(
    pose: str,
    n: int,
    level: float,
    seed: int,
    *,
    label: str | None = None,
    dataset: str = "synthetic",
    effort: float | npt.NDArray[np.float64] = 1.0,
    condition: str = "",
    source: str = "",
) -> Recording:
    rng = np.random.default_rng(seed)
    envelope = np.broadcast_to(np.asarray(effort, dtype=np.float64), (n,))
    emg = (1.0 + level * envelope)[:, None] * rng.standard_normal((n, N_CH))
    return Recording.single_gesture(
        emg,
        FS_HZ,
        label=label or pose,
        pose=pose,
        effort=effort,
        dataset=dataset,
        participant="hand",
        condition=condition,
        source=source or f"{pose}{seed}",
    )


def hand_split() -> Split:
    train = (gesture("rest", 400, 0.0, 1), gesture("power", 400, 8.0, 2))
    test = (
        gesture("rest", 299, 0.0, 3),
        gesture("power", 250, 8.0, 4),
        gesture("open", 300, 8.0, 5),
    )
    return Split("synthetic", "hand", train, test)


class Runner:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.contract = CONTRACT

    def infer(self, window: npt.NDArray[Any], history_deg: npt.NDArray[np.float64]) -> Any:
        return self.answer(window, history_deg)


def hop_grid(n: int) -> npt.NDArray[np.int64]:
    return np.arange(WINDOW - 1, n, HOP)


def test_always_rest_runner_scores_the_rest_error_at_every_hop() -> None:
    split = hand_split()
    result = evaluate_model(Runner(lambda w, h: np.full(5, 30.0)), split, baselines=False)
    targets = np.concatenate([rec.targets_deg for rec in split.test])
    ends = hop_grid(849)  # hops fall on the first sample of the 2nd and 3rd recordings
    assert {299, 549} <= set(ends.tolist())
    assert result["network"]["n"] == ends.size == 79
    expected = np.abs(30.0 - targets[ends]).mean(axis=0)
    got = [result["network"]["mae_deg"][f] for f in ("thumb", "index", "middle", "ring", "little")]
    np.testing.assert_allclose(got, expected)
    assert result["network"]["mae_mean_deg"] == pytest.approx(expected.mean())
    assert result["network"]["ramp_r"] is None
    assert "ridge" not in result
    # by time since the hop's recording began (recordings start at samples 0, 299, 549)
    since_s = (ends - np.array([0, 299, 549])[np.searchsorted([299, 549], ends, "right")]) / FS_HZ
    error = np.abs(30.0 - targets[ends]).mean(axis=1)
    by_time = result["network"]["mae_by_time_since_start_deg"]
    assert by_time["0.25-0.5s"] == pytest.approx(error[(since_s >= 0.25) & (since_s < 0.5)].mean())
    assert by_time["0-0.25s"] == pytest.approx(error[since_s < 0.25].mean())
    assert by_time["2s+"] is None  # no recording here lasts 2 s
    # by gesture: the label of each hop's recording (rest, power, open, in that order)
    by_gesture = result["network"]["mae_by_gesture_deg"]
    gesture_of = np.array(["rest", "power", "open"])[np.searchsorted([299, 549], ends, "right")]
    assert list(by_gesture) == ["open", "power", "rest"]
    for name in ("open", "power", "rest"):
        assert by_gesture[name]["n"] == int((gesture_of == name).sum())
        assert by_gesture[name]["mae_deg"] == pytest.approx(error[gesture_of == name].mean())
    # none of these recordings lasts the 1 s a steady hold starts at
    assert all(v["steady_n"] == 0 and v["steady_mae_deg"] is None for v in by_gesture.values())


def test_the_network_is_also_scored_at_the_baselines_window_ends() -> None:
    split = hand_split()
    calls = iter(range(1, 1000))
    # The n-th hop answers n degrees, so each score shows which hop was held.
    result = evaluate_model(Runner(lambda w, h: np.full(5, float(next(calls)))), split)
    hops = hop_grid(849)
    window_n, hop_n = window_samples(FS_HZ)
    starts = np.cumsum([0, *(rec.emg.shape[0] for rec in split.test[:-1])])
    instants = np.concatenate(
        [
            start + np.arange(window_n - 1, rec.emg.shape[0], hop_n)
            for start, rec in zip(starts, split.test, strict=True)
        ]
    )
    shown = np.searchsorted(hops, instants, side="right").astype(float)  # hops so far
    shown[shown == 0] = 30.0  # rest before the first hop
    targets = np.concatenate([rec.targets_deg for rec in split.test])[instants]
    at_windows = result["network_at_baseline_windows"]
    assert at_windows["n"] == instants.size == result["baseline_windows"]["n_test_windows"]
    assert at_windows["mae_mean_deg"] == pytest.approx(np.abs(shown[:, None] - targets).mean())
    assert result["network_at_baseline_windows_vs_best_pct"] is not None


def test_history_modes_feed_back_outputs_rest_or_targets() -> None:
    split = hand_split()
    targets = np.concatenate([rec.targets_deg for rec in split.test])
    ends = hop_grid(849)

    def copy(w: Any, h: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return h[:5].copy()

    # teacher forcing: the copy-runner predicts the previous hop's target (rest before it)
    teacher = evaluate_model(Runner(copy), split, history_mode="target", baselines=False)
    previous = np.vstack([pose_angles_deg("rest")[None, :], targets[ends[:-1]]])
    assert teacher["network"]["mae_mean_deg"] == pytest.approx(
        np.abs(previous - targets[ends]).mean()
    )
    # closed loop and rest history: the copy-runner never leaves the rest pose
    rest_mae = np.abs(30.0 - targets[ends]).mean()
    for mode in ("closed_loop", "rest"):
        result = evaluate_model(Runner(copy), split, history_mode=mode, baselines=False)
        assert result["network"]["mae_mean_deg"] == pytest.approx(rest_mae)
    assert teacher["network"]["mae_mean_deg"] < 0.5 * rest_mae


def test_ramp_correlation_is_scored_per_ramp_file() -> None:
    n = 1500
    ramp = np.linspace(0.2, 0.8, n)
    kwargs: dict[str, Any] = {"dataset": "contraction"}
    train = (
        gesture("rest", 600, 0.0, 1, label="no_movement", source="S1_20P_C1_R1.csv", **kwargs),
        gesture("chuck", 600, 8.0, 2, label="chuck_grip", source="S1_50P_C6_R1.csv", **kwargs),
    )
    test = (
        gesture("chuck", 600, 8.0, 3, label="chuck_grip", source="S1_50P_C6_R3.csv", **kwargs),
        gesture(
            "chuck",
            n,
            8.0,
            4,
            label="chuck_grip",
            effort=ramp,
            condition="Ramp",
            source="S1_Ramp_C6_R3.csv",
            **kwargs,
        ),
    )
    split = Split("contraction", "S1", train, test)

    def loudness(w: npt.NDArray[Any], h: Any) -> npt.NDArray[np.float64]:
        return np.full(5, 30.0 + 20.0 * float(np.mean(np.abs(w[-HOP:]))))

    result = evaluate_model(Runner(loudness), split, baselines=False)
    assert list(result["network"]["ramp_r_per_file"]) == ["S1_Ramp_C6_R3.csv"]
    assert result["network"]["ramp_r"] > 0.8
    flat = evaluate_model(Runner(lambda w, h: np.full(5, 50.0)), split, baselines=False)
    assert flat["network"]["ramp_r"] == 0.0


def test_a_split_at_another_layout_is_refused_naming_both_values() -> None:
    split = hand_split()
    other = PreprocessContract(
        sample_rate_hz=1000.0,
        n_channels=N_CH,
        channel_names=default_channel_names(N_CH),
        filter_spec=FilterSpec(),
        window_samples=WINDOW,
        hop_samples=HOP,
    )
    with pytest.raises(
        ModelError, match="model expects 1000 Hz, dataset synthetic hand has 500 Hz"
    ):
        evaluate_model(Runner(lambda w, h: np.zeros(5)), split, contract=other)
    with pytest.raises(ModelError, match="needs contract="):
        evaluate_model(_Bare(), split)


class _Bare:
    def infer(self, window: Any, history_deg: Any) -> Any:
        return np.zeros(5)


def test_calibration_needs_rest_and_effort() -> None:
    only_rest = (gesture("rest", 400, 0.0, 1),)
    with pytest.raises(CalibrationError, match="train: no effort"):
        calibration_from_training(only_rest, FilterSpec(), "train")
    only_power = (gesture("power", 400, 5.0, 1),)
    with pytest.raises(CalibrationError, match="train: no rest"):
        calibration_from_training(only_power, FilterSpec(), "train")


# ------------------------------------------------------------ with a real (untrained) model

SPEC = ModelSpec(sample_rate_hz=1000.0, n_channels=8, common_length=4, mlp=(16,))


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from emgd.model.export import export_onnx
    from emgd.model.network import EmgNet

    path = tmp_path_factory.mktemp("eval") / "untrained.onnx"
    contract = PreprocessContract.for_spec(SPEC, FilterSpec(mains_hz=50.0))
    export_onnx(EmgNet(SPEC, seed=0), SPEC, contract, {"data": "untrained"}, path)
    return path


@pytest.fixture(scope="module")
def seed_split() -> Split:
    return synthetic_split(7, n_train=2, n_test=1, duration_s=6.0)


def test_evaluate_an_onnx_model_beside_the_baselines(onnx_model: Path, seed_split: Split) -> None:
    result = evaluate_model(onnx_model, seed_split)
    assert result["model"].startswith("untrained.onnx@")
    assert result["network"]["n"] == len(range(SPEC.window_samples - 1, 6000, 20))
    for name in ("network", "ridge", "lda", "rest"):
        assert set(result[name]) >= {"mae_deg", "mae_mean_deg", "r2", "r2_mean", "ramp_r"}
    best = min(result["ridge"]["mae_mean_deg"], result["lda"]["mae_mean_deg"])
    assert result["network_vs_best_pct"] == pytest.approx(
        100.0 * (result["network"]["mae_mean_deg"] - best) / best
    )
    # by gesture: the label at each hop, held = time since that label began in the recording
    by_gesture = result["network"]["mae_by_gesture_deg"]
    (rec,) = seed_split.test
    hops = np.arange(SPEC.window_samples - 1, rec.emg.shape[0], 20)
    label_at = np.array(rec.label_names)[rec.label_index[hops]]
    labels = set(label_at.tolist())
    assert set(by_gesture) == labels and len(labels) > 1
    began = []  # where the label at each hop began, found by walking back
    for h in hops.tolist():
        start = h
        while start > 0 and rec.label_index[start - 1] == rec.label_index[h]:
            start -= 1
        began.append(start)
    held = (hops - np.array(began)) / rec.sample_rate_hz >= 1.0
    assert 0 < held.sum() < held.size  # some hops held 1 s, some not yet
    for name in labels:
        assert by_gesture[name]["n"] == int((label_at == name).sum())
        assert by_gesture[name]["steady_n"] == int(((label_at == name) & held).sum())
    # the baselines again, run on the joined test stream and scored at the network's hops
    for name in ("ridge_same_hops", "lda_same_hops"):
        assert result[name]["n"] == result["network"]["n"]
        assert list(result[name]["mae_by_time_since_start_deg"]) == list(
            result["network"]["mae_by_time_since_start_deg"]
        )
        assert result[name]["mae_by_gesture_deg"].keys() == by_gesture.keys()
    best_same = min(result[n]["mae_mean_deg"] for n in ("ridge_same_hops", "lda_same_hops"))
    assert result["network_vs_best_same_hops_pct"] == pytest.approx(
        100.0 * (result["network"]["mae_mean_deg"] - best_same) / best_same
    )
    # the network scored the baselines' way: its held output at their window ends
    at_windows = result["network_at_baseline_windows"]
    assert at_windows["n"] == result["baseline_windows"]["n_test_windows"]
    assert result["network_at_baseline_windows_vs_best_pct"] == pytest.approx(
        100.0 * (at_windows["mae_mean_deg"] - best) / best
    )
    json.dumps(json_ready(result), allow_nan=False)
    report = format_report(result)
    for label in (
        "network",
        "TD+ridge",
        "TD+LDA->pose",
        "TD+LDA->pose, same hops",
        "network, baselines' windows",
        "network at the baselines' windows vs the better baseline",
        "always rest",
        "closed loop",
        "since start",
        "0.25-0.5s",
        "by gesture, 1 s and more",
        *labels,
    ):
        assert label in report
    summary = format_summary([result, result])
    assert summary.splitlines()[-1].split()[0] == "mean"


def test_cli_model_info_prints_spec_contract_and_card(onnx_model: Path) -> None:
    out = io.StringIO()
    assert main(["model", "info", str(onnx_model)], stdout=out) == 0
    text = out.getvalue()
    assert text.startswith(f"{onnx_model} (untrained.onnx@")
    assert "RF (ms)" in text and "type_IIb" in text
    assert "notch 50 Hz" in text
    assert "card\n  data: untrained\n" in text


def test_cli_eval_prints_json(onnx_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emgd.data import splits

    monkeypatch.setattr(
        splits, "synthetic_split", lambda seed: synthetic_split(seed, n_train=2, duration_s=6.0)
    )
    out = io.StringIO()
    code = main(
        ["eval", str(onnx_model), "--dataset", "synthetic", "--participant", "seed7", "--json"],
        stdout=out,
    )
    assert code == 0
    data = json.loads(out.getvalue())
    assert data["model"].startswith("untrained.onnx@")
    assert [r["participant"] for r in data["results"]] == ["seed7"]
    assert data["results"][0]["history_mode"] == "closed_loop"


def test_cli_errors_are_one_line_with_exit_codes(
    onnx_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(onnx_model), "--dataset", "synthetic"]) == DatasetError.exit_code
    assert "needs --participant" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"garbage")
    assert main(["model", "info", str(corrupt)]) == ModelError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(corrupt) in err[0]


def _datasets_root() -> Path | None:
    try:
        return find_datasets_root()
    except DatasetError:
        return None


@pytest.mark.skipif(_datasets_root() is None, reason="no datasets folder")
def test_real_contraction_participant_calibrates_offline() -> None:
    split = load_split("contraction", "S2")
    calibration = calibration_from_training(split.train, FilterSpec(mains_hz=60.0))
    assert calibration.normaliser.n_channels == 8
    assert np.all(calibration.normaliser.scale > 0)
