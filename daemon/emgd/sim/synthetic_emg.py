"""Synthetic surface EMG at the electrodes, from a finger-angle trajectory (a SignalSource).

This module owns everything between motor-unit firing times and the µV an electrode sees:
the forearm geometry (muscles and their units inside a cylinder, electrodes around it),
volume-conduction weights and MUAP shapes per unit and electrode (Hermite–Rodriguez
biphasic/triphasic potentials that widen with distance), amplitude scaling, white noise,
mains hum with harmonics, electrode DC offsets and motion artefacts. It renders one
continuous stream in fixed internal blocks, so for a given seed the output does not depend
on how callers chunk it. The physiology before the spikes lives in
:mod:`emgd.sim.motor_units`; this module must not know about ADC chips, buses or clocks.
"""

from __future__ import annotations

import math
import time
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from emgd.errors import ConfigError
from emgd.poses import N_FINGERS
from emgd.sim.anatomy import VOLUME_CONDUCTION_MM, Anatomy, draw_anatomy
from emgd.sim.motor_units import (
    DEFAULT_CO_CONTRACTION,
    DEFAULT_UNITS_PER_MUSCLE,
    MUSCLE_NAMES,
    N_MUSCLES,
    SpikeGenerator,
    UnitTable,
    build_unit_table,
)
from emgd.sim.trajectory import PoseSequence, Trajectory

FloatArray = npt.NDArray[np.float64]

# --- defaults -----------------------------------------------------------------------------
DEFAULT_N_CHANNELS = 8
MAX_CHANNELS = 64
DEFAULT_MAINS_HZ = 50.0
DEFAULT_MAINS_UV = 8.0  # amplitude of the fundamental on an average channel
DEFAULT_NOISE_RMS_UV = 3.0
DEFAULT_DC_OFFSET_UV = 0.0  # offsets are drawn uniformly in ±this per channel
DEFAULT_ARTEFACT_RATE_HZ = 0.05
DEFAULT_ARTEFACT_UV = 800.0
# RMS on the electrode nearest a muscle when that muscle alone is at full drive.
DEFAULT_FULL_EFFORT_RMS_UV = 150.0
MAX_SAMPLE_RATE_HZ = 1_000_000.0

# --- forearm geometry (cross-section; angle 0 = dorsal midline, 90 = radial, 180 = volar) ---
# Nominal (angle_deg, depth_mm below the skin) of each muscle's centre, in MUSCLE_NAMES order;
# each wearer's arm moves them, and its size, fat and band come from emgd.sim.anatomy.
MUSCLE_POSITION: tuple[tuple[float, float], ...] = (
    (140.0, 17.0),  # flexor thumb (flexor pollicis longus, deep)
    (165.0, 10.0),  # flexor index (FDS/FDP index slips)
    (185.0, 9.0),  # flexor middle
    (205.0, 11.0),  # flexor ring
    (225.0, 13.0),  # flexor little
    (55.0, 12.0),  # extensor thumb (EPL / APL)
    (30.0, 13.0),  # extensor index (EIP)
    (5.0, 8.0),  # extensor middle (EDC)
    (-20.0, 8.0),  # extensor ring (EDC)
    (-45.0, 10.0),  # extensor little (EDM)
)
UNIT_TERRITORY_RADIUS_MM = 5.0
MUAP_WIDENING_PER_MM = 0.02  # σ grows by this fraction per mm from the fibres

# --- MUAP basis: Hermite-Rodriguez functions of log-spaced widths ------------------------
#   H1(t) = -(t/σ)·exp(1/2 - t²/2σ²)   biphasic, peak 1
#   H2(t) = (1 - t²/σ²)·exp(-t²/2σ²)    triphasic, peak 1
# A unit's potential at an electrode = amp · (cos θ · H1 + sin θ · H2) at its width σ,
# spread linearly (in log σ) over the two nearest basis widths.
BASIS_SIGMA_S: tuple[float, ...] = tuple(float(s) for s in np.geomspace(0.8e-3, 8e-3, 6))
N_SHAPES = 2
MUAP_SUPPORT_SIGMAS = 4.0
MUAP_HALF_SPAN_S = MUAP_SUPPORT_SIGMAS * BASIS_SIGMA_S[-1]
SHAPE_ANGLE_RANGE_RAD: tuple[float, float] = (0.1, 1.3)
SHAPE_ANGLE_JITTER_RAD = 0.35
GRAM_STEP_S = 5e-6

# --- mains, artefacts, rendering ----------------------------------------------------------
MAINS_HARMONICS: tuple[int, ...] = (1, 3, 5)
MAINS_HARMONIC_GAIN: tuple[float, ...] = (1.0, 0.3, 0.12)
MAINS_PHASE_JITTER_RAD = 0.3
ARTEFACT_TAU_S: tuple[float, float] = (0.01, 0.06)
ARTEFACT_SPREAD_CHANNELS = 1.2
BLOCK_S = 0.1  # internal render block; outputs do not depend on the caller's chunking
SPIKE_KEEP_MARGIN_S = 0.05

_SEED_GEOMETRY: Final = 1
_SEED_SPIKES: Final = 2
_SEED_NOISE: Final = 3
_SEED_ARTEFACTS: Final = 4
_SEED_MAINS: Final = 5


def _check_nonneg(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise ConfigError(f"SyntheticEmg: {name} must be a finite number >= 0, got {value!r}")


def muap_basis(t_s: FloatArray) -> FloatArray:
    """The MUAP basis functions at times ``t_s`` (relative to the spike).

    Parameters
    ----------
    t_s:
        Shape ``(n,)``, seconds.

    Returns
    -------
    numpy.ndarray
        Shape ``(2·W, n)`` with ``W = len(BASIS_SIGMA_S)``: rows ``0..W-1`` are the biphasic
        H1 of each width, rows ``W..2W-1`` the triphasic H2; each peaks at magnitude 1.
    """
    sigma = np.asarray(BASIS_SIGMA_S)[:, None]
    x = t_s[None, :] / sigma
    g = np.exp(-0.5 * x * x)
    h1 = -x * g * math.exp(0.5)
    h2 = (1.0 - x * x) * g
    return np.concatenate([h1, h2], axis=0)


def _convolve_valid_summed(impulses: npt.NDArray[Any], kernels: FloatArray) -> FloatArray:
    """``sum_k (impulses[k] * kernels[k])`` along time, "valid" part only, through the FFT.

    Parameters
    ----------
    impulses:
        Shape ``(K, L, C)``: impulse trains per kernel, time on axis 1.
    kernels:
        Shape ``(K, M)`` with ``M <= L``.

    Returns
    -------
    numpy.ndarray
        Shape ``(L - M + 1, C)``.

    Notes
    -----
    numpy's FFT rather than ``scipy.signal.fftconvolve``: importing scipy.signal costs
    ~2 s and ~50 MiB in each process that renders (the acquisition process and the
    renderer among them), for this one call; the sum over kernels is done in the
    frequency domain, so one inverse transform serves all ``K``.
    """
    length = impulses.shape[1]
    n_taps = kernels.shape[1]
    n_fft = 1 << (length + n_taps - 2).bit_length()  # a power of two >= L + M - 1
    spectrum = (
        np.fft.rfft(impulses, n=n_fft, axis=1) * np.fft.rfft(kernels, n=n_fft, axis=1)[:, :, None]
    )
    full = np.fft.irfft(spectrum.sum(axis=0), n=n_fft, axis=0)
    out: FloatArray = full[n_taps - 1 : length]
    return out


class SyntheticEmg:
    """Seeded synthetic sEMG from a finger-angle trajectory; implements ``SignalSource``.

    Parameters
    ----------
    trajectory:
        What the hand is doing (angles in degrees over time in seconds).
    n_channels:
        Number of bipolar electrodes, evenly spaced around the forearm.
    seed:
        Seed of everything random: the wearer's anatomy (:func:`emgd.sim.anatomy.draw_anatomy`),
        units, spikes, noise, artefacts.
    mains_hz:
        Mains frequency (50 or 60); 0 disables the hum.
    mains_uv:
        Amplitude of the mains fundamental on an average channel (µV); harmonics 3 and 5
        follow at :data:`MAINS_HARMONIC_GAIN`.
    noise_rms_uv:
        White noise RMS per channel (µV).
    dc_offset_uv:
        Per-channel electrode offsets are drawn uniformly in ``±dc_offset_uv``.
    artefact_rate_hz:
        Mean rate of motion artefacts (Poisson); 0 disables them.
    artefact_uv:
        Typical peak of a motion artefact on its nearest electrode (µV).
    full_effort_rms_uv:
        Expected RMS on the electrode nearest a muscle when that muscle alone is at full
        drive (sets the scale of every MUAP).
    units_per_muscle:
        Range of motor-unit pool sizes.
    co_contraction:
        Antagonist co-activation fraction (see :func:`emgd.sim.motor_units.angles_to_drives`).
    donning:
        Which putting-on of the electrode band by this wearer (0 = the usual placement).
    """

    def __init__(
        self,
        trajectory: Trajectory,
        *,
        n_channels: int = DEFAULT_N_CHANNELS,
        seed: int = 0,
        mains_hz: float = DEFAULT_MAINS_HZ,
        mains_uv: float = DEFAULT_MAINS_UV,
        noise_rms_uv: float = DEFAULT_NOISE_RMS_UV,
        dc_offset_uv: float = DEFAULT_DC_OFFSET_UV,
        artefact_rate_hz: float = DEFAULT_ARTEFACT_RATE_HZ,
        artefact_uv: float = DEFAULT_ARTEFACT_UV,
        full_effort_rms_uv: float = DEFAULT_FULL_EFFORT_RMS_UV,
        units_per_muscle: tuple[int, int] = DEFAULT_UNITS_PER_MUSCLE,
        co_contraction: float = DEFAULT_CO_CONTRACTION,
        donning: int = 0,
    ) -> None:
        if not (isinstance(n_channels, int) and 1 <= n_channels <= MAX_CHANNELS):
            raise ConfigError(
                f"SyntheticEmg: n_channels must be an integer in [1, {MAX_CHANNELS}], "
                f"got {n_channels!r}"
            )
        for name, value in (
            ("mains_hz", mains_hz),
            ("mains_uv", mains_uv),
            ("noise_rms_uv", noise_rms_uv),
            ("dc_offset_uv", dc_offset_uv),
            ("artefact_rate_hz", artefact_rate_hz),
            ("artefact_uv", artefact_uv),
        ):
            _check_nonneg(name, value)
        if not (math.isfinite(full_effort_rms_uv) and full_effort_rms_uv > 0.0):
            raise ConfigError(
                f"SyntheticEmg: full_effort_rms_uv must be > 0, got {full_effort_rms_uv!r}"
            )
        self._trajectory = trajectory
        self._n_channels = n_channels
        self._seed = seed
        self._mains_hz = mains_hz
        self._mains_uv = mains_uv
        self._noise_rms_uv = noise_rms_uv
        self._artefact_rate_hz = artefact_rate_hz
        self._artefact_uv = artefact_uv
        self._anatomy = draw_anatomy(seed, n_channels, N_MUSCLES, donning=donning)

        geo_rng = np.random.default_rng([seed, _SEED_GEOMETRY])
        self._units: UnitTable = build_unit_table(geo_rng, units_per_muscle=units_per_muscle)
        self._mixing, self._basis_index, self._basis_uv = self._build_geometry(
            geo_rng, full_effort_rms_uv
        )
        self._dc_offset_uv: FloatArray = geo_rng.uniform(-1.0, 1.0, n_channels) * dc_offset_uv
        self._spikes = SpikeGenerator(
            trajectory, self._units, seed * 1_000_003 + _SEED_SPIKES, co_contraction=co_contraction
        )

        mains_rng = np.random.default_rng([seed, _SEED_MAINS])
        n_h = len(MAINS_HARMONICS)
        self._mains_gain: FloatArray = mains_rng.uniform(0.5, 1.5, n_channels)
        common_phase = mains_rng.uniform(0.0, 2.0 * math.pi, n_h)
        self._mains_phase: FloatArray = common_phase[:, None] + MAINS_PHASE_JITTER_RAD * (
            mains_rng.standard_normal((n_h, n_channels))
        )

        self._noise_rng = np.random.default_rng([seed, _SEED_NOISE])
        self._artefact_rng = np.random.default_rng([seed, _SEED_ARTEFACTS])
        # Pending artefacts: onset time, time constant, per-channel peak (µV).
        self._art_t_s: FloatArray = np.empty(0)
        self._art_tau_s: FloatArray = np.empty(0)
        self._art_peak_uv: FloatArray = np.empty((0, n_channels))
        self._next_artefact_s = self._draw_artefact_gap()

        self._spike_t_s: FloatArray = np.empty(0)
        self._spike_unit: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)

        # Stream state: a segment is a run of samples at one rate.
        self._fs_hz = 0.0
        self._seg_start_s = 0.0
        self._seg_served = 0
        self._seg_rendered = 0
        self._block_n = 0
        self._buf: FloatArray = np.empty((0, n_channels))
        self._buf_first = 0
        self._kernel_fs_hz = 0.0
        self._kernel_half = 0
        self._kernels: FloatArray = np.empty((0, 0))

    # --- construction ---------------------------------------------------------------------

    def _build_geometry(
        self, rng: np.random.Generator, full_effort_rms_uv: float
    ) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray]:
        """Place muscles, units and electrodes.

        Returns
        -------
        mixing, basis_index, basis_uv:
            Shapes ``(C, M)``: weight of each muscle centre at each electrode; ``(U, 4, C)``:
            which basis functions make each unit's MUAP at each electrode; ``(U, 4, C)``:
            their amplitudes in µV.
        """
        units = self._units
        n_ch = self._n_channels
        arm = self._anatomy
        pos = np.asarray(MUSCLE_POSITION)
        m_angle = np.radians(pos[:, 0] + arm.muscle_angle_offset_deg)
        m_radius = arm.forearm_radius_mm - arm.muscle_depth_mm(pos[:, 1])
        m_xy = np.stack([m_radius * np.cos(m_angle), m_radius * np.sin(m_angle)], axis=1)
        e_angle = np.radians(arm.electrode_angle_deg)
        e_radius = arm.forearm_radius_mm  # electrodes on the skin
        e_xy = np.stack([e_radius * np.cos(e_angle), e_radius * np.sin(e_angle)], axis=1)

        def weight(dist_mm: FloatArray) -> FloatArray:
            return 1.0 / (1.0 + (dist_mm / VOLUME_CONDUCTION_MM) ** 2)

        mixing = weight(np.linalg.norm(e_xy[:, None, :] - m_xy[None, :, :], axis=2))

        n_u = units.n_units
        r = UNIT_TERRITORY_RADIUS_MM * np.sqrt(rng.uniform(0.0, 1.0, n_u))
        phi = rng.uniform(0.0, 2.0 * math.pi, n_u)
        u_xy = m_xy[units.muscle] + np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
        dist = np.linalg.norm(u_xy[:, None, :] - e_xy[None, :, :], axis=2)  # (U, C)
        w_uc = weight(dist)
        sigma_uc = units.muap_sigma_s[:, None] * (1.0 + MUAP_WIDENING_PER_MM * dist)
        shape_angle = rng.uniform(*SHAPE_ANGLE_RANGE_RAD, n_u)[:, None] + (
            SHAPE_ANGLE_JITTER_RAD * rng.standard_normal((n_u, n_ch))
        )

        n_w = len(BASIS_SIGMA_S)
        log_s = np.log(np.asarray(BASIS_SIGMA_S))
        x = np.clip((np.log(sigma_uc) - log_s[0]) / (log_s[1] - log_s[0]), 0.0, n_w - 1.0)
        lower = np.minimum(np.floor(x).astype(np.int64), n_w - 2)
        frac = x - lower
        # Each unit/electrode pair uses 4 basis functions: 2 shapes x the 2 nearest widths.
        size = (units.amplitude * arm.muscle_size[units.muscle])[:, None] * w_uc
        slots_j: list[npt.NDArray[np.int64]] = []
        slots_w: list[FloatArray] = []
        for s, coef in enumerate((np.cos(shape_angle), np.sin(shape_angle))):
            slots_j += [s * n_w + lower, s * n_w + lower + 1]
            slots_w += [size * coef * (1.0 - frac), size * coef * frac]
        basis_j = np.stack(slots_j, axis=1)  # (U, 4, C)
        basis_w = np.stack(slots_w, axis=1)
        amp = np.zeros((n_u, N_SHAPES * n_w, n_ch))
        u_idx = np.arange(n_u)[:, None, None]
        c_idx = np.arange(n_ch)[None, None, :]
        np.add.at(amp, (u_idx, basis_j, c_idx), basis_w)

        # Scale by Campbell's theorem: variance = Σ rate · ∫ muap² dt.
        t_fine = np.arange(-MUAP_HALF_SPAN_S, MUAP_HALF_SPAN_S + GRAM_STEP_S, GRAM_STEP_S)
        phi_fine = muap_basis(t_fine)
        gram = phi_fine @ phi_fine.T * GRAM_STEP_S  # (K, K)
        energy = np.einsum("ujc,jk,ukc->uc", amp, gram, amp)  # (U, C), µV²·s per unit
        variance = np.zeros((N_MUSCLES, n_ch))
        np.add.at(variance, units.muscle, units.peak_rate_hz[:, None] * energy)
        # Under the reference fat layer this arm's loudest muscle reaches full_effort_rms_uv on
        # its nearest electrode; more fat weakens them all, and each contact scales its channel.
        scale = full_effort_rms_uv * arm.fat_gain / math.sqrt(float(variance.max()))
        return mixing, basis_j, basis_w * (scale * arm.skin_gain)[None, None, :]

    # --- properties -------------------------------------------------------------------------

    @property
    def n_channels(self) -> int:
        return self._n_channels

    @property
    def time_s(self) -> float:
        """Stream time of the next sample to be generated (seconds)."""
        if self._fs_hz == 0.0:
            return self._seg_start_s
        return self._seg_start_s + self._seg_served / self._fs_hz

    @property
    def trajectory(self) -> Trajectory:
        return self._trajectory

    @property
    def units(self) -> UnitTable:
        """The motor units of every muscle."""
        return self._units

    @property
    def anatomy(self) -> Anatomy:
        """This wearer's forearm and electrode placement."""
        return self._anatomy

    @property
    def muscle_names(self) -> tuple[str, ...]:
        return MUSCLE_NAMES

    @property
    def mixing(self) -> FloatArray:
        """Shape ``(n_channels, 10)``: volume-conduction weight from each muscle's centre."""
        return self._mixing.copy()

    @property
    def dc_offset_uv(self) -> FloatArray:
        """Shape ``(n_channels,)``: the electrode offsets."""
        return self._dc_offset_uv.copy()

    def target_angles_deg(self) -> FloatArray:
        """Shape ``(5,)``: the trajectory's angles at :attr:`time_s`."""
        angles: FloatArray = self._trajectory.angles_deg(np.array([self.time_s]))[0]
        return angles

    def muscle_drives(self, t_s: FloatArray) -> FloatArray:
        """Shape ``(n, 10)``: muscle drives at times ``t_s`` (``MUSCLE_NAMES`` order)."""
        return self._spikes.drives(np.asarray(t_s, dtype=np.float64).reshape(-1))

    # --- streaming -------------------------------------------------------------------------

    def generate(self, n_samples: int, sample_rate_hz: float) -> FloatArray:
        """Next ``n_samples`` of the stream at ``sample_rate_hz``.

        Returns
        -------
        numpy.ndarray
            Shape ``(n_samples, n_channels)``, µV at the electrodes.
        """
        if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer):
            raise ConfigError(f"SyntheticEmg.generate: n_samples must be an int, got {n_samples!r}")
        if n_samples < 0:
            raise ConfigError(f"SyntheticEmg.generate: n_samples must be >= 0, got {n_samples}")
        fs = float(sample_rate_hz)
        if not (math.isfinite(fs) and 0.0 < fs <= MAX_SAMPLE_RATE_HZ):
            raise ConfigError(
                f"SyntheticEmg.generate: sample_rate_hz must be in (0, {MAX_SAMPLE_RATE_HZ:g}], "
                f"got {sample_rate_hz!r}"
            )
        n = int(n_samples)
        if fs != self._fs_hz:
            self._start_segment(fs)
        out = np.empty((n, self._n_channels))
        filled = 0
        while filled < n:
            offset = self._seg_served - self._buf_first
            if offset >= self._buf.shape[0]:
                self._render_block()
                continue
            take = min(n - filled, self._buf.shape[0] - offset)
            out[filled : filled + take] = self._buf[offset : offset + take]
            filled += take
            self._seg_served += take
        return out

    def generate_with_targets(
        self, n_samples: int, sample_rate_hz: float
    ) -> tuple[FloatArray, FloatArray]:
        """Like :meth:`generate`, plus the trajectory's angles at each sample time.

        Returns
        -------
        emg_uv, angles_deg:
            Shapes ``(n_samples, n_channels)`` and ``(n_samples, 5)``.
        """
        emg_uv = self.generate(n_samples, sample_rate_hz)
        fs = self._fs_hz
        k = self._seg_served - n_samples + np.arange(n_samples)
        t_s = self._seg_start_s + k / fs
        if n_samples == 0:
            return emg_uv, np.empty((0, N_FINGERS))
        return emg_uv, self._trajectory.angles_deg(t_s)

    def _start_segment(self, fs: float) -> None:
        self._seg_start_s = self.time_s
        self._fs_hz = fs
        self._seg_served = 0
        self._seg_rendered = 0
        self._block_n = max(1, round(BLOCK_S * fs))
        self._buf = np.empty((0, self._n_channels))
        self._buf_first = 0

    def _kernels_at(self, fs: float) -> tuple[FloatArray, int]:
        if fs != self._kernel_fs_hz:
            half = max(1, math.ceil(MUAP_HALF_SPAN_S * fs))
            self._kernels = muap_basis(np.arange(-half, half + 1) / fs)
            self._kernel_half = half
            self._kernel_fs_hz = fs
        return self._kernels, self._kernel_half

    def _render_block(self) -> None:
        fs = self._fs_hz
        n = self._block_n
        k0 = self._seg_rendered
        n_ch = self._n_channels
        t_s = self._seg_start_s + (k0 + np.arange(n)) / fs
        kernels, half = self._kernels_at(fs)
        span_s = (half + 1) / fs

        block = self._render_muaps(t_s, kernels, half, span_s)
        if self._noise_rms_uv > 0.0:
            noise = self._noise_rng.standard_normal((n, n_ch))
            block += (self._noise_rms_uv * self._anatomy.noise_scale)[None, :] * noise
        if self._mains_hz > 0.0 and self._mains_uv > 0.0:
            block += self._render_mains(t_s, fs)
        if self._artefact_rate_hz > 0.0 and self._artefact_uv > 0.0:
            block += self._render_artefacts(t_s)
        block += self._dc_offset_uv[None, :]

        self._buf = block
        self._buf_first = k0
        self._seg_rendered = k0 + n

    def _render_muaps(
        self, t_s: FloatArray, kernels: FloatArray, half: int, span_s: float
    ) -> FloatArray:
        fs = self._fs_hz
        n = t_s.shape[0]
        n_ch = self._n_channels
        k0 = self._seg_rendered
        t_new, u_new = self._spikes.advance_to(float(t_s[-1]) + span_s)
        keep = self._spike_t_s >= t_s[0] - MUAP_HALF_SPAN_S - SPIKE_KEEP_MARGIN_S - span_s
        self._spike_t_s = np.concatenate([self._spike_t_s[keep], t_new])
        self._spike_unit = np.concatenate([self._spike_unit[keep], u_new])

        length = n + 2 * half
        pos = np.rint((self._spike_t_s - self._seg_start_s) * fs).astype(np.int64) - k0 + half
        inside = (pos >= 0) & (pos < length)
        pos = pos[inside]
        if pos.size == 0:
            return np.zeros((n, n_ch))
        unit = self._spike_unit[inside]
        weights = self._basis_uv[unit]  # (S, 4, C)
        n_k = kernels.shape[0]
        flat = (self._basis_index[unit] * length + pos[:, None, None]) * n_ch + np.arange(n_ch)
        impulses = np.bincount(
            flat.ravel(), weights=weights.ravel(), minlength=n_k * length * n_ch
        ).reshape(n_k, length, n_ch)
        result: FloatArray = _convolve_valid_summed(impulses, kernels)
        return result

    def _render_mains(self, t_s: FloatArray, fs: float) -> FloatArray:
        hum = np.zeros((t_s.shape[0], self._n_channels))
        for h, (harmonic, gain) in enumerate(
            zip(MAINS_HARMONICS, MAINS_HARMONIC_GAIN, strict=True)
        ):
            f_hz = harmonic * self._mains_hz
            if f_hz >= fs / 2.0:
                continue
            phase = 2.0 * math.pi * f_hz * t_s[:, None] + self._mains_phase[h][None, :]
            hum += (self._mains_uv * gain) * self._mains_gain[None, :] * np.sin(phase)
        return hum

    def _draw_artefact_gap(self) -> float:
        if self._artefact_rate_hz <= 0.0:
            return math.inf
        return float(self._artefact_rng.exponential(1.0 / self._artefact_rate_hz))

    def _render_artefacts(self, t_s: FloatArray) -> FloatArray:
        n_ch = self._n_channels
        t_last = float(t_s[-1])
        new_t: list[float] = []
        new_tau: list[float] = []
        new_peak: list[FloatArray] = []
        rng = self._artefact_rng
        while self._next_artefact_s <= t_last:
            centre = rng.uniform(0.0, n_ch)
            ring = np.abs(np.arange(n_ch) + 0.5 - centre)
            ring = np.minimum(ring, n_ch - ring)
            sign = 1.0 if rng.random() < 0.5 else -1.0
            size = self._artefact_uv * rng.uniform(0.5, 1.5)
            new_t.append(self._next_artefact_s)
            new_tau.append(float(rng.uniform(*ARTEFACT_TAU_S)))
            new_peak.append(sign * size * np.exp(-((ring / ARTEFACT_SPREAD_CHANNELS) ** 2)))
            self._next_artefact_s += self._draw_artefact_gap()
        if new_t:
            self._art_t_s = np.concatenate([self._art_t_s, new_t])
            self._art_tau_s = np.concatenate([self._art_tau_s, new_tau])
            self._art_peak_uv = np.concatenate([self._art_peak_uv, np.array(new_peak)])
        # An artefact is the alpha function peak·(x)·e^(1−x), x = (t − onset)/τ, for t ≥ onset.
        alive = self._art_t_s + 20.0 * self._art_tau_s >= t_s[0]
        self._art_t_s = self._art_t_s[alive]
        self._art_tau_s = self._art_tau_s[alive]
        self._art_peak_uv = self._art_peak_uv[alive]
        out = np.zeros((t_s.shape[0], n_ch))
        for onset, tau, peak in zip(self._art_t_s, self._art_tau_s, self._art_peak_uv, strict=True):
            x = np.maximum(t_s - onset, 0.0) / tau
            out += (x * np.exp(1.0 - x))[:, None] * peak[None, :]
        return out


def benchmark_realtime_factor(
    sample_rate_hz: float = 2000.0,
    *,
    n_channels: int = DEFAULT_N_CHANNELS,
    duration_s: float = 10.0,
    chunk_samples: int = 0,
    seed: int = 0,
) -> float:
    """How many times faster than real time the generator runs (one core, wall clock).

    Uses a :class:`~emgd.sim.trajectory.PoseSequence` with efforts 0.5–1.0 so most of the
    time some muscles fire hard. ``chunk_samples`` = 0 asks for 20 ms per call.
    This is a measurement helper for ``emgd bench`` and the README, not used by tests.
    """
    trajectory = PoseSequence(seed, effort=(0.5, 1.0), rest_probability=0.2)
    source = SyntheticEmg(trajectory, n_channels=n_channels, seed=seed)
    chunk = chunk_samples or max(1, round(0.02 * sample_rate_hz))
    total = round(duration_s * sample_rate_hz)
    source.generate(chunk, sample_rate_hz)  # warm-up: kernels, first epoch
    done = 0
    start = time.perf_counter()
    while done < total:
        step = min(chunk, total - done)
        source.generate(step, sample_rate_hz)
        done += step
    elapsed_s = time.perf_counter() - start
    return (total / sample_rate_hz) / elapsed_s


def main() -> None:
    """Print the real-time factor at 2 kHz and 16 kHz, 8 channels."""
    for fs in (2000.0, 16000.0):
        factor = benchmark_realtime_factor(fs, duration_s=10.0)
        print(f"{fs:8.0f} Hz x {DEFAULT_N_CHANNELS} ch: {factor:6.1f}x real time")


if __name__ == "__main__":
    main()
