"""The dilated-CNN + MLP network of DESIGN §5 as a PyTorch module, built from a ModelSpec.

This module owns the torch side of the network: the stage-1 branches (single-channel
convolutions whose weights are shared by every EMG channel), stage 2, the cut to the common
length ``T``, the history inputs, the MLP and the bounded output, plus He initialisation.
Every size, dilation and stride comes from :attr:`emgd.model.spec.ModelSpec.plans`; nothing
is decided here that the spec does not say. It is imported only to train or export (torch is
the ``train`` extra); the daemon runs the ONNX export and must never import this module.

Bringing each branch to ``T`` steps: every branch crops the window to its most recent
``R + (T − 1)·S`` samples (receptive field ``R``, total stride ``S``) and runs its
convolutions without padding, which leaves exactly ``T`` output steps, the last of them ending
at the newest sample. So the features of one window equal the features a long recording
would give at the same instant, the cut is a static slice (ONNX ``Slice``), and a window
longer than the minimum costs nothing extra.

Three spec options extend the seed (their defaults keep it exactly): ``pool_s`` averages
consecutive output steps into each of the ``T`` features (``avg_pool1d`` after the cut);
``band_amplitude_s`` adds, per channel and branch, the log of the mean ``|y|`` of the first
layer's output ``y`` (a learned band filter, before any ReLU) over that many recent seconds,
standardised by constants set from the training stream (:meth:`EmgNet.set_band_standardisation`),
to the MLP's inputs (:meth:`EmgNet.flat_features`); and
``head = "pose_mixture"`` replaces the per-angle sigmoid with ``R + e·Σ_k p_k·(G_k − R)`` over
classes ``k`` that are the poses of :mod:`emgd.poses` or, with ``spec.gestures``, the trained
gestures each mapped to its pose (softmax class weights ``p``, sigmoid effort ``e``). The
head can also run split (:meth:`EmgNet.project_features`, then
:meth:`EmgNet.logits_from_projection`) so closed-loop training feeds the history back cheaply.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import Tensor, nn
from torch.nn import functional

from emgd.errors import ModelError
from emgd.model.spec import (
    BAND_AMPLITUDE_FLOOR,
    HEAD_POSE_MIXTURE,
    BranchPlan,
    ConvLayer,
    ModelSpec,
)
from emgd.poses import REST, pose_angles_deg

INPUT_NAMES: tuple[str, str] = ("emg", "history_deg")
# Smallest scale of a band standardisation: a band constant over the training windows
# (a dead first layer) must not divide by zero.
BAND_SCALE_MIN = 1e-3
OUTPUT_NAMES: tuple[str] = ("angles_deg",)


class FixedConv1d(nn.Module):
    """A convolution whose taps are fixed: a non-persistent buffer, no bias, never trained.

    The taps come from the spec every time the module is built, so neither an optimiser nor
    a loaded state dict can change them.
    """

    weight: Tensor

    def __init__(self, layer: ConvLayer) -> None:
        super().__init__()
        if layer.fixed_kernel is None:
            raise ModelError("FixedConv1d needs a layer with fixed_kernel taps")
        self.stride = layer.stride
        self.dilation = layer.dilation
        taps = torch.tensor(layer.fixed_kernel, dtype=torch.float32)
        weight = taps.reshape(1, 1, layer.kernel).repeat(layer.out_features, layer.in_features, 1)
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` of shape ``(N, in, L)`` → ``(N, out, L_out)``."""
        return functional.conv1d(x, self.weight, stride=self.stride, dilation=self.dilation)


def conv1d_by_taps(
    x: Tensor, weight: Tensor, bias: Tensor | None, *, stride: int, dilation: int
) -> Tensor:
    """``functional.conv1d`` for one input and one output map, as a sum of shifted slices.

    The same numbers (to float rounding) for ``weight`` of shape ``(1, 1, k)``; on CPU its
    backward pass is about twice as fast as ``conv1d``'s for the long dilated single-map
    layers of stage 1, which dominate a training step. Training uses it; the exported graph
    keeps ``Conv`` (see :meth:`Branch.run_layers`).

    Parameters
    ----------
    x:
        Shape ``(N, 1, L)`` with ``L ≥ (k − 1)·dilation + 1``.
    """
    k = weight.shape[-1]
    n_out = (x.shape[-1] - (k - 1) * dilation - 1) // stride + 1
    span = (n_out - 1) * stride + 1
    taps = weight.reshape(k)
    y = taps[0] * x[..., 0:span:stride]
    for j in range(1, k):
        start = j * dilation
        y = y + taps[j] * x[..., start : start + span : stride]
    return y if bias is None else y + bias.reshape(1, 1, 1)


def single_map_taps(layer: nn.Module) -> tuple[Tensor, Tensor | None, int, int] | None:
    """``(weight, bias, stride, dilation)`` of a one-map-in, one-map-out layer, else None."""
    if isinstance(layer, nn.Conv1d):
        bias, stride, dilation = layer.bias, layer.stride[0], layer.dilation[0]
    elif isinstance(layer, FixedConv1d):
        bias, stride, dilation = None, layer.stride, layer.dilation
    else:
        return None
    weight = layer.weight
    if weight.shape[0] != 1 or weight.shape[1] != 1:
        return None
    return weight, bias, stride, dilation


class Branch(nn.Module):
    """Stage 1 then stage 2 of one branch, for single-channel signals.

    Parameters
    ----------
    plan:
        The branch as resolved by the spec (layers, dilations, strides).
    common_length:
        ``T``, the number of features kept per map.
    pool_steps:
        Consecutive output steps averaged into each of the ``T`` features (1: none).
    """

    def __init__(
        self,
        plan: BranchPlan,
        common_length: int,
        pool_steps: int = 1,
        band_steps: int = 0,
    ) -> None:
        super().__init__()
        self.name = plan.name
        self.common_length = common_length
        self.pool_steps = pool_steps
        self.band_steps = band_steps
        self.input_samples = plan.input_samples(common_length * pool_steps)
        first = plan.layers[0]
        # Both crops end at the newest sample and differ by a multiple of the first
        # layer's stride, so the first layer runs once over the longer one.
        self.band_input_samples = first.input_length(band_steps) if band_steps else 0
        self.first_steps = first.output_length(self.input_samples)
        self.relu_after: tuple[bool, ...] = tuple(layer.relu for layer in plan.layers)
        self.layers = nn.ModuleList(
            FixedConv1d(layer)
            if layer.fixed_kernel is not None
            else nn.Conv1d(
                layer.in_features,
                layer.out_features,
                layer.kernel,
                stride=layer.stride,
                dilation=layer.dilation,
            )
            for layer in plan.layers
        )

    def run_layers(self, x: Tensor, *, by_taps: bool = False, first: int = 0) -> Tensor:
        """Run every layer over a signal of any length (no cut): for streaming features.

        Parameters
        ----------
        x:
            Shape ``(N, 1, L)``.
        by_taps:
            Run the single-map layers with :func:`conv1d_by_taps` (faster to train; same
            numbers) instead of ``conv1d``.
        first:
            Index of the first layer to run (``x`` is then that layer's input).

        Returns
        -------
        torch.Tensor
            Shape ``(N, features, L_out)``; step ``j`` ends at input sample
            ``R − 1 + j·S`` (receptive field ``R``, total stride ``S``).
        """
        layers = list(self.layers)[first:]
        for layer, relu in zip(layers, self.relu_after[first:], strict=True):
            taps = single_map_taps(layer) if by_taps else None
            if taps is not None:
                weight, bias, stride, dilation = taps
                x = conv1d_by_taps(x, weight, bias, stride=stride, dilation=dilation)
            else:
                x = layer(x)
            if relu:
                x = functional.relu(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Features of the most recent ``T`` steps.

        Parameters
        ----------
        x:
            Shape ``(N, 1, W)`` with ``W ≥ input_samples``.

        Returns
        -------
        torch.Tensor
            Shape ``(N, features, T)``, the last step ending at the newest sample.
        """
        maps, _ = self.maps_and_band(x)
        return maps

    def maps_and_band(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """:meth:`forward`'s features and the band amplitude, the first layer run once.

        Parameters
        ----------
        x:
            Shape ``(N, 1, W)`` with ``W`` at least both crops.

        Returns
        -------
        (maps, band):
            ``maps`` of shape ``(N, features, T)`` as :meth:`forward`; ``band`` of shape
            ``(N,)``, the mean ``|y|`` of the first layer's output ``y`` over its last
            ``band_steps`` steps (``None`` without band amplitudes).
        """
        crop = max(self.input_samples, self.band_input_samples)
        first = self.layers[0](x[..., -crop:])  # the band filter: no ReLU after it
        band = None
        if self.band_steps:
            band = first[..., -self.band_steps :].abs().mean(dim=-1).reshape(-1)
        maps = self.run_layers(first[..., -self.first_steps :], first=1)
        if self.pool_steps > 1:
            maps = functional.avg_pool1d(maps, self.pool_steps, self.pool_steps)
        return maps, band


class EmgNet(nn.Module):
    """The network: shared per-channel branches, flatten, history, MLP, bounded output.

    Parameters
    ----------
    spec:
        The model spec (sizes, dilations, angle range, dropout).
    seed:
        Seed of the He initialisation (``None``: torch's global generator).

    Notes
    -----
    Inputs are ``emg`` of shape ``(B, C, W)`` (filtered, normalised, float32, ``W`` at least
    ``spec.min_window_samples``) and ``history_deg`` of shape ``(B, history·n_outputs)``: the
    previous commanded angle vectors in degrees, newest first (``A(n)`` then ``A(n−1)``),
    scaled inside to [0, 1] by ``spec.angle_range_deg``. The output is ``(B, n_outputs)``
    degrees, ``lo + (hi − lo)·sigmoid``. The flattened features are ordered channel, branch,
    feature, step (channel-major), followed by the history.
    """

    band_mean: Tensor
    band_scale: Tensor

    def __init__(self, spec: ModelSpec, seed: int | None = None) -> None:
        super().__init__()
        if spec.members != 1:
            raise ModelError(
                f"EmgNet is one network; a spec with members = {spec.members} is built by "
                "emgd.model.ensemble.build_network"
            )
        self.spec = spec
        self.branches = nn.ModuleList(
            Branch(plan, spec.common_length, spec.pool_steps(plan), spec.band_steps(plan))
            for plan in spec.plans
        )
        # Standardisation of the log band amplitudes, per channel and branch (identity until
        # set_band_standardisation; saved with the weights and exported as constants). Not
        # in the state dict of a network without band amplitudes, whose layout stays the seed's.
        banded = spec.band_amplitude_s is not None
        n_band = (spec.n_channels, len(spec.plans)) if banded else (0,)
        self.register_buffer("band_mean", torch.zeros(n_band), persistent=banded)
        self.register_buffer("band_scale", torch.ones(n_band), persistent=banded)
        head: list[nn.Module] = []
        sizes = spec.mlp_sizes
        for index, (n_in, n_out) in enumerate(pairwise(sizes)):
            if spec.dropout > 0.0:
                head.append(nn.Dropout(spec.dropout))
            head.append(nn.Linear(n_in, n_out))
            if index < len(sizes) - 2:
                head.append(nn.ReLU())
        self.head = nn.Sequential(*head)
        self.angle_lo_deg, self.angle_hi_deg = spec.angle_range_deg
        # Pose mixture: rest pose R (1, n_outputs) and offsets G_k − R (n_classes, n_outputs),
        # one row per class of the softmax (a class's pose from the spec's gestures).
        # Plain constants, not buffers: they are the project's pose table, not model weights.
        rest_deg = torch.tensor(pose_angles_deg(REST), dtype=torch.float32)
        goals_deg = torch.stack(
            [torch.tensor(pose_angles_deg(pose), dtype=torch.float32) for pose in spec.class_poses]
        )
        self.rest_deg: Tensor = rest_deg.reshape(1, -1)
        self.pose_offsets_deg: Tensor = goals_deg - rest_deg
        self.reset_parameters(seed)

    @property
    def branch_modules(self) -> tuple[Branch, ...]:
        """The branches, typed (``self.branches`` is a plain ``nn.ModuleList``)."""
        return tuple(branch for branch in self.branches if isinstance(branch, Branch))

    def reset_parameters(self, seed: int | None = None) -> None:
        """He (fan-in, ReLU gain) initialisation of every trainable weight; biases zero.

        PyTorch's default init shrinks the signal about fourfold per single-channel layer,
        so deep branches (and the silence branch entirely) would start silent.
        """
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, nn.Conv1d | nn.Linear):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_in", nonlinearity="relu", generator=generator
                )
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _check_emg(self, emg: Tensor) -> None:
        spec = self.spec
        if emg.dim() != 3 or emg.shape[1] != spec.n_channels:
            raise ModelError(
                f"emg input has shape {tuple(emg.shape)}, expected (batch, "
                f"{spec.n_channels} channels, window ≥ {spec.min_window_samples} samples)"
            )
        if emg.shape[2] < spec.min_window_samples:
            raise ModelError(
                f"emg window of {emg.shape[2]} samples is shorter than the "
                f"{spec.min_window_samples} the branches need at {spec.sample_rate_hz:g} Hz"
            )

    def features(self, emg: Tensor) -> Tensor:
        """Stage-1 and stage-2 features of every channel, same weights on each channel.

        Parameters
        ----------
        emg:
            Shape ``(B, C, W)``.

        Returns
        -------
        torch.Tensor
            Shape ``(B, C, n_branches, features, T)``.
        """
        maps = torch.stack([m for m, _ in self._branch_outputs(emg)], dim=1)
        return maps.reshape(-1, self.spec.n_channels, *maps.shape[1:])

    def _branch_outputs(self, emg: Tensor) -> list[tuple[Tensor, Tensor | None]]:
        """Every branch's ``(maps, band)`` (:meth:`Branch.maps_and_band`) on each channel."""
        self._check_emg(emg)
        per_channel = emg.reshape(-1, 1, emg.shape[-1])  # (B·C, 1, W)
        return [branch.maps_and_band(per_channel) for branch in self.branch_modules]

    def log_band_amplitudes(self, band: Tensor) -> Tensor:
        """Standardised log band amplitudes from mean ``|y|`` values.

        Parameters
        ----------
        band:
            Shape ``(..., C, n_branches)``, mean absolute first-layer outputs.

        Returns
        -------
        torch.Tensor
            Same shape: ``(log(band + floor) − mean) / scale`` per channel and branch.
        """
        return (torch.log(band + BAND_AMPLITUDE_FLOOR) - self.band_mean) / self.band_scale

    def set_band_standardisation(self, raw_log: Tensor) -> None:
        """Set the band standardisation from unstandardised log amplitudes.

        Parameters
        ----------
        raw_log:
            Shape ``(N, C, n_branches)``: ``log(band + floor)`` over training windows
            (:meth:`log_band_amplitudes` with the identity standardisation).
        """
        if raw_log.dim() != 3 or raw_log.shape[1:] != self.band_mean.shape:
            raise ModelError(
                f"band amplitudes of shape {tuple(raw_log.shape)} do not fit the "
                f"standardisation of shape {tuple(self.band_mean.shape)}"
            )
        with torch.no_grad():
            self.band_mean.copy_(raw_log.mean(dim=0))
            self.band_scale.copy_(raw_log.std(dim=0).clamp_min(BAND_SCALE_MIN))

    def flat_features(self, emg: Tensor) -> Tensor:
        """Every MLP input but the history, flattened: the maps, then the band amplitudes.

        Parameters
        ----------
        emg:
            Shape ``(B, C, W)``.

        Returns
        -------
        torch.Tensor
            Shape ``(B, spec.feature_count)``: :meth:`features` flattened (channel, branch,
            feature, step), then the standardised log band amplitudes (channel, branch).
        """
        batch, n_channels = emg.shape[0], self.spec.n_channels
        outputs = self._branch_outputs(emg)
        maps = torch.stack([m for m, _ in outputs], dim=1)
        flat = maps.reshape(batch, -1)
        bands = [b for _, b in outputs if b is not None]
        if not bands:
            return flat
        band = torch.stack(bands, dim=1).reshape(batch, n_channels, len(bands))
        return torch.cat([flat, self.log_band_amplitudes(band).reshape(batch, -1)], dim=1)

    def decode(self, features: Tensor, history_deg: Tensor) -> Tensor:
        """The MLP on flattened features plus scaled history.

        Parameters
        ----------
        features:
            Shape ``(B, spec.feature_count)`` from :meth:`flat_features`.
        history_deg:
            Shape ``(B, history·n_outputs)``, degrees, newest vector first.

        Returns
        -------
        torch.Tensor
            Shape ``(B, n_outputs)``, degrees within ``spec.angle_range_deg``.
        """
        return self.angles_from_logits(self.logits(features, history_deg))

    def logits(self, features: Tensor, history_deg: Tensor) -> Tensor:
        """The MLP's raw output (before the bounded output transform).

        Parameters
        ----------
        features:
            Shape ``(B, spec.feature_count)`` from :meth:`flat_features`.
        history_deg:
            Shape ``(B, history·n_outputs)``, degrees, newest vector first.

        Returns
        -------
        torch.Tensor
            Shape ``(B, spec.head_inputs)``.
        """
        expected = self.spec.history_inputs
        if history_deg.dim() != 2 or history_deg.shape[1] != expected:
            raise ModelError(
                f"history input has shape {tuple(history_deg.shape)}, expected (batch, {expected})"
            )
        span_deg = self.angle_hi_deg - self.angle_lo_deg
        history = (history_deg - self.angle_lo_deg) / span_deg
        flat = torch.cat([features, history.to(features.dtype)], dim=1)
        out: Tensor = self.head(flat)
        return out

    def project_features(self, flat_features: Tensor) -> Tensor:
        """The feature part of the first MLP layer, without the history: ``W_f·x + b``.

        With :meth:`logits_from_projection` this splits :meth:`logits` so that a closed-loop
        rollout computes the large feature product once per step in one batch and only the
        small history-dependent rest sequentially (dropout, if any, acts on the features here).

        Parameters
        ----------
        flat_features:
            Shape ``(N, spec.feature_count)`` from :meth:`flat_features`.

        Returns
        -------
        torch.Tensor
            Shape ``(N, width of the first MLP layer)``.
        """
        modules = list(self.head)
        first = 1 if isinstance(modules[0], nn.Dropout) else 0
        linear = modules[first]
        if not isinstance(linear, nn.Linear):
            raise ModelError("the network has no MLP layer to project the features with")
        x = modules[0](flat_features) if first else flat_features
        n_features = self.spec.feature_count
        return functional.linear(x, linear.weight[:, :n_features], linear.bias)

    def logits_from_projection(self, projection: Tensor, history_deg: Tensor) -> Tensor:
        """Finish :meth:`logits` from :meth:`project_features` and the history.

        Parameters
        ----------
        projection:
            Shape ``(B, width of the first MLP layer)``.
        history_deg:
            Shape ``(B, history·n_outputs)``, degrees, newest vector first.

        Returns
        -------
        torch.Tensor
            Shape ``(B, spec.head_inputs)``.
        """
        modules = list(self.head)
        first = 1 if isinstance(modules[0], nn.Dropout) else 0
        linear = modules[first]
        if not isinstance(linear, nn.Linear):
            raise ModelError("the network has no MLP layer to take the history")
        span_deg = self.angle_hi_deg - self.angle_lo_deg
        history = (history_deg - self.angle_lo_deg) / span_deg
        if first:
            history = modules[0](history)
        x = projection + functional.linear(history, linear.weight[:, self.spec.feature_count :])
        for module in modules[first + 1 :]:
            x = module(x)
        return x

    def angles_from_logits(self, logits: Tensor, *, sharpness: float | None = None) -> Tensor:
        """The bounded output transform of the spec's head.

        ``"direct"``: ``lo + (hi − lo)·sigmoid(z)``. ``"pose_mixture"``: the first
        ``n_classes`` logits give class weights ``p = softmax(s·z)``, the last an effort
        ``e = sigmoid`` (``e`` = 1 without ``spec.graded_effort``), and the angles are
        ``R + e·Σ_k p_k·(G_k − R)`` with ``G_k`` the pose of class ``k``
        (:attr:`ModelSpec.class_poses`).

        Parameters
        ----------
        logits:
            Shape ``(B, spec.head_inputs)``.
        sharpness:
            ``s``; default the spec's ``class_sharpness`` (training passes 1).

        Returns
        -------
        torch.Tensor
            Shape ``(B, n_outputs)``, degrees within ``spec.angle_range_deg``.
        """
        if self.spec.head == HEAD_POSE_MIXTURE:
            n_classes = len(self.spec.class_poses)
            s = self.spec.class_sharpness if sharpness is None else sharpness
            class_logits = logits[:, :n_classes]
            weights = torch.softmax(class_logits * s if s != 1.0 else class_logits, dim=1)
            offsets_deg = weights @ self.pose_offsets_deg
            if not self.spec.graded_effort:
                return self.rest_deg + offsets_deg
            effort = torch.sigmoid(logits[:, n_classes : n_classes + 1])
            return self.rest_deg + effort * offsets_deg
        span_deg = self.angle_hi_deg - self.angle_lo_deg
        return self.angle_lo_deg + span_deg * torch.sigmoid(logits)

    def forward(self, emg: Tensor, history_deg: Tensor) -> Tensor:
        """Angles for one batch of windows.

        Parameters
        ----------
        emg:
            Shape ``(B, C, W)``, filtered and normalised EMG.
        history_deg:
            Shape ``(B, history·n_outputs)``, previous commanded angles in degrees.

        Returns
        -------
        torch.Tensor
            Shape ``(B, n_outputs)``, degrees.
        """
        return self.decode(self.flat_features(emg), history_deg)
