"""The status socket's limits: who is let in, how fast a client may talk, how much CPU the
server thread may spend.

This module owns the rules and their bookkeeping on values passed in (peer uids, times in
nanoseconds, thread CPU time in nanoseconds): the admission decision for a new connection
(a limit in total and per peer uid, a reserve beyond the total for root and the service's
own group, eviction of a uid's own idle connection when that uid is at its limit), token
buckets for requests and bytes per second, and the CPU budget of the server thread. It
opens no socket, starts no thread and reads no clock: :mod:`emgd.service.status_server` asks and
acts, so every rule is tested without a socket.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emgd.config import StatusConfig

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000

DEFAULT_MAX_CLIENTS_PER_UID = 16
DEFAULT_RESERVED_CLIENTS = 4
DEFAULT_IDLE_TIMEOUT_S = 10.0
DEFAULT_MAX_REQUESTS_PER_S = 50.0
DEFAULT_MAX_BYTES_PER_S = 65_536.0
DEFAULT_MAX_CPU_MS_PER_S = 50.0
#: A uid at its limit may evict one of its own connections idle at least this long.
EVICTABLE_AFTER_S = 1.0
#: A client may send this many seconds' worth of its rate at once (its bucket's depth).
BURST_S = 2.0
#: The server thread runs at most this long times its CPU share in one go (0.5 ms at
#: 50 ms/s): the loop waits for the GIL at most about that long.
CPU_SLICE_NS = 10 * NS_PER_MS
ROOT_UID = 0


@dataclass(frozen=True)
class StatusLimits:
    """What one client, one uid and the server thread may take.

    Attributes
    ----------
    max_clients_per_uid:
        Connections one peer uid may hold (the total is the server's ``max_clients``).
    reserved_clients:
        Connections allowed beyond the total, each the *first* connection of a uid that may
        call privileged methods (root, this service's uid, the socket group). Root's first
        connection is let in even when the reserve is used up.
    idle_timeout_s:
        A client that sends no complete request for this long is dropped (``--watch``
        clients keep theirs by asking).
    max_requests_per_s, max_bytes_per_s:
        Per-client rates; a client may burst ``BURST_S`` seconds' worth. The first request
        beyond them gets an error reply and the connection is closed. (A client that
        reconnects gets a new burst; the CPU budget bounds what that costs.)
    max_cpu_ms_per_s:
        CPU time the server thread may use per second, in runs of at most its share of
        ``CPU_SLICE_NS``; beyond it the thread sleeps until its debt is repaid (clients
        wait, the loop does not).
    """

    max_clients_per_uid: int = DEFAULT_MAX_CLIENTS_PER_UID
    reserved_clients: int = DEFAULT_RESERVED_CLIENTS
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    max_requests_per_s: float = DEFAULT_MAX_REQUESTS_PER_S
    max_bytes_per_s: float = DEFAULT_MAX_BYTES_PER_S
    max_cpu_ms_per_s: float = DEFAULT_MAX_CPU_MS_PER_S

    def __post_init__(self) -> None:
        if (
            self.max_clients_per_uid < 1
            or self.reserved_clients < 0
            or not self.idle_timeout_s > 0
            or not self.max_requests_per_s > 0
            or not self.max_bytes_per_s > 0
            or not 0 < self.max_cpu_ms_per_s <= 1000
        ):
            raise ValueError(f"status limits out of range: {self}")

    @property
    def idle_timeout_ns(self) -> int:
        return round(self.idle_timeout_s * NS_PER_S)


def status_limits(config: StatusConfig) -> StatusLimits:
    """The limits of a ``[status]`` config section (:class:`emgd.config.StatusConfig`)."""
    return StatusLimits(
        max_clients_per_uid=config.max_clients_per_uid,
        reserved_clients=config.reserved_clients,
        idle_timeout_s=config.idle_timeout_s,
        max_requests_per_s=config.max_requests_per_s,
        max_bytes_per_s=config.max_bytes_per_s,
        max_cpu_ms_per_s=config.max_cpu_ms_per_s,
    )


class Admit(enum.Enum):
    """What to do with a new connection."""

    ADMIT = "admit"  # within the total and the uid's limit
    RESERVED = "reserved"  # beyond the total: a privileged uid's first connection
    EVICT_OWN = "evict_own"  # the uid is at its limit: close its longest-idle one, admit
    REFUSE_UID = "refuse_uid"  # the uid is at its limit and none of its clients is idle
    REFUSE_TOTAL = "refuse_total"  # the total and the reserve are full


def admit(
    uid: int,
    *,
    uid_clients: int,
    uid_has_idle: bool,
    total_clients: int,
    reserved_in_use: int,
    max_clients: int,
    limits: StatusLimits,
    privileged: Callable[[], bool],
) -> Admit:
    """Decide on a new connection from ``uid``.

    Parameters
    ----------
    uid_clients:
        Connections this uid holds now.
    uid_has_idle:
        Whether one of them is idle (no partial request, no unsent reply, no request for
        ``EVICTABLE_AFTER_S``), so it can go.
    total_clients, reserved_in_use:
        Connections held now in all, and how many of them came in through the reserve.
    privileged:
        Whether the peer may call privileged methods; called only when the total is full
        (it may read ``/proc``).
    """
    per_uid = min(limits.max_clients_per_uid, max_clients)
    if uid_clients >= per_uid:
        return Admit.EVICT_OWN if uid_has_idle else Admit.REFUSE_UID
    if total_clients < max_clients:
        return Admit.ADMIT
    if uid_clients == 0:
        if uid == ROOT_UID:
            return Admit.RESERVED
        if reserved_in_use < limits.reserved_clients and privileged():
            return Admit.RESERVED
    return Admit.REFUSE_TOTAL


class TokenBucket:
    """A rate with a burst: ``rate_per_s`` tokens a second, at most ``burst`` stored.

    Starts full. Times are monotonic nanoseconds passed in.
    """

    __slots__ = ("_tokens", "_updated_ns", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: float, now_ns: int) -> None:
        if not rate_per_s > 0 or not burst > 0:
            raise ValueError(f"token bucket needs rate and burst > 0: {rate_per_s}, {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = burst
        self._updated_ns = now_ns

    def take(self, amount: float, now_ns: int) -> bool:
        """Take ``amount`` tokens if there are that many (True), else take none (False)."""
        elapsed_ns = max(0, now_ns - self._updated_ns)
        self._updated_ns = max(self._updated_ns, now_ns)
        self._tokens = min(self.burst, self._tokens + elapsed_ns * self.rate_per_s / NS_PER_S)
        if amount > self._tokens:
            return False
        self._tokens -= amount
        return True


class CpuBudget:
    """The server thread's CPU allowance, ``max_cpu_ms_per_s``, and the figures shown in
    ``emgd status``.

    A bucket of CPU time: it fills at ``max_cpu_ms_per_s`` and holds at most one slice's
    worth (``slice_ns`` of wall time at that rate), so the thread never runs more than that
    in one go (the GIL it holds meanwhile is what the control loop waits for). Work beyond
    the bucket is a debt: :meth:`over` is True until it is repaid and the bucket full again
    (:attr:`resume_ns`), so even a request that costs more than a slice is paid in full.

    Call :meth:`over` with the wall time and the thread's CPU time (both ns, monotonic).
    """

    __slots__ = (
        "_cpu_ns",
        "_first_cpu_ns",
        "_now_ns",
        "_resume_ns",
        "_second_cpu_ns",
        "_second_start_ns",
        "_spent",
        "_tokens_ns",
        "max_cpu_ms_per_s",
        "peak_cpu_ms_per_s",
        "slice_budget_ns",
        "slice_ns",
        "throttled_slices",
        "total_cpu_ns",
    )

    def __init__(self, max_cpu_ms_per_s: float, slice_ns: int = CPU_SLICE_NS) -> None:
        if not 0 < max_cpu_ms_per_s <= 1000 or slice_ns <= 0:
            raise ValueError(f"CPU budget out of range: {max_cpu_ms_per_s} ms/s, {slice_ns} ns")
        self.max_cpu_ms_per_s = max_cpu_ms_per_s
        self.slice_ns = slice_ns
        self.slice_budget_ns = round(max_cpu_ms_per_s * NS_PER_MS * slice_ns / NS_PER_S)
        self._now_ns: int | None = None
        self._cpu_ns = 0
        self._tokens_ns = float(self.slice_budget_ns)
        self._spent = False
        self._resume_ns = 0
        self._first_cpu_ns = 0
        self._second_start_ns = 0
        self._second_cpu_ns = 0
        self.total_cpu_ns = 0  # since the first call
        self.peak_cpu_ms_per_s = 0.0  # most CPU in one whole second so far
        self.throttled_slices = 0  # times the thread had to stop and wait

    @property
    def _fraction(self) -> float:
        return self.max_cpu_ms_per_s * NS_PER_MS / NS_PER_S

    def over(self, now_ns: int, cpu_ns: int) -> bool:
        """Whether the allowance is spent (the thread must wait until :attr:`resume_ns`)."""
        if self._now_ns is None:
            self._now_ns, self._cpu_ns = now_ns, cpu_ns
            self._second_start_ns, self._second_cpu_ns = now_ns, cpu_ns
            self._first_cpu_ns = cpu_ns
        if now_ns - self._second_start_ns >= NS_PER_S:
            used_ms = (cpu_ns - self._second_cpu_ns) / NS_PER_MS
            seconds = (now_ns - self._second_start_ns) / NS_PER_S
            self.peak_cpu_ms_per_s = max(self.peak_cpu_ms_per_s, used_ms / seconds)
            self._second_start_ns, self._second_cpu_ns = now_ns, cpu_ns
        self.total_cpu_ns = cpu_ns - self._first_cpu_ns
        earned_ns = max(0, now_ns - self._now_ns) * self._fraction
        refilled_ns = min(float(self.slice_budget_ns), self._tokens_ns + earned_ns)
        self._tokens_ns = refilled_ns - (cpu_ns - self._cpu_ns)
        self._now_ns, self._cpu_ns = max(self._now_ns, now_ns), cpu_ns
        if self._spent and now_ns >= self._resume_ns:
            self._spent = False
        if not self._spent and self._tokens_ns <= 0:
            # Wait until the debt is repaid and the bucket full again: waking costs CPU
            # too, so resuming at the first token would spend each wake-up on waking.
            self._spent = True
            self.throttled_slices += 1
            refill_ns = self.slice_budget_ns - self._tokens_ns
            self._resume_ns = now_ns + math.ceil(refill_ns / self._fraction)
        return self._spent

    @property
    def resume_ns(self) -> int:
        """When serving may resume (meaningful while :meth:`over` is True)."""
        return self._resume_ns
