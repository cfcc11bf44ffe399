"""HopRecord: the per-hop findings the runner's stage methods hand on."""

from __future__ import annotations

import numpy as np

from emgd.service.hop_record import HopRecord
from emgd.service.safety import SafetyOutput, SafetyState


def _output(state: SafetyState, faults: frozenset[str] = frozenset()) -> SafetyOutput:
    return SafetyOutput(np.zeros(5), state, faults, moving_to_safe_pose=False)


def test_out_is_the_gates_last_decision_or_none() -> None:
    rec = HopRecord(cpu_start_ns=0)
    assert rec.out is None
    first, last = _output(SafetyState.RUNNING), _output(SafetyState.FAULT, frozenset({"stale"}))
    rec.outs += [first, last]
    assert rec.out is last


def test_each_record_has_its_own_faults_and_outputs() -> None:
    a, b = HopRecord(cpu_start_ns=0), HopRecord(cpu_start_ns=0)
    a.faults.add("overrun")
    a.outs.append(_output(SafetyState.FAULT))
    assert b.faults == set() and b.outs == []
