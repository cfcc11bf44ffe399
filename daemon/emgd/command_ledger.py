"""Numbered commands from a socket client, applied in order by the control loop.

This module owns the bookkeeping that ``emgd calibrate``, ``emgd record`` and ``emgd test``
share. The status server thread numbers each command (:meth:`CommandLedger.queue` answers
``{"seq": n}`` at once) and submits it to the loop; the loop runs it at its next hop,
keeps its outcome (``None``, or the message of the :class:`~emgd.errors.EmgdError` it
raised) among the newest :data:`OUTCOMES_KEPT`, and raises ``applied_seq``. A session
publishes :meth:`CommandLedger.fields` in its snapshot, so its client can tell when its
command took effect and whether it failed, without waiting on the loop.

Every command, and every progress poll while a session runs (:meth:`CommandLedger.poll`),
counts as the client's contact; :meth:`CommandLedger.silent_s` says how long the client has
been silent, and the session ends itself past its timeout (the hand must not stay held for
a client that went away). This module knows nothing of what the commands do.

Threading: :meth:`queue` and :meth:`poll` run in the server thread only; the others in the
loop thread (directly, or through what :meth:`queue` submitted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emgd.clock import NS_PER_S, Clock
from emgd.errors import EmgdError

#: A session whose client has been silent this long ends (the sessions' default).
CLIENT_TIMEOUT_S = 30.0
#: Command outcomes kept for the progress snapshot (older sequence numbers are forgotten).
OUTCOMES_KEPT = 64


class CommandLedger:
    """Sequence numbers, outcomes and the client's last contact for one kind of session.

    Parameters
    ----------
    submit:
        Hands a callable to the control loop (``Daemon.submit``).
    clock:
        The daemon's clock (contact times).
    on_applied:
        Called in the loop after each command ran (the session republishes its snapshot).
    """

    def __init__(
        self,
        submit: Callable[[Callable[[], None]], None],
        clock: Clock,
        on_applied: Callable[[], None],
    ) -> None:
        self._submit = submit
        self._clock = clock
        self._on_applied = on_applied
        self._next_seq = 0  # server thread only
        self._applied_seq = 0
        self._outcomes: dict[int, str | None] = {}
        self._last_contact_ns = 0

    # ------------------------------------------------------------------ server thread
    def queue(self, action: Callable[[], None]) -> dict[str, int]:
        """Number ``action``, submit it to the loop and answer its number."""
        self._next_seq += 1
        seq = self._next_seq
        self._submit(lambda: self._apply(seq, action))
        return {"seq": seq}

    def poll(self, active: bool) -> None:
        """A progress poll: the client's heartbeat while a session runs."""
        if active:
            self._submit(self.touch)

    # ------------------------------------------------------------------ loop thread
    def touch(self) -> None:
        """Note the client's contact now."""
        self._last_contact_ns = self._clock.monotonic_ns()

    def silent_s(self, now_ns: int) -> float:
        """Seconds since the client's last command or poll."""
        return (now_ns - self._last_contact_ns) / NS_PER_S

    def fields(self) -> dict[str, Any]:
        """``applied_seq`` and ``outcomes`` for the session's snapshot."""
        return {
            "applied_seq": self._applied_seq,
            "outcomes": {str(k): v for k, v in self._outcomes.items()},
        }

    def _apply(self, seq: int, action: Callable[[], None]) -> None:
        self.touch()
        error: str | None = None
        try:
            action()
        except EmgdError as exc:
            error = str(exc)
        self._outcomes[seq] = error
        while len(self._outcomes) > OUTCOMES_KEPT:
            del self._outcomes[min(self._outcomes)]
        self._applied_seq = max(self._applied_seq, seq)
        self._on_applied()
