"""Tests of the safety stage: limits, slew rate, smoothing, HOLD, FAULT and the safe pose."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emgd.errors import ConfigError
from emgd.service.safety import OneEuroFilter, SafetyGate, SafetySettings, SafetyState

HOP_NS = 20_000_000
T0 = 5_000_000_000


def gate(**changes: object) -> SafetyGate:
    s = SafetySettings(**changes)  # type: ignore[arg-type]
    return SafetyGate(s, [30.0] * 5)


def test_running_output_is_slew_limited_and_reaches_the_target() -> None:
    g = gate(max_rate_deg_s=100.0, smoothing=False)
    out = g.step(T0, [180.0] * 5)
    # First step assumes one 20 ms hop: 100 °/s × 0.02 s = 2°.
    np.testing.assert_allclose(out.commanded_deg, [32.0] * 5)
    assert out.state is SafetyState.RUNNING
    t = T0
    for _ in range(100):
        t += HOP_NS
        out = g.step(t, [180.0] * 5)
    np.testing.assert_allclose(out.commanded_deg, [180.0] * 5)


def test_limits_clamp_per_finger() -> None:
    g = gate(
        min_angle_deg=(10.0, 0.0, 0.0, 0.0, 20.0),
        max_angle_deg=(150.0, 180.0, 180.0, 170.0, 160.0),
        max_rate_deg_s=10_000.0,
        smoothing=False,
    )
    out = g.step(T0, [0.0, 0.0, 200.0, 180.0, 0.0])
    np.testing.assert_allclose(out.commanded_deg, [10.0, 0.0, 180.0, 170.0, 20.0])


def test_non_finite_or_missing_output_holds_the_pose_and_is_a_fault() -> None:
    g = gate(smoothing=False, max_rate_deg_s=10_000.0)
    held = g.step(T0, [90.0] * 5).commanded_deg
    for i, bad in enumerate([[math.nan] * 5, [90.0, math.inf, 0.0, 0.0, 0.0], None, [1.0, 2.0]]):
        out = g.step(T0 + (i + 1) * HOP_NS, bad)
        assert out.state is SafetyState.FAULT
        np.testing.assert_array_equal(out.commanded_deg, held)
    assert out.faults == {"model_shape"}


def test_persistent_fault_moves_to_the_safe_pose_slowly() -> None:
    g = gate(
        smoothing=False,
        max_rate_deg_s=10_000.0,
        safe_pose_rate_deg_s=50.0,
        fault_hold_s=0.5,
        safe_pose_deg=(30.0,) * 5,
    )
    g.step(T0, [130.0] * 5)
    t = T0
    outs = []
    for _ in range(200):
        t += HOP_NS
        outs.append(g.step(t, [130.0] * 5, faults={"stale"}))
    # Held for the first 0.5 s (24 hops after the first fault hop), then moving.
    assert all(o.commanded_deg[0] == 130.0 for o in outs[:24])
    assert not outs[10].moving_to_safe_pose and outs[30].moving_to_safe_pose
    steps = np.diff([o.commanded_deg[0] for o in outs])
    assert np.all(steps >= -50.0 * 0.02 - 1e-9)
    assert outs[-1].commanded_deg[0] == pytest.approx(30.0)


def test_recovery_from_a_fault_does_not_jump() -> None:
    g = gate(smoothing=False, max_rate_deg_s=100.0, fault_hold_s=0.0, safe_pose_rate_deg_s=1e3)
    g.step(T0, [30.0] * 5)
    g.step(T0 + HOP_NS, [30.0] * 5, faults={"i2c"})
    out = g.step(T0 + 2 * HOP_NS, [180.0] * 5)
    assert out.state is SafetyState.RUNNING
    assert out.commanded_deg[0] == pytest.approx(32.0)


def test_hold_keeps_the_pose_until_resumed() -> None:
    g = gate(smoothing=False, max_rate_deg_s=10_000.0)
    g.step(T0, [100.0] * 5)
    g.pause()
    out = g.step(T0 + HOP_NS, [0.0] * 5)
    assert out.state is SafetyState.HOLD
    np.testing.assert_allclose(out.commanded_deg, [100.0] * 5)
    g.resume()
    assert g.step(T0 + 2 * HOP_NS, [0.0] * 5).state is SafetyState.RUNNING


def test_a_stalled_loop_does_not_unlock_a_large_step() -> None:
    g = gate(smoothing=False, max_rate_deg_s=100.0)
    g.step(T0, [30.0] * 5)
    out = g.step(T0 + 10 * 1_000_000_000, [180.0] * 5)  # 10 s later
    assert out.commanded_deg[0] == pytest.approx(30.0 + 100.0 * 0.1)


def test_one_euro_smooths_jitter_but_follows_fast_moves() -> None:
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=0.05, d_cutoff_hz=1.0)
    still = [f(np.full(5, 90.0) + rng.normal(0, 2.0, 5), 0.02) for _ in range(200)]
    assert np.std(np.array(still)[100:, 0]) < 0.6
    f.reset(np.full(5, 0.0))
    moving = [f(np.full(5, 180.0 * min(1.0, k / 25)), 0.02)[0] for k in range(40)]
    assert moving[-1] > 170.0


def test_bad_settings_are_refused_with_the_field() -> None:
    with pytest.raises(ConfigError, match="max_rate_deg_s"):
        SafetySettings(max_rate_deg_s=0.0)
    with pytest.raises(ConfigError, match="finger 2"):
        SafetySettings(min_angle_deg=(0, 0, 90, 0, 0), max_angle_deg=(180, 180, 80, 180, 180))


proposal = st.one_of(
    st.none(),
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(min_value=-1e6, max_value=1e6),
        ),
        min_size=5,
        max_size=5,
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=200_000_000),
            proposal,
            st.frozensets(st.sampled_from(["stale", "railed", "i2c"]), max_size=2),
            st.booleans(),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_no_command_ever_leaves_the_limits_or_exceeds_the_slew_rate(
    steps: list[tuple[int, list[float] | None, frozenset[str], bool]],
) -> None:
    s = SafetySettings(
        min_angle_deg=(5.0, 0.0, 10.0, 0.0, 0.0),
        max_angle_deg=(175.0, 170.0, 180.0, 160.0, 180.0),
        max_rate_deg_s=300.0,
        safe_pose_rate_deg_s=60.0,
        fault_hold_s=0.2,
    )
    g = SafetyGate(s, [30.0] * 5)
    prev = g.commanded_deg
    t = T0
    first = True
    for dt_ns, prop, faults, pause in steps:
        t += dt_ns
        if pause:
            g.pause()
        else:
            g.resume()
        out = g.step(t, prop, faults)
        cmd = out.commanded_deg
        assert np.all(np.isfinite(cmd))
        assert np.all(cmd >= np.array(s.min_angle_deg))
        assert np.all(cmd <= np.array(s.max_angle_deg))
        # The gate's dt: one hop on the first step, else the elapsed time within [1 µs, 0.1 s].
        dt_s = 0.02 if first else min(max(dt_ns / 1e9, 1e-6), 0.1)
        assert np.all(np.abs(cmd - prev) <= 300.0 * dt_s + 1e-9)
        prev = cmd
        first = False


def test_hold_at_moves_the_start_of_the_next_slew() -> None:
    g = gate(smoothing=False, max_rate_deg_s=100.0)
    g.step(T0, [30.0] * 5)
    g.hold_at([30.0, 170.0, 30.0, 30.0, 30.0])
    out = g.step(T0 + HOP_NS, [30.0] * 5)
    # Index walks back from 170° at 2° per hop instead of jumping to 30°.
    assert out.commanded_deg[1] == pytest.approx(168.0)
    with pytest.raises(ValueError, match="finite"):
        g.hold_at([math.nan] * 5)


@pytest.mark.parametrize("mode", ["running", "paused", "fault"])
def test_a_finger_held_beyond_its_limits_walks_back_at_the_rate(mode: str) -> None:
    # Index limited to 20..150°, held by a raw pulse at 180° and the thumb at 0°.
    g = gate(
        smoothing=False,
        max_rate_deg_s=100.0,
        safe_pose_rate_deg_s=50.0,
        fault_hold_s=0.0,
        min_angle_deg=(10.0, 20.0, 0.0, 0.0, 0.0),
        max_angle_deg=(180.0, 150.0, 180.0, 180.0, 180.0),
    )
    g.hold_at([0.0, 180.0, 30.0, 30.0, 30.0], clamp=False)
    np.testing.assert_allclose(g.commanded_deg, [0.0, 180.0, 30.0, 30.0, 30.0])
    if mode == "paused":
        g.pause()
    faults = {"stale"} if mode == "fault" else set()
    proposal = [170.0, 170.0, 30.0, 30.0, 30.0]  # the index outward, the thumb inward
    per_hop = {"running": 2.0, "paused": 0.0, "fault": 1.0}[mode]
    prev = g.commanded_deg
    t = T0
    for _ in range(40):
        out = g.step(t, proposal, faults)
        cmd = out.commanded_deg
        assert np.all(np.abs(cmd - prev) <= per_hop + 1e-9)
        # Never further out than where it was held; once inside, inside for good.
        assert 0.0 <= cmd[0] <= 180.0 and 20.0 <= cmd[1] <= 180.0
        assert cmd[1] <= prev[1] + 1e-9 or cmd[1] <= 150.0
        prev = cmd
        t += HOP_NS
    if mode == "paused":
        np.testing.assert_allclose(prev[:2], [0.0, 180.0])  # HOLD keeps the held pose
    elif mode == "running":
        assert prev[1] == pytest.approx(150.0) and prev[0] == pytest.approx(80.0)
    else:  # walking to the safe pose (30°) at 1° per hop
        assert prev[1] == pytest.approx(140.0) and prev[0] == pytest.approx(30.0)
    g.hold_at([0.0, 180.0, 30.0, 30.0, 30.0])  # clamped by default
    np.testing.assert_allclose(g.commanded_deg[:2], [10.0, 150.0])
