"""The quick path of ``emgd train --quick``: one network warm-started from an exported model.

This module owns what "quick" means: the network weights read back out of an emgd ONNX
export (every parameter and buffer of the torch network is an initializer of the graph,
under its state-dict name, so the weights come back exactly), the check that the model
suits the recordings (rate, channels, classes), and the recipe changes that make a usable
model in about two minutes of training on one core: one member (the base model's first),
a :data:`QUICK_MINUTES` budget and at most :data:`QUICK_MAX_EPOCHS` epochs with
:data:`QUICK_PATIENCE_EPOCHS` patience. The band-amplitude standardisation is set again
from the wearer's data by :func:`~emgd.training.train.train_model`, as for any member. It
must not train, export or score (the recipe and :mod:`~emgd.training.publish` do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from emgd.data.recording import Recording
from emgd.errors import ModelError
from emgd.model.ensemble import MedianEnsemble, build_network
from emgd.model.network import EmgNet
from emgd.model.spec import ModelSpec
from emgd.training.settings import TrainConfig, recipe_gestures

# models/default.onnx, from daemon/emgd/training/quick.py.
SHIPPED_MODEL = Path(__file__).resolve().parents[3] / "models" / "default.onnx"
QUICK_MINUTES = 2.0
QUICK_MAX_EPOCHS = 20
QUICK_PATIENCE_EPOCHS = 6


def quick_config(base: TrainConfig) -> TrainConfig:
    """``base`` with the quick path's epoch bounds."""
    return replace(
        base,
        max_epochs=min(base.max_epochs, QUICK_MAX_EPOCHS),
        patience_epochs=min(base.patience_epochs, QUICK_PATIENCE_EPOCHS),
    )


def load_torch_network(path: Path) -> tuple[EmgNet | MedianEnsemble, ModelSpec]:
    """The torch network an emgd ONNX file was exported from, with its weights (eval mode).

    Raises
    ------
    ModelError
        If the file is not an emgd model, or its graph lacks or misshapes a weight.
    """
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    from emgd.model.runtime import OnnxModel

    spec = OnnxModel(path).spec
    try:
        graph = onnx.load(str(path)).graph
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the ONNX graph: {exc}") from None
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    net = build_network(spec)
    state = net.state_dict()
    for name, tensor in state.items():
        if name not in weights or tuple(weights[name].shape) != tuple(tensor.shape):
            raise ModelError(
                f"{path}: the graph has no weight {name!r} of shape {tuple(tensor.shape)} "
                "(not exported by this emgd version, or optimised)"
            )
        state[name] = torch.from_numpy(np.array(weights[name])).to(tensor.dtype)
    net.load_state_dict(state)
    net.eval()
    return net, spec


def warm_start(path: Path, recordings: Sequence[Recording]) -> tuple[EmgNet, ModelSpec]:
    """The first member of the model at ``path`` and its spec, checked against the data.

    Raises
    ------
    ModelError
        One line naming the model and both values if its rate, channel count or classes
        are not those of ``recordings``.
    """
    net, spec = load_torch_network(path)
    first = recordings[0]
    if spec.sample_rate_hz != first.sample_rate_hz or spec.n_channels != first.n_channels:
        raise ModelError(
            f"--from {path}: the model is for {spec.n_channels} channels at "
            f"{spec.sample_rate_hz:g} Hz, the recordings have {first.n_channels} at "
            f"{first.sample_rate_hz:g} Hz"
        )
    gestures = recipe_gestures(recordings)
    if tuple(spec.gestures) != gestures:
        raise ModelError(
            f"--from {path}: the model's classes {spec.gestures or 'the poses'} are not the "
            f"recordings' {gestures or 'the poses'}"
        )
    member = net.nets[0] if isinstance(net, MedianEnsemble) else net
    return member, spec.member
