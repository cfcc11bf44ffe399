"""Tests of the LSL publisher: a bounded drop-oldest queue drained by one thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from emgd.service.lsl_publisher import Chunk, ChunkPublisher

WAIT_S = 5.0


class RecordingOutlet:
    def __init__(self) -> None:
        self.pushed: list[tuple[Any, list[float]]] = []
        self.done = threading.Event()
        self.expect = 0

    def push_chunk(self, samples: Any, timestamps_s: Sequence[float]) -> None:
        self.pushed.append((samples, list(timestamps_s)))
        if len(self.pushed) >= self.expect:
            self.done.set()


class StalledOutlet:
    """The first push blocks until released (forever, unless the test lets it go)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.pushed: list[float] = []

    def push_chunk(self, samples: Any, timestamps_s: Sequence[float]) -> None:
        self.entered.set()
        self.release.wait()
        self.pushed.append(timestamps_s[0])


class FailingOutlet:
    def push_chunk(self, samples: Any, timestamps_s: Sequence[float]) -> None:
        raise OSError("network is unreachable")


def chunk(stream: str, k: int) -> Chunk:
    return Chunk(stream, np.full((2, 3), k, np.float32), np.array([k, k + 0.5]))


def test_chunks_reach_their_outlet_in_order_with_their_stamps() -> None:
    emg, markers = RecordingOutlet(), RecordingOutlet()
    emg.expect, markers.expect = 50, 1
    pub = ChunkPublisher({"emg": emg, "markers": markers}, capacity_chunks=64)
    pub.start()
    for k in range(50):
        assert pub.offer(chunk("emg", k))
    pub.offer(Chunk("markers", [["state running"]], np.array([7.0])))
    assert emg.done.wait(WAIT_S) and markers.done.wait(WAIT_S)
    assert pub.stop()
    assert [stamps for _, stamps in emg.pushed] == [[k, k + 0.5] for k in range(50)]
    assert emg.pushed[3][0].shape == (2, 3) and float(emg.pushed[3][0][0, 0]) == 3.0
    assert markers.pushed == [([["state running"]], [7.0])]
    c = pub.counters()
    assert (c["offered_chunks"], c["pushed_chunks"], c["dropped_chunks"]) == (51, 51, 0)
    assert c["queued_chunks"] == 0


def test_a_stalled_outlet_never_blocks_offer_and_the_oldest_chunks_are_dropped() -> None:
    outlet = StalledOutlet()
    pub = ChunkPublisher({"emg": outlet}, capacity_chunks=16)
    pub.start()
    pub.offer(chunk("emg", 0))
    assert outlet.entered.wait(WAIT_S)  # the thread is stuck inside push with chunk 0
    slowest_s = 0.0
    for k in range(1, 1001):
        t0 = time.perf_counter()
        pub.offer(chunk("emg", k))
        slowest_s = max(slowest_s, time.perf_counter() - t0)
    assert slowest_s < 0.05  # microseconds in fact; never the stalled push's wait
    c = pub.counters()
    assert c["queued_chunks"] == 16
    assert c["pushed_chunks"] == 0
    assert c["dropped_chunks"] == 1000 - 16
    assert c["dropped_by_stream"] == {"emg": 1000 - 16}
    assert pub.offer(chunk("emg", 1001)) is False  # says a chunk was dropped for it
    assert not pub.stop(timeout_s=0.2)  # still stuck: stop gives up instead of hanging
    # Released, it pushes what it held and the newest 16 chunks, the oldest were dropped.
    outlet.release.set()
    deadline = time.monotonic() + WAIT_S
    while len(outlet.pushed) < 17 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outlet.pushed == [0.0] + [float(k) for k in range(986, 1002)]


def test_a_failing_outlet_is_counted_and_the_others_go_on() -> None:
    good = RecordingOutlet()
    good.expect = 3
    pub = ChunkPublisher({"bad": FailingOutlet(), "emg": good}, capacity_chunks=8)
    pub.start()
    for k in range(3):
        pub.offer(chunk("bad", k))
        pub.offer(chunk("emg", k))
    assert good.done.wait(WAIT_S)
    assert pub.stop()
    c = pub.counters()
    assert (c["failed_chunks"], c["pushed_chunks"]) == (3, 3)


def test_an_unknown_stream_and_a_zero_capacity_are_refused() -> None:
    pub = ChunkPublisher({"emg": RecordingOutlet()}, capacity_chunks=1)
    with pytest.raises(KeyError, match="no outlet named 'angles'"):
        pub.offer(chunk("angles", 0))
    with pytest.raises(ValueError, match="capacity 0"):
        ChunkPublisher({}, capacity_chunks=0)


def test_stop_pushes_what_is_queued() -> None:
    outlet = RecordingOutlet()
    outlet.expect = 10**9  # never "done": stop must drain on its own
    pub = ChunkPublisher({"emg": outlet}, capacity_chunks=64)
    for k in range(20):
        pub.offer(chunk("emg", k))  # queued before the thread runs
    pub.start()
    assert pub.stop(timeout_s=WAIT_S)
    assert len(outlet.pushed) == 20
