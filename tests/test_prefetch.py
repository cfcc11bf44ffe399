"""Tests of the prefetching synthetic wearer: same samples as in-process, rate changes, and
clear errors when the child process dies, stalls or fails."""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emgd.clock import FakeClock, SystemClock
from emgd.config import load_config
from emgd.errors import ConfigError, HardwareIOError
from emgd.hw.interfaces import FloatArray, SignalSource
from emgd.service.board import open_board
from emgd.sim.prefetch import PrefetchedSource, SyntheticEmgSpec
from emgd.sim.synthetic_emg import SyntheticEmg
from emgd.sim.trajectory import ConstantPose, KeyframeTrajectory, PoseSequence

Call = tuple[int, float]


class FailingTrajectory:
    """Rest until ``fail_after_s``, then raise (picklable, so it reaches the child)."""

    def __init__(self, fail_after_s: float) -> None:
        self.fail_after_s = fail_after_s

    def angles_deg(self, t_s: FloatArray) -> FloatArray:
        t = np.asarray(t_s, dtype=np.float64)
        if t.size and float(t.max()) > self.fail_after_s:
            raise ValueError(f"trajectory broke at {float(t.max()):.3f} s")
        return np.zeros((t.shape[0], 5))


class UnpicklableTrajectory(ConstantPose):
    def __init__(self) -> None:
        super().__init__([0.0] * 5)
        self.callback = lambda: None


def _spec(seed: int = 7, n_channels: int = 4) -> SyntheticEmgSpec:
    # Strong gestures and frequent artefacts, so every random stream is exercised.
    return SyntheticEmgSpec(
        PoseSequence(seed, effort=(0.6, 1.0), hold_s=(0.2, 0.4), transition_s=(0.1, 0.2)),
        n_channels=n_channels,
        seed=seed,
        artefact_rate_hz=3.0,
    )


@pytest.fixture
def source() -> Iterator[PrefetchedSource]:
    src = PrefetchedSource(_spec(), sample_rate_hz=1000.0, lead_s=0.2, chunk_s=0.05)
    try:
        yield src
    finally:
        src.close()


def _assert_same_stream(src: PrefetchedSource, ref: SyntheticEmg, calls: list[Call]) -> None:
    for i, (n, fs) in enumerate(calls):
        got = src.generate(n, fs)
        want = ref.generate(n, fs)
        assert got.shape == want.shape == (n, ref.n_channels), f"call {i}"
        assert got.dtype == np.float64
        # Bit-identical, not close: same floats in the same order.
        assert got.tobytes() == want.tobytes(), f"call {i}: generate({n}, {fs})"
        assert src.time_s == ref.time_s, f"call {i}"
        np.testing.assert_array_equal(src.target_angles_deg(), ref.target_angles_deg())


def _process_gone(pid: int, within_s: float = 5.0) -> bool:
    # Polling real time is fine here: we wait for another process, not for our own logic.
    for _ in range(round(within_s / 0.05)):
        if not Path(f"/proc/{pid}").exists():
            return True
        status = Path(f"/proc/{pid}/status")
        try:
            if "zombie" in status.read_text():
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


# --- same samples as the in-process generator -------------------------------------------------


def test_call_by_call_equal_to_in_process_generator_across_rate_changes(
    source: PrefetchedSource,
) -> None:
    # Chunks are 50 samples at 1 kHz and 100 at 2 kHz; the ring holds 4 of them.
    calls: list[Call] = [
        (1, 1000.0),
        (49, 1000.0),  # ends exactly on a chunk boundary
        (256, 1000.0),  # spans several chunks and wraps the ring
        (37, 1000.0),
        (130, 2000.0),  # rate change mid-chunk (position 343 at 1 kHz)
        (70, 2000.0),  # ends on a chunk boundary of the new epoch
        (300, 500.0),  # rate change exactly on a chunk boundary
        (0, 250.0),  # a zero-length call at another rate is still a rate change
        (17, 500.0),
        (0, 500.0),
        (1000, 1000.0),  # back to an earlier rate, far more than the lead
        (3, 16000.0),
    ]
    ref = _spec().build()
    _assert_same_stream(source, ref, calls)
    assert source.rate_changes == 6


def test_wrong_rate_hint_is_only_a_rewind() -> None:
    calls: list[Call] = [(120, 1000.0), (80, 1000.0)]
    with PrefetchedSource(_spec(3), sample_rate_hz=2000.0, lead_s=0.1, chunk_s=0.05) as src:
        _assert_same_stream(src, _spec(3).build(), calls)
        assert src.rate_changes == 1


def test_without_a_rate_hint_the_child_waits_for_the_first_call() -> None:
    with PrefetchedSource(_spec(4), sample_rate_hz=None, lead_s=0.1, chunk_s=0.05) as src:
        assert src.time_s == 0.0
        _assert_same_stream(src, _spec(4).build(), [(0, 1000.0), (333, 1000.0), (5, 2000.0)])


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.just(0), st.integers(1, 260)),
            st.sampled_from([250.0, 1000.0, 2000.0]),
        ),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 2**16),
)
def test_any_call_sequence_gives_the_in_process_stream(calls: list[Call], seed: int) -> None:
    spec = _spec(seed, n_channels=2)
    with PrefetchedSource(spec, sample_rate_hz=1000.0, lead_s=0.1, chunk_s=0.04) as src:
        _assert_same_stream(src, spec.build(), calls)


def test_consumer_outrunning_the_producer_blocks_until_samples_arrive() -> None:
    # Two slots of 20 ms: 3 s of stream in one call needs 150 refills of the ring.
    spec = _spec(5)
    with PrefetchedSource(spec, sample_rate_hz=2000.0, lead_s=0.01, chunk_s=0.02) as src:
        _assert_same_stream(src, spec.build(), [(6000, 2000.0), (1, 2000.0)])


def test_parent_generate_only_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(6)
    want = spec.build().generate(700, 1000.0)

    def no_rendering(self: SyntheticEmg) -> None:
        raise AssertionError("rendered in the parent")

    # The child is a separate interpreter: only the parent's class is patched.
    monkeypatch.setattr(SyntheticEmg, "_render_block", no_rendering)
    with PrefetchedSource(spec, sample_rate_hz=1000.0) as src:
        got = np.concatenate([src.generate(n, 1000.0) for n in (256, 256, 188)])
    assert got.tobytes() == want.tobytes()


def test_spawn_start_method_gives_the_same_stream() -> None:
    spec = _spec(8, n_channels=1)
    with PrefetchedSource(spec, sample_rate_hz=500.0, start_method="spawn") as src:
        _assert_same_stream(src, spec.build(), [(100, 500.0), (50, 1000.0)])


def test_is_a_signal_source_with_the_specs_channel_count(source: PrefetchedSource) -> None:
    as_source: SignalSource = source
    assert as_source.n_channels == 4
    assert source.lead_s == 0.2


# --- failures -------------------------------------------------------------------------------


def test_killed_child_is_a_hardware_io_error_not_a_hang(source: PrefetchedSource) -> None:
    source.generate(10, 1000.0)
    pid = source.child_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(HardwareIOError, match=r"lost the generator process .*exited with code -9"):
        source.generate(10_000, 1000.0)  # more than was made before the kill
    # And it stays failed.
    with pytest.raises(HardwareIOError, match="generator process"):
        source.generate(10_000, 1000.0)


def test_stalled_child_times_out_with_a_clear_error() -> None:
    with PrefetchedSource(
        _spec(), sample_rate_hz=1000.0, lead_s=0.1, chunk_s=0.05, timeout_s=0.3
    ) as src:
        src.generate(1, 1000.0)
        pid = src.child_pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(HardwareIOError, match=r"no samples .* within 0\.3 s"):
                src.generate(5000, 1000.0)
        finally:
            os.kill(pid, signal.SIGCONT)


def test_error_in_the_child_is_reported_by_generate() -> None:
    spec = SyntheticEmgSpec(FailingTrajectory(fail_after_s=0.3), n_channels=2)
    with PrefetchedSource(spec, sample_rate_hz=1000.0, lead_s=0.1, chunk_s=0.05) as src:
        src.generate(100, 1000.0)
        with pytest.raises(
            HardwareIOError, match=r"generator process failed: ValueError: trajectory broke at"
        ):
            src.generate(2000, 1000.0)


def test_spec_refused_by_the_generator_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"SyntheticEmg: n_channels must be .* got 65"):
        PrefetchedSource(SyntheticEmgSpec(ConstantPose([0.0] * 5), n_channels=65))
    with pytest.raises(ConfigError, match=r"full_effort_rms_uv must be > 0"):
        PrefetchedSource(SyntheticEmgSpec(ConstantPose([0.0] * 5), full_effort_rms_uv=0.0))


def test_unpicklable_trajectory_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot be sent to the child process"):
        PrefetchedSource(SyntheticEmgSpec(UnpicklableTrajectory()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lead_s": 0.0}, r"lead_s must be a finite number > 0, got 0\.0"),
        ({"chunk_s": -0.1}, r"chunk_s must be a finite number > 0, got -0\.1"),
        ({"timeout_s": float("nan")}, r"timeout_s must be a finite number > 0, got nan"),
        ({"sample_rate_hz": 0.0}, r"sample_rate_hz must be in \(0, 1e\+06\], got 0\.0"),
        ({"start_method": "fork"}, r"start_method 'fork' is not usable here"),
    ],
)
def test_bad_parameters_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PrefetchedSource(_spec(), **kwargs)  # type: ignore[arg-type]


def test_bad_generate_arguments_are_config_errors(source: PrefetchedSource) -> None:
    with pytest.raises(ConfigError, match=r"n_samples must be >= 0, got -1"):
        source.generate(-1, 1000.0)
    with pytest.raises(ConfigError, match=r"n_samples must be an int, got 1\.5"):
        source.generate(1.5, 1000.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"sample_rate_hz must be in .* got -5"):
        source.generate(1, -5)
    # Refused calls leave the stream untouched.
    _assert_same_stream(source, _spec().build(), [(10, 1000.0)])


# --- lifetime -------------------------------------------------------------------------------


def test_close_stops_the_child_and_later_calls_fail() -> None:
    src = PrefetchedSource(_spec(), sample_rate_hz=1000.0, lead_s=0.1, chunk_s=0.05)
    pid = src.child_pid
    assert pid is not None and Path(f"/proc/{pid}").exists()
    src.close()
    src.close()
    assert src.child_pid is None
    assert _process_gone(pid)
    with pytest.raises(HardwareIOError, match="the source is closed"):
        src.generate(1, 1000.0)


def test_garbage_collection_stops_the_child() -> None:
    src = PrefetchedSource(_spec(), sample_rate_hz=1000.0, lead_s=0.1, chunk_s=0.05)
    pid = src.child_pid
    assert pid is not None
    del src
    gc.collect()
    assert _process_gone(pid)


def test_simulated_board_prefetches_only_in_real_time() -> None:
    config = load_config(env={})
    trajectory = KeyframeTrajectory([0.0, 1.0], [[0.0] * 5, [90.0] * 5])
    board = open_board(config, SystemClock(), trajectory=trajectory)
    try:
        assert board.sim is not None
        wearer = board.sim.wearer
        assert isinstance(wearer, PrefetchedSource)
        pid = wearer.child_pid
        assert pid is not None
        np.testing.assert_array_equal(wearer.target_angles_deg(), [0.0] * 5)
    finally:
        board.close()
    assert _process_gone(pid)
    fake_board = open_board(config, FakeClock(), trajectory=trajectory)
    try:
        assert fake_board.sim is not None
        assert isinstance(fake_board.sim.wearer, SyntheticEmg)
    finally:
        fake_board.close()


def test_wait_rendered_fills_the_lead_and_consumes_nothing() -> None:
    spec = _spec(7)
    with PrefetchedSource(spec, sample_rate_hz=1000.0, lead_s=0.2, chunk_s=0.05) as src:
        src.wait_rendered()
        # Every slot is rendered now: taking a whole lead's worth finds each one filled.
        assert all(src._ring.filled.acquire(block=False) for _ in range(4))
        for _ in range(4):
            src._ring.filled.release()
        src.wait_rendered()  # again: still nothing consumed
        _assert_same_stream(src, spec.build(), [(450, 1000.0), (10, 1000.0)])
        src.wait_rendered()  # while holding a partly read chunk


def test_wait_rendered_on_a_closed_source_fails() -> None:
    src = PrefetchedSource(_spec(8), sample_rate_hz=1000.0, lead_s=0.1, chunk_s=0.05)
    src.close()
    with pytest.raises(HardwareIOError, match="wait_rendered: the source is closed"):
        src.wait_rendered()


# --- cues ------------------------------------------------------------------------------------


def _cued_spec(seed: int = 2) -> SyntheticEmgSpec:
    from emgd.sim.cued import build_wearer

    return SyntheticEmgSpec(build_wearer("sequence", seed, PoseSequence(seed)), n_channels=3)


def test_a_cue_rewinds_the_child_and_stays_bit_identical_to_in_process() -> None:
    from emgd.sim.cued import cue_source

    ref = _cued_spec().build()
    # (samples before the cue, cue) steps: mid-chunk, on a chunk boundary, twice in a row,
    # and one after a rate change.
    steps: list[tuple[Call, tuple[str, float] | None]] = [
        ((333, 1000.0), ("power", 0.8)),
        ((17, 1000.0), ("rest", 0.0)),
        ((650, 1000.0), ("pinch", 0.6)),
        ((0, 1000.0), ("chuck", 1.0)),
        ((420, 2000.0), ("open", 0.7)),
        ((2500, 2000.0), None),
    ]
    with PrefetchedSource(_cued_spec(), sample_rate_hz=1000.0, lead_s=0.2, chunk_s=0.05) as src:
        for (n, fs), cue in steps:
            _assert_same_stream(src, ref, [(n, fs)])
            if cue is not None:
                assert src.cue(*cue)
                assert cue_source(ref, *cue)
        assert src.rate_changes == 1
    wearer = ref.trajectory
    assert [r.cue_s for r in wearer.person.responses] == [0.333, 0.35, 1.0, 1.0, 1.21]  # type: ignore[attr-defined]


def test_a_cue_before_the_first_call_and_a_refused_one() -> None:
    ref = _cued_spec(4).build()
    with PrefetchedSource(_cued_spec(4), sample_rate_hz=1000.0, lead_s=0.1, chunk_s=0.05) as src:
        assert src.cue("power", 1.0)
        ref.trajectory.cue("power", 1.0, 0.0)  # type: ignore[attr-defined]
        with pytest.raises(ConfigError, match="effort"):
            src.cue("power", 2.0)
        _assert_same_stream(src, ref, [(900, 1000.0)])
    with PrefetchedSource(_spec(), sample_rate_hz=1000.0, lead_s=0.1, chunk_s=0.05) as plain:
        assert not plain.cue("power", 1.0)
        _assert_same_stream(plain, _spec().build(), [(120, 1000.0)])
