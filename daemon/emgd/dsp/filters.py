"""The causal streaming filter of the signal chain: band-pass, mains notch, DC removal.

This module owns the filter design (one SOS cascade built once from a :class:`FilterSpec`
and a sampling rate with :mod:`scipy.signal`) and the per-channel filter state that carries
across blocks, so filtering a recording block by block gives exactly what filtering it in
one piece gives. It processes whole blocks on all channels with one ``sosfilt`` call and
never loops over samples in Python. It must not buffer, window, normalise or know where the
samples come from; the caller feeds blocks in time order and owns the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from emgd.errors import ConfigError

FloatArray = npt.NDArray[np.float64]


def scipy_signal() -> Any:
    """:mod:`scipy.signal`, imported on first use rather than with this module: the import
    takes ~2 s and ~50 MiB on a small machine, and the daemon pays it after READY, while
    the first window fills (see :meth:`emgd.service.runner.Daemon.start`)."""
    from scipy import signal

    return signal


# --- defaults (surface EMG carries its power between ~20 and ~450 Hz) ---------------------
DEFAULT_LOW_HZ = 20.0
DEFAULT_HIGH_HZ = 450.0
DEFAULT_ORDER = 4  # Butterworth order of each band edge: 4 sections, 8 poles in all
DEFAULT_MAINS_HZ = 50.0
DEFAULT_NOTCH_Q = 30.0  # notch -3 dB width = mains_hz / Q (1.7 Hz at 50 Hz)
MAINS_CHOICES_HZ: tuple[float, ...] = (0.0, 50.0, 60.0)  # 0 = no notch
MAX_ORDER = 8
# The high edge is clipped to this fraction of the sampling rate (0.9 × Nyquist), so at
# fs = 500 Hz the default 450 Hz edge becomes 225 Hz.
HIGH_EDGE_MAX_FS_FRACTION = 0.45
# Harmonics of mains are notched only below this fraction of Nyquist (a notch pinned at
# Nyquist is degenerate).
HARMONIC_MAX_NYQUIST_FRACTION = 0.95
SOS_COLUMNS = 6  # b0 b1 b2 a0 a1 a2 per second-order section


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """What the streaming filter does, independent of the sampling rate.

    Attributes
    ----------
    low_hz:
        High-pass edge of the band-pass (-3 dB), > 0. It also removes the electrode's DC
        offset.
    high_hz:
        Low-pass edge of the band-pass (-3 dB). At a given sampling rate it is clipped to
        ``HIGH_EDGE_MAX_FS_FRACTION × fs`` (see :func:`effective_band_hz`).
    order:
        Butterworth order per band edge, 1 to ``MAX_ORDER``; the band-pass has ``order``
        second-order sections.
    mains_hz:
        Mains frequency to notch out: 50 or 60, or 0 for no notch.
    notch_q:
        Quality factor of each notch (centre frequency / -3 dB width), > 0.
    notch_harmonics:
        Also notch every multiple of ``mains_hz`` below ``HARMONIC_MAX_NYQUIST_FRACTION`` of
        Nyquist (one section each; 9 sections at 50 Hz and fs = 1000 Hz).
    """

    low_hz: float = DEFAULT_LOW_HZ
    high_hz: float = DEFAULT_HIGH_HZ
    order: int = DEFAULT_ORDER
    mains_hz: float = DEFAULT_MAINS_HZ
    notch_q: float = DEFAULT_NOTCH_Q
    notch_harmonics: bool = False

    def __post_init__(self) -> None:
        _require_positive("low_hz", self.low_hz)
        _require_positive("high_hz", self.high_hz)
        if self.high_hz <= self.low_hz:
            raise ConfigError(
                f"FilterSpec.high_hz = {self.high_hz!r}: must be above low_hz = {self.low_hz!r}"
            )
        if isinstance(self.order, bool) or not isinstance(self.order, int):
            raise ConfigError(f"FilterSpec.order = {self.order!r}: must be an integer")
        if not 1 <= self.order <= MAX_ORDER:
            raise ConfigError(f"FilterSpec.order = {self.order}: must be between 1 and {MAX_ORDER}")
        if isinstance(self.mains_hz, bool) or self.mains_hz not in MAINS_CHOICES_HZ:
            raise ConfigError(
                f"FilterSpec.mains_hz = {self.mains_hz!r}: must be one of 0 (off), 50 or 60"
            )
        _require_positive("notch_q", self.notch_q)
        if not isinstance(self.notch_harmonics, bool):
            raise ConfigError(
                f"FilterSpec.notch_harmonics = {self.notch_harmonics!r}: must be true or false"
            )


def _require_positive(name: str, value: object) -> None:
    """Raise ConfigError unless ``value`` is a finite real number > 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"FilterSpec.{name} = {value!r}: must be a finite number > 0")


def _check_sample_rate(sample_rate_hz: float) -> float:
    if (
        isinstance(sample_rate_hz, bool)
        or not isinstance(sample_rate_hz, int | float)
        or not math.isfinite(sample_rate_hz)
        or sample_rate_hz <= 0
    ):
        raise ConfigError(f"sample_rate_hz = {sample_rate_hz!r}: must be a finite number > 0")
    return float(sample_rate_hz)


def effective_band_hz(spec: FilterSpec, sample_rate_hz: float) -> tuple[float, float]:
    """The band-pass edges actually used at ``sample_rate_hz``.

    Parameters
    ----------
    spec:
        The filter specification.
    sample_rate_hz:
        Sampling rate in Hz.

    Returns
    -------
    (low_hz, high_hz):
        ``high_hz`` is ``min(spec.high_hz, HIGH_EDGE_MAX_FS_FRACTION × sample_rate_hz)``.

    Raises
    ------
    ConfigError
        When the clipped high edge is not above ``low_hz`` (the sampling rate is too low
        for the band).
    """
    fs_hz = _check_sample_rate(sample_rate_hz)
    high_hz = min(spec.high_hz, HIGH_EDGE_MAX_FS_FRACTION * fs_hz)
    if high_hz <= spec.low_hz:
        raise ConfigError(
            f"FilterSpec.low_hz = {spec.low_hz!r}: must be below the clipped high edge "
            f"{high_hz:g} Hz ({HIGH_EDGE_MAX_FS_FRACTION} × sample_rate_hz = {fs_hz:g})"
        )
    return spec.low_hz, high_hz


def notch_frequencies_hz(spec: FilterSpec, sample_rate_hz: float) -> tuple[float, ...]:
    """The centre frequencies of the notches used at ``sample_rate_hz`` (empty when off).

    Raises
    ------
    ConfigError
        When ``spec.mains_hz`` is not below Nyquist.
    """
    fs_hz = _check_sample_rate(sample_rate_hz)
    if spec.mains_hz == 0:
        return ()
    nyquist_hz = fs_hz / 2
    if spec.mains_hz >= HARMONIC_MAX_NYQUIST_FRACTION * nyquist_hz:
        raise ConfigError(
            f"FilterSpec.mains_hz = {spec.mains_hz:g}: must be below "
            f"{HARMONIC_MAX_NYQUIST_FRACTION} × Nyquist ({nyquist_hz:g} Hz at "
            f"sample_rate_hz = {fs_hz:g})"
        )
    if not spec.notch_harmonics:
        return (float(spec.mains_hz),)
    n_notches = math.ceil(HARMONIC_MAX_NYQUIST_FRACTION * nyquist_hz / spec.mains_hz) - 1
    return tuple(float(k * spec.mains_hz) for k in range(1, n_notches + 1))


def check_realisable(spec: FilterSpec, sample_rate_hz: float) -> None:
    """Raise what :func:`design_sos` would raise for this rate, without designing (and so
    without importing scipy): an empty band or a notch that does not fit.

    Raises
    ------
    ConfigError
        As :func:`effective_band_hz` and :func:`notch_frequencies_hz`.
    """
    fs_hz = _check_sample_rate(sample_rate_hz)
    effective_band_hz(spec, fs_hz)
    notch_frequencies_hz(spec, fs_hz)


def design_sos(spec: FilterSpec, sample_rate_hz: float) -> FloatArray:
    """Design the whole chain as one cascade of second-order sections.

    The Butterworth band-pass comes first, then one ``iirnotch`` section per notch
    frequency (:func:`notch_frequencies_hz`).

    Parameters
    ----------
    spec:
        The filter specification.
    sample_rate_hz:
        Sampling rate in Hz.

    Returns
    -------
    sos:
        Shape ``(n_sections, 6)``, float64, rows ``[b0, b1, b2, 1, a1, a2]``, ready for
        :func:`scipy.signal.sosfilt`.
    """
    fs_hz = _check_sample_rate(sample_rate_hz)
    low_hz, high_hz = effective_band_hz(spec, fs_hz)
    signal = scipy_signal()
    band_sos = signal.butter(
        spec.order, [low_hz, high_hz], btype="bandpass", fs=fs_hz, output="sos"
    )
    sections = [np.asarray(band_sos, dtype=np.float64)]
    for centre_hz in notch_frequencies_hz(spec, fs_hz):
        b, a = signal.iirnotch(centre_hz, spec.notch_q, fs=fs_hz)
        row = np.concatenate((np.asarray(b), np.asarray(a))) / float(a[0])
        sections.append(row.reshape(1, SOS_COLUMNS))
    sos: FloatArray = np.ascontiguousarray(np.concatenate(sections, axis=0), dtype=np.float64)
    return sos


class StreamingFilter:
    """A causal SOS filter with persistent state per channel, applied block by block.

    A fresh (or :meth:`reset` without argument) filter initialises its state from the
    first sample of the next block as if that sample had been constant forever: the
    band-pass has zero gain at DC, so a large electrode offset produces no step transient
    and is removed from the first sample on. After that, consecutive calls to
    :meth:`process` continue exactly where the previous block stopped.

    Parameters
    ----------
    spec:
        The filter specification.
    sample_rate_hz:
        Sampling rate in Hz.
    n_channels:
        Number of EMG channels (columns of every block).
    """

    def __init__(self, spec: FilterSpec, sample_rate_hz: float, n_channels: int) -> None:
        if isinstance(n_channels, bool) or not isinstance(n_channels, int) or n_channels < 1:
            raise ConfigError(f"StreamingFilter n_channels = {n_channels!r}: must be an int >= 1")
        self._spec = spec
        self._sample_rate_hz = _check_sample_rate(sample_rate_hz)
        self._n_channels = n_channels
        self._sos = design_sos(spec, self._sample_rate_hz)
        # Steady-state state per unit of constant input, shape (n_sections, 2).
        signal = scipy_signal()
        self._sosfilt = signal.sosfilt
        self._unit_zi: FloatArray = np.asarray(signal.sosfilt_zi(self._sos), dtype=np.float64)
        self._state: FloatArray = np.zeros((self.n_sections, 2, n_channels), dtype=np.float64)
        self._primed = False

    @property
    def spec(self) -> FilterSpec:
        return self._spec

    @property
    def sample_rate_hz(self) -> float:
        return self._sample_rate_hz

    @property
    def n_channels(self) -> int:
        return self._n_channels

    @property
    def n_sections(self) -> int:
        return int(self._sos.shape[0])

    @property
    def sos(self) -> FloatArray:
        """The designed cascade, shape ``(n_sections, 6)`` (a read-only view)."""
        view = self._sos.view()
        view.flags.writeable = False
        return view

    @property
    def primed(self) -> bool:
        """False until the state has been set (by the first block, ``reset`` or ``state``)."""
        return self._primed

    @property
    def state(self) -> FloatArray:
        """A copy of the filter state, shape ``(n_sections, 2, n_channels)``.

        Setting it copies the given array in (shape and finiteness are checked) and marks
        the filter primed.
        """
        return self._state.copy()

    @state.setter
    def state(self, value: npt.ArrayLike) -> None:
        zi = np.array(value, dtype=np.float64)
        expected = (self.n_sections, 2, self._n_channels)
        if zi.shape != expected:
            raise ConfigError(f"StreamingFilter.state shape {zi.shape}: expected {expected}")
        if not np.all(np.isfinite(zi)):
            raise ConfigError("StreamingFilter.state contains non-finite values")
        self._state = zi
        self._primed = True

    def reset(self, initial: npt.ArrayLike | None = None) -> None:
        """Forget the past.

        Parameters
        ----------
        initial:
            Shape ``(n_channels,)``: set the state to the steady state for this constant
            input (zeros = at rest). ``None``: initialise from the first sample of the next
            block instead.
        """
        if initial is None:
            self._state = np.zeros_like(self._state)
            self._primed = False
            return
        x0 = np.asarray(initial, dtype=np.float64)
        if x0.shape != (self._n_channels,):
            raise ConfigError(
                f"StreamingFilter.reset initial shape {x0.shape}: expected ({self._n_channels},)"
            )
        _require_finite(x0[np.newaxis, :], "StreamingFilter.reset initial")
        self._state = self._unit_zi[:, :, np.newaxis] * x0[np.newaxis, np.newaxis, :]
        self._primed = True

    def process(self, block: npt.ArrayLike) -> FloatArray:
        """Filter the next block of samples.

        Parameters
        ----------
        block:
            Shape ``(n_samples, n_channels)``, the samples following the previous block.
            An empty block (0 rows) returns an empty result and leaves the state alone.

        Returns
        -------
        filtered:
            Shape ``(n_samples, n_channels)``, float64, a new array.

        Raises
        ------
        ConfigError
            When the block does not have ``n_channels`` columns.
        ValueError
            When the block holds NaN or infinity (the state is left untouched, so one bad
            block cannot poison every later output).
        """
        x = np.asarray(block, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self._n_channels:
            raise ConfigError(
                f"StreamingFilter.process block shape {x.shape}: "
                f"expected (n_samples, {self._n_channels})"
            )
        if x.shape[0] == 0:
            return np.empty((0, self._n_channels), dtype=np.float64)
        _require_finite(x, "StreamingFilter.process block")
        if not self._primed:
            self.reset(x[0])
        y, zf = self._sosfilt(self._sos, x, axis=0, zi=self._state)
        self._state = np.asarray(zf, dtype=np.float64)
        out: FloatArray = np.asarray(y, dtype=np.float64)
        return out


def _require_finite(x: FloatArray, what: str) -> None:
    """Raise ValueError naming the first non-finite sample (row, channel) of a 2-D array."""
    finite = np.isfinite(x)
    if not np.all(finite):
        row, channel = np.argwhere(~finite)[0]
        raise ValueError(
            f"{what}: non-finite value {x[row, channel]!r} at row {row}, channel {channel}"
        )
