"""The model spec: every number of the dilated-CNN + MLP network, and what follows from them.

This module owns the frozen description of the network (DESIGN §5, the seed's values as
defaults), its validation, its JSON-able form (stored in the ONNX metadata), and the
analytic figures derived from it: per-layer dilations at the configured sampling rate,
receptive fields in samples and ms, the minimum window, parameter count and MACs per
inference. The torch module (:mod:`emgd.model.network`) builds itself from
:attr:`ModelSpec.plans`, so the two cannot drift. This module is pure Python: it must
not import torch, read files or hold state beyond the spec itself.

How dilations are chosen
------------------------
The seed states its numbers at 1 kHz (``reference_rate_hz``). There, a dilated branch with
characteristic frequency ``f`` and kernel ``k`` uses ``d0 = max(1, round(fs_ref / (f·k)))``
and ``d_l = d0·2^l`` (round half up); stage 2 uses dilations 10 then 20. A branch without a
characteristic frequency (silence) has dilation 1 in stage 1 at every rate. At another rate
``fs`` the receptive field should last as long as at the reference rate: ``R_ref·fs/fs_ref``
samples. Layers with a fixed dilation keep their span, so each free (rate-scaled) dilation
would ideally be its reference value times ``α``, the factor that makes up the rest
(``α = fs/fs_ref`` when every layer is free). As dilations are integers, the integers are
chosen (each within two of its ideal value, at least 1) that bring ``R`` closest to that
target, ties broken by the smallest summed relative deviation from the ideal dilations. At
``fs = fs_ref`` this is exactly the seed formula (and the seed formula scaled by 2^n at
``2^n·fs_ref``). ``R`` can only change in steps of ``gcd((k_l − 1)·P_l)`` over the free layers
(:attr:`BranchPlan.lattice_step_samples`: 1 for type I, 9 for type IIa, 6 for type IIb, 18 for
silence with the defaults), so the duration is matched to within one sample only where that
step allows it, and otherwise to within half a step.

What the receptive field counts
-------------------------------
``R = 1 + Σ_l (k_l − 1)·d_l·P_l`` over the branch's stage-1 and stage-2 layers, where ``P_l``
is the product of the strides of the layers before ``l`` (a layer's own stride does not widen
its own field). ``R`` is the number of input samples, first and last included, that can
influence one output step of the branch; in ms it is ``1000·R / fs`` (the duration of ``R``
samples). The stride of a branch acts on its first stage-1 layer and the stage-2 stride on
the first stage-2 layer, which gives the seed's figures at 1 kHz: type I 691, type IIa 586,
type IIb 1435 and silence 583 samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import reduce
from itertools import pairwise
from typing import Any

from emgd.errors import ConfigError
from emgd.poses import ANGLE_MAX_DEG as POSE_TABLE_MAX_DEG
from emgd.poses import ANGLE_MIN_DEG as POSE_TABLE_MIN_DEG
from emgd.poses import N_FINGERS as N_POSE_ANGLES
from emgd.poses import POSE_NAMES

SPEC_FORMAT_VERSION = 1
SPEC_WHERE = "model spec"

SEED_REFERENCE_RATE_HZ = 1000.0
SILENCE_KERNEL: tuple[float, ...] = (-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0)
DEFAULT_HOP_S = 0.02
# How far (in units of dilation) a chosen dilation may stray from the floor/ceiling of its ideal.
DILATION_SEARCH_STEPS = 2
DEFAULT_ANGLE_RANGE_DEG: tuple[float, float] = (0.0, 180.0)

# Bounds, declared once: (lowest, highest) accepted value of each field.
SAMPLE_RATE_BOUNDS_HZ = (100.0, 20_000.0)
REFERENCE_RATE_BOUNDS_HZ = (100.0, 20_000.0)
CHAR_FREQ_BOUNDS_HZ = (0.1, 10_000.0)
N_CHANNELS_BOUNDS = (1, 64)
KERNEL_BOUNDS = (2, 64)
LAYERS_BOUNDS = (1, 8)
STRIDE_BOUNDS = (1, 16)
DILATION_BOUNDS = (1, 4096)
FEATURES_BOUNDS = (1, 256)
STAGE2_LAYERS_BOUNDS = (1, 4)
N_BRANCHES_BOUNDS = (1, 8)
COMMON_LENGTH_BOUNDS = (1, 10_000)
MLP_WIDTH_BOUNDS = (1, 8192)
MLP_DEPTH_BOUNDS = (0, 8)
N_OUTPUTS_BOUNDS = (1, 64)
HISTORY_BOUNDS = (0, 16)
WINDOW_BOUNDS_S = (0.001, 60.0)
HOP_BOUNDS_S = (0.0001, 10.0)
DROPOUT_BOUNDS = (0.0, 0.95)
MAX_GESTURES = 64  # classes of the pose-mixture softmax (see ModelSpec.gestures)
SHARPNESS_BOUNDS = (1.0, 1000.0)
MEMBERS_BOUNDS = (1, 9)
ANGLE_BOUNDS_DEG = (-360.0, 360.0)

# Output heads: "direct" is the seed's ``lo + (hi − lo)·sigmoid`` per angle; "pose_mixture"
# is ``R + e·Σ_k softmax(l)_k·(G_k − R)`` over the pose table of :mod:`emgd.poses` (rest,
# open, power, chuck, pinch) with an effort ``e = sigmoid(·)``: the MLP then has one logit
# per pose plus one effort logit, and the output stays five angles within the pose range.
POOL_BOUNDS_S = (0.001, 10.0)
BAND_AMPLITUDE_BOUNDS_S = (0.001, 10.0)
# Added to a band amplitude before its log (normalised EMG units, where calibration puts a
# channel's effort level near 1): keeps a silent band finite without flattening quiet ones.
BAND_AMPLITUDE_FLOOR = 1e-3
HEAD_DIRECT = "direct"
HEAD_POSE_MIXTURE = "pose_mixture"
HEADS: tuple[str, ...] = (HEAD_DIRECT, HEAD_POSE_MIXTURE)


# ----------------------------------------------------------------------------- validation


def _check_int(where: str, name: str, value: object, bounds: tuple[int, int]) -> int:
    lo, hi = bounds
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {name} = {value!r} must be an integer in {lo}..{hi}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}: {name} = {value} is out of range {lo}..{hi}")
    return value


def _check_float(where: str, name: str, value: object, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {name} = {value!r} must be a number in [{lo:g}, {hi:g}]")
    number = float(value)
    if not (math.isfinite(number) and lo <= number <= hi):
        raise ConfigError(f"{where}: {name} = {value!r} is out of range [{lo:g}, {hi:g}]")
    return number


def _check_int_tuple(
    where: str, name: str, value: object, bounds: tuple[int, int], length: tuple[int, int]
) -> None:
    if not isinstance(value, tuple):
        raise ConfigError(f"{where}: {name} = {value!r} must be a tuple of integers")
    if not length[0] <= len(value) <= length[1]:
        raise ConfigError(
            f"{where}: {name} = {value!r} must have {length[0]}..{length[1]} entries, "
            f"has {len(value)}"
        )
    for i, item in enumerate(value):
        _check_int(where, f"{name}[{i}]", item, bounds)


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


# ----------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class BranchSpec:
    """One stage-1 branch: a chain of single-channel 1-D convolutions shared by all channels.

    Attributes
    ----------
    name:
        Identifier (letters, digits, ``_``), unique within the spec.
    char_freq_hz:
        Characteristic frequency that sets the dilations (``None``: no dilation).
    kernel:
        Kernel length of every stage-1 layer, in samples.
    layers:
        Number of stage-1 layers (the first without ReLU, the others with).
    stride:
        Stride of the first stage-1 layer.
    dilate:
        True when dilations follow ``char_freq_hz``; False for dilation 1 in every layer.
    fixed_first_kernel:
        Taps of a fixed, untrainable first layer (length ``kernel``, no bias), or ``None``.
    """

    name: str
    char_freq_hz: float | None
    kernel: int
    layers: int = 4
    stride: int = 1
    dilate: bool = True
    fixed_first_kernel: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name.isidentifier()):
            raise ConfigError(
                f"{SPEC_WHERE}: branch name {self.name!r} must be an identifier "
                "(letters, digits, _)"
            )
        where = f"{SPEC_WHERE} branch {self.name!r}"
        _check_int(where, "kernel", self.kernel, KERNEL_BOUNDS)
        _check_int(where, "layers", self.layers, LAYERS_BOUNDS)
        _check_int(where, "stride", self.stride, STRIDE_BOUNDS)
        if not isinstance(self.dilate, bool):
            raise ConfigError(f"{where}: dilate = {self.dilate!r} must be true or false")
        if self.dilate:
            if self.char_freq_hz is None:
                raise ConfigError(f"{where}: dilate is true but char_freq_hz is not set")
            _check_float(where, "char_freq_hz", self.char_freq_hz, CHAR_FREQ_BOUNDS_HZ)
        elif self.char_freq_hz is not None:
            raise ConfigError(
                f"{where}: char_freq_hz = {self.char_freq_hz!r} is set but dilate is false"
            )
        taps = self.fixed_first_kernel
        if taps is not None:
            if not isinstance(taps, tuple):
                raise ConfigError(f"{where}: fixed_first_kernel = {taps!r} must be a tuple")
            if len(taps) != self.kernel:
                raise ConfigError(
                    f"{where}: fixed_first_kernel has {len(taps)} taps, kernel is {self.kernel}"
                )
            for i, tap in enumerate(taps):
                _check_float(where, f"fixed_first_kernel[{i}]", tap, (-1e6, 1e6))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (see :meth:`ModelSpec.to_dict`)."""
        return {
            "name": self.name,
            "char_freq_hz": self.char_freq_hz,
            "kernel": self.kernel,
            "layers": self.layers,
            "stride": self.stride,
            "dilate": self.dilate,
            "fixed_first_kernel": (
                None if self.fixed_first_kernel is None else list(self.fixed_first_kernel)
            ),
        }


@dataclass(frozen=True)
class Stage2Spec:
    """Stage 2, applied to every stage-1 output: a short conv chain with ``features`` maps.

    Attributes
    ----------
    kernel:
        Kernel length of every stage-2 layer, in stage-1 output steps.
    dilations:
        Dilation of each stage-2 layer at ``ModelSpec.reference_rate_hz`` (one per layer).
    strides:
        Stride of the first stage-2 layer, one per branch in branch order.
    features:
        Output features of every stage-2 layer (ReLU after each).
    """

    kernel: int = 10
    dilations: tuple[int, ...] = (10, 20)
    strides: tuple[int, ...] = (1, 2, 3, 1)
    features: int = 4

    def __post_init__(self) -> None:
        where = f"{SPEC_WHERE} stage2"
        _check_int(where, "kernel", self.kernel, KERNEL_BOUNDS)
        _check_int_tuple(where, "dilations", self.dilations, DILATION_BOUNDS, STAGE2_LAYERS_BOUNDS)
        _check_int_tuple(where, "strides", self.strides, STRIDE_BOUNDS, N_BRANCHES_BOUNDS)
        _check_int(where, "features", self.features, FEATURES_BOUNDS)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (see :meth:`ModelSpec.to_dict`)."""
        return {
            "kernel": self.kernel,
            "dilations": list(self.dilations),
            "strides": list(self.strides),
            "features": self.features,
        }


DEFAULT_BRANCHES: tuple[BranchSpec, ...] = (
    BranchSpec("type_I", 30.0, 15, layers=4, stride=1),
    BranchSpec("type_IIa", 100.0, 10, layers=4, stride=1),
    BranchSpec("type_IIb", 225.0, 7, layers=4, stride=2),
    BranchSpec(
        "silence", None, 7, layers=4, stride=2, dilate=False, fixed_first_kernel=SILENCE_KERNEL
    ),
)


@dataclass(frozen=True)
class ConvLayer:
    """One planned convolution of a branch (what the torch module instantiates).

    Attributes
    ----------
    stage:
        1 or 2.
    kernel, dilation, stride:
        As in ``torch.nn.Conv1d``; the dilation is the one chosen for the spec's rate.
    in_features, out_features:
        Input and output maps (1 → 1 in stage 1).
    relu:
        True when a ReLU follows the layer.
    rate_scaled:
        True when the dilation follows the sampling rate (False: dilation 1 at every rate).
    fixed_kernel:
        Fixed taps (no bias, never trained), or ``None`` for a trainable layer with bias.
    """

    stage: int
    kernel: int
    dilation: int
    stride: int
    in_features: int
    out_features: int
    relu: bool
    rate_scaled: bool
    fixed_kernel: tuple[float, ...] | None = None

    @property
    def span_samples(self) -> int:
        """``(k − 1)·d``: how far the first tap lies behind the last, in input steps."""
        return (self.kernel - 1) * self.dilation

    @property
    def parameter_count(self) -> int:
        """Trainable weights plus biases (0 for a fixed layer)."""
        if self.fixed_kernel is not None:
            return 0
        return self.out_features * self.in_features * self.kernel + self.out_features

    def output_length(self, input_length: int) -> int:
        """Output steps for ``input_length`` input steps (no padding; ≤ 0 when too short)."""
        return (input_length - self.span_samples - 1) // self.stride + 1

    def input_length(self, output_steps: int) -> int:
        """Input steps that give exactly ``output_steps`` output steps (≥ 1)."""
        return self.span_samples + 1 + (output_steps - 1) * self.stride


def _coefficients(layers: Sequence[ConvLayer]) -> list[int]:
    """``(k_l − 1)·P_l`` per layer: how much one unit of dilation widens the field."""
    out: list[int] = []
    stride_before = 1
    for layer in layers:
        out.append((layer.kernel - 1) * stride_before)
        stride_before *= layer.stride
    return out


@dataclass(frozen=True)
class BranchPlan:
    """A branch resolved at the spec's sampling rate: its layers and the figures they give.

    Attributes
    ----------
    name:
        The branch name.
    layers:
        Stage-1 layers, then stage-2 layers, in the order they run.
    sample_rate_hz:
        The rate the dilations were chosen for.
    reference_rate_hz:
        The rate at which the seed's dilations are stated.
    reference_receptive_field_samples:
        Receptive field of the seed design at ``reference_rate_hz``.
    """

    name: str
    layers: tuple[ConvLayer, ...]
    sample_rate_hz: float
    reference_rate_hz: float
    reference_receptive_field_samples: int

    @property
    def stage1_dilations(self) -> tuple[int, ...]:
        """Dilation of each stage-1 layer."""
        return tuple(layer.dilation for layer in self.layers if layer.stage == 1)

    @property
    def stage2_dilations(self) -> tuple[int, ...]:
        """Dilation of each stage-2 layer (in stage-1 output steps)."""
        return tuple(layer.dilation for layer in self.layers if layer.stage == 2)

    @property
    def receptive_field_samples(self) -> int:
        """``R = 1 + Σ (k_l − 1)·d_l·P_l`` (see the module docstring)."""
        coefficients = _coefficients(self.layers)
        return 1 + sum(
            c * layer.dilation for c, layer in zip(coefficients, self.layers, strict=True)
        )

    @property
    def receptive_field_ms(self) -> float:
        """Duration of ``R`` samples at the spec's rate, in ms."""
        return 1000.0 * self.receptive_field_samples / self.sample_rate_hz

    @property
    def reference_receptive_field_ms(self) -> float:
        """The duration the dilations aim at (the seed design at the reference rate), in ms."""
        return 1000.0 * self.reference_receptive_field_samples / self.reference_rate_hz

    @property
    def total_stride(self) -> int:
        """Input samples per output step: the product of every layer's stride."""
        return math.prod(layer.stride for layer in self.layers)

    @property
    def lattice_step_samples(self) -> int:
        """Step in which ``R`` can move when the rate-scaled dilations change (≥ 1)."""
        coefficients = _coefficients(self.layers)
        free = [c for c, layer in zip(coefficients, self.layers, strict=True) if layer.rate_scaled]
        return reduce(math.gcd, free, 0) or 1

    def input_samples(self, common_length: int) -> int:
        """Input samples that give exactly ``common_length`` output steps: ``R + (T − 1)·S``.

        The network crops its window to the most recent this-many samples, so the last
        output step of every branch ends at the newest sample of the window.
        """
        return self.receptive_field_samples + (common_length - 1) * self.total_stride


def choose_dilations(
    ideal: Sequence[float],
    coefficients: Sequence[int],
    rate_scaled: Sequence[bool],
    target_span: float,
) -> tuple[int, ...]:
    """Pick integer dilations whose receptive field comes closest to a target.

    Each rate-scaled layer may take any integer from ``floor(ideal) − DILATION_SEARCH_STEPS``
    to ``ceil(ideal) + DILATION_SEARCH_STEPS``, at least 1; the others keep their ideal value
    (which must then be an integer). Among the choices whose span ``Σ c_l·d_l`` is nearest
    ``target_span``, the one with the smallest summed relative deviation
    ``Σ |d_l − ideal_l| / ideal_l`` wins; remaining ties go to the lexicographically smallest
    dilations. Solved exactly by dynamic programming over spans.

    Parameters
    ----------
    ideal:
        Shape ``(n_layers,)``, ideal dilation of each layer (> 0).
    coefficients:
        Shape ``(n_layers,)``, ``(k_l − 1)·P_l`` of each layer.
    rate_scaled:
        Shape ``(n_layers,)``, True where the dilation may be chosen.
    target_span:
        Wanted ``R − 1`` in samples.

    Returns
    -------
    tuple of int
        Shape ``(n_layers,)``, the chosen dilations.
    """
    # span -> (summed relative deviation, dilations so far); only the best per span is kept.
    best: dict[int, tuple[float, tuple[int, ...]]] = {0: (0.0, ())}
    for want, coefficient, free in zip(ideal, coefficients, rate_scaled, strict=True):
        if free:
            low = max(1, math.floor(want) - DILATION_SEARCH_STEPS)
            candidates = range(low, math.ceil(want) + DILATION_SEARCH_STEPS + 1)
        else:
            candidates = range(round(want), round(want) + 1)
        grown: dict[int, tuple[float, tuple[int, ...]]] = {}
        for span, (deviation, chosen) in best.items():
            for dilation in candidates:
                key = span + coefficient * dilation
                entry = (deviation + abs(dilation - want) / want, (*chosen, dilation))
                if key not in grown or entry < grown[key]:
                    grown[key] = entry
        best = grown
    _, (_, dilations) = min(
        best.items(), key=lambda item: (abs(item[0] - target_span), item[1][0], item[1][1])
    )
    return dilations


def seed_dilations(
    reference_rate_hz: float, char_freq_hz: float | None, kernel: int, layers: int
) -> tuple[int, ...]:
    """The seed formula: ``d0 = max(1, round(fs/(f·k)))``, ``d_l = d0·2^l`` (1s if no f).

    Parameters
    ----------
    reference_rate_hz:
        Sampling rate ``fs`` the formula is evaluated at.
    char_freq_hz:
        Characteristic frequency ``f`` (``None``: no dilation).
    kernel:
        Kernel length ``k``.
    layers:
        Number of layers.

    Returns
    -------
    tuple of int
        Shape ``(layers,)``.
    """
    if char_freq_hz is None:
        return (1,) * layers
    d0 = max(1, _round_half_up(reference_rate_hz / (char_freq_hz * kernel)))
    return tuple(d0 * 2**layer for layer in range(layers))


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines the network and its input contract (seed values as defaults).

    Attributes
    ----------
    sample_rate_hz:
        EMG sampling rate ``fs``; dilations are chosen for it.
    n_channels:
        EMG channels ``C`` (all share the stage-1 and stage-2 weights).
    branches:
        Stage-1 branches (default: type I, type IIa, type IIb, silence).
    stage2:
        Stage-2 layers, including the per-branch strides.
    common_length:
        ``T``: each branch keeps its most recent ``T`` output steps.
    mlp:
        Hidden widths of the MLP (ReLU after each).
    n_outputs:
        Output angles (one per finger).
    history:
        Previous commanded angle vectors fed back as inputs (``A(n)``, ``A(n−1)``, ...).
    angle_range_deg:
        ``(lo, hi)``: outputs are ``lo + (hi − lo)·sigmoid``; history is scaled to [0, 1] by it.
    window_s:
        Window length; ``None`` means the minimum that gives every branch ``T`` steps.
    hop_s:
        Time between two inferences.
    reference_rate_hz:
        Rate at which the seed's dilations (stage-1 formula, stage-2 10 and 20) are stated.
    dropout:
        Dropout probability before each MLP layer during training (0 disables it).
    pool_s:
        ``None`` (seed): each branch keeps its most recent ``T`` output steps. A duration:
        each of the ``T`` features is instead the mean of ``pool_steps`` consecutive
        steps spanning about ``pool_s`` (``round(pool_s·fs / S)`` steps for a branch of
        total stride ``S``, at least 1), so the ``T`` bins cover the last ``T·pool_s``
        seconds (average pooling to the common length, DESIGN §5).
    head:
        Output head: ``"direct"`` (seed: ``lo + (hi − lo)·sigmoid`` per angle) or
        ``"pose_mixture"`` (``R + e·Σ_k p_k·(G_k − R)`` over the pose table, needs five
        outputs and a range covering the poses; see :data:`HEADS`).
    band_amplitude_s:
        ``None`` (seed): the MLP sees the branch features only. A duration: it also sees,
        per channel and branch, ``log(mean |y| + BAND_AMPLITUDE_FLOOR)`` of the branch's first
        layer output ``y`` (the linear band filter, before any ReLU) over the last
        ``band_amplitude_s`` seconds, standardised by per-input constants set from the
        training data: a learned log band amplitude, like the log MAV of the TD features.
    gestures:
        Pose-mixture head only: the classes its softmax runs over, as ``(label, pose)``
        pairs (e.g. the 11 3DC gestures, seven of which are the rest pose). Empty: one
        class per pose of the pose table. Several classes may share a pose: a wrist
        flexion and a relaxed hand look nothing alike in the EMG, yet both are rest.
    class_sharpness:
        Pose-mixture head only: the class weights are ``softmax(s·z)`` at inference
        (1: as trained; larger commits more firmly to the most likely gesture, as a
        classifier mapped to poses does). Training fits at 1 and picks ``s`` on validation.
    graded_effort:
        Pose-mixture head only. True: the last MLP output gives the effort
        ``e = sigmoid(z)``, for targets that hold a gesture part way (proportional
        control). False: ``e`` = 1, the whole pose of the weighted classes, and no effort
        output: for data whose every target is a whole pose (3DC), where an effort could
        only learn the training session's EMG amplitude and would stop the hand short of
        the pose when the wearer's amplitude is lower another day.
    members:
        Copies of this network, each trained from its own seed, run side by side on the
        same window and history; the output is their per-angle median (1: a single
        network). A median of three ignores one copy that went astray, which a single
        training run's seed and early stop can make happen. Parameters and MACs count
        every copy; the copies share the head's class sharpness.
    """

    sample_rate_hz: float = 1000.0
    n_channels: int = 8
    branches: tuple[BranchSpec, ...] = DEFAULT_BRANCHES
    stage2: Stage2Spec = field(default_factory=Stage2Spec)
    common_length: int = 50
    mlp: tuple[int, ...] = (128, 64)
    n_outputs: int = 5
    history: int = 2
    angle_range_deg: tuple[float, float] = DEFAULT_ANGLE_RANGE_DEG
    window_s: float | None = None
    hop_s: float = DEFAULT_HOP_S
    reference_rate_hz: float = SEED_REFERENCE_RATE_HZ
    dropout: float = 0.0
    head: str = HEAD_DIRECT
    pool_s: float | None = None
    band_amplitude_s: float | None = None
    gestures: tuple[tuple[str, str], ...] = ()
    class_sharpness: float = 1.0
    graded_effort: bool = True
    members: int = 1
    _plans: tuple[BranchPlan, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = SPEC_WHERE
        self._set(
            "sample_rate_hz",
            _check_float(where, "sample_rate_hz", self.sample_rate_hz, SAMPLE_RATE_BOUNDS_HZ),
        )
        self._set(
            "reference_rate_hz",
            _check_float(
                where, "reference_rate_hz", self.reference_rate_hz, REFERENCE_RATE_BOUNDS_HZ
            ),
        )
        _check_int(where, "n_channels", self.n_channels, N_CHANNELS_BOUNDS)
        _check_int(where, "common_length", self.common_length, COMMON_LENGTH_BOUNDS)
        _check_int_tuple(where, "mlp", self.mlp, MLP_WIDTH_BOUNDS, MLP_DEPTH_BOUNDS)
        _check_int(where, "n_outputs", self.n_outputs, N_OUTPUTS_BOUNDS)
        _check_int(where, "history", self.history, HISTORY_BOUNDS)
        _check_int(where, "members", self.members, MEMBERS_BOUNDS)
        self._set("dropout", _check_float(where, "dropout", self.dropout, DROPOUT_BOUNDS))
        self._check_angle_range()
        self._check_head()
        self._check_gestures()
        self._set(
            "class_sharpness",
            _check_float(where, "class_sharpness", self.class_sharpness, SHARPNESS_BOUNDS),
        )
        if self.class_sharpness != 1.0 and self.head != HEAD_POSE_MIXTURE:
            raise ConfigError(
                f"{SPEC_WHERE}: class_sharpness is only used by head 'pose_mixture', "
                f"not {self.head!r}"
            )
        if not isinstance(self.graded_effort, bool):
            raise ConfigError(
                f"{SPEC_WHERE}: graded_effort = {self.graded_effort!r} must be true or false"
            )
        if not self.graded_effort and self.head != HEAD_POSE_MIXTURE:
            raise ConfigError(
                f"{SPEC_WHERE}: graded_effort = false is only for head 'pose_mixture', "
                f"not {self.head!r}"
            )
        if self.pool_s is not None:
            self._set("pool_s", _check_float(where, "pool_s", self.pool_s, POOL_BOUNDS_S))
        if self.band_amplitude_s is not None:
            self._set(
                "band_amplitude_s",
                _check_float(
                    where, "band_amplitude_s", self.band_amplitude_s, BAND_AMPLITUDE_BOUNDS_S
                ),
            )
        self._check_branches()
        plans = tuple(self._plan_branch(i) for i in range(len(self.branches)))
        object.__setattr__(self, "_plans", plans)
        self._check_window()

    # -- validation helpers ------------------------------------------------------------

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def _check_angle_range(self) -> None:
        rng = self.angle_range_deg
        if not (isinstance(rng, tuple) and len(rng) == 2):
            raise ConfigError(f"{SPEC_WHERE}: angle_range_deg = {rng!r} must be (lo, hi)")
        lo = _check_float(SPEC_WHERE, "angle_range_deg[0]", rng[0], ANGLE_BOUNDS_DEG)
        hi = _check_float(SPEC_WHERE, "angle_range_deg[1]", rng[1], ANGLE_BOUNDS_DEG)
        if not lo < hi:
            raise ConfigError(f"{SPEC_WHERE}: angle_range_deg = {rng!r} needs lo < hi")
        self._set("angle_range_deg", (lo, hi))

    def _check_head(self) -> None:
        if self.head not in HEADS:
            raise ConfigError(
                f"{SPEC_WHERE}: head = {self.head!r} is not one of {', '.join(HEADS)}"
            )
        if self.head == HEAD_POSE_MIXTURE:
            if self.n_outputs != N_POSE_ANGLES:
                raise ConfigError(
                    f"{SPEC_WHERE}: head 'pose_mixture' needs n_outputs = {N_POSE_ANGLES} "
                    f"(one per finger), got {self.n_outputs}"
                )
            lo, hi = self.angle_range_deg
            if lo > POSE_TABLE_MIN_DEG or hi < POSE_TABLE_MAX_DEG:
                raise ConfigError(
                    f"{SPEC_WHERE}: head 'pose_mixture' needs angle_range_deg to cover the "
                    f"poses [{POSE_TABLE_MIN_DEG:g}, {POSE_TABLE_MAX_DEG:g}], got ({lo:g}, {hi:g})"
                )

    def _check_gestures(self) -> None:
        gestures = self.gestures
        if not isinstance(gestures, tuple) or not all(
            isinstance(g, tuple) and len(g) == 2 and all(isinstance(x, str) for x in g)
            for g in gestures
        ):
            raise ConfigError(
                f"{SPEC_WHERE}: gestures = {gestures!r} must be a list of [label, pose] pairs"
            )
        if not gestures:
            return
        if self.head != HEAD_POSE_MIXTURE:
            raise ConfigError(
                f"{SPEC_WHERE}: gestures are only used by head 'pose_mixture', not {self.head!r}"
            )
        labels = [label for label, _ in gestures]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{SPEC_WHERE}: gestures repeat a label: {labels}")
        for label, pose in gestures:
            if pose not in POSE_NAMES:
                raise ConfigError(
                    f"{SPEC_WHERE}: gesture {label!r} maps to pose {pose!r}, which is not one "
                    f"of {', '.join(POSE_NAMES)}"
                )
        if len(gestures) > MAX_GESTURES:
            raise ConfigError(f"{SPEC_WHERE}: {len(gestures)} gestures, more than {MAX_GESTURES}")

    @property
    def class_poses(self) -> tuple[str, ...]:
        """The pose of each class of the pose-mixture softmax (see :attr:`gestures`)."""
        if self.gestures:
            return tuple(pose for _, pose in self.gestures)
        return POSE_NAMES

    @property
    def class_labels(self) -> tuple[str, ...]:
        """The label of each class of the pose-mixture softmax (pose names by default)."""
        if self.gestures:
            return tuple(label for label, _ in self.gestures)
        return POSE_NAMES

    def _check_branches(self) -> None:
        if not isinstance(self.branches, tuple) or not all(
            isinstance(b, BranchSpec) for b in self.branches
        ):
            raise ConfigError(f"{SPEC_WHERE}: branches must be a tuple of BranchSpec")
        lo, hi = N_BRANCHES_BOUNDS
        if not lo <= len(self.branches) <= hi:
            raise ConfigError(f"{SPEC_WHERE}: {len(self.branches)} branches, must be {lo}..{hi}")
        names = [b.name for b in self.branches]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"{SPEC_WHERE}: branch names repeat: {', '.join(duplicates)}")
        if not isinstance(self.stage2, Stage2Spec):
            raise ConfigError(f"{SPEC_WHERE}: stage2 must be a Stage2Spec")
        if len(self.stage2.strides) != len(self.branches):
            raise ConfigError(
                f"{SPEC_WHERE}: stage2.strides has {len(self.stage2.strides)} entries "
                f"for {len(self.branches)} branches ({', '.join(names)})"
            )

    def _check_window(self) -> None:
        if self.window_s is not None:
            window_s = _check_float(SPEC_WHERE, "window_s", self.window_s, WINDOW_BOUNDS_S)
            self._set("window_s", window_s)
            need = self.min_window_samples
            if self.window_samples < need:
                widest = max(self._plans, key=self.branch_input_samples)
                raise ConfigError(
                    f"{SPEC_WHERE}: window_s = {window_s:g} s is {self.window_samples} samples "
                    f"at {self.sample_rate_hz:g} Hz, shorter than the {need} samples "
                    f"({need / self.sample_rate_hz:.3f} s) that branch {widest.name!r} needs "
                    f"for T = {self.common_length} steps"
                )
        self._set("hop_s", _check_float(SPEC_WHERE, "hop_s", self.hop_s, HOP_BOUNDS_S))
        if self.hop_samples < 1:
            raise ConfigError(
                f"{SPEC_WHERE}: hop_s = {self.hop_s:g} s is less than one sample "
                f"at {self.sample_rate_hz:g} Hz"
            )
        if self.hop_samples > self.window_samples:
            raise ConfigError(
                f"{SPEC_WHERE}: hop_s = {self.hop_s:g} s ({self.hop_samples} samples) is longer "
                f"than the window ({self.window_samples} samples)"
            )

    # -- planning ----------------------------------------------------------------------

    def _layers(self, index: int, stage1: Sequence[int], stage2: Sequence[int]) -> list[ConvLayer]:
        branch = self.branches[index]
        features = self.stage2.features
        layers = [
            ConvLayer(
                stage=1,
                kernel=branch.kernel,
                dilation=dilation,
                stride=branch.stride if depth == 0 else 1,
                in_features=1,
                out_features=1,
                relu=depth > 0,
                rate_scaled=branch.dilate,
                fixed_kernel=branch.fixed_first_kernel if depth == 0 else None,
            )
            for depth, dilation in enumerate(stage1)
        ]
        layers += [
            ConvLayer(
                stage=2,
                kernel=self.stage2.kernel,
                dilation=dilation,
                stride=self.stage2.strides[index] if depth == 0 else 1,
                in_features=1 if depth == 0 else features,
                out_features=features,
                relu=True,
                rate_scaled=True,
            )
            for depth, dilation in enumerate(stage2)
        ]
        return layers

    def _plan_branch(self, index: int) -> BranchPlan:
        branch = self.branches[index]
        reference = self._layers(
            index,
            seed_dilations(
                self.reference_rate_hz, branch.char_freq_hz, branch.kernel, branch.layers
            ),
            self.stage2.dilations,
        )
        coefficients = _coefficients(reference)
        reference_span = sum(
            c * layer.dilation for c, layer in zip(coefficients, reference, strict=True)
        )
        # Wanted R at fs lasts as long as the reference R: R_ref·fs/fs_ref samples. Layers
        # with a fixed dilation keep their span, so the free ones absorb the difference.
        target_span = (1 + reference_span) * self.sample_rate_hz / self.reference_rate_hz - 1
        flags = [layer.rate_scaled for layer in reference]
        spans = [c * layer.dilation for c, layer in zip(coefficients, reference, strict=True)]
        fixed_span = sum(span for span, free in zip(spans, flags, strict=True) if not free)
        free_span = sum(span for span, free in zip(spans, flags, strict=True) if free)
        alpha = (target_span - fixed_span) / free_span
        ideal = [
            max(1.0, layer.dilation * alpha) if free else float(layer.dilation)
            for layer, free in zip(reference, flags, strict=True)
        ]
        chosen = choose_dilations(ideal, coefficients, flags, target_span)
        for depth, dilation in enumerate(chosen):
            if dilation > DILATION_BOUNDS[1]:
                raise ConfigError(
                    f"{SPEC_WHERE} branch {branch.name!r}: dilation {dilation} of layer {depth} "
                    f"at {self.sample_rate_hz:g} Hz exceeds {DILATION_BOUNDS[1]}"
                )
        layers = self._layers(index, chosen[: branch.layers], chosen[branch.layers :])
        return BranchPlan(
            name=branch.name,
            layers=tuple(layers),
            sample_rate_hz=self.sample_rate_hz,
            reference_rate_hz=self.reference_rate_hz,
            reference_receptive_field_samples=1 + reference_span,
        )

    # -- derived figures ---------------------------------------------------------------

    @property
    def plans(self) -> tuple[BranchPlan, ...]:
        """Every branch resolved at ``sample_rate_hz``, in branch order."""
        return self._plans

    def plan(self, name: str) -> BranchPlan:
        """The plan of the branch called ``name`` (ConfigError if there is none)."""
        for plan in self._plans:
            if plan.name == name:
                return plan
        known = ", ".join(p.name for p in self._plans)
        raise ConfigError(f"{SPEC_WHERE}: no branch named {name!r} (branches: {known})")

    def receptive_fields_samples(self) -> dict[str, int]:
        """Receptive field ``R`` of each branch, in samples at ``sample_rate_hz``."""
        return {p.name: p.receptive_field_samples for p in self._plans}

    def receptive_fields_ms(self) -> dict[str, float]:
        """Receptive field of each branch in ms (``1000·R / fs``)."""
        return {p.name: p.receptive_field_ms for p in self._plans}

    @property
    def min_window_samples(self) -> int:
        """Shortest window giving every branch ``T`` steps (``max_b (R_b + (T − 1)·S_b)``)
        and, with band amplitudes, every branch its amplitude window."""
        return max(
            max(self.branch_input_samples(p), self.band_input_samples(p)) for p in self._plans
        )

    def band_steps(self, plan: BranchPlan) -> int:
        """First-layer output steps averaged into a band amplitude (0: no band amplitudes)."""
        if self.band_amplitude_s is None:
            return 0
        stride = plan.layers[0].stride
        return max(1, _round_half_up(self.band_amplitude_s * self.sample_rate_hz / stride))

    def band_input_samples(self, plan: BranchPlan) -> int:
        """Input samples a branch's band amplitude needs (0 without band amplitudes)."""
        steps = self.band_steps(plan)
        return plan.layers[0].input_length(steps) if steps else 0

    def pool_steps(self, plan: BranchPlan) -> int:
        """Output steps averaged into one of the ``T`` features of a branch (1: no pooling)."""
        if self.pool_s is None:
            return 1
        return max(1, _round_half_up(self.pool_s * self.sample_rate_hz / plan.total_stride))

    def branch_input_samples(self, plan: BranchPlan) -> int:
        """Input samples a branch needs for its ``T`` features: ``R + (T·pool − 1)·S``."""
        return plan.input_samples(self.common_length * self.pool_steps(plan))

    @property
    def window_samples(self) -> int:
        """Window length in samples (``window_s·fs`` rounded, or the minimum)."""
        if self.window_s is None:
            return self.min_window_samples
        return _round_half_up(self.window_s * self.sample_rate_hz)

    @property
    def hop_samples(self) -> int:
        """Hop in samples (``hop_s·fs`` rounded)."""
        return _round_half_up(self.hop_s * self.sample_rate_hz)

    @property
    def history_inputs(self) -> int:
        """Number of history inputs: ``history·n_outputs`` (``A(n)`` first)."""
        return self.history * self.n_outputs

    @property
    def band_feature_count(self) -> int:
        """Band amplitudes given to the MLP: ``C × branches``, or 0 without them."""
        return 0 if self.band_amplitude_s is None else self.n_channels * len(self.branches)

    @property
    def map_feature_count(self) -> int:
        """Flattened convolution maps given to the MLP: ``C × branches × features × T``."""
        return self.n_channels * len(self.branches) * self.stage2.features * self.common_length

    @property
    def feature_count(self) -> int:
        """MLP inputs before the history: the maps, then the band amplitudes."""
        return self.map_feature_count + self.band_feature_count

    @property
    def head_inputs(self) -> int:
        """Outputs of the last MLP layer: ``n_outputs`` (direct), or one per class plus the
        effort's (pose mixture; none for the effort without ``graded_effort``)."""
        if self.head == HEAD_POSE_MIXTURE:
            return len(self.class_poses) + int(self.graded_effort)
        return self.n_outputs

    @property
    def mlp_sizes(self) -> tuple[int, ...]:
        """Widths from the MLP input to the output: ``(features + history, *mlp, head_inputs)``."""
        return (self.feature_count + self.history_inputs, *self.mlp, self.head_inputs)

    @property
    def member(self) -> ModelSpec:
        """The spec of one member (this spec with ``members = 1``)."""
        return replace(self, members=1)

    def parameter_breakdown(self) -> dict[str, int]:
        """Trainable parameters per part: ``stage1``, ``stage2``, ``mlp``.

        Fixed kernels are not parameters (see :meth:`fixed_weight_count`).
        """
        stage1 = sum(
            layer.parameter_count for p in self._plans for layer in p.layers if layer.stage == 1
        )
        stage2 = sum(
            layer.parameter_count for p in self._plans for layer in p.layers if layer.stage == 2
        )
        sizes = self.mlp_sizes
        mlp = sum(n_in * n_out + n_out for n_in, n_out in pairwise(sizes))
        one = {"stage1": stage1, "stage2": stage2, "mlp": mlp}
        return {part: count * self.members for part, count in one.items()}

    def parameter_count(self) -> int:
        """Trainable parameters of the network (weights and biases; every member's)."""
        return sum(self.parameter_breakdown().values())

    def fixed_weight_count(self) -> int:
        """Taps of fixed kernels (stored in the model, never trained; every member's)."""
        return self.members * sum(
            len(layer.fixed_kernel)
            for p in self._plans
            for layer in p.layers
            if layer.fixed_kernel is not None
        )

    def macs_breakdown(self) -> dict[str, int]:
        """Multiply-accumulates per inference (batch 1) per part: ``stage1``, ``stage2``, ``mlp``.

        A convolution costs ``C·L_out·out·in·k`` (fixed kernels included, as they are run);
        a linear layer ``in·out``. Biases, ReLUs, the sigmoid, the history scaling and
        the members' median are not counted; every member is.
        """
        totals = {"stage1": 0, "stage2": 0, "mlp": 0}
        for plan in self._plans:
            length = self.branch_input_samples(plan)
            for depth, layer in enumerate(plan.layers):
                length = layer.output_length(length)
                # The first layer runs over the longer of the two crops (see EmgNet).
                run = length
                if depth == 0:
                    run = max(length, layer.output_length(self.band_input_samples(plan)))
                macs = self.n_channels * run * layer.out_features * layer.in_features
                totals[f"stage{layer.stage}"] += macs * layer.kernel
        sizes = self.mlp_sizes
        totals["mlp"] = sum(n_in * n_out for n_in, n_out in pairwise(sizes))
        return {part: macs * self.members for part, macs in totals.items()}

    def macs_per_inference(self) -> int:
        """Multiply-accumulates of one inference at batch 1 (see :meth:`macs_breakdown`)."""
        return sum(self.macs_breakdown().values())

    # -- serialisation -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: plain dicts, lists, numbers, strings, booleans and ``None``.

        :meth:`from_dict` of the result gives back an equal spec.
        """
        return {
            "version": SPEC_FORMAT_VERSION,
            "sample_rate_hz": self.sample_rate_hz,
            "n_channels": self.n_channels,
            "branches": [b.to_dict() for b in self.branches],
            "stage2": self.stage2.to_dict(),
            "common_length": self.common_length,
            "mlp": list(self.mlp),
            "n_outputs": self.n_outputs,
            "history": self.history,
            "angle_range_deg": list(self.angle_range_deg),
            "window_s": self.window_s,
            "hop_s": self.hop_s,
            "reference_rate_hz": self.reference_rate_hz,
            "dropout": self.dropout,
            "head": self.head,
            "pool_s": self.pool_s,
            "band_amplitude_s": self.band_amplitude_s,
            "gestures": [list(g) for g in self.gestures],
            "class_sharpness": self.class_sharpness,
            "graded_effort": self.graded_effort,
            "members": self.members,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Rebuild a spec from :meth:`to_dict` output (e.g. read from ONNX metadata).

        Missing keys take their defaults; unknown keys, a different ``version`` and values
        of the wrong type or range raise :class:`~emgd.errors.ConfigError` naming the key.
        """
        data = _expect_mapping(SPEC_WHERE, data)
        known = {f.name for f in fields(cls) if f.init} | {"version"}
        _reject_unknown(SPEC_WHERE, data, known)
        version = data.get("version", SPEC_FORMAT_VERSION)
        if version != SPEC_FORMAT_VERSION:
            raise ConfigError(
                f"{SPEC_WHERE}: version = {version!r} is not supported "
                f"(this emgd reads version {SPEC_FORMAT_VERSION})"
            )
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if k != "version"}
        if "branches" in kwargs:
            items = _expect_list(SPEC_WHERE, "branches", kwargs["branches"])
            kwargs["branches"] = tuple(_branch_from_dict(i, item) for i, item in enumerate(items))
        if "stage2" in kwargs:
            kwargs["stage2"] = _stage2_from_dict(kwargs["stage2"])
        for key in ("mlp", "angle_range_deg"):
            if key in kwargs:
                kwargs[key] = tuple(_expect_list(SPEC_WHERE, key, kwargs[key]))
        if "gestures" in kwargs:
            kwargs["gestures"] = tuple(
                tuple(_expect_list(SPEC_WHERE, f"gestures[{i}]", g))
                for i, g in enumerate(_expect_list(SPEC_WHERE, "gestures", kwargs["gestures"]))
            )
        return cls(**kwargs)


def _expect_mapping(where: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _expect_list(where: str, key: str, value: object) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where}: {key} = {value!r} must be a list")
    return list(value)


def _reject_unknown(where: str, data: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known keys: {', '.join(sorted(known))})"
        )


def _branch_from_dict(index: int, value: object) -> BranchSpec:
    where = f"{SPEC_WHERE} branches[{index}]"
    data = _expect_mapping(where, value)
    _reject_unknown(where, data, {f.name for f in fields(BranchSpec)})
    if "name" not in data or "kernel" not in data:
        raise ConfigError(f"{where}: needs at least 'name' and 'kernel'")
    kwargs = dict(data)
    if "char_freq_hz" not in kwargs:
        kwargs["char_freq_hz"] = None
    taps = kwargs.get("fixed_first_kernel")
    if taps is not None:
        kwargs["fixed_first_kernel"] = tuple(_expect_list(where, "fixed_first_kernel", taps))
    return BranchSpec(**kwargs)


def _stage2_from_dict(value: object) -> Stage2Spec:
    where = f"{SPEC_WHERE} stage2"
    data = _expect_mapping(where, value)
    _reject_unknown(where, data, {f.name for f in fields(Stage2Spec)})
    kwargs = dict(data)
    for key in ("dilations", "strides"):
        if key in kwargs:
            kwargs[key] = tuple(_expect_list(where, key, kwargs[key]))
    return Stage2Spec(**kwargs)
