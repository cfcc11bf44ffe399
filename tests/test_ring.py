"""Tests of emgd.dsp.ring: wrap-around, mirror views, overrun accounting, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.dsp.ring import RingBuffer
from emgd.errors import ConfigError


def frames(start: int, stop: int, n_channels: int = 2) -> np.ndarray:
    """Frames whose channel c holds 10·index + c, so every value names its frame."""
    idx = np.arange(start, stop)[:, None]
    return (10 * idx + np.arange(n_channels)[None, :]).astype(np.float64)


def test_empty_ring() -> None:
    ring = RingBuffer(4, 2)
    assert ring.frames_written == 0
    assert ring.unread_frames == 0
    assert ring.overrun_frames == 0
    read = ring.read_new()
    assert read.frames.shape == (0, 2)
    assert (read.start_index, read.missed_frames) == (0, 0)
    with pytest.raises(ValueError, match="not held"):
        ring.latest(1)


def test_latest_across_the_wrap_by_hand() -> None:
    ring = RingBuffer(4, 2)
    ring.write(frames(0, 3))
    ring.write(frames(3, 6))  # frames 4 and 5 wrap onto slots 0 and 1
    assert ring.frames_written == 6
    assert ring.oldest_index == 2
    np.testing.assert_array_equal(ring.latest(4), [[20, 21], [30, 31], [40, 41], [50, 51]])
    np.testing.assert_array_equal(ring.latest(2), [[40, 41], [50, 51]])
    np.testing.assert_array_equal(ring.frames(2, 2), [[20, 21], [30, 31]])


def test_reads_are_read_only_views() -> None:
    ring = RingBuffer(5, 3)
    ring.write(frames(0, 7, 3))
    view = ring.latest(5)  # crosses the wrap point, still one slice thanks to the mirror
    assert not view.flags.owndata
    assert not view.flags.writeable
    assert np.shares_memory(view, ring.frames(3, 2))
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0] = 1.0
    # The view shows the ring: it changes when the writer overwrites those frames.
    first = view[0].copy()
    ring.write(frames(7, 8, 3))
    assert not np.array_equal(view[0], first)
    assert not ring.holds(2, 5)


def test_storage_dtype_and_cast() -> None:
    ring = RingBuffer(3, 1)
    assert ring.dtype == np.float32
    ring.write(np.array([[1.5], [2.25]], dtype=np.float64))
    out = ring.latest(2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1.5], [2.25]])
    ints = RingBuffer(3, 1, dtype=np.int32)
    ints.write(np.array([[7], [-8]]))
    assert ints.latest(2).dtype == np.int32


def test_read_new_returns_each_frame_once() -> None:
    ring = RingBuffer(8, 2)
    ring.write(frames(0, 3))
    first = ring.read_new()
    np.testing.assert_array_equal(first.frames, frames(0, 3))
    assert (first.start_index, first.missed_frames) == (0, 0)
    ring.write(frames(3, 5))
    ring.write(frames(5, 9))  # wraps
    assert ring.unread_frames == 6
    second = ring.read_new()
    np.testing.assert_array_equal(second.frames, frames(3, 9))
    assert second.start_index == 3
    assert ring.read_new().frames.shape == (0, 2)
    assert ring.frames_read == 9
    assert ring.overrun_frames == 0


def test_overrun_is_counted_at_once_and_newest_data_kept() -> None:
    ring = RingBuffer(4, 2)
    ring.write(frames(0, 3))
    ring.read_new()
    ring.write(frames(3, 9))  # 6 unread frames, only 4 fit: frames 3 and 4 are lost
    assert ring.overrun_frames == 2  # visible before the reader looks
    assert ring.unread_frames == 4
    read = ring.read_new()
    assert read.missed_frames == 2
    assert read.start_index == 5
    np.testing.assert_array_equal(read.frames, frames(5, 9))
    assert ring.overrun_frames == 2  # counted once
    ring.write(frames(9, 10))
    assert ring.read_new().missed_frames == 0
    assert ring.overrun_frames == 2


def test_block_longer_than_capacity_keeps_its_newest_frames() -> None:
    ring = RingBuffer(3, 2)
    ring.write(frames(0, 1))
    ring.write(frames(1, 11))
    assert ring.frames_written == 11
    np.testing.assert_array_equal(ring.latest(3), frames(8, 11))
    assert ring.overrun_frames == 8  # frames 0..7 never reached the reader
    read = ring.read_new()
    assert (read.start_index, read.missed_frames) == (8, 8)


def test_capacity_one() -> None:
    ring = RingBuffer(1, 2)
    ring.write(frames(0, 2))
    np.testing.assert_array_equal(ring.latest(1), frames(1, 2))
    ring.write(frames(2, 3))
    np.testing.assert_array_equal(ring.read_new().frames, frames(2, 3))
    assert ring.overrun_frames == 2


@settings(max_examples=80, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=12),
    steps=st.lists(st.tuples(st.integers(min_value=0, max_value=30), st.booleans()), max_size=25),
)
def test_matches_a_list_of_every_frame(capacity: int, steps: list[tuple[int, bool]]) -> None:
    ring = RingBuffer(capacity, 2, dtype=np.float64)
    history = np.empty((0, 2))
    next_unread = 0
    lost = 0
    for n_frames, read in steps:
        block = frames(len(history), len(history) + n_frames)
        ring.write(block)
        history = np.concatenate((history, block))
        assert ring.frames_written == len(history)
        held = min(capacity, len(history))
        np.testing.assert_array_equal(ring.latest(held), history[len(history) - held :])
        if read:
            start = max(next_unread, len(history) - capacity)
            lost += start - next_unread
            got = ring.read_new()
            assert got.start_index == start
            assert got.missed_frames == start - next_unread
            np.testing.assert_array_equal(got.frames, history[start:])
            next_unread = len(history)
        assert ring.overrun_frames == lost + max(0, len(history) - capacity - next_unread)


@pytest.mark.parametrize(
    ("capacity", "n_channels", "name"),
    [
        (0, 2, "capacity_frames"),
        (True, 2, "capacity_frames"),
        (4.0, 2, "capacity_frames"),
        (4, 0, "n_channels"),
        (4, -3, "n_channels"),
    ],
)
def test_bad_construction(capacity: int, n_channels: int, name: str) -> None:
    with pytest.raises(ConfigError, match=rf"RingBuffer {name} = "):
        RingBuffer(capacity, n_channels)


def test_bad_reads_and_writes() -> None:
    ring = RingBuffer(4, 2)
    with pytest.raises(ConfigError, match=r"block shape \(3, 3\)"):
        ring.write(np.zeros((3, 3)))
    with pytest.raises(ConfigError, match=r"block shape \(2,\)"):
        ring.write(np.zeros(2))
    ring.write(frames(0, 6))
    with pytest.raises(ValueError, match=r"frames 1\.\.2 not held \(held: 2\.\.5\)"):
        ring.frames(1, 2)
    with pytest.raises(ValueError, match="not held"):
        ring.latest(5)
    with pytest.raises(ValueError, match="not held"):
        ring.frames(5, 2)
