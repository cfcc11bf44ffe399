"""Tests of emgd.service.status_limits: admission, token buckets and the CPU budget, on values."""

from __future__ import annotations

import pytest

from emgd.config import load_config
from emgd.service.status_limits import (
    CPU_SLICE_NS,
    NS_PER_MS,
    NS_PER_S,
    Admit,
    CpuBudget,
    StatusLimits,
    TokenBucket,
    admit,
    status_limits,
)

LIMITS = StatusLimits(max_clients_per_uid=3, reserved_clients=1)


def decide(
    uid: int = 1000,
    *,
    uid_clients: int = 0,
    uid_has_idle: bool = False,
    total: int = 0,
    reserved: int = 0,
    privileged: bool = False,
) -> Admit:
    asked: list[bool] = []

    def is_privileged() -> bool:
        asked.append(True)
        return privileged

    decision = admit(
        uid,
        uid_clients=uid_clients,
        uid_has_idle=uid_has_idle,
        total_clients=total,
        reserved_in_use=reserved,
        max_clients=8,
        limits=LIMITS,
        privileged=is_privileged,
    )
    if total < 8:
        assert not asked, "/proc is read only when the total is full"
    return decision


def test_within_both_limits_is_admitted() -> None:
    assert decide(uid_clients=2, total=7) is Admit.ADMIT


def test_a_uid_at_its_limit_evicts_its_own_idle_one_or_is_refused() -> None:
    assert decide(uid_clients=3, total=3, uid_has_idle=True) is Admit.EVICT_OWN
    assert decide(uid_clients=3, total=3) is Admit.REFUSE_UID
    assert decide(uid_clients=3, total=8, uid_has_idle=True) is Admit.EVICT_OWN


def test_a_full_total_leaves_the_reserve_to_privileged_first_connections() -> None:
    assert decide(total=8) is Admit.REFUSE_TOTAL  # not privileged
    assert decide(total=8, privileged=True) is Admit.RESERVED
    assert decide(total=8, privileged=True, uid_clients=1) is Admit.REFUSE_TOTAL  # not its first
    assert decide(total=8, privileged=True, reserved=1) is Admit.REFUSE_TOTAL  # reserve used


def test_root_first_connection_always_gets_in() -> None:
    assert decide(0, total=8, reserved=1) is Admit.RESERVED
    assert decide(0, total=8, uid_clients=1) is Admit.REFUSE_TOTAL


def test_the_per_uid_limit_never_exceeds_the_total() -> None:
    tight = StatusLimits(max_clients_per_uid=16)
    got = admit(
        5,
        uid_clients=2,
        uid_has_idle=False,
        total_clients=2,
        reserved_in_use=0,
        max_clients=2,
        limits=tight,
        privileged=lambda: True,
    )
    assert got is Admit.REFUSE_UID


def test_token_bucket_bursts_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(10.0, 20.0, now_ns=0)
    assert all(bucket.take(1, 0) for _ in range(20))
    assert not bucket.take(1, 0)
    assert not bucket.take(1, NS_PER_S // 20)  # half a token
    assert bucket.take(1, NS_PER_S // 10)  # one token after 0.1 s
    assert not bucket.take(1, NS_PER_S // 10)
    assert not bucket.take(30, 100 * NS_PER_S)  # never more than the burst
    assert bucket.take(20, 100 * NS_PER_S)


def test_cpu_budget_runs_at_most_a_slice_then_waits_out_its_debt() -> None:
    budget = CpuBudget(50.0)  # 0.5 ms of CPU per 10 ms slice
    assert budget.slice_budget_ns == NS_PER_MS // 2
    assert not budget.over(0, 0)
    assert not budget.over(NS_PER_MS, NS_PER_MS // 4)
    # 2 ms of CPU in one request: 1.5 ms of debt beyond the bucket, repaid at 5 %, then
    # the bucket refilled (0.5 ms)
    assert budget.over(2 * NS_PER_MS, 2 * NS_PER_MS + NS_PER_MS // 4)
    resume_ns = budget.resume_ns
    assert resume_ns == 46 * NS_PER_MS  # (0.5 + 1.7) ms / 5 % after 2 ms
    assert budget.over(resume_ns - NS_PER_MS, 2 * NS_PER_MS + NS_PER_MS // 4)
    assert budget.throttled_slices == 1  # one stop, however often asked
    assert not budget.over(resume_ns, 2 * NS_PER_MS + NS_PER_MS // 4)
    assert budget.total_cpu_ns == 2 * NS_PER_MS + NS_PER_MS // 4
    # Long idle refills only one slice's worth: the next burst is again at most 0.5 ms.
    t_ns = resume_ns + 10 * NS_PER_S
    cpu_ns = budget.total_cpu_ns
    assert not budget.over(t_ns, cpu_ns + NS_PER_MS // 2 - 1000)
    assert budget.over(t_ns, cpu_ns + NS_PER_MS // 2 + 1000)
    assert budget.throttled_slices == 2
    assert CPU_SLICE_NS == 10 * NS_PER_MS


def test_cpu_budget_reports_its_busiest_second() -> None:
    budget = CpuBudget(100.0)
    budget.over(0, 0)
    budget.over(NS_PER_S, 30 * NS_PER_MS)
    budget.over(2 * NS_PER_S, 110 * NS_PER_MS)
    budget.over(3 * NS_PER_S, 120 * NS_PER_MS)
    assert budget.peak_cpu_ms_per_s == pytest.approx(80.0)


def test_limits_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="status limits"):
        StatusLimits(max_cpu_ms_per_s=0.0)
    with pytest.raises(ValueError, match="status limits"):
        StatusLimits(max_clients_per_uid=0)


def test_limits_come_from_the_status_section() -> None:
    config = load_config(
        env={}, overrides=["status.idle_timeout_s=3", "status.max_clients_per_uid=5"]
    )
    limits = status_limits(config.status)
    assert limits.idle_timeout_s == 3.0
    assert limits.max_clients_per_uid == 5
    assert limits.max_cpu_ms_per_s == config.status.max_cpu_ms_per_s
