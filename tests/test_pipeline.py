"""Tests of the inference pipeline: the windows it feeds, the history it feeds back."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.dsp.filters import FilterSpec, StreamingFilter
from emgd.dsp.normalise import Normaliser
from emgd.dsp.window import sliding_windows
from emgd.errors import ConfigError, ModelError
from emgd.model.contract import PreprocessContract, default_channel_names
from emgd.pipeline import Hop, InferencePipeline, replay_closed_loop

FS_HZ = 1000.0
N_CH = 3
WINDOW = 50
HOP = 20
REST = np.full(5, 30.0)


def contract() -> PreprocessContract:
    return PreprocessContract(
        sample_rate_hz=FS_HZ,
        n_channels=N_CH,
        channel_names=default_channel_names(N_CH),
        filter_spec=FilterSpec(mains_hz=50.0),
        window_samples=WINDOW,
        hop_samples=HOP,
    )


NORMALISER = Normaliser(np.array([0.5, -1.0, 2.0]), np.array([2.0, 4.0, 0.5]))


class RecordingRunner:
    """Remembers every window and history it was given; answers ``answer(history)``."""

    def __init__(self, answer: Any = None) -> None:
        self.windows: list[npt.NDArray[Any]] = []
        self.histories: list[npt.NDArray[np.float64]] = []
        self.answer = answer

    def infer(self, window: npt.NDArray[Any], history_deg: npt.NDArray[np.float64]) -> Any:
        self.windows.append(np.array(window, copy=True))
        self.histories.append(np.array(history_deg, copy=True))
        if self.answer is None:
            return np.full(5, 90.0)
        return self.answer(history_deg)


def stream(n: int, seed: int = 0) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    x: npt.NDArray[np.float64] = 50.0 * rng.standard_normal((n, N_CH))
    x += np.array([100.0, -40.0, 5.0])
    return x


def expected_windows(x: npt.NDArray[np.float64]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Filter the whole stream in one call, normalise by hand, cut with sliding_windows."""
    whole = StreamingFilter(FilterSpec(mains_hz=50.0), FS_HZ, N_CH)
    whole.reset(None)
    filtered = whole.process(x)
    normalised = (filtered - NORMALISER.offset) / NORMALISER.scale
    return sliding_windows(normalised.astype(np.float32), WINDOW, HOP)


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 400), min_size=1, max_size=12))
def test_windows_equal_sliding_windows_of_the_filtered_stream(cuts: list[int]) -> None:
    x = stream(600, seed=len(cuts))
    runner = RecordingRunner()
    pipeline = InferencePipeline(contract(), NORMALISER, runner)
    edges = np.unique(np.clip(np.cumsum(cuts), 0, x.shape[0]))
    hops: list[Hop] = []
    start = 0
    for stop in [*edges.tolist(), x.shape[0]]:
        hops += pipeline.push(x[start:stop])
        start = stop
    windows, newest = expected_windows(x)
    assert [h.newest_index for h in hops] == newest.tolist()
    assert [h.newest_index for h in hops][:3] == [49, 69, 89]
    assert len(runner.windows) == windows.shape[0]
    np.testing.assert_allclose(np.stack(runner.windows), windows, rtol=1e-5, atol=1e-5)


def test_closed_loop_feeds_back_its_own_outputs() -> None:
    # A runner that answers A(n) + 10°: in closed loop the output climbs by 10° per hop
    # from the rest pose and stops at the 180° clamp.
    runner = RecordingRunner(answer=lambda h: h[:5] + 10.0)
    pipeline = InferencePipeline(contract(), NORMALISER, runner)
    replay = replay_closed_loop(pipeline, stream(49 + 20 * 19 + 1))
    assert replay.newest_index.tolist() == [49 + 20 * k for k in range(20)]
    expected = [min(40.0 + 10.0 * k, 180.0) for k in range(20)]
    np.testing.assert_array_equal(replay.commanded_deg[:, 0], expected)
    np.testing.assert_array_equal(
        replay.commanded_deg, np.repeat(replay.commanded_deg[:, :1], 5, 1)
    )
    # raw output is A(n) + 10 without the clamp: 190 once the command has reached 180
    assert replay.angles_deg[-1, 0] == 190.0
    # the history seen at each hop: [A(n), A(n-1)], rest before the first hop
    np.testing.assert_array_equal(runner.histories[0], np.full(10, 30.0))
    np.testing.assert_array_equal(runner.histories[1], np.r_[np.full(5, 40.0), np.full(5, 30.0)])
    np.testing.assert_array_equal(runner.histories[2], np.r_[np.full(5, 50.0), np.full(5, 40.0)])


def test_a_commander_decides_what_is_fed_back() -> None:
    runner = RecordingRunner(answer=lambda h: np.full(5, 170.0))
    pipeline = InferencePipeline(contract(), NORMALISER, runner)
    limited: list[float] = []

    def safety(hop: Hop) -> npt.NDArray[np.float64]:
        # a rate limiter: at most 5° per hop towards the request
        step = np.clip(hop.angles_deg - hop.history_deg[:5], -5.0, 5.0)
        out = hop.history_deg[:5] + step
        limited.append(float(out[0]))
        return out

    hops = pipeline.push(stream(49 + 20 * 3 + 1), safety)
    assert len(hops) == 4
    assert limited == [35.0, 40.0, 45.0, 50.0]
    np.testing.assert_array_equal(hops[3].history_deg, np.r_[np.full(5, 45.0), np.full(5, 40.0)])
    np.testing.assert_array_equal(pipeline.history_deg, np.r_[np.full(5, 50.0), np.full(5, 45.0)])


def test_replay_does_not_depend_on_the_block_length() -> None:
    x = stream(700)

    def run(block: int) -> Any:
        runner = RecordingRunner(answer=lambda h: h[:5] * 0.9 + 5.0)
        return replay_closed_loop(
            InferencePipeline(contract(), NORMALISER, runner), x, block_frames=block
        )

    a, b = run(7), run(1000)
    np.testing.assert_array_equal(a.newest_index, b.newest_index)
    np.testing.assert_array_equal(a.commanded_deg, b.commanded_deg)


def test_step_uses_the_given_history_and_leaves_the_state_alone() -> None:
    runner = RecordingRunner()
    pipeline = InferencePipeline(contract(), NORMALISER, runner)
    windows = pipeline.windows(stream(WINDOW))
    assert len(windows) == 1
    hop = pipeline.step(windows[0].frames, np.arange(10.0), windows[0].newest_index)
    np.testing.assert_array_equal(runner.histories[0], np.arange(10.0))
    assert hop.newest_index == WINDOW - 1
    np.testing.assert_array_equal(pipeline.history_deg, np.full(10, 30.0))
    pipeline.command(np.full(5, 77.0))
    np.testing.assert_array_equal(pipeline.history_deg, np.r_[np.full(5, 77.0), np.full(5, 30.0)])


def test_reset_starts_a_new_stream_at_rest() -> None:
    runner = RecordingRunner(answer=lambda h: h[:5] + 1.0)
    pipeline = InferencePipeline(contract(), NORMALISER, runner)
    first = replay_closed_loop(pipeline, stream(300))
    assert pipeline.frames_seen == 300
    second = replay_closed_loop(pipeline, stream(300))
    np.testing.assert_array_equal(first.commanded_deg, second.commanded_deg)
    pipeline.reset()
    assert pipeline.frames_seen == 0
    np.testing.assert_array_equal(pipeline.history_deg, np.full(10, 30.0))


def test_history_length_follows_the_argument() -> None:
    runner = RecordingRunner()
    pipeline = InferencePipeline(contract(), NORMALISER, runner, history=3)
    pipeline.push(stream(WINDOW))
    assert runner.histories[0].shape == (15,)
    np.testing.assert_array_equal(pipeline.history_deg[:5], np.full(5, 90.0))
    np.testing.assert_array_equal(pipeline.history_deg[5:], np.full(10, 30.0))


def test_bad_shapes_are_refused() -> None:
    pipeline = InferencePipeline(contract(), NORMALISER, RecordingRunner())
    with pytest.raises(ModelError, match=r"block shape \(10, 4\): the model expects \(n, 3\)"):
        pipeline.push(np.zeros((10, 4)))
    with pytest.raises(ModelError, match=r"commanded angles shape \(4,\)"):
        pipeline.command(np.zeros(4))
    with pytest.raises(ModelError, match="non-finite"):
        pipeline.command(np.array([1.0, 2.0, np.nan, 4.0, 5.0]))
    with pytest.raises(ModelError, match="normaliser has 2 channels, the model expects 3"):
        InferencePipeline(contract(), Normaliser.identity(2), RecordingRunner())
    bad = InferencePipeline(contract(), NORMALISER, RecordingRunner(answer=lambda h: h))
    with pytest.raises(ModelError, match=r"runner returned shape \(10,\)"):
        bad.push(stream(WINDOW))


def test_a_faster_adc_is_decimated_to_the_model_rate() -> None:
    # The same 120 Hz tone sampled at 1 kHz and at 4 kHz: the 4 kHz feed is decimated,
    # so both give the same hops at the same stream indices and windows of the same power.
    n_ms = 1000
    tone = [np.sin(2 * np.pi * 120.0 * np.arange(n_ms * k) / (FS_HZ * k)) for k in (1, 4)]
    blocks = [200.0 * np.repeat(t[:, np.newaxis], N_CH, axis=1) for t in tone]
    slow, fast = RecordingRunner(), RecordingRunner()
    slow_hops = InferencePipeline(contract(), NORMALISER, slow).push(blocks[0])
    fast_pipeline = InferencePipeline(contract(), NORMALISER, fast, input_rate_hz=4 * FS_HZ)
    fast_hops: list[Hop] = []
    for start in range(0, len(blocks[1]), 333):
        fast_hops += fast_pipeline.push(blocks[1][start : start + 333])
    assert [h.newest_index for h in fast_hops] == [h.newest_index for h in slow_hops]
    assert fast_pipeline.frames_seen == n_ms
    settled = slice(len(slow.windows) // 2, None)
    rms_slow = np.sqrt(np.mean(np.stack(slow.windows[settled]) ** 2, axis=(0, 1)))
    rms_fast = np.sqrt(np.mean(np.stack(fast.windows[settled]) ** 2, axis=(0, 1)))
    np.testing.assert_allclose(rms_fast, rms_slow, rtol=0.03)


def test_an_input_rate_that_is_not_a_whole_multiple_is_refused() -> None:
    with pytest.raises(ConfigError, match="1500 Hz is not a whole multiple of the model's 1000"):
        InferencePipeline(contract(), NORMALISER, RecordingRunner(), input_rate_hz=1500.0)
