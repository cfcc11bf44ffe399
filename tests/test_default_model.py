"""The shipped default model loads on the daemon path and fits the default config."""

from __future__ import annotations

import numpy as np

from emgd.config import load_config
from emgd.model.runtime import OnnxModel
from emgd.service.runner import SOURCE_MODEL_DIR, resolve_model_path


def test_default_model_is_found_loads_and_fits_the_default_config() -> None:
    config = load_config(env={})
    path = resolve_model_path(config)
    assert path == SOURCE_MODEL_DIR / "default.onnx" or path.name == "default.onnx"
    model = OnnxModel(path)
    model.contract.check_against(config)
    assert model.card["data"]["dataset"] == "synthetic"
    assert len(model.card["calibration"]["scale"]) == config.adc.channels
    # It beat the ridge baseline on held-out synthetic data when it was made.
    scores = model.card["test_closed_loop"]
    assert scores["network"]["mae_mean_deg"] < scores["ridge"]["mae_mean_deg"]
    window = np.zeros((model.spec.window_samples, config.adc.channels), dtype=np.float32)
    angles = model.infer(window, np.full(10, 30.0))
    assert angles.shape == (5,) and np.all((angles >= 0) & (angles <= 180))
