"""What one hop of the control loop gathers on its way: faults, safety decisions, stage times.

:meth:`emgd.service.runner.Daemon.hop` makes one :class:`HopRecord` per hop and hands it from
stage call to stage call, so each stage method reads what the earlier ones found and adds its
own. This module owns only the fields and two read-only views of them; it must not compute,
call a stage, or be kept past the hop that made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emgd.service.safety import SafetyOutput


@dataclass(slots=True)
class HopRecord:
    """One hop's findings, filled in stage order.

    Times are monotonic nanoseconds from the loop's clock (``t_*``) or this thread's CPU
    clock (``cpu_*``); the ``t_filter`` … ``t_safety`` fields are durations, the others
    instants.
    """

    cpu_start_ns: int  # thread CPU time when the hop began
    t_read: int = 0  # when the new frames were taken from the ring
    n_frames: int = 0  # frames taken
    faults: set[str] = field(default_factory=set)  # active faults, as the safety gate sees them
    outs: list[SafetyOutput] = field(default_factory=list)  # the gate's decisions, in order
    model_failed: bool = False  # a window, the model or the gate raised
    t_filter: int = 0  # filter time over the frames taken
    t_window: int = 0  # window-cutting time
    t_infer: int = 0  # model time, summed over the windows inferred
    t_safety: int = 0  # safety-gate time, summed over its steps
    window_drdy_ns: int | None = None  # DRDY time of the newest frame of the windows cut
    t_write0: int = 0  # servo write began
    t_written: int = 0  # servo write returned (or failed)
    cpu_hand_ns: int = 0  # CPU time of the simulated hand's physics (not our compute)

    @property
    def out(self) -> SafetyOutput | None:
        """The gate's last decision this hop, if it stepped at all."""
        return self.outs[-1] if self.outs else None
