"""Tests of emgd.dsp.normalise: the affine map, its inverse, and calibration maths/refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from emgd.dsp.filters import FilterSpec, StreamingFilter
from emgd.dsp.normalise import (
    FLAT_SD_UV,
    Normaliser,
    compute_calibration,
    moving_rms,
    railed_mask_from_bits,
)
from emgd.errors import CalibrationError, ConfigError
from emgd.sim.synthetic_emg import SyntheticEmg
from emgd.sim.trajectory import ConstantPose

FS_HZ = 1000.0


# --- Normaliser ----------------------------------------------------------------------------


def test_apply_by_hand() -> None:
    norm = Normaliser(np.array([1.0, -2.0]), np.array([2.0, 4.0]))
    x = np.array([[3.0, 2.0], [1.0, -2.0], [-1.0, 6.0]])
    np.testing.assert_array_equal(norm.apply(x), [[1.0, 1.0], [0.0, 0.0], [-1.0, 2.0]])
    np.testing.assert_array_equal(norm.apply(np.array([5.0, -6.0])), [2.0, -1.0])


def test_apply_in_place() -> None:
    norm = Normaliser(np.array([10.0, 0.0, -5.0]), np.array([5.0, 0.5, 1.0]))
    x = np.array([[20.0, 1.0, -5.0], [10.0, -1.0, 0.0]])
    result = norm.apply(x, out=x)
    assert result is x
    np.testing.assert_array_equal(x, [[2.0, 2.0, 0.0], [0.0, -2.0, 5.0]])


def test_apply_does_not_touch_its_input_without_out() -> None:
    norm = Normaliser(np.array([1.0]), np.array([2.0]))
    x = np.array([[3.0]])
    norm.apply(x)
    assert x[0, 0] == 3.0


def test_identity_changes_nothing() -> None:
    x = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(Normaliser.identity(3).apply(x), x)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_channels=st.integers(min_value=1, max_value=8),
)
def test_invert_undoes_apply(data: st.DataObject, n_channels: int) -> None:
    finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
    offset = data.draw(hnp.arrays(np.float64, n_channels, elements=finite))
    scale = data.draw(
        hnp.arrays(np.float64, n_channels, elements=st.floats(min_value=1e-3, max_value=1e4))
    )
    x = data.draw(hnp.arrays(np.float64, (5, n_channels), elements=finite))
    norm = Normaliser(offset, scale)
    np.testing.assert_allclose(norm.invert(norm.apply(x)), x, rtol=1e-9, atol=1e-6)


def test_arrays_are_copied_and_read_only() -> None:
    offset = np.array([1.0, 2.0])
    norm = Normaliser(offset, np.array([1.0, 1.0]))
    offset[0] = 100.0
    assert norm.offset[0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        norm.scale[0] = 3.0


@pytest.mark.parametrize(
    ("offset", "scale", "message"),
    [
        ([0.0, 0.0], [1.0, 0.0], "scale of channel 1 = 0.0"),
        ([0.0, 0.0], [-2.0, 1.0], "scale of channel 0 = -2.0"),
        ([0.0, 0.0, 0.0], [1.0, 1.0, math.nan], "scale of channel 2 = nan"),
        ([0.0, math.inf], [1.0, 1.0], "offset of channel 1 = inf"),
        ([0.0, 0.0], [1.0], r"scale shape \(1,\)"),
        ([], [], r"offset shape \(0,\)"),
        ([[0.0]], [[1.0]], r"offset shape \(1, 1\)"),
    ],
)
def test_bad_normaliser_is_refused(offset: object, scale: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Normaliser(np.array(offset), np.array(scale))


def test_apply_checks_shapes() -> None:
    norm = Normaliser.identity(3)
    with pytest.raises(ConfigError, match=r"input shape \(4, 2\)"):
        norm.apply(np.zeros((4, 2)))
    with pytest.raises(ConfigError, match=r"out shape \(4, 3\)"):
        norm.apply(np.zeros((5, 3)), out=np.zeros((4, 3)))
    with pytest.raises(ConfigError, match=r"input shape \(2, 2, 3\)"):
        norm.invert(np.zeros((2, 2, 3)))


# --- helpers -------------------------------------------------------------------------------


def test_railed_mask_from_bits_by_hand() -> None:
    mask = railed_mask_from_bits([0b101, 0, 0b010, 0b1000_0000], 3)
    expected = [[True, False, True], [False, False, False], [False, True, False]]
    np.testing.assert_array_equal(mask, [*expected, [False, False, False]])


def test_moving_rms_by_hand() -> None:
    x = np.array([[3.0, 1.0], [4.0, -1.0], [0.0, 1.0]])
    expected = [[math.sqrt(12.5), 1.0], [math.sqrt(8.0), 1.0]]
    np.testing.assert_allclose(moving_rms(x, 2), expected)
    np.testing.assert_allclose(moving_rms(x, 3), [[math.sqrt(25 / 3), 1.0]])


# --- compute_calibration --------------------------------------------------------------------


def session(
    n_channels: int = 4, seed: int = 0, amplitudes_uv: tuple[float, ...] = (50, 100, 200, 400)
) -> tuple[np.ndarray, np.ndarray]:
    """Rest: 3 µV Gaussian noise about +5 µV; effort: a 50 Hz sine of a given amplitude."""
    rng = np.random.default_rng(seed)
    rest = rng.normal(5.0, 3.0, (3000, n_channels))
    t_s = np.arange(2000) / FS_HZ
    effort = 5.0 + np.sin(2 * np.pi * 50 * t_s)[:, None] * np.array(amplitudes_uv)[None, :]
    return rest, effort


def test_calibration_of_known_signals() -> None:
    rest, effort = session()
    cal = compute_calibration(rest, effort, FS_HZ)
    # Offset = rest median (5 µV); noise floor = 3 µV; a sine's RMS over whole periods
    # (100 ms = 5 periods of 50 Hz) is amplitude / sqrt 2 everywhere in the envelope.
    np.testing.assert_allclose(cal.normaliser.offset, 5.0, atol=0.2)
    np.testing.assert_allclose(cal.noise_floor_uv, 3.0, rtol=0.05)
    expected_scale = np.array([50.0, 100.0, 200.0, 400.0]) / math.sqrt(2)
    np.testing.assert_allclose(cal.effort_level_uv, expected_scale, rtol=0.01)
    np.testing.assert_array_equal(cal.normaliser.scale, cal.effort_level_uv)
    np.testing.assert_allclose(cal.effort_to_rest, cal.effort_level_uv / cal.noise_floor_uv)
    # Normalised effort has unit RMS on every channel.
    normalised = cal.normaliser.apply(effort)
    np.testing.assert_allclose(np.sqrt(np.mean(normalised**2, axis=0)), 1.0, rtol=0.02)


def test_scale_is_a_high_percentile_of_the_envelope() -> None:
    rest, _ = session(n_channels=1)
    # 1 s at 10 µV then 1 s at 100 µV amplitude: the 95th percentile sits on the strong half.
    t_s = np.arange(2000) / FS_HZ
    amplitude_uv = np.where(t_s < 1.0, 10.0, 100.0)
    effort = 5.0 + (amplitude_uv * np.sin(2 * np.pi * 50 * t_s))[:, None]
    cal = compute_calibration(rest, effort, FS_HZ)
    assert cal.effort_level_uv[0] == pytest.approx(100.0 / math.sqrt(2), rel=0.05)
    low = compute_calibration(rest, effort, FS_HZ, effort_percentile=25.0)
    assert low.effort_level_uv[0] == pytest.approx(10.0 / math.sqrt(2), rel=0.1)


def test_non_finite_channel_is_named() -> None:
    rest, effort = session()
    effort[700, 2] = np.nan
    effort[900, 2] = np.inf
    with pytest.raises(CalibrationError, match=r"channel 2: 2 non-finite samples in the effort"):
        compute_calibration(rest, effort, FS_HZ)
    rest2, effort2 = session()
    rest2[10, 1] = np.nan
    with pytest.raises(CalibrationError, match=r"channel 1: 1 non-finite .* rest .*sample 10"):
        compute_calibration(rest2, effort2, FS_HZ)


def test_flat_channel_is_named() -> None:
    rest, effort = session()
    effort[:, 1] = 5.0  # constant at the offset: nothing on this electrode
    with pytest.raises(CalibrationError, match=r"channel 1: flat during effort"):
        compute_calibration(rest, effort, FS_HZ)
    # Flat means below FLAT_SD_UV even with the contraction check disabled.
    effort[:, 1] = 5.0 + FLAT_SD_UV / 10
    with pytest.raises(CalibrationError, match="channel 1: flat"):
        compute_calibration(rest, effort, FS_HZ, min_effort_to_rest=0.0)


def test_channel_without_contraction_is_named() -> None:
    rest, effort = session(amplitudes_uv=(50, 5, 200, 400))  # 5/√2 µV vs 3 µV noise
    with pytest.raises(CalibrationError, match=r"channel 1: .*no contraction seen"):
        compute_calibration(rest, effort, FS_HZ)
    cal = compute_calibration(rest, effort, FS_HZ, min_effort_to_rest=1.0)
    assert cal.effort_to_rest[1] == pytest.approx(5 / math.sqrt(2) / 3.0, rel=0.05)


def test_railed_channel_is_named() -> None:
    rest, effort = session()
    railed = np.zeros(effort.shape, dtype=bool)
    railed[:100, 3] = True  # 5 % of the effort samples
    with pytest.raises(CalibrationError, match=r"channel 3: railed in 5\.0 % of the effort"):
        compute_calibration(rest, effort, FS_HZ, effort_railed=railed)
    # Under the limit passes.
    railed[:, 3] = False
    railed[:10, 3] = True
    compute_calibration(rest, effort, FS_HZ, effort_railed=railed)
    rest_railed = railed_mask_from_bits(np.full(rest.shape[0], 0b0001), 4)
    with pytest.raises(CalibrationError, match=r"channel 0: railed in 100\.0 % of the rest"):
        compute_calibration(rest, effort, FS_HZ, rest_railed=rest_railed)


def test_bad_recordings_are_refused() -> None:
    rest, effort = session()
    with pytest.raises(CalibrationError, match=r"effort recording has 3 channels, rest has 4"):
        compute_calibration(rest, effort[:, :3], FS_HZ)
    with pytest.raises(CalibrationError, match=r"rest recording has 50 samples, need .* 100"):
        compute_calibration(rest[:50], effort, FS_HZ)
    with pytest.raises(CalibrationError, match=r"rest recording shape \(3000,\)"):
        compute_calibration(rest[:, 0], effort, FS_HZ)
    with pytest.raises(CalibrationError, match=r"railed mask shape \(5, 4\)"):
        compute_calibration(rest, effort, FS_HZ, effort_railed=np.zeros((5, 4), dtype=bool))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"envelope_s": 0.0}, "envelope_s"),
        ({"effort_percentile": 0.0}, "effort_percentile"),
        ({"effort_percentile": 101.0}, "effort_percentile"),
        ({"min_effort_to_rest": -1.0}, "min_effort_to_rest"),
        ({"max_railed_fraction": 1.5}, "max_railed_fraction"),
    ],
)
def test_bad_tuning_is_a_config_error(kwargs: dict[str, float], name: str) -> None:
    rest, effort = session()
    with pytest.raises(ConfigError, match=name):
        compute_calibration(rest, effort, FS_HZ, **kwargs)
    with pytest.raises(ConfigError, match="sample_rate_hz"):
        compute_calibration(rest, effort, 0.0)


def test_calibration_of_filtered_synthetic_emg() -> None:
    fs_hz = 1000.0
    rest_raw = SyntheticEmg(ConstantPose.from_pose("rest"), seed=3).generate(2000, fs_hz)
    effort_raw = SyntheticEmg(ConstantPose.from_pose("power"), seed=3).generate(2000, fs_hz)
    filt = StreamingFilter(FilterSpec(), fs_hz, 8)
    rest = filt.process(rest_raw)[500:]
    filt.reset()
    effort = filt.process(effort_raw)[500:]
    cal = compute_calibration(rest, effort, fs_hz)
    assert np.all(cal.effort_to_rest > 2.0)
    normalised_rms = np.sqrt(np.mean(cal.normaliser.apply(effort) ** 2, axis=0))
    assert np.all((normalised_rms > 0.5) & (normalised_rms < 1.1))
    # At rest the wearer's signal stays well below the effort scale.
    assert np.all(np.sqrt(np.mean(cal.normaliser.apply(rest) ** 2, axis=0)) < 0.5)
