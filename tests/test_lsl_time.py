"""Tests of the LSL timestamps: sample index + DRDY time → conversion time → LSL clock."""

from __future__ import annotations

import numpy as np
import pytest

from emgd.service.lsl_time import LslClockMap, SampleClock, measure_offset_s

RATE_HZ = 1000.0
T0_NS = 5_000_000_000_000  # an uptime of 5000 s


def drdy_batches(
    n_frames: int,
    *,
    true_period_ns: float = 1_000_300.0,  # a crystal 0.03 % slow
    jitter_ns: float = 60_000.0,
    batch: int = 20,
    seed: int = 0,
    lost: tuple[int, ...] = (),
):
    """(index, drdy_ns, true_ns) per batch: edges stamped with uniform jitter."""
    rng = np.random.default_rng(seed)
    index = np.array([i for i in range(n_frames) if i not in lost], dtype=np.int64)
    true_ns = T0_NS + index * true_period_ns
    drdy = np.round(true_ns + rng.uniform(-jitter_ns, jitter_ns, len(index))).astype(np.int64)
    for start in range(0, len(index), batch):
        sl = slice(start, start + batch)
        yield index[sl], drdy[sl], true_ns[sl]


def test_dejittered_stamps_follow_the_sample_clock_not_the_edge_jitter() -> None:
    clock = SampleClock(RATE_HZ)
    raw = SampleClock(RATE_HZ, dejitter=False)
    errors, raw_errors, stamps_all = [], [], []
    for index, drdy, true in drdy_batches(10_000):
        stamps = clock.stamps_ns(index, drdy)
        stamps_all.append(stamps)
        if index[0] >= 1000:  # after the first second of fitting
            errors.append(np.abs(stamps - true))
            raw_errors.append(np.abs(raw.stamps_ns(index, drdy) - true))
    err = np.concatenate(errors)
    assert np.max(np.concatenate(raw_errors)) > 50_000  # the edges jitter by up to 60 µs
    assert np.max(err) < 8_000  # the stamps by less than 8 µs
    assert clock.period_ns == pytest.approx(1_000_300.0, abs=2.0)  # the crystal's real period
    stamps = np.concatenate(stamps_all)
    assert np.all(np.diff(stamps) > 0)
    assert clock.resets == 0


def test_lost_frames_keep_their_gap() -> None:
    clock = SampleClock(RATE_HZ)
    stamps, index = [], []
    for i, d, _ in drdy_batches(3000, jitter_ns=0.0, lost=tuple(range(2000, 2005))):
        stamps.append(clock.stamps_ns(i, d))
        index.append(i)
    s, i = np.concatenate(stamps), np.concatenate(index)
    at = int(np.flatnonzero(i == 2005)[0])
    assert s[at] - s[at - 1] == pytest.approx(6 * 1_000_300.0, abs=50.0)


def test_an_index_that_goes_back_starts_a_new_fit_and_stamps_stay_monotone() -> None:
    clock = SampleClock(RATE_HZ)
    first = np.arange(100, dtype=np.int64)
    clock.stamps_ns(first, T0_NS + first * 1_000_000)
    again = np.arange(10, dtype=np.int64)  # the chip was re-initialised: counting anew
    later = clock.stamps_ns(again, T0_NS + 200_000_000 + again * 1_000_000)
    assert clock.resets == 1
    assert later[0] == pytest.approx(T0_NS + 200_000_000, abs=1.0)
    assert np.all(np.diff(later) > 0)


def test_a_jump_in_the_edge_times_starts_a_new_fit() -> None:
    clock = SampleClock(RATE_HZ)
    i = np.arange(100, dtype=np.int64)
    clock.stamps_ns(i, T0_NS + i * 1_000_000)
    j = np.arange(100, 120, dtype=np.int64)
    stamps = clock.stamps_ns(j, T0_NS + 1_000_000_000 + j * 1_000_000)  # 1 s later than due
    assert clock.resets == 1
    assert stamps[0] == pytest.approx(T0_NS + 1_000_000_000 + 100 * 1_000_000, abs=1.0)


def test_raw_stamps_are_the_edges_made_monotone() -> None:
    clock = SampleClock(RATE_HZ, dejitter=False)
    i = np.arange(4, dtype=np.int64)
    drdy = np.array([10, 20, 19, 40], dtype=np.int64)
    assert clock.stamps_ns(i, drdy).tolist() == [10.0, 20.0, 21.0, 40.0]


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate"):
        SampleClock(0.0)


def test_offset_is_read_on_the_tightest_round_trip() -> None:
    # Monotonic readings: a slow first round trip, then tight ones.
    mono = iter([0, 10_000_000, 20_000_000, 20_000_010] + [30_000_000, 30_000_020] * 20)
    lsl = iter([5.004, 5.02000001] + [5.030] * 20)
    offset, uncertainty = measure_offset_s(lambda: next(mono), lambda: next(lsl))
    assert offset == pytest.approx(5.0, abs=1e-7)
    assert uncertainty == pytest.approx(5e-9)


def test_the_clock_map_adds_the_offset() -> None:
    cmap = LslClockMap(lambda: 1_000_000_000, lambda: 3.5)
    assert cmap.offset_s == pytest.approx(2.5)
    assert cmap.to_lsl_s([2_000_000_000, 3_000_000_000]).tolist() == [4.5, 5.5]
    assert cmap.scalar_to_lsl_s(1_500_000_000) == pytest.approx(4.0)
