"""When the control loop wakes: just after the frame that completes the next window.

Windows fall on fixed sample indices (one every hop, :mod:`emgd.dsp.window`). A loop that
woke on a free-running 20 ms timer would find the newest window already 0-20 ms old (10 ms
on average) and leave it waiting; the wearer would feel that wait on top of the hop's
compute. This module owns the rule that puts the loop's wake-up on the sample clock
instead: the frame that completes the next window is due at the newest frame's DRDY time
plus the frames still needed times the frame period, and the loop wakes a small margin
after that, then waits (at most one hop) for the frame to be published.

It keeps the free-running cadence whenever the stream gives no usable reference: before
the first frame, after a wait that gave up (a late frame is then taken one hop later, not
chased), and when the due time falls more than a hop from the cadence. So a stalled
acquisition never makes the loop spin. Numbers and an injected clock in, a time out: no
threads, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from emgd.clock import Clock

#: After the due DRDY time, the frame still has to be read over SPI and published in the
#: shared ring (~0.1 ms on the development VM): the loop wakes this much later.
WAKE_MARGIN_NS = 150_000
#: How often the loop looks again for a frame that is not published yet.
POLL_NS = 100_000
#: How long past its wake-up the loop waits for a late frame, as a fraction of the hop,
#: before it hops without it. A frame published late (an acquisition process held off
#: the CPU) is then still taken the moment it lands, and when the frames stop the loop
#: keeps hopping once per hop, so its safety checks (stale data after 0.1 s) still run.
MAX_WAIT_HOP_FRACTION = 1.0


def next_wake_ns(
    cadence_ns: int,
    *,
    hop_ns: int,
    newest_frame_ns: int | None,
    frames_needed: int,
    frame_period_ns: int,
    last_wait_gave_up: bool = False,
    margin_ns: int = WAKE_MARGIN_NS,
) -> int:
    """The next wake-up: locked to the window-completing frame, or the cadence.

    Parameters
    ----------
    cadence_ns:
        The free-running deadline (the previous wake-up plus one hop).
    hop_ns:
        The hop.
    newest_frame_ns:
        DRDY time of the newest frame the loop has read (``None`` before the first).
    frames_needed:
        Frames still to come up to and including the one that completes the next window.
    frame_period_ns:
        Time between frames at the ADC's rate.
    last_wait_gave_up:
        The previous wake-up's window was late (:func:`window_late`).
    margin_ns:
        Time from a DRDY edge until its frame is readable.

    Returns
    -------
    int
        ``newest_frame_ns + frames_needed × frame_period_ns + margin_ns`` when that lies
        within one hop of ``cadence_ns`` (and the last wait did not give up), else
        ``cadence_ns``.
    """
    if newest_frame_ns is None or frames_needed < 1 or last_wait_gave_up:
        return cadence_ns
    due_ns = newest_frame_ns + frames_needed * frame_period_ns + margin_ns
    if abs(due_ns - cadence_ns) > hop_ns:
        return cadence_ns
    return due_ns


def max_wait_ns(hop_ns: int) -> int:
    """How long the loop waits past its wake-up for a late frame."""
    return round(hop_ns * MAX_WAIT_HOP_FRACTION)


def window_late(
    clock: Clock,
    frames_pending: Callable[[], int],
    frames_needed: int,
    woke_ns: int,
    *,
    hop_ns: int,
    frame_period_ns: int,
) -> bool:
    """After a wake-up: wait (at most :func:`max_wait_ns`) for the window-completing frame.

    A window whose missing frames cannot be due within the wait (the first window still
    filling) is not waited for and is not late.

    Returns
    -------
    bool
        ``True`` when the frame was due within the wait and did not come: the wait gave up.
    """
    give_up_ns = woke_ns + max_wait_ns(hop_ns)
    missing = frames_needed - frames_pending()
    if missing * frame_period_ns > give_up_ns - clock.monotonic_ns():
        return False
    return not wait_for_frames(
        clock, frames_pending, frames_needed, give_up_ns, frame_period_ns=frame_period_ns
    )


def wait_for_frames(
    clock: Clock,
    frames_pending: Callable[[], int],
    frames_needed: int,
    give_up_ns: int,
    *,
    frame_period_ns: int,
    poll_ns: int = POLL_NS,
) -> bool:
    """Sleep until ``frames_pending() >= frames_needed`` or ``give_up_ns``.

    Each sleep lasts until the missing frames are due (``frame_period_ns`` each), at least
    ``poll_ns``: a lagging acquisition is polled a few times per hop, not every 0.1 ms, so
    the waiting loop does not take the CPU the acquisition needs to catch up.

    Returns
    -------
    bool
        ``True`` when the frames are there, ``False`` when ``give_up_ns`` passed first.
    """
    while (missing := frames_needed - frames_pending()) > 0:
        now_ns = clock.monotonic_ns()
        if now_ns >= give_up_ns:
            return False
        clock.sleep_until_ns(min(now_ns + max(poll_ns, missing * frame_period_ns), give_up_ns))
    return True
