"""Tests of emgd.training.quick: the weights come back out of an ONNX export exactly, and a
model that does not suit the recordings is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emgd.errors import ModelError

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from emgd.data.recording import Recording  # noqa: E402
from emgd.model.ensemble import MedianEnsemble  # noqa: E402
from emgd.training.quick import (  # noqa: E402
    SHIPPED_MODEL,
    load_torch_network,
    quick_config,
    warm_start,
)
from emgd.training.settings import TrainConfig  # noqa: E402


def test_the_torch_network_read_from_onnx_gives_the_onnx_outputs() -> None:
    from emgd.model.runtime import OnnxModel

    net, spec = load_torch_network(SHIPPED_MODEL)
    onnx_model = OnnxModel(SHIPPED_MODEL)
    rng = np.random.default_rng(0)
    for _ in range(3):
        window = rng.normal(0.0, 1.0, (spec.window_samples, spec.n_channels))
        history = rng.uniform(0.0, 180.0, spec.history * 5)
        want = onnx_model.infer(window, history)
        with torch.no_grad():
            got = net(
                torch.tensor(window.T[None], dtype=torch.float32),
                torch.tensor(history[None], dtype=torch.float32),
            )[0].numpy()
        assert np.abs(got - want).max() < 1e-3


def _recording(rate_hz: float, n_channels: int) -> Recording:
    n = int(rate_hz)
    return Recording.single_gesture(
        np.zeros((n, n_channels)),
        rate_hz,
        label="power",
        pose="power",
        effort=0.5,
        dataset="wearer",
        participant="w",
    )


def test_warm_start_takes_the_first_member_and_checks_the_layout() -> None:
    member, spec = warm_start(SHIPPED_MODEL, [_recording(1000.0, 8)])
    assert spec.members == 1 and member.spec == spec
    full, _ = load_torch_network(SHIPPED_MODEL)
    assert isinstance(full, MedianEnsemble)
    first = full.nets[0]
    for name, value in member.state_dict().items():
        assert torch.equal(value, first.state_dict()[name])
    with pytest.raises(ModelError) as error:
        warm_start(SHIPPED_MODEL, [_recording(500.0, 4)])
    message = str(error.value)
    assert "\n" not in message and str(SHIPPED_MODEL) in message
    assert "8 channels at 1000 Hz, the recordings have 4 at 500 Hz" in message


def test_a_file_that_is_not_a_model_is_one_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match=r"bad\.onnx"):
        load_torch_network(bad)


def test_quick_config_bounds_the_epochs_and_keeps_the_rest() -> None:
    config = quick_config(TrainConfig())
    assert config.max_epochs == 20 and config.patience_epochs == 6
    assert config.learning_rate == TrainConfig().learning_rate


def test_train_model_refuses_a_start_that_is_not_the_member_to_train() -> None:
    from dataclasses import replace

    from emgd.errors import ConfigError
    from emgd.training.train import train_model

    member, spec = warm_start(SHIPPED_MODEL, [_recording(1000.0, 8)])
    other = replace(spec, dropout=0.3)
    with pytest.raises(ConfigError, match="starting network's spec differs"):
        train_model([_recording(1000.0, 8)], spec=other, init=member, max_minutes=0.01)
