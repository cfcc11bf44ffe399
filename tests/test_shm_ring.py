"""Tests of the shared-memory frame ring, in one process and across a spawned process."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Lock

import numpy as np
import pytest

from emgd.hw.interfaces import AcquisitionStats, Frame
from emgd.service.shm_ring import STATE_RUNNING, RingLayout, SharedFrameRing


def frame(i: int, n_channels: int = 3) -> Frame:
    return Frame(
        index=i,
        timestamp_ns=1_000_000 * i,
        emg_uv=np.arange(n_channels, dtype=np.float64) + i,
        railed=i % 4,
        lead_off_p=1 if i % 5 == 0 else 0,
        lead_off_n=2 if i % 7 == 0 else 0,
    )


def test_frames_round_trip_in_order() -> None:
    ring = SharedFrameRing(RingLayout(capacity_frames=16, n_channels=3))
    try:
        for i in range(10):
            ring.write(frame(i), intent_deg=[float(i)] * 5 if i % 2 else None)
        batch = ring.read_new()
        assert batch.n_frames == 10 and batch.overrun_frames == 0
        np.testing.assert_array_equal(batch.index, np.arange(10))
        np.testing.assert_array_equal(batch.timestamp_ns, np.arange(10) * 1_000_000)
        np.testing.assert_allclose(batch.emg_uv[7], [7.0, 8.0, 9.0])
        assert batch.railed[3] == 3
        assert batch.lead_off[0] == 3 and batch.lead_off[5] == 1 and batch.lead_off[7] == 2
        assert np.isnan(batch.intent_deg[0]).all() and batch.intent_deg[3][0] == 3.0
        assert ring.read_new().n_frames == 0
    finally:
        ring.close()


def test_pending_counts_published_frames_not_read_yet() -> None:
    ring = SharedFrameRing(RingLayout(capacity_frames=8, n_channels=3))
    try:
        assert ring.frames_pending == 0
        for i in range(5):
            ring.write(frame(i))
        assert ring.frames_pending == 5
        ring.read_new(max_frames=2)
        assert ring.frames_pending == 3
        for i in range(5, 15):
            ring.write(frame(i))
        assert ring.frames_pending == 13  # lapped ones included: the reader counts them
        ring.read_new()
        assert ring.frames_pending == 0
    finally:
        ring.close()


def test_a_lapped_reader_counts_the_overrun_and_keeps_the_newest() -> None:
    ring = SharedFrameRing(RingLayout(capacity_frames=8, n_channels=3))
    try:
        for i in range(20):
            ring.write(frame(i))
        batch = ring.read_new()
        assert batch.overrun_frames == 12
        np.testing.assert_array_equal(batch.index, np.arange(12, 20))
        assert ring.overrun_total == 12
    finally:
        ring.close()


def test_max_frames_reads_in_pieces() -> None:
    ring = SharedFrameRing(RingLayout(capacity_frames=32, n_channels=3))
    try:
        for i in range(10):
            ring.write(frame(i))
        assert ring.read_new(max_frames=4).index.tolist() == [0, 1, 2, 3]
        assert ring.read_new(max_frames=4).index.tolist() == [4, 5, 6, 7]
        assert ring.read_new().index.tolist() == [8, 9]
    finally:
        ring.close()


def _child_writer(handle: tuple[RingLayout, str, Lock], n: int) -> None:
    layout, name, lock = handle
    ring = SharedFrameRing(layout, name=name, lock=lock)
    ring.set_state(STATE_RUNNING)
    for i in range(n):
        ring.write(frame(i, layout.n_channels))
    ring.publish_stats(AcquisitionStats(frames_lost=3, timeouts=1), alive_ns=42)
    ring.close()


def test_frames_written_by_another_process_arrive_complete() -> None:
    ring = SharedFrameRing(RingLayout(capacity_frames=4096, n_channels=8))
    try:
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=_child_writer, args=(ring.handle(), 3000))
        proc.start()
        proc.join(timeout=60)
        assert proc.exitcode == 0
        batch = ring.read_new()
        assert batch.n_frames == 3000
        np.testing.assert_array_equal(batch.index, np.arange(3000))
        np.testing.assert_allclose(batch.emg_uv[:, 0], np.arange(3000, dtype=np.float32))
        assert ring.state == STATE_RUNNING
        stats = ring.writer_stats()
        assert stats.frames_lost == 3 and stats.timeouts == 1 and stats.frames_read == 3000
        assert ring.writer_alive_ns() == 42
    finally:
        ring.close()


def test_bad_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RingLayout(capacity_frames=1, n_channels=8)
