"""Tests of emgd.clock: FakeClock semantics exactly, SystemClock loosely (no timing bound
that a busy machine could break, only "never early" and "returns")."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emgd.clock import NS_PER_S, Clock, FakeClock, SystemClock

MS_NS = 1_000_000


def test_ns_per_s() -> None:
    assert NS_PER_S == 1_000_000_000


def test_fake_clock_starts_where_told_and_stands_still() -> None:
    clock = FakeClock(start_ns=5 * NS_PER_S)
    assert clock.monotonic_ns() == 5_000_000_000
    assert clock.monotonic_ns() == 5_000_000_000


def test_fake_clock_default_start_is_positive_and_far_from_zero() -> None:
    # Far from zero so code that subtracts a period from "now" never goes negative.
    assert FakeClock().monotonic_ns() == 1_000_000_000_000


def test_fake_clock_sleep_until_a_future_deadline_jumps_to_it() -> None:
    clock = FakeClock(start_ns=0)
    clock.sleep_until_ns(4 * MS_NS)
    assert clock.monotonic_ns() == 4_000_000


def test_fake_clock_sleep_until_a_past_deadline_does_not_move_back() -> None:
    clock = FakeClock(start_ns=10 * MS_NS)
    clock.sleep_until_ns(3 * MS_NS)
    assert clock.monotonic_ns() == 10_000_000
    clock.sleep_until_ns(10 * MS_NS)
    assert clock.monotonic_ns() == 10_000_000


def test_fake_clock_advance_ns_and_s() -> None:
    clock = FakeClock(start_ns=0)
    clock.advance_ns(250)
    assert clock.monotonic_ns() == 250
    clock.advance_s(0.004)
    assert clock.monotonic_ns() == 4_000_250
    clock.advance_ns(0)
    assert clock.monotonic_ns() == 4_000_250


def test_fake_clock_advance_s_rounds_to_the_nearest_nanosecond() -> None:
    clock = FakeClock(start_ns=0)
    clock.advance_s(1e-3 / 3)  # 333 333.33 ns
    assert clock.monotonic_ns() == 333_333
    clock.advance_s(0.6e-9)
    assert clock.monotonic_ns() == 333_334


@pytest.mark.parametrize("delta", [-1, -NS_PER_S])
def test_fake_clock_refuses_to_go_backwards(delta: int) -> None:
    clock = FakeClock(start_ns=NS_PER_S)
    with pytest.raises(ValueError, match=rf"a clock cannot go backwards \(delta {delta} ns\)"):
        clock.advance_ns(delta)
    with pytest.raises(ValueError, match="cannot go backwards"):
        clock.advance_s(delta / NS_PER_S)
    assert clock.monotonic_ns() == NS_PER_S


@given(
    start_ns=st.integers(0, 2**62),
    steps=st.lists(st.tuples(st.booleans(), st.integers(-(2**40), 2**40)), min_size=1, max_size=30),
)
def test_fake_clock_is_monotonic_and_sleep_reaches_the_deadline(
    start_ns: int, steps: list[tuple[bool, int]]
) -> None:
    clock = FakeClock(start_ns=start_ns)
    previous = clock.monotonic_ns()
    for is_sleep, amount in steps:
        if is_sleep:
            deadline = previous + amount
            clock.sleep_until_ns(deadline)
            assert clock.monotonic_ns() == max(previous, deadline)
        else:
            clock.advance_ns(abs(amount))
            assert clock.monotonic_ns() == previous + abs(amount)
        assert clock.monotonic_ns() >= previous
        previous = clock.monotonic_ns()


def test_both_clocks_satisfy_the_protocol() -> None:
    clocks: list[Clock] = [FakeClock(), SystemClock()]
    for clock in clocks:
        assert isinstance(clock.monotonic_ns(), int)


def test_system_clock_reads_the_monotonic_clock() -> None:
    before = time.monotonic_ns()
    reading = SystemClock().monotonic_ns()
    after = time.monotonic_ns()
    assert before <= reading <= after


def test_system_clock_sleep_until_never_returns_early() -> None:
    clock = SystemClock()
    for wait_ns in (1, 200_000, 2 * MS_NS):
        deadline = clock.monotonic_ns() + wait_ns
        clock.sleep_until_ns(deadline)
        assert clock.monotonic_ns() >= deadline


def test_system_clock_sleep_until_a_past_deadline_returns() -> None:
    clock = SystemClock()
    start = time.monotonic()
    clock.sleep_until_ns(clock.monotonic_ns() - NS_PER_S)
    clock.sleep_until_ns(0)
    # A loose bound: it must not have slept anything like the second it was "late".
    assert time.monotonic() - start < 0.5
