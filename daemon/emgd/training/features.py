"""The network's per-hop features computed once per sequence: convolutions run over a segment.

Owns gathering every hop's feature vector from one pass of the convolutions over a sequence's EMG
(identical to running each window, far cheaper) and the standardisation of the log band
amplitudes from the training stream. It must not train, roll out or score.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional

from emgd.errors import DatasetError, ModelError
from emgd.model.network import Branch, EmgNet, conv1d_by_taps, single_map_taps
from emgd.model.spec import BAND_AMPLITUDE_FLOOR

log = logging.getLogger(__name__)

# Windows drawn from the training stream to standardise the log band amplitudes.
BAND_STANDARDISE_WINDOWS = 4000


# ----------------------------------------------------------------------------- features


def _branch_steps_at(
    branch: Branch,
    x: Tensor,
    ends: Sequence[int],
    *,
    plan_r: int,
    plan_s: int,
    common_length: int,
    pool_steps: int = 1,
) -> Tensor:
    """Features of one branch for windows ending at each of ``ends`` (local sample indices).

    Parameters
    ----------
    x:
        Shape ``(N, 1, L)``, single-channel signals.
    ends:
        Newest-sample index of each window within ``x`` (each ≥ ``R − 1 + (T − 1)·S``).

    Returns
    -------
    torch.Tensor
        Shape ``(N, features, len(ends), T)``.
    """
    ends_arr = np.asarray(ends, dtype=np.int64)
    residues = (ends_arr - (plan_r - 1)) % plan_s
    out: Tensor | None = None
    # Bin k (0 = oldest) of a window ends pool·(T − 1 − k) steps before its last step.
    bin_offsets = pool_steps * np.arange(common_length - 1, -1, -1, dtype=np.int64)
    for residue in np.unique(residues):
        chosen = np.flatnonzero(residues == residue)
        # Step j ends at r + R − 1 + j·S.
        maps = branch.run_layers(x[..., int(residue) :], by_taps=True)
        if pool_steps > 1:
            # Mean of steps j − pool + 1 … j at every j, by a running sum (no window copies).
            running = functional.pad(maps, (1, 0)).cumsum(dim=-1)
            maps = (running[..., pool_steps:] - running[..., :-pool_steps]) / pool_steps
            shift = pool_steps - 1  # maps[..., i] now ends at step i + pool − 1
        else:
            shift = 0
        last = (ends_arr[chosen] - int(residue) - (plan_r - 1)) // plan_s - shift
        index = torch.from_numpy(last[:, None] - bin_offsets[None, :])  # (n, T)
        gathered = maps[:, :, index]  # (N, F, n, T)
        if out is None:
            out = maps.new_zeros(maps.shape[0], maps.shape[1], len(ends_arr), common_length)
        out = out.index_copy(2, torch.from_numpy(chosen), gathered)
    if out is None:
        raise ModelError("no window ends to compute features for")
    return out


def _band_at(branch: Branch, x: Tensor, ends: Sequence[int]) -> Tensor:
    """Mean ``|y|`` of a branch's first layer over its band window ending at each end.

    Parameters
    ----------
    x:
        Shape ``(N, 1, L)``, single-channel signals.
    ends:
        Newest-sample index of each window within ``x``.

    Returns
    -------
    torch.Tensor
        Shape ``(N, len(ends))``.
    """
    first = branch.layers[0]
    taps = single_map_taps(first)
    if taps is None:
        raise ModelError(f"branch {branch.name!r}: the first layer is not single-map")
    weight, bias, stride, dilation = taps
    span = (weight.shape[-1] - 1) * dilation
    steps = branch.band_steps
    ends_arr = np.asarray(ends, dtype=np.int64)
    residues = (ends_arr - span) % stride
    out = x.new_zeros(x.shape[0], ends_arr.size)
    for residue in np.unique(residues):
        chosen = np.flatnonzero(residues == residue)
        # Step j of the first layer ends at residue + span + j·stride.
        y = conv1d_by_taps(x[..., int(residue) :], weight, bias, stride=stride, dilation=dilation)
        # Running sums in float64: long streams would lose the window sums' last digits.
        running = functional.pad(y.abs().double(), (1, 0)).cumsum(dim=-1)[:, 0]
        last = (ends_arr[chosen] - int(residue) - span) // stride
        index = torch.from_numpy(last + 1)
        mean = (running[:, index] - running[:, index - steps]) / steps
        out = out.index_copy(1, torch.from_numpy(chosen), mean.to(x.dtype))
    return out


def band_amplitudes_at(net: EmgNet, emg: Tensor, ends: Sequence[int]) -> Tensor:
    """Band amplitudes (mean ``|y|``, before the log) of the windows ending at ``ends``.

    Parameters
    ----------
    emg:
        Shape ``(B, C, L)``, filtered and normalised.

    Returns
    -------
    torch.Tensor
        Shape ``(B, len(ends), C, n_branches)``.
    """
    batch, n_channels, length = emg.shape
    per_channel = emg.reshape(batch * n_channels, 1, length)
    bands = torch.stack([_band_at(b, per_channel, ends) for b in net.branch_modules], dim=-1)
    return bands.reshape(batch, n_channels, len(ends), -1).permute(0, 2, 1, 3)


def standardise_bands(net: EmgNet, emg: Tensor) -> None:
    """Set the band standardisation from a training stream (no-op without band amplitudes).

    The mean and standard deviation of each channel's and branch's ``log(band + floor)``
    over up to :data:`BAND_STANDARDISE_WINDOWS` windows spread over the stream, with the
    network's initial first layers (training then moves them; the MLP absorbs the drift).

    Parameters
    ----------
    emg:
        Shape ``(C, L)``, the filtered, normalised training stream.
    """
    spec = net.spec
    if spec.band_amplitude_s is None:
        return
    first, last = spec.min_window_samples - 1, emg.shape[-1] - 1
    if last < first:
        raise DatasetError(
            f"training stream of {emg.shape[-1]} samples is shorter than one window "
            f"({spec.min_window_samples})"
        )
    step = max(spec.hop_samples, (last - first) // BAND_STANDARDISE_WINDOWS + 1)
    ends = list(range(first, last + 1, step))
    with torch.no_grad():
        bands = band_amplitudes_at(net, emg.unsqueeze(0), ends)[0]
    net.set_band_standardisation(torch.log(bands + BAND_AMPLITUDE_FLOOR))


def features_at(net: EmgNet, emg: Tensor, ends: Sequence[int]) -> Tensor:
    """Flattened features of the windows ending at ``ends``, from one pass over ``emg``.

    Equal to ``net.flat_features(emg[..., e − W + 1 : e + 1])`` for each end ``e``, in
    :class:`EmgNet`'s order (channel, branch, feature, step; then the band amplitudes).

    Parameters
    ----------
    emg:
        Shape ``(B, C, L)``, filtered and normalised.
    ends:
        Local newest-sample indices, each at least ``spec.min_window_samples − 1``.

    Returns
    -------
    torch.Tensor
        Shape ``(B, len(ends), spec.feature_count)``.
    """
    spec = net.spec
    batch, n_channels, length = emg.shape
    if n_channels != spec.n_channels:
        raise ModelError(f"emg has {n_channels} channels, the spec {spec.n_channels}")
    if min(ends) < spec.min_window_samples - 1 or max(ends) >= length:
        raise ModelError(
            f"window ends {min(ends)}..{max(ends)} do not fit in {length} samples with "
            f"windows of {spec.min_window_samples}"
        )
    per_channel = emg.reshape(batch * n_channels, 1, length)
    maps = [
        _branch_steps_at(
            branch,
            per_channel,
            ends,
            plan_r=plan.receptive_field_samples,
            plan_s=plan.total_stride,
            common_length=spec.common_length,
            pool_steps=spec.pool_steps(plan),
        )
        for branch, plan in zip(net.branch_modules, spec.plans, strict=True)
    ]
    stacked = torch.stack(maps, dim=1)  # (B·C, nb, F, n, T)
    stacked = stacked.reshape(batch, n_channels, *stacked.shape[1:])
    flat = stacked.permute(0, 4, 1, 2, 3, 5).reshape(batch, len(ends), -1)
    if spec.band_amplitude_s is None:
        return flat
    bands = net.log_band_amplitudes(band_amplitudes_at(net, emg, ends))
    return torch.cat([flat, bands.reshape(batch, len(ends), -1)], dim=-1)
