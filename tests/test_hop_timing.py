"""Tests of the loop's wake-up rule: locked to the frame that completes the next window."""

from __future__ import annotations

import numpy as np
import pytest

from emgd.clock import FakeClock
from emgd.service.hop_timing import (
    WAKE_MARGIN_NS,
    max_wait_ns,
    next_wake_ns,
    wait_for_frames,
    window_late,
)

HOP_NS = 20_000_000
PERIOD_NS = 1_000_000


def wake(cadence_ns: int, newest_frame_ns: int | None, frames_needed: int) -> int:
    return next_wake_ns(
        cadence_ns,
        hop_ns=HOP_NS,
        newest_frame_ns=newest_frame_ns,
        frames_needed=frames_needed,
        frame_period_ns=PERIOD_NS,
    )


def test_wakes_a_margin_after_the_window_completing_frame_is_due() -> None:
    # The newest frame read came at 105 ms; 7 more complete the window: due at 112 ms.
    assert wake(120_000_000, 105_000_000, 7) == 112_000_000 + WAKE_MARGIN_NS
    # Earlier or later than the cadence, within one hop either way.
    assert wake(110_000_000, 105_000_000, 20) == 125_000_000 + WAKE_MARGIN_NS
    assert wake(140_000_000, 105_000_000, 20) == 125_000_000 + WAKE_MARGIN_NS


def test_keeps_the_cadence_without_a_usable_reference() -> None:
    assert wake(120_000_000, None, 7) == 120_000_000  # no frame yet
    assert wake(120_000_000, 105_000_000, 0) == 120_000_000
    # The frames stopped a while ago: the due time is long past; the loop must not spin.
    assert wake(500_000_000, 105_000_000, 7) == 500_000_000
    # A due time far ahead (a wrong timestamp) does not hold the loop back either.
    assert wake(120_000_000, 900_000_000, 7) == 120_000_000
    # After a wait that gave up, a late frame is taken at the cadence, not chased: the
    # due time is then a frame away, and chasing it would hop every few milliseconds.
    late = next_wake_ns(
        120_000_000,
        hop_ns=HOP_NS,
        newest_frame_ns=104_000_000,
        frames_needed=1,
        frame_period_ns=PERIOD_NS,
        last_wait_gave_up=True,
    )
    assert late == 120_000_000


def test_a_locked_loop_stays_locked_hop_after_hop() -> None:
    cadence, newest = 100_000_000, 93_400_000
    woke = wake(cadence, newest, 13)
    for _ in range(50):
        newest = woke - WAKE_MARGIN_NS  # the loop read up to the window-completing frame
        woke_next = wake(woke + HOP_NS, newest, 20)
        assert woke_next - woke == HOP_NS
        woke = woke_next


def test_waits_for_a_late_frame_then_returns_when_it_is_there() -> None:
    clock = FakeClock(start_ns=1_000_000)
    published_at_ns = 1_350_000

    def pending() -> int:
        return 20 if clock.monotonic_ns() >= published_at_ns else 19

    assert wait_for_frames(
        clock, pending, 20, give_up_ns=3_000_000, frame_period_ns=50_000, poll_ns=100_000
    )
    assert published_at_ns <= clock.monotonic_ns() < published_at_ns + 100_000


def test_a_lagging_stream_is_polled_once_per_missing_frames_worth() -> None:
    clock = FakeClock(start_ns=0)
    polls: list[int] = []

    def pending() -> int:
        polls.append(clock.monotonic_ns())
        return clock.monotonic_ns() // 2_000_000  # one frame every 2 ms

    assert wait_for_frames(
        clock, pending, 10, give_up_ns=40_000_000, frame_period_ns=1_000_000, poll_ns=100_000
    )
    # 10 missing: sleep 10 ms (5 frames by then), 5 missing: 5 ms ... not 200 polls of 0.1 ms.
    assert polls[:3] == [0, 10_000_000, 15_000_000]
    assert len(polls) < 10
    assert clock.monotonic_ns() >= 20_000_000


def test_gives_up_at_its_deadline_when_the_frame_never_comes() -> None:
    clock = FakeClock(start_ns=0)
    assert not wait_for_frames(
        clock, lambda: 3, 20, give_up_ns=2_000_000, frame_period_ns=10_000, poll_ns=300_000
    )
    assert clock.monotonic_ns() == 2_000_000


def test_does_not_sleep_when_the_frames_are_already_there() -> None:
    clock = FakeClock(start_ns=5)
    assert wait_for_frames(clock, lambda: 25, 20, give_up_ns=1_000_000, frame_period_ns=1)
    assert clock.monotonic_ns() == 5


def test_a_window_not_due_within_the_wait_is_neither_waited_for_nor_late() -> None:
    clock = FakeClock(start_ns=0)
    # 30 frames of 1 ms still missing, a 20 ms wait: the first window is still filling.
    assert not window_late(clock, lambda: 0, 30, 0, hop_ns=HOP_NS, frame_period_ns=PERIOD_NS)
    assert clock.monotonic_ns() == 0
    # 15 missing but only one frame every 2 ms comes: due within the wait, gives up late.
    assert window_late(
        clock,
        lambda: clock.monotonic_ns() // 2_000_000,
        15,
        0,
        hop_ns=HOP_NS,
        frame_period_ns=PERIOD_NS,
    )
    assert clock.monotonic_ns() == HOP_NS


def test_the_wait_is_bounded_by_one_hop() -> None:
    assert max_wait_ns(HOP_NS) == HOP_NS


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_the_pipeline_counts_the_frames_to_its_next_window(factor: int) -> None:
    """Feeding exactly ``frames_to_next_window`` frames completes a window; one fewer does
    not, whatever the block sizes and the decimator's phase."""
    from emgd.dsp.filters import FilterSpec
    from emgd.dsp.normalise import Normaliser
    from emgd.model.contract import PreprocessContract
    from emgd.model.spec import ModelSpec
    from emgd.pipeline import InferencePipeline

    spec = ModelSpec(sample_rate_hz=500.0, n_channels=2, common_length=5, mlp=(8, 4))
    contract = PreprocessContract.for_spec(spec, FilterSpec(mains_hz=50.0))

    class Zero:
        def infer(self, window: object, history_deg: object) -> np.ndarray:
            return np.zeros(5)

    pipeline = InferencePipeline(
        contract,
        Normaliser.identity(2),
        Zero(),
        input_rate_hz=500.0 * factor,
    )
    assert pipeline.frames_per_window_step == contract.hop_samples * factor
    rng = np.random.default_rng(factor)
    emitted = 0
    while emitted < 6:
        needed = pipeline.frames_to_next_window
        assert needed >= 1
        if needed > 1:
            split = int(rng.integers(1, needed))  # a block that stops short of the window
            assert pipeline.windows(rng.standard_normal((split, 2))) == []
            assert pipeline.frames_to_next_window == needed - split
            needed -= split
            if needed > 1:
                assert pipeline.windows(rng.standard_normal((needed - 1, 2))) == []
                needed = 1
        assert pipeline.frames_to_next_window == needed
        assert len(pipeline.windows(rng.standard_normal((needed, 2)))) == 1
        emitted += 1
    # A block spanning several windows: the last one's newest frame sits where the runner
    # looks for its timestamp.
    needed = pipeline.frames_to_next_window
    step = pipeline.frames_per_window_step
    windows = pipeline.windows(rng.standard_normal((needed + 2 * step, 2)))
    assert len(windows) == 3
