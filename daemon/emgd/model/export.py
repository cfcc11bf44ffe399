"""Exporting a trained network to one ONNX file with its metadata, checked against PyTorch.

This module owns :func:`export_onnx`: trace an :class:`~emgd.model.network.EmgNet` with the
TorchScript exporter (``dynamo=False``, opset ≥ 17, batch 1, inputs ``emg`` ``(1, C, W)`` and
``history_deg`` ``(1, 10)``, output ``angles_deg`` ``(1, 5)``), attach the emgd metadata
(spec, preprocessing contract, model card, emgd version; JSON strings), run the result with
onnxruntime through :class:`~emgd.model.runtime.OnnxModel` on random and EMG-like inputs,
compare with PyTorch, and only then move the file into place atomically (temporary file in
the same folder, fsync, rename, fsync of the folder), so a reader never sees half a model.
It imports torch and onnx (the ``train`` extra) and is itself imported only by training and
export code, never by the daemon. It must not train, filter or choose hyper-parameters.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from emgd import __version__
from emgd.atomic_file import fsync_dir
from emgd.errors import ModelError
from emgd.model.contract import PreprocessContract
from emgd.model.runtime import (
    EMG_INPUT,
    HISTORY_INPUT,
    META_CARD,
    META_CONTRACT,
    META_SPEC,
    META_VERSION,
    OUTPUT,
    OnnxModel,
)
from emgd.model.spec import ModelSpec

FloatArray = npt.NDArray[np.float64]

OPSET_VERSION = 17
MIN_OPSET_VERSION = 17
# Largest tolerated |onnxruntime − PyTorch| in degrees; the export is refused above it.
MAX_DIFF_DEG = 1e-2
# Inputs of the equivalence check.
N_RANDOM_CHECKS = 4
N_EMG_LIKE_CHECKS = 4
CHECK_SEED = 20_240_517
EMG_LIKE_BURST_GAIN = 3.0  # peak envelope of a simulated contraction, in calibration units
EMG_LIKE_REST_LEVEL = 0.05  # rest noise, in calibration units


def json_ready(value: Any) -> Any:
    """A copy of ``value`` with tuples as lists, NumPy scalars as Python numbers and
    non-finite floats as ``None`` (strict JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metadata_for(
    spec: ModelSpec, contract: PreprocessContract, card: Mapping[str, Any]
) -> dict[str, str]:
    """The ONNX metadata of a model: key → JSON string.

    ``emgd.spec`` is ``spec.to_dict()`` plus the resolved ``window_samples`` and
    ``hop_samples``; ``emgd.contract`` is ``contract.to_dict()``; ``emgd.card`` the card;
    ``emgd.version`` the emgd version (a JSON string).
    """
    spec_dict = spec.to_dict() | {
        "window_samples": spec.window_samples,
        "hop_samples": spec.hop_samples,
    }
    return {
        META_SPEC: json.dumps(json_ready(spec_dict), allow_nan=False),
        META_CONTRACT: json.dumps(json_ready(contract.to_dict()), allow_nan=False),
        META_CARD: json.dumps(json_ready(dict(card)), allow_nan=False),
        META_VERSION: json.dumps(__version__),
    }


def check_inputs(
    spec: ModelSpec, seed: int = CHECK_SEED
) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
    """Inputs of the ONNX-versus-PyTorch check: random and EMG-like windows with histories.

    Random: unit Gaussian samples, histories uniform over the angle range. EMG-like: rest
    noise with a contraction burst (a smooth envelope up to ``EMG_LIKE_BURST_GAIN``
    calibration units on a random subset of channels) ending near the newest sample, and a
    history near the rest pose.

    Returns
    -------
    list of (window, history):
        ``window`` shape ``(W, C)``, ``history`` shape ``(history·5,)``, float32.
    """
    rng = np.random.default_rng(seed)
    n_window, n_ch = spec.window_samples, spec.n_channels
    lo_deg, hi_deg = spec.angle_range_deg
    out: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = []
    for _ in range(N_RANDOM_CHECKS):
        window = rng.standard_normal((n_window, n_ch))
        history = rng.uniform(lo_deg, hi_deg, spec.history_inputs)
        out.append((window.astype(np.float32), history.astype(np.float32)))
    t = np.arange(n_window) / n_window
    for _ in range(N_EMG_LIKE_CHECKS):
        onset = rng.uniform(0.3, 0.9)
        envelope = EMG_LIKE_BURST_GAIN / (1.0 + np.exp(-(t - onset) * 40.0))
        active = rng.random(n_ch) < 0.6
        gain = EMG_LIKE_REST_LEVEL + envelope[:, None] * active[None, :]
        window = gain * rng.standard_normal((n_window, n_ch))
        rest = np.full(spec.history_inputs, lo_deg + (hi_deg - lo_deg) / 6.0)
        history = np.clip(rest + rng.normal(0.0, 5.0, spec.history_inputs), lo_deg, hi_deg)
        out.append((window.astype(np.float32), history.astype(np.float32)))
    return out


def _torch_outputs(
    net: Any, inputs: Sequence[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]
) -> list[FloatArray]:
    import torch

    results: list[FloatArray] = []
    with torch.no_grad():
        for window, history in inputs:
            emg = torch.from_numpy(np.ascontiguousarray(window.T))[None]
            hist = torch.from_numpy(history)[None]
            results.append(net(emg, hist)[0].double().numpy())
    return results


def _onnx_bytes(net: Any, spec: ModelSpec, opset: int) -> bytes:
    """Trace ``net`` (eval mode) to ONNX bytes with the fixed input and output names."""
    import torch

    emg = torch.zeros(1, spec.n_channels, spec.window_samples)
    history = torch.zeros(1, spec.history_inputs)
    with tempfile.TemporaryDirectory(prefix="emgd-export-") as folder:
        traced = Path(folder) / "model.onnx"
        with warnings.catch_warnings():
            # The TorchScript exporter announces its deprecation, and the tracer warns about
            # EmgNet's shape checks (constant for the fixed input shape): neither concerns
            # the file, which is checked against PyTorch afterwards.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (emg, history),
                str(traced),
                input_names=[EMG_INPUT, HISTORY_INPUT],
                output_names=[OUTPUT],
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        return traced.read_bytes()


def _with_metadata(model_bytes: bytes, metadata: Mapping[str, str]) -> bytes:
    import onnx

    model = onnx.load_from_string(model_bytes)
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value
    model.producer_name = "emgd"
    model.producer_version = __version__
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def export_onnx(
    net: Any,
    spec: ModelSpec,
    contract: PreprocessContract,
    card: Mapping[str, Any],
    path: str | Path,
    *,
    opset: int = OPSET_VERSION,
    max_diff_deg: float = MAX_DIFF_DEG,
    extra_checks: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]] = (),
) -> float:
    """Write ``net`` to ``path`` as one ONNX file with metadata, after checking it.

    Parameters
    ----------
    net:
        The network of ``spec`` (:func:`~emgd.model.ensemble.build_network`; put in eval
        mode here).
    spec:
        Its spec (stored under ``emgd.spec``).
    contract:
        The preprocessing it was trained behind (stored under ``emgd.contract``); must
        agree with ``spec``.
    card:
        The model card: training data, split, seed, metrics, training time… (JSON-able;
        non-finite numbers are stored as ``null``).
    path:
        Destination; its folder must exist. An existing file is replaced atomically.
    opset:
        ONNX opset, at least 17.
    max_diff_deg:
        Refuse the export (nothing is written) when onnxruntime and PyTorch differ by more.
    extra_checks:
        More ``(window (W, C), history (10,))`` pairs to compare on, e.g. real windows.

    Returns
    -------
    float
        The largest ``|onnxruntime − PyTorch|`` over every check input, degrees.

    Raises
    ------
    ModelError
        When spec and contract disagree, the opset is too old, the destination folder is
        missing, or the outputs differ by more than ``max_diff_deg``.
    """
    destination = Path(path)
    if opset < MIN_OPSET_VERSION:
        raise ModelError(f"ONNX opset {opset} is too old: need at least {MIN_OPSET_VERSION}")
    if not destination.parent.is_dir():
        raise ModelError(f"{destination}: folder {destination.parent} does not exist")
    contract.check_spec(spec)
    net_spec = getattr(net, "spec", spec)
    if net_spec != spec:
        raise ModelError("export_onnx: the network was built from another spec than the one given")
    net.eval()
    data = _with_metadata(_onnx_bytes(net, spec, opset), metadata_for(spec, contract, card))
    inputs = check_inputs(spec)
    inputs += [
        (np.asarray(w, dtype=np.float32), np.asarray(h, dtype=np.float32)) for w, h in extra_checks
    ]
    expected = _torch_outputs(net, inputs)

    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent
    )
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        runtime = OnnxModel(tmp)
        max_diff = 0.0
        for (window, history), want in zip(inputs, expected, strict=True):
            got = runtime.infer(window, history)
            max_diff = max(max_diff, float(np.max(np.abs(got - want))))
        if not max_diff <= max_diff_deg:
            raise ModelError(
                f"{destination}: onnxruntime and PyTorch differ by {max_diff:.3g} deg "
                f"(limit {max_diff_deg:g}): export refused"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shipped model is world-readable
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(destination.parent)
    return max_diff
