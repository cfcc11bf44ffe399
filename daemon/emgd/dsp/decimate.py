"""Streaming decimation by an integer factor: the ADC may run faster than the model.

The ADS1299 runs at 250 SPS-16 kSPS; a model is trained at one rate (1 kHz for the shipped
one). This module owns the step between the two: a causal elliptic anti-alias low-pass,
designed once as SOS, with per-channel state carried across blocks, then every
``factor``-th sample, with the phase carried across blocks too, so decimating a stream
block by block gives exactly what decimating it in one piece gives. The stopband starts at
the output's Nyquist frequency, so everything that folds back into the model's band is at
least ``STOPBAND_DB`` down; the passband reaches ``PASSBAND_FRACTION`` of it (450 Hz at a
1 kHz output, the band-pass edge of the default filter). It must not filter the EMG band,
normalise, window or know where the samples come from.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from emgd.dsp.filters import scipy_signal
from emgd.errors import ConfigError

FloatArray = npt.NDArray[np.float64]


#: Passband edge as a fraction of the output Nyquist frequency.
PASSBAND_FRACTION = 0.9
#: Largest passband ripple, dB.
PASSBAND_RIPPLE_DB = 0.1
#: Smallest attenuation from the output Nyquist frequency up, dB.
STOPBAND_DB = 60.0
#: Input and output rates must agree with an integer factor to this many Hz.
RATE_TOLERANCE_HZ = 1e-6
MAX_FACTOR = 64


def decimation_factor(input_rate_hz: float, output_rate_hz: float, where: str) -> int:
    """The integer ``input_rate_hz / output_rate_hz``.

    Raises
    ------
    ConfigError
        ``<where>: 1500 Hz is not a whole multiple of the model's 1000 Hz`` (or below it).
    """
    if not (input_rate_hz > 0 and output_rate_hz > 0):
        raise ConfigError(
            f"{where}: rates must be > 0 Hz (input {input_rate_hz!r}, output {output_rate_hz!r})"
        )
    factor = round(input_rate_hz / output_rate_hz)
    if factor < 1 or abs(factor * output_rate_hz - input_rate_hz) > RATE_TOLERANCE_HZ:
        raise ConfigError(
            f"{where}: {input_rate_hz:g} Hz is not a whole multiple of the model's "
            f"{output_rate_hz:g} Hz"
        )
    if factor > MAX_FACTOR:
        raise ConfigError(
            f"{where}: {input_rate_hz:g} Hz is {factor}x the model's {output_rate_hz:g} Hz; "
            f"at most {MAX_FACTOR}x"
        )
    return factor


def design_antialias_sos(factor: int) -> FloatArray:
    """Elliptic low-pass for decimation by ``factor`` (normalised to the input rate).

    Returns
    -------
    numpy.ndarray
        Shape ``(n_sections, 6)``.
    """
    passband = PASSBAND_FRACTION / factor
    stopband = 1.0 / factor
    signal = scipy_signal()
    order, edge = signal.ellipord(passband, stopband, PASSBAND_RIPPLE_DB, STOPBAND_DB)
    sos = signal.ellip(order, PASSBAND_RIPPLE_DB, STOPBAND_DB, edge, btype="lowpass", output="sos")
    return np.ascontiguousarray(sos, dtype=np.float64)


class StreamingDecimator:
    """Low-pass, then keep every ``factor``-th sample; state and phase carried across blocks.

    A factor of 1 passes blocks through untouched (a float64 copy). The state starts as if
    the first sample had been constant forever, so an electrode offset causes no transient.
    Output sample ``k`` is input sample ``k·factor`` (after the low-pass).

    Parameters
    ----------
    factor:
        Input rate / output rate, 1 to ``MAX_FACTOR``.
    n_channels:
        Columns of every block.
    """

    def __init__(self, factor: int, n_channels: int) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int) or not 1 <= factor <= MAX_FACTOR:
            raise ConfigError(
                f"StreamingDecimator factor = {factor!r}: must be an int 1-{MAX_FACTOR}"
            )
        if isinstance(n_channels, bool) or not isinstance(n_channels, int) or n_channels < 1:
            raise ConfigError(
                f"StreamingDecimator n_channels = {n_channels!r}: must be an int >= 1"
            )
        self._factor = factor
        self._n_channels = n_channels
        self._sos = design_antialias_sos(factor) if factor > 1 else np.zeros((0, 6))
        # Factor 1 never filters, so it never imports scipy.
        signal = scipy_signal() if factor > 1 else None
        self._sosfilt = None if signal is None else signal.sosfilt
        self._unit_zi: FloatArray = (
            np.zeros((0, 2))
            if signal is None
            else np.asarray(signal.sosfilt_zi(self._sos), dtype=np.float64)
        )
        self._state: FloatArray = np.zeros((self._sos.shape[0], 2, n_channels))
        self._primed = False
        self._phase = 0  # input samples to skip before the next kept one

    @property
    def factor(self) -> int:
        return self._factor

    @property
    def inputs_to_next_output(self) -> int:
        """Input samples still to come up to and including the next kept one (>= 1)."""
        return self._phase + 1

    @property
    def sos(self) -> FloatArray:
        """The anti-alias cascade, shape ``(n_sections, 6)`` (empty for factor 1; a copy)."""
        return self._sos.copy()

    def reset(self) -> None:
        """Forget the past: the next block starts a new stream."""
        self._state = np.zeros_like(self._state)
        self._primed = False
        self._phase = 0

    def process(self, block: npt.ArrayLike) -> FloatArray:
        """Decimate the next block.

        Parameters
        ----------
        block:
            Shape ``(n, n_channels)``, samples at the input rate following the previous block.

        Returns
        -------
        numpy.ndarray
            Shape ``(m, n_channels)``, float64, a new array: the kept samples of this block.

        Raises
        ------
        ConfigError
            When the block does not have ``n_channels`` columns.
        """
        x = np.asarray(block, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self._n_channels:
            raise ConfigError(
                f"StreamingDecimator.process block shape {x.shape}: "
                f"expected (n_samples, {self._n_channels})"
            )
        if self._factor == 1:
            return np.array(x, dtype=np.float64, copy=True)
        if x.shape[0] == 0:
            return np.empty((0, self._n_channels))
        if not self._primed:
            self._state = self._unit_zi[:, :, np.newaxis] * x[0][np.newaxis, np.newaxis, :]
            self._primed = True
        assert self._sosfilt is not None  # factor > 1
        y, self._state = self._sosfilt(self._sos, x, axis=0, zi=self._state)
        kept: FloatArray = np.ascontiguousarray(y[self._phase :: self._factor])
        self._phase = (self._phase - x.shape[0]) % self._factor
        return kept
