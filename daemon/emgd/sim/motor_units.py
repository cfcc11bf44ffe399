"""Forearm muscles and their motor-unit pools: finger angles → muscle drives → spike trains.

This module owns the physiology of the synthetic EMG up to the firing times (after
Fuglevand, Winter & Patla 1993): a flexor and an extensor per finger, the mapping from
finger angles to muscle drives (with enslaving between fingers and co-contraction), and per
muscle a pool of motor units recruited in order of exponentially spread thresholds (size
principle), of types I / IIa / IIb, rate-coded from a minimum rate at recruitment to a
type-specific peak, with Gaussian inter-spike-interval variability (SD 20 % of the mean
interval, but at least 2 ms, so IIb units near 225 Hz are less regular). Spike trains are
generated in fixed absolute epochs with counter-based random numbers, so they do not depend
on how a caller chunks time or on any sampling rate. It must not know about electrodes,
sampling or noise (that is :mod:`emgd.sim.synthetic_emg`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from emgd.errors import ConfigError
from emgd.poses import ANGLE_MAX_DEG, ANGLE_MIN_DEG, FINGERS, N_FINGERS, POSE_ANGLES_DEG, REST
from emgd.sim.trajectory import Trajectory

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
U64Array = npt.NDArray[np.uint64]

# --- muscles ------------------------------------------------------------------------------
# Muscle index m: 0-4 flexors of thumb..little, 5-9 extensors of thumb..little.
N_MUSCLES = 2 * N_FINGERS
MUSCLE_NAMES: tuple[str, ...] = tuple(f"flexor_{f}" for f in FINGERS) + tuple(
    f"extensor_{f}" for f in FINGERS
)
FLEXORS = slice(0, N_FINGERS)
EXTENSORS = slice(N_FINGERS, N_MUSCLES)

REST_ANGLE_DEG: tuple[float, ...] = POSE_ANGLES_DEG[REST]
# Enslaving: row = muscle's own finger, column = finger whose command also drives it; a
# muscle's drive is the largest of coupling × command over the fingers.
# Thumb and index have their own muscles (FPL, EIP) and couple weakly; middle, ring and
# little share the FDS/FDP/EDC bellies and couple strongly.
FINGER_COUPLING: tuple[tuple[float, ...], ...] = (
    (1.00, 0.08, 0.00, 0.00, 0.00),
    (0.08, 1.00, 0.12, 0.04, 0.00),
    (0.00, 0.12, 1.00, 0.25, 0.10),
    (0.00, 0.04, 0.25, 1.00, 0.30),
    (0.00, 0.00, 0.10, 0.30, 1.00),
)
# Fraction of each muscle's drive that also reaches its antagonist (joint stiffening).
DEFAULT_CO_CONTRACTION = 0.12

# --- motor-unit pools (Fuglevand et al. 1993, with the seed's three fibre types) ---------
DEFAULT_UNITS_PER_MUSCLE: tuple[int, int] = (60, 110)
RECRUITMENT_RANGE = 30.0  # ratio of the last to the first recruitment threshold
LAST_THRESHOLD_DRIVE = 0.8  # drive at which the last unit is recruited
TYPE_I, TYPE_IIA, TYPE_IIB = 0, 1, 2
TYPE_NAMES: tuple[str, ...] = ("I", "IIa", "IIb")
TYPE_FRACTIONS: tuple[float, float, float] = (0.5, 0.3, 0.2)  # in recruitment order
PEAK_RATE_HZ: tuple[float, float, float] = (30.0, 100.0, 225.0)
MIN_RATE_HZ: tuple[float, float, float] = (8.0, 10.0, 12.0)
RATE_JITTER = 0.08  # relative spread of peak rates within a type
ISI_CV = 0.2  # coefficient of variation of inter-spike intervals
ISI_Z_LIMIT = 3.0  # ISI deviations are clipped to ±3 SD
# Floor on the ISI SD. Without it, near-periodic trains at 150-225 Hz cancel the MUAP power
# below their rate and the RMS would *fall* as effort approaches 1; with it type I/IIa keep
# a CV of ~20 % and IIb at 225 Hz reach ~45 %.
ISI_SD_FLOOR_S = 2e-3
REFRACTORY_S = 1.5e-3
AMPLITUDE_RANGE = 20.0  # ratio of the largest to the smallest MUAP amplitude in a pool
AMPLITUDE_JITTER = 0.15  # log-normal spread of MUAP amplitudes
# MUAP Gaussian width σ per type (faster fibres conduct faster: shorter potentials).
MUAP_SIGMA_S: tuple[float, float, float] = (2.6e-3, 1.9e-3, 1.1e-3)
MUAP_SIGMA_JITTER = 0.15
RECRUIT_JITTER_S = 10e-3  # random delay of the first spike after recruitment

# --- spike generation ---------------------------------------------------------------------
EPOCH_S = 0.1  # spikes are generated in fixed absolute epochs of this length
DRIVE_GRID_S = 1e-3  # the drive is sampled on this absolute grid and interpolated
_GRID_PER_EPOCH = round(EPOCH_S / DRIVE_GRID_S)

# SplitMix64 constants (Steele, Lea & Flood 2014): one stream per unit, indexed by counter.
_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_MINUS_53 = 2.0**-53


def splitmix64_uniform(keys: U64Array, counters: IntArray) -> FloatArray:
    """Counter-based uniform numbers in ``(0, 1)``: element ``k`` of stream ``key``.

    Parameters
    ----------
    keys:
        Shape ``(n,)``, uint64 stream keys.
    counters:
        Shape ``(n,)``, non-negative draw indices.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``; the same (key, counter) always gives the same number.
    """
    z = keys + (counters.astype(np.uint64) + np.uint64(1)) * _GOLDEN_GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    z = z ^ (z >> np.uint64(31))
    uniform: FloatArray = ((z >> np.uint64(11)).astype(np.float64) + 0.5) * _TWO_POW_MINUS_53
    return uniform


def angles_to_drives(
    angles_deg: FloatArray, *, co_contraction: float = DEFAULT_CO_CONTRACTION
) -> FloatArray:
    """Map finger angles to muscle drives (0 = silent, 1 = maximal).

    Flexion above the rest angle drives the finger's flexor linearly up to 1 at 180°;
    opening below the rest angle drives its extensor up to 1 at 0°. Commands spread to
    neighbouring fingers' muscles through :data:`FINGER_COUPLING`, and a fraction
    ``co_contraction`` of each muscle's drive also reaches its antagonist.

    Parameters
    ----------
    angles_deg:
        Shape ``(n, 5)``, flexion in degrees.
    co_contraction:
        Fraction in ``[0, 1]``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, 10)``, drives in ``[0, 1]`` in :data:`MUSCLE_NAMES` order.
    """
    a = np.asarray(angles_deg, dtype=np.float64)
    rest = np.asarray(REST_ANGLE_DEG)
    a = np.clip(a, ANGLE_MIN_DEG, ANGLE_MAX_DEG)
    flex = np.clip((a - rest) / (ANGLE_MAX_DEG - rest), 0.0, 1.0)
    ext = np.clip((rest - a) / (rest - ANGLE_MIN_DEG), 0.0, 1.0)
    coupling = np.asarray(FINGER_COUPLING)
    flex_m = (flex[..., None, :] * coupling).max(axis=-1)
    ext_m = (ext[..., None, :] * coupling).max(axis=-1)
    flex_d = np.minimum(flex_m + co_contraction * ext_m, 1.0)
    ext_d = np.minimum(ext_m + co_contraction * flex_m, 1.0)
    return np.concatenate([flex_d, ext_d], axis=-1)


def _ndtri(p: FloatArray) -> FloatArray:
    """Inverse of the standard normal CDF (:func:`scipy.special.ndtri`), imported on first
    use: the acquisition process imports this module for its constants only and must stay
    small and quick to start."""
    from scipy.special import ndtri

    out: FloatArray = ndtri(p)
    return out


@dataclass(frozen=True, slots=True)
class UnitTable:
    """The fixed parameters of every motor unit of every muscle (``U`` units in all).

    Attributes
    ----------
    muscle:
        Shape ``(U,)``, index of the unit's muscle.
    rank:
        Shape ``(U,)``, recruitment rank within its muscle (0 = first recruited).
    unit_type:
        Shape ``(U,)``, :data:`TYPE_I`, :data:`TYPE_IIA` or :data:`TYPE_IIB`.
    threshold:
        Shape ``(U,)``, recruitment threshold in drive units.
    min_rate_hz, peak_rate_hz:
        Shape ``(U,)``, firing rate at recruitment and at drive 1.
    amplitude:
        Shape ``(U,)``, relative MUAP size (1 = smallest unit before jitter).
    muap_sigma_s:
        Shape ``(U,)``, Gaussian width of the unit's action potential at the fibres.
    """

    muscle: IntArray
    rank: IntArray
    unit_type: IntArray
    threshold: FloatArray
    min_rate_hz: FloatArray
    peak_rate_hz: FloatArray
    amplitude: FloatArray
    muap_sigma_s: FloatArray

    @property
    def n_units(self) -> int:
        return int(self.muscle.shape[0])

    def rate_hz(self, drive: FloatArray, units: IntArray | slice = slice(None)) -> FloatArray:
        """Firing rate of ``units`` at ``drive`` (0 below threshold).

        Parameters
        ----------
        drive:
            Shape broadcastable to the selected units, drive of each unit's muscle.
        units:
            Which units (index array or slice).

        Returns
        -------
        numpy.ndarray
            Rates in Hz: ``min + (peak − min)·(drive − thr)/(1 − thr)`` capped at ``peak``.
        """
        thr = self.threshold[units]
        lo = self.min_rate_hz[units]
        hi = self.peak_rate_hz[units]
        frac = np.clip((drive - thr) / (1.0 - thr), 0.0, 1.0)
        return np.where(drive >= thr, lo + (hi - lo) * frac, 0.0)


def build_unit_table(
    rng: np.random.Generator,
    *,
    units_per_muscle: tuple[int, int] = DEFAULT_UNITS_PER_MUSCLE,
    n_muscles: int = N_MUSCLES,
) -> UnitTable:
    """Draw the motor-unit pools of all muscles.

    Parameters
    ----------
    rng:
        Source of the per-unit jitter and pool sizes.
    units_per_muscle:
        Range ``(lo, hi)`` of pool sizes, drawn uniformly per muscle (inclusive).
    n_muscles:
        Number of muscles.
    """
    lo, hi = units_per_muscle
    if not (2 <= lo <= hi <= 1000):
        raise ConfigError(
            f"units_per_muscle must be (lo, hi) with 2 <= lo <= hi <= 1000, got {lo}, {hi}"
        )
    parts: dict[str, list[npt.NDArray[np.generic]]] = {
        k: [] for k in ("muscle", "rank", "type", "thr", "min", "peak", "amp", "sigma")
    }
    type_edges = np.cumsum(TYPE_FRACTIONS)
    for m in range(n_muscles):
        n = int(rng.integers(lo, hi + 1))
        rank = np.arange(n)
        position = rank / (n - 1)  # 0 = first recruited, 1 = last
        thr = LAST_THRESHOLD_DRIVE * np.exp(math.log(RECRUITMENT_RANGE) * (position - 1.0))
        unit_type = np.searchsorted(type_edges, (rank + 0.5) / n).astype(np.int64)
        peak = np.asarray(PEAK_RATE_HZ)[unit_type] * (1.0 + RATE_JITTER * rng.standard_normal(n))
        minimum = np.asarray(MIN_RATE_HZ)[unit_type]
        amp = np.exp(math.log(AMPLITUDE_RANGE) * position) * np.exp(
            AMPLITUDE_JITTER * rng.standard_normal(n)
        )
        sigma = np.asarray(MUAP_SIGMA_S)[unit_type] * np.exp(
            MUAP_SIGMA_JITTER * rng.standard_normal(n)
        )
        parts["muscle"].append(np.full(n, m, dtype=np.int64))
        parts["rank"].append(rank.astype(np.int64))
        parts["type"].append(unit_type)
        parts["thr"].append(thr)
        parts["min"].append(minimum)
        parts["peak"].append(np.maximum(peak, minimum + 1.0))
        parts["amp"].append(amp)
        parts["sigma"].append(sigma)
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return UnitTable(
        muscle=cat["muscle"].astype(np.int64),
        rank=cat["rank"].astype(np.int64),
        unit_type=cat["type"].astype(np.int64),
        threshold=cat["thr"].astype(np.float64),
        min_rate_hz=cat["min"].astype(np.float64),
        peak_rate_hz=cat["peak"].astype(np.float64),
        amplitude=cat["amp"].astype(np.float64),
        muap_sigma_s=cat["sigma"].astype(np.float64),
    )


class SpikeGenerator:
    """Firing times of every motor unit, driven by a finger-angle trajectory.

    Time advances in fixed absolute epochs of :data:`EPOCH_S`; within an epoch the muscle
    drives are sampled on an absolute 1 ms grid and interpolated. Each unit draws its
    random numbers from its own counter-based stream, so the spike trains depend only on
    the seed and the trajectory, never on how :meth:`advance_to` is called.

    Parameters
    ----------
    trajectory:
        The finger angles over time.
    units:
        The motor-unit table.
    seed:
        Seed of the per-unit random streams.
    co_contraction:
        Passed to :func:`angles_to_drives`.
    """

    def __init__(
        self,
        trajectory: Trajectory,
        units: UnitTable,
        seed: int,
        *,
        co_contraction: float = DEFAULT_CO_CONTRACTION,
    ) -> None:
        if not (0.0 <= co_contraction <= 1.0):
            raise ConfigError(f"co_contraction must be in [0, 1], got {co_contraction!r}")
        self._trajectory = trajectory
        self._units = units
        self._co_contraction = co_contraction
        key_rng = np.random.default_rng([seed, 0x5EED])
        self._keys: U64Array = key_rng.integers(
            0, np.iinfo(np.uint64).max, size=units.n_units, dtype=np.uint64, endpoint=True
        )
        self._counters: IntArray = np.zeros(units.n_units, dtype=np.int64)
        self._next_t_s: FloatArray = np.zeros(units.n_units)
        self._epoch = 0

    @property
    def units(self) -> UnitTable:
        return self._units

    @property
    def generated_until_s(self) -> float:
        """Every spike before this time has been returned by :meth:`advance_to`."""
        return self._epoch * EPOCH_S

    def drives(self, t_s: FloatArray) -> FloatArray:
        """Muscle drives at times ``t_s``: shape ``(n, 10)``."""
        return angles_to_drives(
            self._trajectory.angles_deg(t_s), co_contraction=self._co_contraction
        )

    def advance_to(self, t_s: float) -> tuple[FloatArray, IntArray]:
        """Generate all spikes up to the first epoch boundary at or after ``t_s``.

        Returns
        -------
        times_s, unit_index:
            Shape ``(k,)`` each: the new spikes (not sorted), in seconds and unit indices.
        """
        times: list[FloatArray] = []
        index: list[IntArray] = []
        while self._epoch * EPOCH_S < t_s:
            t_ep, u_ep = self._run_epoch(self._epoch)
            times.append(t_ep)
            index.append(u_ep)
            self._epoch += 1
        if not times:
            return np.empty(0), np.empty(0, dtype=np.int64)
        return np.concatenate(times), np.concatenate(index)

    def _run_epoch(self, epoch: int) -> tuple[FloatArray, IntArray]:
        units = self._units
        g0 = epoch * _GRID_PER_EPOCH
        grid_t = np.arange(g0, g0 + _GRID_PER_EPOCH + 1, dtype=np.float64) * DRIVE_GRID_S
        drive_grid = self.drives(grid_t)  # (G, M)
        t0 = grid_t[0]
        t1 = (epoch + 1) * EPOCH_S
        n_grid = grid_t.shape[0]
        out_t: list[FloatArray] = []
        out_u: list[IntArray] = []
        while True:
            live = np.flatnonzero(self._next_t_s < t1)
            if live.size == 0:
                break
            t = self._next_t_s[live]
            muscle = units.muscle[live]
            x = (t - t0) / DRIVE_GRID_S
            g = np.clip(np.floor(x).astype(np.int64), 0, n_grid - 2)
            frac = np.clip(x - g, 0.0, 1.0)
            drive = drive_grid[g, muscle] * (1.0 - frac) + drive_grid[g + 1, muscle] * frac
            rnd = splitmix64_uniform(self._keys[live], self._counters[live])
            self._counters[live] += 1
            thr = units.threshold[live]
            active = drive >= thr

            # Units that fire now: record the spike and draw the next interval.
            fire = live[active]
            if fire.size:
                t_fire = t[active]
                out_t.append(t_fire)
                out_u.append(fire)
                rate = units.rate_hz(drive[active], fire)
                z = np.clip(_ndtri(rnd[active]), -ISI_Z_LIMIT, ISI_Z_LIMIT)
                mean_isi = 1.0 / rate
                isi_sd = np.maximum(ISI_CV * mean_isi, ISI_SD_FLOOR_S)
                isi = np.maximum(mean_isi + isi_sd * z, REFRACTORY_S)
                self._next_t_s[fire] = t_fire + isi

            # Silent units: wait for the first grid point after now where the drive
            # reaches the threshold (or the next epoch), then fire after a random delay.
            quiet = live[~active]
            if quiet.size:
                g_now = np.floor(x[~active]).astype(np.int64)
                above = drive_grid[:, units.muscle[quiet]] >= units.threshold[quiet][None, :]
                above &= np.arange(n_grid)[:, None] > g_now[None, :]
                found = above.any(axis=0)
                first = np.argmax(above, axis=0)
                t_cross = t0 + first * DRIVE_GRID_S
                self._next_t_s[quiet] = np.where(
                    found, t_cross + RECRUIT_JITTER_S * rnd[~active], t1
                )
        if not out_t:
            return np.empty(0), np.empty(0, dtype=np.int64)
        return np.concatenate(out_t), np.concatenate(out_u)
