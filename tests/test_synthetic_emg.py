"""Tests of emgd.sim.synthetic_emg: streaming contract, determinism and realism checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.signal import welch

from emgd.errors import ConfigError
from emgd.hw.interfaces import SignalSource
from emgd.poses import POSE_NAMES
from emgd.sim.synthetic_emg import SyntheticEmg
from emgd.sim.trajectory import ConstantPose, KeyframeTrajectory, PoseSequence

FS_HZ = 2000.0
ADS1299_FULL_SCALE_UV_AT_GAIN_24 = 4.5e6 / 24  # ±VREF/gain with VREF = 4.5 V


def quiet(traj, **kwargs) -> SyntheticEmg:
    """A source without mains or artefacts (realism checks of the EMG itself)."""
    kwargs.setdefault("mains_hz", 0.0)
    kwargs.setdefault("artefact_rate_hz", 0.0)
    return SyntheticEmg(traj, **kwargs)


def rms(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.sqrt(np.mean(x * x, axis=0))
    return out


def steady(pose: str, effort: float, seconds: float = 3.0, **kwargs) -> np.ndarray:
    src = quiet(ConstantPose.from_pose(pose, effort), **kwargs)
    return src.generate(round(seconds * FS_HZ), FS_HZ)[round(0.2 * FS_HZ) :]


def test_is_a_signal_source() -> None:
    src: SignalSource = SyntheticEmg(ConstantPose.from_pose("rest"), n_channels=6)
    out = src.generate(37, 1000.0)
    assert out.shape == (37, 6)
    assert out.dtype == np.float64
    assert src.n_channels == 6
    assert src.generate(0, 1000.0).shape == (0, 6)


def test_time_advances_by_n_over_fs_across_rate_changes() -> None:
    src = SyntheticEmg(ConstantPose.from_pose("power", 0.5))
    assert src.time_s == 0.0
    src.generate(100, 1000.0)
    assert src.time_s == pytest.approx(0.1)
    src.generate(300, 2000.0)
    assert src.time_s == pytest.approx(0.25)
    src.generate(16, 16000.0)
    assert src.time_s == pytest.approx(0.251)


def test_chunking_does_not_change_the_stream() -> None:
    traj = PoseSequence(4, hold_s=(0.3, 0.5), transition_s=(0.1, 0.2))

    def make() -> SyntheticEmg:
        return SyntheticEmg(traj, seed=3, artefact_rate_hz=5.0, dc_offset_uv=500.0, mains_uv=20.0)

    whole = make().generate(1000, FS_HZ)
    tens = make()
    by_ten = np.concatenate([tens.generate(100, FS_HZ) for _ in range(10)])
    odd = make()
    by_odd = np.concatenate([odd.generate(n, FS_HZ) for n in (1, 199, 1, 333, 466)])
    np.testing.assert_array_equal(whole, by_ten)
    np.testing.assert_array_equal(whole, by_odd)
    assert np.abs(whole).max() > 100.0  # not trivially equal


def test_same_seed_same_calls_same_output_and_seed_matters() -> None:
    traj = PoseSequence(1)

    def run(seed: int) -> np.ndarray:
        src = SyntheticEmg(traj, seed=seed)
        parts = [src.generate(500, 1000.0), src.generate(777, 2000.0), src.generate(64, 250.0)]
        return np.concatenate([p.ravel() for p in parts])

    a, b = run(0), run(0)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, run(1))


def test_targets_are_aligned_with_samples() -> None:
    traj = KeyframeTrajectory([0.0, 1.0], [[30.0] * 5, [180.0] * 5])
    src = SyntheticEmg(traj)
    emg, angles = src.generate_with_targets(500, 1000.0)
    assert emg.shape == (500, 8)
    np.testing.assert_allclose(angles, traj.angles_deg(np.arange(500) / 1000.0))
    _, angles2 = src.generate_with_targets(100, 400.0)  # new rate: t = 0.5 + k/400
    np.testing.assert_allclose(angles2, traj.angles_deg(0.5 + np.arange(100) / 400.0))
    np.testing.assert_allclose(src.target_angles_deg(), traj.angles_deg(np.array([0.75]))[0])
    assert src.generate_with_targets(0, 400.0)[1].shape == (0, 5)


def test_rest_is_noise_only() -> None:
    x = steady("rest", 0.0, noise_rms_uv=3.0)
    # Each electrode's contact sets its own noise level around the generator's.
    noise_scale = SyntheticEmg(ConstantPose.from_pose("rest")).anatomy.noise_scale
    np.testing.assert_allclose(rms(x), 3.0 * noise_scale, rtol=0.05)


def test_strong_effort_amplitude_and_headroom() -> None:
    x = steady("power", 1.0)
    r = rms(x)
    assert 50.0 < r.max() < 500.0
    assert r.min() > 5.0  # every electrode sees something (cross-talk)
    assert np.abs(x).max() < 0.05 * ADS1299_FULL_SCALE_UV_AT_GAIN_24


def test_rms_rises_with_effort() -> None:
    for pose in ("power", "open"):
        levels = [float(rms(steady(pose, p, 2.0)).mean()) for p in (0.2, 0.4, 0.6, 0.8, 1.0)]
        assert all(b > a for a, b in itertools.pairwise(levels)), (pose, levels)
        assert levels[-1] > 4 * levels[0]


def test_spectrum_is_semg_like() -> None:
    for effort in (0.4, 0.7, 1.0):
        x = steady("chuck", effort, 4.0)
        f, p = welch(x, fs=FS_HZ, nperseg=512, axis=0)
        total = p.sum(axis=1)
        band = total[(f >= 20.0) & (f <= 450.0)].sum() / total.sum()
        cumulative = np.cumsum(total)
        median_hz = f[np.searchsorted(cumulative, cumulative[-1] / 2.0)]
        assert band > 0.9, effort
        assert 60.0 <= median_hz <= 150.0, (effort, median_hz)


def test_flexor_and_extensor_channels() -> None:
    mixing = SyntheticEmg(ConstantPose.from_pose("rest")).mixing
    flexor_ch = int(np.argmax(mixing[:, :5].sum(1) - mixing[:, 5:].sum(1)))
    extensor_ch = int(np.argmax(mixing[:, 5:].sum(1) - mixing[:, :5].sum(1)))
    r = {pose: rms(steady(pose, 0.8, 2.0)) for pose in ("rest", "power", "open")}
    assert r["power"][flexor_ch] > 5 * r["rest"][flexor_ch]
    assert r["power"][flexor_ch] > 2 * r["open"][flexor_ch]
    assert r["open"][extensor_ch] > 5 * r["rest"][extensor_ch]
    assert r["open"][extensor_ch] > 2 * r["power"][extensor_ch]


def test_poses_are_separable_by_nearest_centroid() -> None:
    steps = [(pose, 0.8, 0.5, 4.0) for pose in POSE_NAMES] * 2
    traj = KeyframeTrajectory.from_pose_steps(steps, start_hold_s=0.5)
    fs = 1000.0
    src = SyntheticEmg(traj, seed=12, mains_hz=50.0, artefact_rate_hz=0.0)
    emg, _ = src.generate_with_targets(round(traj.times_s[-1] * fs), fs)
    window = 200
    features: list[list[np.ndarray]] = [[], []]
    labels: list[list[int]] = [[], []]
    for k in range(len(steps)):
        hold_start = traj.times_s[2 + 2 * k] + 0.5
        hold_end = traj.times_s[3 + 2 * k]
        for start in np.arange(hold_start, hold_end - window / fs, window / fs):
            seg = emg[round(start * fs) : round(start * fs) + window]
            seg = seg - seg.mean(axis=0)
            features[k // len(POSE_NAMES)].append(np.log(rms(seg)))
            labels[k // len(POSE_NAMES)].append(k % len(POSE_NAMES))
    train_x, test_x = np.array(features[0]), np.array(features[1])
    train_y, test_y = np.array(labels[0]), np.array(labels[1])
    centroids = np.array([train_x[train_y == c].mean(axis=0) for c in range(len(POSE_NAMES))])
    dist = ((test_x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    accuracy = float(np.mean(np.argmin(dist, axis=1) == test_y))
    assert accuracy >= 0.95


def mains_ratio(x: np.ndarray, fs: float, f0: float) -> float:
    f, p = welch(x, fs=fs, nperseg=2000, axis=0)  # 1 Hz bins at 2 kHz
    total = p.sum(axis=1)
    peak = total[np.argmin(np.abs(f - f0))]
    around = total[(np.abs(f - f0) > 5.0) & (np.abs(f - f0) < 20.0)]
    return float(peak / np.median(around))


def test_mains_hum() -> None:
    hum50 = SyntheticEmg(ConstantPose.from_pose("rest"), mains_hz=50.0, mains_uv=10.0)
    x50 = hum50.generate(8000, FS_HZ)
    assert mains_ratio(x50, FS_HZ, 50.0) > 100.0
    assert mains_ratio(x50, FS_HZ, 150.0) > 10.0  # third harmonic
    hum60 = SyntheticEmg(ConstantPose.from_pose("rest"), mains_hz=60.0, mains_uv=10.0)
    x60 = hum60.generate(8000, FS_HZ)
    assert mains_ratio(x60, FS_HZ, 60.0) > 100.0
    assert mains_ratio(x60, FS_HZ, 50.0) < 3.0
    off = SyntheticEmg(ConstantPose.from_pose("rest"), mains_hz=0.0, mains_uv=10.0)
    assert mains_ratio(off.generate(8000, FS_HZ), FS_HZ, 50.0) < 3.0


def test_dc_offsets() -> None:
    src = quiet(ConstantPose.from_pose("rest"), dc_offset_uv=2000.0)
    offsets = src.dc_offset_uv
    assert np.all(np.abs(offsets) <= 2000.0)
    assert np.ptp(offsets) > 500.0
    x = src.generate(4000, FS_HZ)
    np.testing.assert_allclose(x.mean(axis=0), offsets, atol=0.5)
    np.testing.assert_array_equal(quiet(ConstantPose.from_pose("rest")).dc_offset_uv, 0.0)


def test_artefacts_appear_only_when_enabled() -> None:
    traj = ConstantPose.from_pose("rest")
    clean = quiet(traj, artefact_rate_hz=0.0).generate(10_000, FS_HZ)
    dirty = quiet(traj, artefact_rate_hz=2.0, artefact_uv=800.0).generate(10_000, FS_HZ)
    assert np.abs(clean).max() < 25.0
    assert np.abs(dirty).max() > 200.0
    # artefacts are brief events, not a constant offset
    assert np.median(np.abs(dirty)) < 50.0


def test_other_channel_counts_and_low_rate() -> None:
    for n in (1, 16):
        src = SyntheticEmg(ConstantPose.from_pose("power", 0.7), n_channels=n)
        assert src.generate(250, 250.0).shape == (250, n)
        assert src.mixing.shape == (n, 10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_channels": 0}, "n_channels"),
        ({"n_channels": 65}, "n_channels"),
        ({"mains_hz": -50.0}, "mains_hz"),
        ({"noise_rms_uv": float("nan")}, "noise_rms_uv"),
        ({"artefact_rate_hz": -1.0}, "artefact_rate_hz"),
        ({"full_effort_rms_uv": 0.0}, "full_effort_rms_uv"),
    ],
)
def test_bad_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SyntheticEmg(ConstantPose.from_pose("rest"), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "fs", "match"),
    [
        (-1, 1000.0, "n_samples"),
        (1.5, 1000.0, "n_samples"),
        (10, 0.0, "sample_rate_hz"),
        (10, float("nan"), "sample_rate_hz"),
        (10, 2e6, "sample_rate_hz"),
    ],
)
def test_bad_generate_calls(n: object, fs: float, match: str) -> None:
    src = SyntheticEmg(ConstantPose.from_pose("rest"))
    with pytest.raises(ConfigError, match=match):
        src.generate(n, fs)  # type: ignore[arg-type]
