"""Tests of emgd.sim.motor_units: drives, unit pools (Fuglevand 1993) and spike trains."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emgd.errors import ConfigError
from emgd.sim.motor_units import (
    MUSCLE_NAMES,
    TYPE_I,
    TYPE_IIA,
    TYPE_IIB,
    SpikeGenerator,
    UnitTable,
    angles_to_drives,
    build_unit_table,
    splitmix64_uniform,
)
from emgd.sim.trajectory import ConstantPose, KeyframeTrajectory

MASK64 = (1 << 64) - 1


def reference_splitmix64(state: int) -> int:
    """Plain-integer SplitMix64 step output for a given (already advanced) state."""
    z = state & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.fixture(scope="module")
def table() -> UnitTable:
    return build_unit_table(np.random.default_rng(42))


def test_splitmix64_known_outputs() -> None:
    # Published first two outputs of SplitMix64 seeded with 0.
    first, second = 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4
    u = splitmix64_uniform(np.zeros(2, dtype=np.uint64), np.array([0, 1], dtype=np.int64))
    expected = [((x >> 11) + 0.5) * 2.0**-53 for x in (first, second)]
    assert u.tolist() == expected


@given(st.integers(0, MASK64), st.integers(0, 2**40))
def test_splitmix64_matches_reference(key: int, counter: int) -> None:
    got = splitmix64_uniform(np.array([key], dtype=np.uint64), np.array([counter]))
    out = reference_splitmix64(key + (counter + 1) * 0x9E3779B97F4A7C15)
    assert got[0] == ((out >> 11) + 0.5) * 2.0**-53
    assert 0.0 < got[0] < 1.0


def test_muscle_names() -> None:
    assert MUSCLE_NAMES[0] == "flexor_thumb"
    assert MUSCLE_NAMES[4] == "flexor_little"
    assert MUSCLE_NAMES[5] == "extensor_thumb"
    assert len(MUSCLE_NAMES) == 10


@pytest.mark.parametrize(
    ("angles", "flexors", "extensors"),
    [
        ([30] * 5, [0] * 5, [0] * 5),
        ([180] * 5, [1] * 5, [0.12] * 5),
        ([0] * 5, [0.12] * 5, [1] * 5),
        ([105] * 5, [0.5] * 5, [0.06] * 5),
        ([15] * 5, [0.06] * 5, [0.5] * 5),
        # thumb alone: coupling 0.08 to the index flexor; co-contraction 0.12 of each
        ([180, 30, 30, 30, 30], [1, 0.08, 0, 0, 0], [0.12, 0.0096, 0, 0, 0]),
        # middle alone: index 0.12, ring 0.25, little 0.10
        ([30, 30, 180, 30, 30], [0, 0.12, 1, 0.25, 0.10], [0, 0.0144, 0.12, 0.03, 0.012]),
        # pinch at full effort: thumb, index to 110 = 80/150 of the flexion range
        (
            [110, 110, 30, 30, 30],
            [8 / 15, 8 / 15, 0.12 * 8 / 15, 0.04 * 8 / 15, 0],
            [0.064, 0.064, 0.12 * 0.064, 0.04 * 0.064, 0],
        ),
    ],
)
def test_angles_to_drives_by_hand(
    angles: list[float], flexors: list[float], extensors: list[float]
) -> None:
    got = angles_to_drives(np.array([angles], dtype=float))[0]
    np.testing.assert_allclose(got[:5], flexors, atol=1e-12)
    np.testing.assert_allclose(got[5:], extensors, atol=1e-12)


def test_pools_follow_size_principle(table: UnitTable) -> None:
    for m in range(10):
        sel = table.muscle == m
        n = int(sel.sum())
        assert 60 <= n <= 110
        thr = table.threshold[sel]
        assert np.all(np.diff(thr) > 0)
        assert thr[-1] == pytest.approx(0.8)
        assert thr[-1] / thr[0] == pytest.approx(30.0)
        # exponential spread: constant ratio between neighbours
        ratios = thr[1:] / thr[:-1]
        np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)
        assert np.all(np.diff(table.unit_type[sel]) >= 0)  # I, then IIa, then IIb
        assert spearman(table.rank[sel], table.amplitude[sel]) > 0.9
        assert table.amplitude[sel][-5:].mean() > 8 * table.amplitude[sel][:5].mean()


def test_unit_types(table: UnitTable) -> None:
    frac = np.bincount(table.unit_type, minlength=3) / table.n_units
    np.testing.assert_allclose(frac, [0.5, 0.3, 0.2], atol=0.02)
    for kind, peak in ((TYPE_I, 30.0), (TYPE_IIA, 100.0), (TYPE_IIB, 225.0)):
        rates = table.peak_rate_hz[table.unit_type == kind]
        assert rates.mean() == pytest.approx(peak, rel=0.05)
    sigma = [table.muap_sigma_s[table.unit_type == k].mean() for k in range(3)]
    assert sigma[0] > sigma[1] > sigma[2]
    assert sigma[2] > 0.5e-3
    assert sigma[0] < 5e-3


def test_rate_coding(table: UnitTable) -> None:
    u = np.arange(table.n_units)
    thr = table.threshold
    np.testing.assert_array_equal(table.rate_hz(thr * 0.999, u), 0.0)
    np.testing.assert_allclose(table.rate_hz(thr, u), table.min_rate_hz)
    np.testing.assert_allclose(table.rate_hz(np.ones(u.size), u), table.peak_rate_hz)
    mid = table.rate_hz((thr + 1.0) / 2.0, u)
    np.testing.assert_allclose(mid, (table.min_rate_hz + table.peak_rate_hz) / 2.0)
    assert np.all(table.min_rate_hz >= 8.0)


def test_bad_pool_size() -> None:
    with pytest.raises(ConfigError, match="units_per_muscle"):
        build_unit_table(np.random.default_rng(0), units_per_muscle=(50, 10))


def spikes_for(
    pose: str, effort: float, until_s: float, table: UnitTable, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    gen = SpikeGenerator(ConstantPose.from_pose(pose, effort), table, seed)
    return gen.advance_to(until_s)


def test_rest_is_silent(table: UnitTable) -> None:
    t, u = spikes_for("rest", 0.0, 2.0, table)
    assert t.size == 0
    assert u.size == 0


def test_measured_rates_and_isi_variability(table: UnitTable) -> None:
    effort = 0.6
    t, u = spikes_for("power", effort, 6.0, table)
    drive = angles_to_drives(ConstantPose.from_pose("power", effort).angles_deg(np.zeros(1)))[0]
    flexor = np.flatnonzero(table.muscle == 2)
    expected = table.rate_hz(np.full(flexor.size, drive[2]), flexor)
    steady = t >= 1.0
    measured = np.bincount(u[steady], minlength=table.n_units)[flexor] / 5.0
    firing = expected > 0
    assert firing.sum() > 20
    np.testing.assert_allclose(measured[firing], expected[firing], rtol=0.12, atol=1.0)
    assert np.all(measured[~firing] == 0)
    # ISI CV of slow units (mean ISI >= 10 ms, above the jitter floor) is about 20 %.
    cvs = []
    for unit in flexor[firing & (expected < 60.0)]:
        isi = np.diff(np.sort(t[steady & (u == unit)]))
        cvs.append(isi.std() / isi.mean())
    assert 0.15 < float(np.median(cvs)) < 0.25


def test_more_drive_recruits_more_units_and_raises_rates(table: UnitTable) -> None:
    counts = []
    for effort in (0.2, 0.5, 0.8):
        t, u = spikes_for("open", effort, 2.0, table)
        counts.append(np.bincount(u[t >= 0.5], minlength=table.n_units))
    active = [int((c > 0).sum()) for c in counts]
    assert active[0] < active[1] < active[2]
    both = (counts[0] > 0) & (counts[1] > 0)
    assert np.all(counts[1][both] >= counts[0][both])


def test_recruitment_order_on_a_ramp(table: UnitTable) -> None:
    ramp = KeyframeTrajectory([0.0, 10.0], [[30.0] * 5, [180.0] * 5])
    gen = SpikeGenerator(ramp, table, 5)
    t, u = gen.advance_to(10.0)
    sel = np.flatnonzero(table.muscle == 3)
    first = np.array([t[u == unit].min() for unit in sel])
    assert spearman(table.threshold[sel], first) > 0.95
    # the fast, large units join last
    assert (
        first[table.unit_type[sel] == TYPE_IIB].min() > first[table.unit_type[sel] == TYPE_I].max()
    )


def test_spikes_do_not_depend_on_chunking(table: UnitTable) -> None:
    traj = KeyframeTrajectory.from_pose_steps([("chuck", 0.8, 0.4, 1.0), ("open", 0.6, 0.4, 1.0)])
    whole = SpikeGenerator(traj, table, 9).advance_to(4.0)
    gen = SpikeGenerator(traj, table, 9)
    parts = [gen.advance_to(x) for x in (0.01, 0.35, 0.35, 1.7, 3.99)]
    t = np.concatenate([p[0] for p in parts])
    u = np.concatenate([p[1] for p in parts])
    key_whole = np.lexsort((whole[0], whole[1]))
    key_parts = np.lexsort((t, u))
    np.testing.assert_array_equal(whole[0][key_whole], t[key_parts])
    np.testing.assert_array_equal(whole[1][key_whole], u[key_parts])
    assert gen.generated_until_s == pytest.approx(4.0)
    other = SpikeGenerator(traj, table, 10).advance_to(4.0)
    assert other[0].size != whole[0].size or not np.array_equal(
        np.sort(other[0]), np.sort(whole[0])
    )


def test_refuses_bad_co_contraction(table: UnitTable) -> None:
    with pytest.raises(ConfigError, match="co_contraction"):
        SpikeGenerator(ConstantPose.from_pose("rest"), table, 0, co_contraction=1.5)
