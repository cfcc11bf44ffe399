"""Tests of streaming decimation: block-size independence, passband, stopband, phase."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.dsp.decimate import StreamingDecimator, decimation_factor
from emgd.errors import ConfigError

OUT_HZ = 1000.0


def sine(freq_hz: float, rate_hz: float, n: int, amplitude: float = 1.0) -> npt.NDArray[np.float64]:
    t = np.arange(n) / rate_hz
    return amplitude * np.sin(2 * np.pi * freq_hz * t)[:, np.newaxis]


def gain_db(freq_hz: float, factor: int) -> float:
    """Steady-state output amplitude of a unit sine (decimated), in dB."""
    rate_hz = OUT_HZ * factor
    x = sine(freq_hz, rate_hz, int(rate_hz))  # one second
    y = StreamingDecimator(factor, 1).process(x)[len(x) // factor // 2 :, 0]
    # Fit a sinusoid at the aliased output frequency (least squares), take its amplitude.
    alias_hz = abs((freq_hz + OUT_HZ / 2) % OUT_HZ - OUT_HZ / 2)
    t = (np.arange(len(y)) + len(x) // factor // 2) / OUT_HZ
    basis = np.stack([np.cos(2 * np.pi * alias_hz * t), np.sin(2 * np.pi * alias_hz * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return float(20 * np.log10(max(np.hypot(*coef), 1e-12)))


@pytest.mark.parametrize("factor", [2, 4, 16])
def test_the_emg_band_passes_within_the_ripple(factor: int) -> None:
    for freq_hz in (20.0, 150.0, 440.0):
        assert abs(gain_db(freq_hz, factor)) < 0.15, freq_hz


@pytest.mark.parametrize("factor", [2, 4, 16])
def test_what_would_fold_into_the_band_is_60_db_down(factor: int) -> None:
    # 700 Hz at 2-16 kHz would appear at 300 Hz after decimation to 1 kHz.
    for freq_hz in (520.0, 700.0, 1300.0):
        assert gain_db(freq_hz, factor) < -59.0, freq_hz


def test_a_constant_offset_passes_without_a_transient() -> None:
    x = np.full((400, 2), [250_000.0, -3.0])
    y = StreamingDecimator(4, 2).process(x)
    np.testing.assert_allclose(y, np.full((100, 2), [250_000.0, -3.0]), rtol=1e-9)


def test_factor_one_passes_blocks_through() -> None:
    x = np.arange(12.0).reshape(6, 2)
    np.testing.assert_array_equal(StreamingDecimator(1, 2).process(x), x)


def test_output_sample_k_is_input_sample_k_times_factor() -> None:
    # A slow ramp is inside the passband: after the filter's delay, the decimated ramp
    # advances by ``factor`` input steps per output sample.
    x = np.arange(4000.0)[:, np.newaxis]
    y = StreamingDecimator(4, 1).process(x)[:, 0]
    assert len(y) == 1000
    np.testing.assert_allclose(np.diff(y[500:]), 4.0, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 97), min_size=1, max_size=15), factor=st.sampled_from([2, 3, 8])
)
def test_block_by_block_equals_one_piece(cuts: list[int], factor: int) -> None:
    rng = np.random.default_rng(len(cuts) * 10 + factor)
    x = rng.standard_normal((600, 3)) * 100 + 40
    whole = StreamingDecimator(factor, 3).process(x)
    dec = StreamingDecimator(factor, 3)
    parts, start = [], 0
    for stop in [*np.cumsum(cuts).clip(0, len(x)).tolist(), len(x)]:
        parts.append(dec.process(x[start:stop]))
        start = max(start, stop)
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-12, atol=1e-9)
    assert len(whole) == -(-len(x) // factor)


def test_reset_starts_a_new_stream() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((101, 2))
    dec = StreamingDecimator(4, 2)
    first = dec.process(x)
    dec.process(rng.standard_normal((7, 2)))
    dec.reset()
    np.testing.assert_array_equal(dec.process(x), first)


def test_bad_blocks_and_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"block shape \(5, 3\): expected \(n_samples, 2\)"):
        StreamingDecimator(2, 2).process(np.zeros((5, 3)))
    with pytest.raises(ConfigError, match="factor = 0"):
        StreamingDecimator(0, 2)
    with pytest.raises(ConfigError, match="n_channels = 0"):
        StreamingDecimator(2, 0)


@pytest.mark.parametrize(
    ("input_hz", "expected"), [(1000.0, 1), (2000.0, 2), (4000.0, 4), (16000.0, 16)]
)
def test_decimation_factor_of_whole_multiples(input_hz: float, expected: int) -> None:
    assert decimation_factor(input_hz, OUT_HZ, "adc") == expected


@pytest.mark.parametrize(
    ("input_hz", "message"),
    [
        (1500.0, "adc: 1500 Hz is not a whole multiple of the model's 1000 Hz"),
        (500.0, "adc: 500 Hz is not a whole multiple of the model's 1000 Hz"),
        (128000.0, "adc: 128000 Hz is 128x the model's 1000 Hz; at most 64x"),
    ],
)
def test_decimation_factor_refuses_other_rates(input_hz: float, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        decimation_factor(input_hz, OUT_HZ, "adc")
    assert str(info.value) == message
