"""Tests of emgd.offline.baselines: Hudgins features by hand, ridge and LDA, end-to-end evaluation.

The end-to-end tests use synthetic EMG; one test uses the real 3DC files from the datasets
folder (``$EMGD_DATASETS`` or ``../shared/datasets``) and skips when it is absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emgd.data.recording import Recording
from emgd.data.synthetic import synthetic_recordings
from emgd.errors import ConfigError, DatasetError
from emgd.offline import baselines
from emgd.offline.baselines import (
    LdaBaseline,
    WindowedSet,
    bandpass,
    evaluate_baselines,
    fit_baselines,
    hudgins_features,
    ridge_solve,
    window_samples,
)

FS_HZ = 1000.0


def test_hudgins_one_window_by_hand() -> None:
    x = np.array([[1.0], [-1.0], [2.0], [2.0], [-3.0]])
    feats, ends = hudgins_features(x, window_n=5, hop_n=5)
    # MAV (1+1+2+2+3)/5 = 1.8; WL 2+3+0+5 = 10; ZC at (1,−1), (−1,2), (2,−3) = 3;
    # SSC at x1 (−2·−3 = 6 > 0) only; x2: (3)(0) = 0, x3: (0)(5) = 0
    np.testing.assert_allclose(feats, [[1.8, 10.0, 3.0, 1.0]])
    np.testing.assert_array_equal(ends, [4])
    # threshold 2.5: ZC needs |Δ| ≥ 2.5 → (−1,2) and (2,−3) = 2; SSC needs product ≥ 6.25 → 0
    feats_thr, _ = hudgins_features(x, window_n=5, hop_n=5, threshold=2.5)
    np.testing.assert_allclose(feats_thr, [[1.8, 10.0, 2.0, 0.0]])


def test_hudgins_hop_and_channel_layout() -> None:
    x = np.array([[0.0, 1.0], [2.0, 1.0], [-2.0, 1.0], [2.0, 1.0], [0.0, 1.0]])
    feats, ends = hudgins_features(x, window_n=3, hop_n=2)
    np.testing.assert_array_equal(ends, [2, 4])
    # channel 0, window [0, 2, −2]: MAV 4/3, WL 2 + 4 = 6, ZC 1 (2 → −2), SSC at 2 (2·4 = 8) = 1
    # channel 0, window [−2, 2, 0]: MAV 4/3, WL 4 + 2 = 6, ZC 1, SSC at 2 (4·2 = 8) = 1
    # channel 1 is constant 1: MAV 1, WL 0, ZC 0, SSC 0; columns are MAV0 MAV1 WL0 WL1 ZC0 ZC1 …
    expected = [[4 / 3, 1, 6, 0, 1, 0, 1, 0], [4 / 3, 1, 6, 0, 1, 0, 1, 0]]
    np.testing.assert_allclose(feats, expected)


def test_hudgins_short_signal_and_bad_sizes() -> None:
    feats, ends = hudgins_features(np.zeros((4, 3)), window_n=5, hop_n=1)
    assert feats.shape == (0, 12) and ends.shape == (0,)
    with pytest.raises(ConfigError, match="window_n >= 3"):
        hudgins_features(np.zeros((10, 1)), window_n=2, hop_n=1)


def test_window_samples() -> None:
    assert window_samples(1000.0) == (200, 50)
    assert window_samples(2000.0, 0.2, 0.05) == (400, 100)
    with pytest.raises(ConfigError, match="must be > 0"):
        window_samples(1000.0, 0.0, 0.05)


def test_bandpass_removes_offset_and_passes_the_emg_band() -> None:
    t = np.arange(2000) / FS_HZ
    x = np.stack([np.full(2000, 500.0), 500.0 + np.sin(2 * np.pi * 100.0 * t)], axis=1)
    y = bandpass(x, FS_HZ)
    # no start-up transient from the offset: the constant channel stays at 0
    assert np.abs(y[:, 0]).max() < 1e-6
    # a 100 Hz tone keeps its amplitude once settled (Butterworth pass band)
    assert np.abs(y[1000:, 1]).max() == pytest.approx(1.0, abs=0.05)
    slow = bandpass(np.sin(2 * np.pi * 2.0 * t)[:, None], FS_HZ)
    assert np.abs(slow[1000:]).max() < 0.01  # 2 Hz movement artefact is suppressed
    with pytest.raises(ConfigError, match="too low"):
        bandpass(np.zeros((10, 1)), 40.0)


def test_ridge_by_hand() -> None:
    # x = (−1, 1), y = (0, 2): centred both ±1, W = 2 rows → w = 2 / (2 + 2α), b = 1 − 0·w
    x = np.array([[-1.0], [1.0]])
    y = np.array([[0.0], [2.0]])
    w, b = ridge_solve(x, y, alpha=1.0)
    assert w[0, 0] == pytest.approx(0.5) and b[0] == pytest.approx(1.0)
    w0, b0 = ridge_solve(x, y, alpha=0.0)
    assert w0[0, 0] == pytest.approx(1.0) and b0[0] == pytest.approx(1.0)


def test_lda_separates_clusters_and_maps_to_pose_angles() -> None:
    rng = np.random.default_rng(0)
    centres = {"a": (0.0, 0.0), "b": (4.0, 0.0), "c": (0.0, 4.0)}
    poses = {"a": "rest", "b": "power", "c": "open"}
    labels = np.repeat(list(centres), 50)
    feats = np.concatenate([rng.normal(centres[k], 0.5, (50, 2)) for k in centres])
    train = WindowedSet(
        features=feats,
        targets_deg=np.zeros((150, 5)),
        labels=labels,
        poses=np.array([poses[str(k)] for k in labels]),
        recording=np.zeros(150, dtype=np.int64),
    )
    lda = LdaBaseline().fit(train)
    assert lda.classes == ("a", "b", "c")
    got = lda.predict(np.array([[4.1, 0.2], [-0.3, 3.8], [0.1, -0.2]]))
    np.testing.assert_array_equal(got, [[180.0] * 5, [0.0] * 5, [30.0] * 5])
    by_mean = LdaBaseline(angles="class_mean").fit(train)
    np.testing.assert_array_equal(by_mean.class_angles_deg, np.zeros((3, 5)))
    with pytest.raises(ConfigError, match="shrinkage"):
        LdaBaseline(shrinkage=2.0)


def _noise_file(
    rng: np.random.Generator, pose: str, label: str, effort: float | np.ndarray, condition: str
) -> Recording:
    """Four channels of noise: chuck drives channels 0–1 and open 2–3 in proportion to effort."""
    n = 3000
    p = np.broadcast_to(np.asarray(effort, dtype=float), (n,))
    std = np.ones((n, 4))
    if pose == "chuck":
        std[:, :2] += 20.0 * p[:, None]
    elif pose == "open":
        std[:, 2:] += 20.0 * p[:, None]
    return Recording.single_gesture(
        rng.standard_normal((n, 4)) * std, FS_HZ, label=label, pose=pose, effort=p.copy(),
        dataset="toy", participant="T", condition=condition, source=f"{label}_{condition}",
    )  # fmt: skip


def test_ramp_correlation_of_an_amplitude_controlled_signal() -> None:
    rng = np.random.default_rng(1)
    train = [_noise_file(rng, "rest", "no_movement", 0.0, "rest")]
    for level in (0.2, 0.4, 0.6, 0.8):
        train.append(_noise_file(rng, "chuck", "chuck_grip", level, f"{level}"))
        train.append(_noise_file(rng, "open", "hand_open", level, f"{level}"))
    ramp = np.linspace(0.2, 0.8, 3000)
    test = [
        _noise_file(rng, "chuck", "chuck_grip", ramp, "Ramp"),
        _noise_file(rng, "open", "hand_open", ramp, "Ramp"),
        _noise_file(rng, "rest", "no_movement", ramp, "Ramp"),
    ]
    report = evaluate_baselines(train, test)
    # 3000 samples: windows end at 200, 250, …, 3000 → (3000 − 200)/50 + 1 = 57 per file
    assert report["n_test_windows"] == 3 * 57
    assert report["n_train_windows"] == 9 * 57
    ridge = report["ridge"]
    # the rest "ramp" has a constant target and is not scored; both gesture ramps are
    assert set(ridge["ramp_r_per_file"]) == {"chuck_grip_Ramp", "hand_open_Ramp"}
    assert ridge["ramp_r"] > 0.8
    assert report["rest"]["ramp_r"] == 0.0  # a constant prediction carries no effort
    assert report["lda"]["accuracy"] > 0.9


@pytest.fixture(scope="module")
def synthetic_report() -> dict[str, Any]:
    recs = synthetic_recordings(1, n_recordings=3, duration_s=20.0, effort=(1.0, 1.0))
    return evaluate_baselines(recs[:2], recs[2:])


def test_synthetic_poses_beat_always_rest(synthetic_report: dict[str, Any]) -> None:
    rest_mae = synthetic_report["rest"]["mae_mean_deg"]
    assert rest_mae > 30.0
    assert synthetic_report["lda"]["mae_mean_deg"] < 0.25 * rest_mae
    assert synthetic_report["ridge"]["mae_mean_deg"] < 0.4 * rest_mae
    assert synthetic_report["lda"]["accuracy"] > 0.6
    assert synthetic_report["ridge"]["r2_mean"] > 0.5
    assert synthetic_report["ridge"]["ramp_r"] is None  # no ramp files in synthetic data
    assert synthetic_report["ridge"]["alpha"] in baselines.RIDGE_ALPHAS
    # 20 s at 1 kHz: (20000 − 200)/50 + 1 = 397 windows per recording
    assert synthetic_report["n_test_windows"] == 397
    assert set(synthetic_report["ridge"]["mae_deg"]) == {
        "thumb",
        "index",
        "middle",
        "ring",
        "little",
    }


def test_held_outputs_on_a_joined_stream_are_the_latest_window_s() -> None:
    recs = synthetic_recordings(2, n_recordings=3, duration_s=6.0, effort=(1.0, 1.0))
    fitted = fit_baselines(recs[:2])
    stream = np.concatenate([recs[2].emg, recs[0].emg])  # a join at sample 6000
    features, ends = fitted.extractor.transform_emg(stream, FS_HZ, "joined")
    assert ends[0] == 199 and np.all(np.diff(ends) == 50)
    instants = np.array([0, 198, 199, 200, 248, 249, 6010, stream.shape[0] - 1])
    held = fitted.held_at(stream, FS_HZ, instants, "joined")
    rest = [30.0] * 5
    for name, model in (("ridge", fitted.ridge), ("lda", fitted.lda)):
        angles = model.predict(features)
        expected = [rest, rest, angles[0], angles[0], angles[0], angles[1]]
        expected += [angles[(6010 - 199) // 50], angles[-1]]
        np.testing.assert_allclose(held[name], expected)
    with pytest.raises(DatasetError, match=r"joined: 2 channels at 1000 Hz, but the baselines"):
        fitted.held_at(stream[:, :2], FS_HZ, instants, "joined")


def test_layout_and_content_errors() -> None:
    rng = np.random.default_rng(2)
    a = _noise_file(rng, "rest", "no_movement", 0.0, "x")
    b = _noise_file(rng, "chuck", "chuck_grip", 0.5, "y")
    other_rate = Recording.single_gesture(
        np.zeros((3000, 4)), 2000.0, label="x", pose="rest", effort=0.0, dataset="d",
        participant="T", source="fast.csv",
    )  # fmt: skip
    with pytest.raises(DatasetError, match=r"fast\.csv has 4 channels at 2000 Hz"):
        evaluate_baselines([a, b], [other_rate])
    with pytest.raises(DatasetError, match="at least two gesture classes"):
        fit_baselines([a])
    short = Recording.single_gesture(
        np.zeros((50, 4)), FS_HZ, label="x", pose="rest", effort=0.0, dataset="d",
        participant="T", source="short.csv",
    )  # fmt: skip
    with pytest.raises(DatasetError, match="longer than one window"):
        fit_baselines([short])
    with pytest.raises(DatasetError, match="no test recording is longer"):
        evaluate_baselines([a, b], [short])


# --- real data (skips without the datasets folder) ----------------------------------------------


@pytest.fixture(scope="module")
def real_root() -> Path:
    from emgd.data.splits import find_datasets_root

    try:
        root = find_datasets_root()
    except DatasetError as exc:
        pytest.skip(f"uses the real 3DC files, not available here: {exc}")
    if not (root / "3DCDataset" / "Participant1").is_dir():
        pytest.skip(f"uses the real 3DC files, not available here: {root}")
    return root


def test_real_3dc_lda_beats_ridge_beats_rest(real_root: Path) -> None:
    from emgd.data.splits import threedc_split

    split = threedc_split("Participant1", real_root)
    report = evaluate_baselines(split.train, split.test)
    lda, ridge, rest = (report[k]["mae_mean_deg"] for k in ("lda", "ridge", "rest"))
    assert lda < ridge < rest
    assert lda < 15.0
