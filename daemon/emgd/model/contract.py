"""The preprocessing contract a model was trained under, and the checks that enforce it.

This module owns :class:`PreprocessContract`: the sampling rate, channel count and order,
the streaming filter, the window and hop in samples, the normalisation rule, the output
angle range and the finger order that a network's weights silently assume. It is stored as
JSON in a model file's metadata (key ``emgd.contract``), rebuilt and validated from there
(every problem is a :class:`~emgd.errors.ModelError` naming the key), compared with a model
spec, and compared with the daemon's configuration so that a model trained at 1000 Hz on
8 channels is refused by a board sampling at 2000 Hz, naming both values. It is pure Python
and NumPy-free: it must not read files, import torch or onnxruntime, or filter anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from emgd.dsp.decimate import decimation_factor
from emgd.dsp.filters import FilterSpec, check_realisable
from emgd.errors import ConfigError, ModelError
from emgd.model.spec import ModelSpec
from emgd.poses import ANGLE_MAX_DEG, ANGLE_MIN_DEG, FINGERS

CONTRACT_FORMAT_VERSION = 1
CONTRACT_WHERE = "emgd.contract"
# The only normalisation emgd knows: the wearer's per-channel calibration (offset, scale)
# from emgd.dsp.normalise.compute_calibration, computed on the wearer, not stored in the model.
NORMALISATION_CALIBRATION = "calibration"
NORMALISATIONS: tuple[str, ...] = (NORMALISATION_CALIBRATION,)
CHANNEL_NAME_PREFIX = "ch"  # default channel names: ch0, ch1, …
# Two sampling rates closer than this (Hz) are the same rate.
RATE_TOLERANCE_HZ = 1e-6

_FILTER_KEYS: tuple[str, ...] = (
    "low_hz",
    "high_hz",
    "order",
    "mains_hz",
    "notch_q",
    "notch_harmonics",
)
_CONTRACT_KEYS: frozenset[str] = frozenset(
    {
        "version",
        "sample_rate_hz",
        "n_channels",
        "channel_names",
        "filter",
        "window_samples",
        "hop_samples",
        "normalisation",
        "angle_range_deg",
        "finger_order",
    }
)


class _AdcSection(Protocol):
    @property
    def sample_rate_hz(self) -> int: ...

    @property
    def channels(self) -> int: ...


class DaemonConfig(Protocol):
    """What :meth:`PreprocessContract.check_against` reads from :class:`emgd.config.Config`."""

    @property
    def adc(self) -> _AdcSection: ...


def default_channel_names(n_channels: int) -> tuple[str, ...]:
    """``("ch0", "ch1", …)``: the names used when a dataset does not name its electrodes."""
    return tuple(f"{CHANNEL_NAME_PREFIX}{i}" for i in range(n_channels))


def filter_spec_to_dict(spec: FilterSpec) -> dict[str, Any]:
    """JSON-able form of a :class:`~emgd.dsp.filters.FilterSpec` (every field, by name)."""
    return {key: getattr(spec, key) for key in _FILTER_KEYS}


def filter_spec_from_dict(data: object, where: str = f"{CONTRACT_WHERE} filter") -> FilterSpec:
    """Rebuild a :class:`~emgd.dsp.filters.FilterSpec` from :func:`filter_spec_to_dict`.

    Raises
    ------
    ModelError
        Naming ``where`` and the key when the value is not an object, has an unknown or
        missing key, or a value :class:`FilterSpec` refuses.
    """
    if not isinstance(data, Mapping):
        raise ModelError(f"{where}: expected an object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_FILTER_KEYS))
    if unknown:
        raise ModelError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_FILTER_KEYS)})")
    missing = [key for key in _FILTER_KEYS if key not in data]
    if missing:
        raise ModelError(f"{where}: missing key {missing[0]!r}")
    try:
        return FilterSpec(**{key: data[key] for key in _FILTER_KEYS})
    except ConfigError as exc:
        raise ModelError(f"{where}: {exc}") from None


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelError(f"{CONTRACT_WHERE}: {key} = {value!r} must be a finite number")
    return float(value)


def _positive_int(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"{CONTRACT_WHERE}: {key} = {value!r} must be an integer >= 1")
    return value


def _names(key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ModelError(f"{CONTRACT_WHERE}: {key} = {value!r} must be a list of names")
    names = tuple(value)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ModelError(f"{CONTRACT_WHERE}: {key}[{i}] = {name!r} must be a non-empty string")
    if len(set(names)) != len(names):
        raise ModelError(f"{CONTRACT_WHERE}: {key} = {list(names)!r} has repeated names")
    return names


@dataclass(frozen=True)
class PreprocessContract:
    """Everything the network assumes about its input and output, besides its weights.

    Attributes
    ----------
    sample_rate_hz:
        Sampling rate of the EMG the model was trained on, Hz.
    n_channels:
        Number of EMG channels, in :attr:`channel_names` order.
    channel_names:
        One name per channel (electrode position or ``ch0``…), ``n_channels`` of them.
    filter_spec:
        The causal streaming filter applied to the raw stream
        (:class:`~emgd.dsp.filters.StreamingFilter`, started with ``reset(None)``).
    window_samples:
        Window length fed to the model, in samples (each window ends at the newest sample).
    hop_samples:
        Samples between consecutive inferences.
    normalisation:
        How filtered samples are scaled: ``"calibration"`` (the wearer's per-channel offset
        and scale, :func:`emgd.dsp.normalise.compute_calibration`).
    angle_range_deg:
        ``(lo, hi)``: the range the model's outputs lie in, degrees.
    finger_order:
        The meaning of the five outputs (and of each history vector).
    """

    sample_rate_hz: float
    n_channels: int
    channel_names: tuple[str, ...]
    filter_spec: FilterSpec
    window_samples: int
    hop_samples: int
    normalisation: str = NORMALISATION_CALIBRATION
    angle_range_deg: tuple[float, float] = (ANGLE_MIN_DEG, ANGLE_MAX_DEG)
    finger_order: tuple[str, ...] = FINGERS

    def __post_init__(self) -> None:
        fs_hz = _number("sample_rate_hz", self.sample_rate_hz)
        if fs_hz <= 0:
            raise ModelError(f"{CONTRACT_WHERE}: sample_rate_hz = {fs_hz:g} must be > 0")
        _positive_int("n_channels", self.n_channels)
        names = _names("channel_names", self.channel_names)
        if len(names) != self.n_channels:
            raise ModelError(
                f"{CONTRACT_WHERE}: channel_names has {len(names)} names, "
                f"n_channels = {self.n_channels}"
            )
        if not isinstance(self.filter_spec, FilterSpec):
            raise ModelError(f"{CONTRACT_WHERE}: filter must be a FilterSpec")
        _positive_int("window_samples", self.window_samples)
        _positive_int("hop_samples", self.hop_samples)
        if self.hop_samples > self.window_samples:
            raise ModelError(
                f"{CONTRACT_WHERE}: hop_samples = {self.hop_samples} is longer than "
                f"window_samples = {self.window_samples}"
            )
        if self.normalisation not in NORMALISATIONS:
            raise ModelError(
                f"{CONTRACT_WHERE}: normalisation = {self.normalisation!r} is not one of "
                f"{', '.join(NORMALISATIONS)}"
            )
        if not isinstance(self.angle_range_deg, Sequence) or len(self.angle_range_deg) != 2:
            raise ModelError(
                f"{CONTRACT_WHERE}: angle_range_deg = {self.angle_range_deg!r} must be [lo, hi]"
            )
        lo_deg = _number("angle_range_deg[0]", self.angle_range_deg[0])
        hi_deg = _number("angle_range_deg[1]", self.angle_range_deg[1])
        if not lo_deg < hi_deg:
            raise ModelError(
                f"{CONTRACT_WHERE}: angle_range_deg = [{lo_deg:g}, {hi_deg:g}] must rise"
            )
        fingers = _names("finger_order", self.finger_order)
        object.__setattr__(self, "sample_rate_hz", fs_hz)
        object.__setattr__(self, "channel_names", names)
        object.__setattr__(self, "angle_range_deg", (lo_deg, hi_deg))
        object.__setattr__(self, "finger_order", fingers)
        # The filter must be realisable at this rate (band edge below Nyquist, notch too).
        try:
            check_realisable(self.filter_spec, fs_hz)
        except ConfigError as exc:
            raise ModelError(f"{CONTRACT_WHERE} filter at {fs_hz:g} Hz: {exc}") from None

    # -- construction --------------------------------------------------------------------

    @classmethod
    def for_spec(
        cls,
        spec: ModelSpec,
        filter_spec: FilterSpec,
        channel_names: Sequence[str] | None = None,
    ) -> PreprocessContract:
        """The contract of a network built from ``spec`` and trained behind ``filter_spec``.

        Parameters
        ----------
        spec:
            The model spec (rate, channels, window, hop, angle range).
        filter_spec:
            The streaming filter used in training.
        channel_names:
            ``spec.n_channels`` names (default ``ch0``…).
        """
        names = default_channel_names(spec.n_channels) if channel_names is None else channel_names
        return cls(
            sample_rate_hz=spec.sample_rate_hz,
            n_channels=spec.n_channels,
            channel_names=tuple(names),
            filter_spec=filter_spec,
            window_samples=spec.window_samples,
            hop_samples=spec.hop_samples,
            angle_range_deg=spec.angle_range_deg,
            finger_order=(
                FINGERS
                if spec.n_outputs == len(FINGERS)
                else tuple(f"out{i}" for i in range(spec.n_outputs))
            ),
        )

    # -- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; :meth:`from_dict` of it gives back an equal contract."""
        return {
            "version": CONTRACT_FORMAT_VERSION,
            "sample_rate_hz": self.sample_rate_hz,
            "n_channels": self.n_channels,
            "channel_names": list(self.channel_names),
            "filter": filter_spec_to_dict(self.filter_spec),
            "window_samples": self.window_samples,
            "hop_samples": self.hop_samples,
            "normalisation": self.normalisation,
            "angle_range_deg": list(self.angle_range_deg),
            "finger_order": list(self.finger_order),
        }

    @classmethod
    def from_dict(cls, data: object) -> PreprocessContract:
        """Rebuild a contract from :meth:`to_dict` output (e.g. read from ONNX metadata).

        Every key is required; unknown keys, another ``version`` and bad values raise
        :class:`~emgd.errors.ModelError` naming the key.
        """
        if not isinstance(data, Mapping):
            raise ModelError(f"{CONTRACT_WHERE}: expected an object, got {type(data).__name__}")
        unknown = sorted(set(data) - _CONTRACT_KEYS)
        if unknown:
            raise ModelError(f"{CONTRACT_WHERE}: unknown key {unknown[0]!r}")
        missing = sorted(_CONTRACT_KEYS - set(data))
        if missing:
            raise ModelError(f"{CONTRACT_WHERE}: missing key {missing[0]!r}")
        if data["version"] != CONTRACT_FORMAT_VERSION:
            raise ModelError(
                f"{CONTRACT_WHERE}: version = {data['version']!r} is not supported "
                f"(this emgd reads version {CONTRACT_FORMAT_VERSION})"
            )
        angle_range = data["angle_range_deg"]
        if not isinstance(angle_range, list) or len(angle_range) != 2:
            raise ModelError(
                f"{CONTRACT_WHERE}: angle_range_deg = {angle_range!r} must be [lo, hi]"
            )
        return cls(
            sample_rate_hz=data["sample_rate_hz"],
            n_channels=data["n_channels"],
            channel_names=_names("channel_names", data["channel_names"]),
            filter_spec=filter_spec_from_dict(data["filter"]),
            window_samples=data["window_samples"],
            hop_samples=data["hop_samples"],
            normalisation=data["normalisation"],
            angle_range_deg=(angle_range[0], angle_range[1]),
            finger_order=_names("finger_order", data["finger_order"]),
        )

    # -- checks --------------------------------------------------------------------------

    def check_spec(self, spec: ModelSpec) -> None:
        """Refuse a spec that disagrees with this contract (rate, channels, window, range).

        Raises
        ------
        ModelError
            Naming the quantity and both values.
        """
        pairs: tuple[tuple[str, object, object], ...] = (
            ("sample_rate_hz", spec.sample_rate_hz, self.sample_rate_hz),
            ("n_channels", spec.n_channels, self.n_channels),
            ("window_samples", spec.window_samples, self.window_samples),
            ("hop_samples", spec.hop_samples, self.hop_samples),
            ("angle_range_deg", tuple(spec.angle_range_deg), self.angle_range_deg),
            ("n_outputs", spec.n_outputs, len(self.finger_order)),
        )
        for name, spec_value, contract_value in pairs:
            if spec_value != contract_value:
                raise ModelError(
                    f"model spec {name} = {spec_value!r} but {CONTRACT_WHERE} says "
                    f"{contract_value!r}"
                )

    def check_layout(self, sample_rate_hz: float, n_channels: int, where: str) -> None:
        """Refuse data at another rate or channel count than the model expects.

        Parameters
        ----------
        sample_rate_hz, n_channels:
            The data's layout.
        where:
            What the data is, for the message (``"dataset 3dc Participant1"``,
            ``"config adc.sample_rate_hz"``…).

        Raises
        ------
        ModelError
            ``model expects 1000 Hz, <where> has 2000 Hz`` (or channels likewise).
        """
        if abs(float(sample_rate_hz) - self.sample_rate_hz) > RATE_TOLERANCE_HZ:
            raise ModelError(
                f"model expects {self.sample_rate_hz:g} Hz, {where} has {sample_rate_hz:g} Hz"
            )
        if n_channels != self.n_channels:
            raise ModelError(f"model expects {self.n_channels} channels, {where} has {n_channels}")

    def check_against(self, config: DaemonConfig) -> None:
        """Refuse to run this model with a daemon configuration it was not trained for.

        Compares ``adc.sample_rate_hz`` and ``adc.channels`` (the daemon feeds the first
        ``adc.channels`` inputs in order, so the channel count fixes the order too). The ADC
        may run at a whole multiple of the model's rate: the daemon decimates
        (:mod:`emgd.dsp.decimate`) before the model's filter.

        Raises
        ------
        ModelError
            E.g. ``model expects 1000 Hz or a whole multiple, config adc.sample_rate_hz =
            1500``.
        """
        fs_hz = config.adc.sample_rate_hz
        try:
            decimation_factor(float(fs_hz), self.sample_rate_hz, "config adc.sample_rate_hz")
        except ConfigError:
            raise ModelError(
                f"model expects {self.sample_rate_hz:g} Hz or a whole multiple (decimated), "
                f"config adc.sample_rate_hz = {fs_hz}"
            ) from None
        channels = config.adc.channels
        if channels != self.n_channels:
            raise ModelError(
                f"model expects {self.n_channels} channels ({', '.join(self.channel_names)}), "
                f"config adc.channels = {channels}"
            )

    def summary_lines(self) -> list[str]:
        """Human-readable lines for ``emgd model info`` (no trailing newlines)."""
        spec = self.filter_spec
        notch = "off" if spec.mains_hz == 0 else f"{spec.mains_hz:g} Hz (Q {spec.notch_q:g})"
        if spec.mains_hz and spec.notch_harmonics:
            notch += " and harmonics"
        fs_hz = self.sample_rate_hz
        lo_deg, hi_deg = self.angle_range_deg
        window_ms = 1000 * self.window_samples / fs_hz
        hop_ms = 1000 * self.hop_samples / fs_hz
        return [
            f"sample rate            {fs_hz:g} Hz",
            f"channels               {self.n_channels}: {' '.join(self.channel_names)}",
            f"filter                 band-pass {spec.low_hz:g}-{spec.high_hz:g} Hz "
            f"(order {spec.order}), notch {notch}",
            f"window / hop           {self.window_samples} / {self.hop_samples} samples "
            f"({window_ms:.0f} / {hop_ms:.0f} ms)",
            f"normalisation          {self.normalisation}",
            f"angles                 {lo_deg:g}..{hi_deg:g} deg, {' '.join(self.finger_order)}",
        ]
