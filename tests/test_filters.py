"""Tests of emgd.dsp.filters: design, streaming state, chunk invariance, responses, errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from emgd.dsp.filters import (
    FilterSpec,
    StreamingFilter,
    design_sos,
    effective_band_hz,
    notch_frequencies_hz,
)
from emgd.errors import ConfigError
from emgd.sim.synthetic_emg import SyntheticEmg
from emgd.sim.trajectory import ConstantPose

SAMPLE_RATES_HZ = (500.0, 1000.0, 2000.0, 4000.0)


def sine(freq_hz: float, fs_hz: float, duration_s: float, n_channels: int = 1) -> np.ndarray:
    t_s = np.arange(round(duration_s * fs_hz)) / fs_hz
    return np.repeat(np.sin(2 * np.pi * freq_hz * t_s)[:, None], n_channels, axis=1)


def steady_gain_db(spec: FilterSpec, fs_hz: float, freq_hz: float) -> float:
    """Gain of the streaming filter for a sine, measured on the last second of 4 s."""
    x = sine(freq_hz, fs_hz, 4.0)
    y = StreamingFilter(spec, fs_hz, 1).process(x)
    tail = round(fs_hz)
    return 20 * math.log10(np.sqrt(np.mean(y[-tail:] ** 2)) / np.sqrt(np.mean(x[-tail:] ** 2)))


# --- design ------------------------------------------------------------------------------


def test_default_design_is_four_band_sections_and_one_notch() -> None:
    sos = design_sos(FilterSpec(), 1000.0)
    assert sos.shape == (5, 6)
    assert sos.dtype == np.float64
    np.testing.assert_array_equal(sos[:, 3], 1.0)  # a0 normalised


def test_notch_section_matches_textbook_formula() -> None:
    # Second-order notch at w0 with bandwidth w0/Q (bilinear, prewarped):
    # b = g [1, -2 cos w0, 1], a = [1, -2 g cos w0, 2 g - 1], g = 1 / (1 + tan(bw / 2)).
    fs_hz, f0_hz, q = 1000.0, 50.0, 30.0
    w0 = 2 * math.pi * f0_hz / fs_hz
    g = 1 / (1 + math.tan(w0 / q / 2))
    expected = [g, -2 * g * math.cos(w0), g, 1.0, -2 * g * math.cos(w0), 2 * g - 1]
    sos = design_sos(FilterSpec(mains_hz=50.0, notch_q=q), fs_hz)
    np.testing.assert_allclose(sos[-1], expected, rtol=1e-12)


def test_no_notch_when_mains_is_zero() -> None:
    assert design_sos(FilterSpec(mains_hz=0.0, order=3), 1000.0).shape == (3, 6)
    assert notch_frequencies_hz(FilterSpec(mains_hz=0.0), 1000.0) == ()


def test_high_edge_is_clipped_below_nyquist() -> None:
    assert effective_band_hz(FilterSpec(), 500.0) == (20.0, 225.0)
    assert effective_band_hz(FilterSpec(), 1000.0) == (20.0, 450.0)
    assert effective_band_hz(FilterSpec(high_hz=300.0), 4000.0) == (20.0, 300.0)


def test_harmonics_are_listed_below_nyquist() -> None:
    spec = FilterSpec(mains_hz=60.0, notch_harmonics=True)
    # Nyquist 250 Hz; 0.95 × 250 = 237.5: 240 Hz is left out.
    assert notch_frequencies_hz(spec, 500.0) == (60.0, 120.0, 180.0)
    spec50 = FilterSpec(mains_hz=50.0, notch_harmonics=True)
    assert notch_frequencies_hz(spec50, 1000.0) == tuple(50.0 * k for k in range(1, 10))
    assert design_sos(spec50, 1000.0).shape == (4 + 9, 6)


# --- streaming state ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=1200), max_size=12),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_chunked_filtering_equals_whole_signal(cuts: list[int], seed: int) -> None:
    fs_hz, n_samples, n_channels = 1000.0, 1200, 3
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 50.0, (n_samples, n_channels)) + rng.normal(0, 5000, n_channels)
    spec = FilterSpec(notch_harmonics=True)
    sos = design_sos(spec, fs_hz)
    # Reference straight from scipy on the whole signal, state primed from the first sample.
    zi = signal.sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]
    expected, _ = signal.sosfilt(sos, x, axis=0, zi=zi)

    filt = StreamingFilter(spec, fs_hz, n_channels)
    bounds = [0, *sorted(cuts), n_samples]
    pieces = [filt.process(x[a:b]) for a, b in itertools.pairwise(bounds)]
    got = np.concatenate(pieces, axis=0)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * 5000)


def test_channels_are_filtered_independently() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 3))
    joint = StreamingFilter(FilterSpec(), 1000.0, 3).process(x)
    for c in range(3):
        alone = StreamingFilter(FilterSpec(), 1000.0, 1).process(x[:, c : c + 1])
        np.testing.assert_allclose(joint[:, c : c + 1], alone, rtol=0, atol=1e-12)


def test_first_sample_priming_removes_dc_without_a_step() -> None:
    fs_hz = 1000.0
    offset_uv = np.array([20_000.0, -15_000.0])
    x = sine(100.0, fs_hz, 1.0, 2) * 10.0 + offset_uv
    primed = StreamingFilter(FilterSpec(), fs_hz, 2).process(x)
    # Only the 10 µV sine remains, from the first sample on (no offset transient).
    assert np.max(np.abs(primed[:100])) < 15.0
    assert np.max(np.abs(primed[-500:])) == pytest.approx(10.0, rel=0.05)
    # Starting from rest instead shows the step the priming avoids.
    at_rest = StreamingFilter(FilterSpec(), fs_hz, 2)
    at_rest.reset(np.zeros(2))
    assert np.max(np.abs(at_rest.process(x)[:100])) > 1000.0


def test_reset_initial_sets_scaled_steady_state() -> None:
    assert not StreamingFilter(FilterSpec(), 1000.0, 2).primed
    filt = StreamingFilter(FilterSpec(), 1000.0, 2)
    filt.reset([2.0, -3.0])
    assert filt.primed
    unit = signal.sosfilt_zi(filt.sos)
    np.testing.assert_allclose(filt.state[:, :, 0], 2.0 * unit)
    np.testing.assert_allclose(filt.state[:, :, 1], -3.0 * unit)
    # A constant input at the primed level gives (near) zero output: DC is removed.
    out = filt.process(np.tile([2.0, -3.0], (50, 1)))
    assert np.max(np.abs(out)) < 1e-9


def test_reset_none_rearms_priming_from_next_block() -> None:
    filt = StreamingFilter(FilterSpec(), 1000.0, 1)
    filt.process(np.full((100, 1), 7.0))
    filt.reset()
    assert not filt.primed
    out = filt.process(np.full((100, 1), -300.0))
    assert np.max(np.abs(out)) < 1e-9


def test_state_round_trip_resumes_exactly() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 2))
    a = StreamingFilter(FilterSpec(), 1000.0, 2)
    a.process(x[:150])
    saved = a.state
    assert saved.shape == (a.n_sections, 2, 2)
    rest_a = a.process(x[150:])
    b = StreamingFilter(FilterSpec(), 1000.0, 2)
    b.state = saved
    assert b.primed
    np.testing.assert_array_equal(b.process(x[150:]), rest_a)
    saved[:] = 0.0  # the getter returned a copy
    assert np.any(a.state != 0.0)


def test_state_setter_refuses_wrong_shape_and_nan() -> None:
    filt = StreamingFilter(FilterSpec(), 1000.0, 2)
    with pytest.raises(ConfigError, match=r"state shape \(5, 2, 3\)"):
        filt.state = np.zeros((5, 2, 3))
    bad = np.zeros((5, 2, 2))
    bad[1, 0, 1] = np.nan
    with pytest.raises(ConfigError, match="non-finite"):
        filt.state = bad


def test_non_finite_block_is_refused_and_state_kept() -> None:
    filt = StreamingFilter(FilterSpec(), 1000.0, 3)
    filt.process(np.ones((10, 3)))
    before = filt.state
    block = np.zeros((5, 3))
    block[3, 2] = np.inf
    with pytest.raises(ValueError, match="row 3, channel 2"):
        filt.process(block)
    np.testing.assert_array_equal(filt.state, before)


def test_block_shape_is_checked_and_empty_block_is_a_no_op() -> None:
    filt = StreamingFilter(FilterSpec(), 1000.0, 4)
    with pytest.raises(ConfigError, match=r"\(10, 3\).*\(n_samples, 4\)"):
        filt.process(np.zeros((10, 3)))
    with pytest.raises(ConfigError, match="block shape"):
        filt.process(np.zeros(4))
    assert filt.process(np.zeros((0, 4))).shape == (0, 4)
    assert not filt.primed


def test_float32_and_int_blocks_are_accepted() -> None:
    x = np.arange(40, dtype=np.int32).reshape(20, 2)
    a = StreamingFilter(FilterSpec(), 1000.0, 2).process(x)
    b = StreamingFilter(FilterSpec(), 1000.0, 2).process(x.astype(np.float32))
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, b)


# --- frequency response, measured through the streaming filter ---------------------------


@pytest.mark.parametrize("fs_hz", SAMPLE_RATES_HZ)
@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_stopbands_and_passband(fs_hz: float, mains_hz: float) -> None:
    spec = FilterSpec(mains_hz=mains_hz)
    assert steady_gain_db(spec, fs_hz, 5.0) <= -30.0
    assert steady_gain_db(spec, fs_hz, mains_hz) <= -30.0
    assert abs(steady_gain_db(spec, fs_hz, 100.0)) < 0.5
    assert abs(steady_gain_db(spec, fs_hz, 150.0)) < 0.5


def test_high_edge_clipped_at_500_hz_attenuates_above_it() -> None:
    # At fs = 500 Hz the low-pass edge is 225 Hz: 240 Hz is well past it.
    assert steady_gain_db(FilterSpec(mains_hz=0.0), 500.0, 240.0) < -3.0
    assert steady_gain_db(FilterSpec(mains_hz=0.0), 1000.0, 240.0) > -0.5


def test_harmonic_notches_only_when_asked() -> None:
    assert steady_gain_db(FilterSpec(notch_harmonics=True), 1000.0, 150.0) <= -30.0
    assert abs(steady_gain_db(FilterSpec(notch_harmonics=False), 1000.0, 150.0)) < 0.5


def test_mains_off_passes_mains() -> None:
    assert abs(steady_gain_db(FilterSpec(mains_hz=0.0), 1000.0, 50.0)) < 0.5


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_mains_hum_of_synthetic_emg_is_removed(mains_hz: float) -> None:
    fs_hz = 1000.0
    source = SyntheticEmg(ConstantPose.from_pose("rest"), seed=5, mains_hz=mains_hz)
    raw = source.generate(3000, fs_hz)
    filtered = StreamingFilter(FilterSpec(mains_hz=mains_hz), fs_hz, 8).process(raw)

    def mains_to_median(x: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(x, axis=0))  # 1 s: bins are 1 Hz apart
        return float(np.mean(spectrum[round(mains_hz)] / np.median(spectrum, axis=0)))

    assert mains_to_median(raw[-1000:]) > 20.0
    assert mains_to_median(filtered[-1000:]) < 3.0


# --- spec errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"low_hz": -5.0}, "low_hz"),
        ({"low_hz": float("nan")}, "low_hz"),
        ({"high_hz": 0.0}, "high_hz"),
        ({"low_hz": 100.0, "high_hz": 80.0}, "high_hz"),
        ({"order": 0}, "order"),
        ({"order": 9}, "order"),
        ({"order": True}, "order"),
        ({"order": 2.0}, "order"),
        ({"mains_hz": 55.0}, "mains_hz"),
        ({"mains_hz": -50.0}, "mains_hz"),
        ({"notch_q": 0.0}, "notch_q"),
        ({"notch_q": float("inf")}, "notch_q"),
        ({"notch_harmonics": 1}, "notch_harmonics"),
    ],
)
def test_bad_spec_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"FilterSpec\.{field} = "):
        FilterSpec(**kwargs)  # type: ignore[arg-type]


def test_sample_rate_too_low_for_band_is_refused() -> None:
    # 0.45 × 40 Hz = 18 Hz, below the 20 Hz low edge.
    with pytest.raises(ConfigError, match=r"low_hz = 20\.0.*18 Hz.*sample_rate_hz = 40"):
        design_sos(FilterSpec(mains_hz=0.0), 40.0)


def test_mains_at_nyquist_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"mains_hz = 50.*sample_rate_hz = 100"):
        design_sos(FilterSpec(low_hz=5.0), 100.0)


@pytest.mark.parametrize("fs", [0.0, -1000.0, float("nan"), True])
def test_bad_sample_rate_is_refused(fs: float) -> None:
    with pytest.raises(ConfigError, match="sample_rate_hz"):
        StreamingFilter(FilterSpec(), fs, 2)


@pytest.mark.parametrize("n_channels", [0, -1, True, 2.0])
def test_bad_channel_count_is_refused(n_channels: int) -> None:
    with pytest.raises(ConfigError, match="n_channels"):
        StreamingFilter(FilterSpec(), 1000.0, n_channels)
