"""Tests of emgd.dsp.window: the seconds→samples rule, window placement, views, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.dsp.window import Windower, WindowSpec, seconds_to_samples, sliding_windows
from emgd.errors import ConfigError


@pytest.mark.parametrize(
    ("duration_s", "fs_hz", "expected"),
    [
        (0.2, 1000.0, 200),
        (0.02, 1000.0, 20),
        (0.0124, 1000.0, 12),  # 12.4 → down
        (0.0126, 1000.0, 13),  # 12.6 → up
        (0.0125, 1000.0, 13),  # exact half → up
        (0.0145, 1000.0, 15),  # 14.499999999999998 in floats, meant as 14.5 → up
        (0.01, 250.0, 3),  # 2.5 → up
        (0.02, 250.0, 5),
        (0.05, 16000.0, 800),
        (0.001, 300.0, 0),  # 0.3 → 0 (refused by WindowSpec)
    ],
)
def test_seconds_to_samples_rule(duration_s: float, fs_hz: float, expected: int) -> None:
    assert seconds_to_samples(duration_s, fs_hz) == expected


def test_spec_in_samples() -> None:
    spec = WindowSpec(window_s=0.25, hop_s=0.02)
    assert (spec.n_window(1000.0), spec.n_hop(1000.0)) == (250, 20)
    assert (spec.n_window(500.0), spec.n_hop(500.0)) == (125, 10)
    assert (spec.n_window(250.0), spec.n_hop(250.0)) == (63, 5)  # 62.5 → 63


@pytest.mark.parametrize(
    ("window_s", "hop_s", "message"),
    [
        (0.01, 0.02, r"window_s = 0\.01: must be >= hop_s = 0\.02"),
        (0.0, 0.0, r"WindowSpec\.window_s = 0\.0"),
        (0.2, -0.02, r"WindowSpec\.hop_s = -0\.02"),
        (float("nan"), 0.02, r"WindowSpec\.window_s = nan"),
        (0.2, float("inf"), r"WindowSpec\.hop_s = inf"),
    ],
)
def test_bad_spec(window_s: float, hop_s: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WindowSpec(window_s, hop_s)


def test_hop_rounding_to_zero_samples_is_refused() -> None:
    spec = WindowSpec(window_s=0.2, hop_s=0.0004)
    with pytest.raises(ConfigError, match=r"hop_s = 0\.0004: is 0\.4 samples .* 1000"):
        spec.n_hop(1000.0)
    with pytest.raises(ConfigError, match="sample_rate_hz"):
        spec.n_window(0.0)


def test_windower_by_hand() -> None:
    # window 4 samples, hop 2: windows end at 3, 5, 7, 9.
    windower = Windower(WindowSpec(0.004, 0.002), 1000.0, 1)
    signal = np.arange(11, dtype=np.float64)[:, None]
    got = []
    for a, b in [(0, 3), (3, 4), (4, 9), (9, 10), (10, 11)]:
        got += [(w.newest_index, w.frames[:, 0].tolist()) for w in windower.push(signal[a:b])]
    assert got == [
        (3, [0.0, 1.0, 2.0, 3.0]),
        (5, [2.0, 3.0, 4.0, 5.0]),
        (7, [4.0, 5.0, 6.0, 7.0]),
        (9, [6.0, 7.0, 8.0, 9.0]),
    ]
    assert windower.frames_seen == 11
    assert windower.next_newest_index() == 11


def test_windows_are_read_only_views_into_the_ring() -> None:
    windower = Windower(WindowSpec(0.01, 0.005), 1000.0, 2)  # 10 / 5 samples
    windows = windower.push(np.ones((10, 2)))
    windows += windower.push(np.ones((5, 2)))
    assert [w.newest_index for w in windows] == [9, 14]
    for w in windows:
        assert w.frames.shape == (10, 2)
        assert w.frames.dtype == np.float32
        assert not w.frames.flags.owndata
        assert not w.frames.flags.writeable
    assert np.shares_memory(windows[0].frames, windows[1].frames)  # the same ring rows


def test_block_longer_than_max_block_is_served_from_one_copy() -> None:
    windower = Windower(WindowSpec(0.004, 0.002), 1000.0, 1, max_block_frames=3)
    windower.push(np.arange(3.0)[:, None])
    windows = windower.push(np.arange(3.0, 10.0)[:, None])  # 7 frames > 3
    assert [w.newest_index for w in windows] == [3, 5, 7, 9]
    assert [w.frames[0, 0] for w in windows] == [0.0, 2.0, 4.0, 6.0]
    assert all(w.frames.base is windows[0].frames.base for w in windows)
    assert windows[0].frames.base is not None
    assert not windows[0].frames.flags.writeable
    # The ring still holds the stream: the next small block continues correctly.
    (nxt,) = windower.push(np.arange(10.0, 12.0)[:, None])
    assert nxt.newest_index == 11
    np.testing.assert_array_equal(nxt.frames[:, 0], [8.0, 9.0, 10.0, 11.0])


@settings(max_examples=50, deadline=None)
@given(
    n_window=st.integers(min_value=1, max_value=40),
    hop_fraction=st.floats(min_value=0.01, max_value=1.0),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=20),
    max_block=st.integers(min_value=1, max_value=50),
)
def test_streamed_windows_equal_sliding_windows_of_the_whole(
    n_window: int, hop_fraction: float, cuts: list[int], max_block: int
) -> None:
    fs_hz = 1000.0
    n_hop = max(1, int(n_window * hop_fraction))
    spec = WindowSpec(n_window / fs_hz, n_hop / fs_hz)
    assert (spec.n_window(fs_hz), spec.n_hop(fs_hz)) == (n_window, n_hop)
    rng = np.random.default_rng(len(cuts))
    signal = rng.normal(size=(300, 3)).astype(np.float32)
    windower = Windower(spec, fs_hz, 3, max_block_frames=max_block)
    streamed: list[tuple[int, np.ndarray]] = []
    bounds = [0, *sorted(cuts), 300]
    for a, b in itertools.pairwise(bounds):
        streamed += [(w.newest_index, w.frames.copy()) for w in windower.push(signal[a:b])]
    whole, newest = sliding_windows(signal, n_window, n_hop)
    assert [i for i, _ in streamed] == newest.tolist()
    for (_, frames), expected in zip(streamed, whole, strict=True):
        np.testing.assert_array_equal(frames, expected)


def test_sliding_windows_by_hand() -> None:
    x = np.arange(14.0).reshape(7, 2)
    windows, newest = sliding_windows(x, 3, 2)
    assert windows.shape == (3, 3, 2)
    np.testing.assert_array_equal(newest, [2, 4, 6])
    np.testing.assert_array_equal(windows[1], [[4.0, 5.0], [6.0, 7.0], [8.0, 9.0]])
    assert np.shares_memory(windows, x)
    assert not windows.flags.writeable


def test_sliding_windows_of_a_short_recording_is_empty() -> None:
    windows, newest = sliding_windows(np.zeros((4, 3)), 5, 1)
    assert windows.shape == (0, 5, 3)
    assert newest.shape == (0,)


def test_sliding_windows_refuses_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="n_window = 2: must be >= n_hop = 3"):
        sliding_windows(np.zeros((10, 1)), 2, 3)
    with pytest.raises(ConfigError, match="n_hop = 0"):
        sliding_windows(np.zeros((10, 1)), 2, 0)
    with pytest.raises(ConfigError, match=r"samples shape \(10,\)"):
        sliding_windows(np.zeros(10), 2, 1)


def test_windower_refuses_bad_blocks_and_arguments() -> None:
    windower = Windower(WindowSpec(0.01, 0.005), 1000.0, 2)
    with pytest.raises(ConfigError, match=r"block shape \(4, 3\)"):
        windower.push(np.zeros((4, 3)))
    with pytest.raises(ConfigError, match="max_block_frames = 0"):
        Windower(WindowSpec(0.01, 0.005), 1000.0, 2, max_block_frames=0)
    with pytest.raises(ConfigError, match="n_channels"):
        Windower(WindowSpec(0.01, 0.005), 1000.0, 0)
