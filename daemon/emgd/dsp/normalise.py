"""Per-channel calibration normalisation: what it is, how to apply it, how to compute it.

This module owns the :class:`Normaliser` (``(x - offset) / scale`` per channel, with an
``out=`` argument so the daemon can normalise a block in place) and
:func:`compute_calibration`, which derives offset and scale from a calibration session
(filtered EMG at rest and at maximum effort) and refuses channels that are flat,
non-finite, railed or show no contraction, naming the channel. Everything here is pure:
arrays in, arrays out. It must not filter, record, prompt the wearer or read and write
files (the calibration command and its storage do that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from emgd.errors import CalibrationError, ConfigError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# --- defaults of the calibration maths ----------------------------------------------------
DEFAULT_ENVELOPE_S = 0.1  # moving-RMS window of the effort envelope
DEFAULT_EFFORT_PERCENTILE = 95.0  # scale = this percentile of the effort envelope
DEFAULT_MIN_EFFORT_TO_REST = 2.0  # effort level must be ≥ 2 × the rest noise floor (6 dB)
DEFAULT_MAX_RAILED_FRACTION = 0.01  # at most 1 % of a channel's samples may be railed
# A channel whose effort standard deviation is below this is flat (dead electrode or shorted
# input): it is far below the input noise of any EMG front end (ADS1299: ~1 µV RMS at 1 kSPS).
FLAT_SD_UV = 0.01


@dataclass(frozen=True, slots=True, eq=False)
class Normaliser:
    """Per-channel affine normalisation ``(x - offset) / scale``.

    Parameters
    ----------
    offset:
        Shape ``(n_channels,)``, subtracted first (same unit as the samples, µV).
    scale:
        Shape ``(n_channels,)``, divided by second; every entry finite and > 0.

    The arrays are copied and made read-only.
    """

    offset: FloatArray
    scale: FloatArray

    def __post_init__(self) -> None:
        offset = np.array(self.offset, dtype=np.float64)
        scale = np.array(self.scale, dtype=np.float64)
        if offset.ndim != 1 or offset.shape[0] < 1:
            raise ConfigError(f"Normaliser offset shape {offset.shape}: expected (n_channels,)")
        if scale.shape != offset.shape:
            raise ConfigError(
                f"Normaliser scale shape {scale.shape}: expected {offset.shape} like offset"
            )
        for channel in range(offset.shape[0]):
            if not math.isfinite(offset[channel]):
                raise ConfigError(
                    f"Normaliser offset of channel {channel} = {float(offset[channel])}: not finite"
                )
            if not (math.isfinite(scale[channel]) and scale[channel] > 0):
                raise ConfigError(
                    f"Normaliser scale of channel {channel} = {float(scale[channel])}: "
                    "must be finite and > 0"
                )
        offset.flags.writeable = False
        scale.flags.writeable = False
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "scale", scale)

    @classmethod
    def identity(cls, n_channels: int) -> Normaliser:
        """The normaliser that changes nothing (offset 0, scale 1)."""
        return cls(np.zeros(n_channels), np.ones(n_channels))

    @property
    def n_channels(self) -> int:
        return int(self.offset.shape[0])

    def apply(self, x: npt.ArrayLike, out: npt.NDArray[np.floating] | None = None) -> FloatArray:
        """Normalise samples.

        Parameters
        ----------
        x:
            Shape ``(n_samples, n_channels)`` or ``(n_channels,)``.
        out:
            Optional float array of the same shape to write into; ``out=x`` normalises in
            place without allocating.

        Returns
        -------
        normalised:
            Same shape as ``x``; ``out`` when given, else a new float64 array.
        """
        xa = np.asarray(x)
        if xa.ndim not in (1, 2) or xa.shape[-1] != self.n_channels:
            raise ConfigError(
                f"Normaliser.apply input shape {xa.shape}: expected (n_samples, "
                f"{self.n_channels}) or ({self.n_channels},)"
            )
        if out is None:
            result: FloatArray = (xa - self.offset) / self.scale
            return result
        if out.shape != xa.shape:
            raise ConfigError(f"Normaliser.apply out shape {out.shape}: expected {xa.shape}")
        np.subtract(xa, self.offset, out=out)
        np.divide(out, self.scale, out=out)
        return out  # type: ignore[return-value]

    def invert(self, y: npt.ArrayLike) -> FloatArray:
        """Undo :meth:`apply`: ``y * scale + offset`` (same shapes as ``apply``)."""
        ya = np.asarray(y, dtype=np.float64)
        if ya.ndim not in (1, 2) or ya.shape[-1] != self.n_channels:
            raise ConfigError(
                f"Normaliser.invert input shape {ya.shape}: expected (n_samples, "
                f"{self.n_channels}) or ({self.n_channels},)"
            )
        result: FloatArray = ya * self.scale + self.offset
        return result


@dataclass(frozen=True, slots=True, eq=False)
class Calibration:
    """The outcome of a calibration session.

    Attributes
    ----------
    normaliser:
        What the pipeline applies.
    noise_floor_uv:
        Shape ``(n_channels,)``, RMS at rest about the rest median.
    effort_level_uv:
        Shape ``(n_channels,)``, the chosen percentile of the effort envelope (= scale).
    effort_to_rest:
        Shape ``(n_channels,)``, ``effort_level_uv / noise_floor_uv`` (inf for a perfectly
        quiet rest recording).
    """

    normaliser: Normaliser
    noise_floor_uv: FloatArray
    effort_level_uv: FloatArray
    effort_to_rest: FloatArray


def railed_mask_from_bits(railed_bits: npt.ArrayLike, n_channels: int) -> BoolArray:
    """Expand per-frame railed bitmasks (``Frame.railed``) into a boolean mask.

    Parameters
    ----------
    railed_bits:
        Shape ``(n_samples,)`` integers, bit ``c`` set when channel ``c`` was railed.
    n_channels:
        Number of channels.

    Returns
    -------
    mask:
        Shape ``(n_samples, n_channels)``, True where the channel was railed.
    """
    bits = np.asarray(railed_bits, dtype=np.int64)
    if bits.ndim != 1:
        raise ConfigError(f"railed_bits shape {bits.shape}: expected (n_samples,)")
    channel_bits = np.left_shift(np.int64(1), np.arange(n_channels, dtype=np.int64))
    mask: BoolArray = (bits[:, np.newaxis] & channel_bits[np.newaxis, :]) != 0
    return mask


def moving_rms(x: FloatArray, n_window: int) -> FloatArray:
    """Trailing moving RMS over ``n_window`` samples, for every full window.

    Parameters
    ----------
    x:
        Shape ``(n_samples, n_channels)``, ``n_samples >= n_window >= 1``.

    Returns
    -------
    rms:
        Shape ``(n_samples - n_window + 1, n_channels)``; row ``i`` covers samples
        ``i .. i + n_window - 1``.
    """
    squares = np.square(np.asarray(x, dtype=np.float64))
    cumulative = np.concatenate(
        (np.zeros((1, squares.shape[1])), np.cumsum(squares, axis=0)), axis=0
    )
    sums = cumulative[n_window:] - cumulative[:-n_window]
    rms: FloatArray = np.sqrt(np.maximum(sums, 0.0) / n_window)
    return rms


def compute_calibration(
    rest_uv: npt.ArrayLike,
    effort_uv: npt.ArrayLike,
    sample_rate_hz: float,
    *,
    rest_railed: npt.ArrayLike | None = None,
    effort_railed: npt.ArrayLike | None = None,
    envelope_s: float = DEFAULT_ENVELOPE_S,
    effort_percentile: float = DEFAULT_EFFORT_PERCENTILE,
    min_effort_to_rest: float = DEFAULT_MIN_EFFORT_TO_REST,
    max_railed_fraction: float = DEFAULT_MAX_RAILED_FRACTION,
) -> Calibration:
    """Compute per-channel normalisation from a calibration session.

    ``offset`` is the per-channel median at rest; ``scale`` is the ``effort_percentile``
    percentile of the moving RMS (``envelope_s`` long) of the effort recording about that
    offset, so the normalised signal has an RMS of about 1 at the wearer's maximum effort.

    Parameters
    ----------
    rest_uv:
        Shape ``(n_rest, n_channels)``, filtered EMG while the wearer relaxes (µV).
    effort_uv:
        Shape ``(n_effort, n_channels)``, filtered EMG during maximum efforts (every
        gesture, concatenated), µV.
    sample_rate_hz:
        Sampling rate in Hz (sets the envelope length).
    rest_railed, effort_railed:
        Optional boolean masks of the same shapes as the recordings, True where the ADC
        reported the channel at full scale (see :func:`railed_mask_from_bits`). Railing
        must be judged on the raw codes, which the filtered samples no longer show.
    envelope_s:
        Moving-RMS window in seconds; both recordings must be at least this long.
    effort_percentile:
        Percentile (0-100] of the effort envelope taken as the scale.
    min_effort_to_rest:
        The effort level must be at least this multiple of the rest noise floor (0
        disables the check).
    max_railed_fraction:
        Largest tolerated fraction of railed samples per channel and recording.

    Returns
    -------
    calibration:
        The normaliser and the per-channel figures behind it.

    Raises
    ------
    CalibrationError
        Naming the channel (or the recording) that is unusable: wrong shape, too short,
        non-finite, railed, flat, or no contraction above the rest noise.
    ConfigError
        When a tuning argument is out of range.
    """
    fs_hz = _positive("sample_rate_hz", sample_rate_hz)
    _positive("envelope_s", envelope_s)
    if not 0 < effort_percentile <= 100:
        raise ConfigError(f"effort_percentile = {effort_percentile!r}: must be in (0, 100]")
    if not (math.isfinite(min_effort_to_rest) and min_effort_to_rest >= 0):
        raise ConfigError(f"min_effort_to_rest = {min_effort_to_rest!r}: must be >= 0")
    if not 0 <= max_railed_fraction <= 1:
        raise ConfigError(f"max_railed_fraction = {max_railed_fraction!r}: must be in [0, 1]")

    n_envelope = max(1, round(envelope_s * fs_hz))
    rest = _recording("rest", rest_uv, None, n_envelope)
    effort = _recording("effort", effort_uv, rest.shape[1], n_envelope)
    for name, data, railed in (("rest", rest, rest_railed), ("effort", effort, effort_railed)):
        _check_finite(name, data)
        if railed is not None:
            _check_railed(name, data.shape, railed, max_railed_fraction)

    offset = np.median(rest, axis=0)
    noise_floor_uv = np.sqrt(np.mean(np.square(rest - offset), axis=0))
    effort_centred = effort - offset
    effort_sd_uv = np.std(effort, axis=0)
    envelope_uv = moving_rms(effort_centred, n_envelope)
    effort_level_uv = np.percentile(envelope_uv, effort_percentile, axis=0)

    for channel in range(rest.shape[1]):
        if effort_sd_uv[channel] < FLAT_SD_UV:
            raise CalibrationError(
                f"calibration channel {channel}: flat during effort (standard deviation "
                f"{effort_sd_uv[channel]:.3g} µV < {FLAT_SD_UV} µV): check the electrode"
            )
        if effort_level_uv[channel] < min_effort_to_rest * noise_floor_uv[channel]:
            raise CalibrationError(
                f"calibration channel {channel}: effort level {effort_level_uv[channel]:.3g} µV "
                f"is only {effort_level_uv[channel] / noise_floor_uv[channel]:.2f} × the rest "
                f"noise floor {noise_floor_uv[channel]:.3g} µV (need {min_effort_to_rest:g} ×): "
                "no contraction seen"
            )
    with np.errstate(divide="ignore"):
        effort_to_rest = effort_level_uv / noise_floor_uv
    return Calibration(
        normaliser=Normaliser(offset, effort_level_uv),
        noise_floor_uv=noise_floor_uv,
        effort_level_uv=effort_level_uv,
        effort_to_rest=effort_to_rest,
    )


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} = {value!r}: must be a finite number > 0")
    return float(value)


def _recording(
    name: str, data: npt.ArrayLike, n_channels: int | None, n_min_samples: int
) -> FloatArray:
    """Check a recording's shape and length and return it as float64."""
    x = np.asarray(data, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise CalibrationError(
            f"calibration {name} recording shape {x.shape}: expected (n_samples, n_channels)"
        )
    if n_channels is not None and x.shape[1] != n_channels:
        raise CalibrationError(
            f"calibration {name} recording has {x.shape[1]} channels, rest has {n_channels}"
        )
    if x.shape[0] < n_min_samples:
        raise CalibrationError(
            f"calibration {name} recording has {x.shape[0]} samples, "
            f"need at least {n_min_samples} (one envelope window)"
        )
    return x


def _check_finite(name: str, data: FloatArray) -> None:
    bad = ~np.isfinite(data)
    if np.any(bad):
        channel = int(np.argmax(bad.any(axis=0)))
        first = int(np.argmax(bad[:, channel]))
        count = int(bad[:, channel].sum())
        raise CalibrationError(
            f"calibration channel {channel}: {count} non-finite samples in the {name} "
            f"recording (first at sample {first})"
        )


def _check_railed(
    name: str, shape: tuple[int, ...], railed: npt.ArrayLike, max_fraction: float
) -> None:
    mask = np.asarray(railed, dtype=bool)
    if mask.shape != shape:
        raise CalibrationError(
            f"calibration {name} railed mask shape {mask.shape}: expected {shape}"
        )
    fraction = mask.mean(axis=0)
    over = np.flatnonzero(fraction > max_fraction)
    if over.size:
        channel = int(over[0])
        raise CalibrationError(
            f"calibration channel {channel}: railed in {100 * fraction[channel]:.1f} % of the "
            f"{name} samples (limit {100 * max_fraction:g} %): reduce the gain or check the "
            "electrode"
        )
