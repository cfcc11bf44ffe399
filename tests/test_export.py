"""Tests of the ONNX export: one file, opset, metadata, atomic write, agreement with PyTorch."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from emgd.dsp.filters import FilterSpec
from emgd.errors import ModelError
from emgd.model.contract import PreprocessContract
from emgd.model.export import check_inputs, export_onnx, json_ready
from emgd.model.runtime import OnnxModel
from emgd.model.spec import ModelSpec

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from emgd.model.network import EmgNet  # noqa: E402  (needs torch)

SPEC = ModelSpec(sample_rate_hz=500.0, n_channels=4, common_length=4, mlp=(16,))
CONTRACT = PreprocessContract.for_spec(SPEC, FilterSpec(mains_hz=60.0))
CARD = {"data": "tests", "mae": float("nan"), "shape": (1, 2)}
EXTRA_RNG = np.random.default_rng(2)
EXTRA: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = [
    (EXTRA_RNG.standard_normal((SPEC.window_samples, 4)) * 4.0, np.full(10, 150.0))
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, float]:
    """One export over an existing file (it must be replaced), with an extra check input."""
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    path.write_bytes(b"previous model")
    net = EmgNet(SPEC, seed=6)
    diff_deg = export_onnx(net, SPEC, CONTRACT, CARD, path, extra_checks=EXTRA)
    return path, net, diff_deg


def test_export_writes_one_checked_file_with_metadata(exported: tuple[Path, Any, float]) -> None:
    path, _, diff_deg = exported
    assert 0.0 <= diff_deg < 1e-3
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]  # no temp file left

    model = onnx.load(str(path))
    assert len(model.graph.initializer) > 0  # weights inside: one self-contained file
    assert all(
        not t.HasField("data_location") or t.data_location == 0 for t in model.graph.initializer
    )
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets[""] >= 17
    meta = {p.key: p.value for p in model.metadata_props}
    assert sorted(meta) == ["emgd.card", "emgd.contract", "emgd.spec", "emgd.version"]
    spec_meta = json.loads(meta["emgd.spec"])
    # the resolved lengths at 500 Hz, 20 ms hop: 10 samples
    assert spec_meta["hop_samples"] == 10
    assert spec_meta["window_samples"] == SPEC.window_samples
    assert (
        ModelSpec.from_dict(
            {k: v for k, v in spec_meta.items() if k not in ("window_samples", "hop_samples")}
        )
        == SPEC
    )
    assert PreprocessContract.from_dict(json.loads(meta["emgd.contract"])) == CONTRACT
    assert json.loads(meta["emgd.card"]) == {"data": "tests", "mae": None, "shape": [1, 2]}
    assert json.loads(meta["emgd.version"]) == "0.1.0"

    inputs = {
        i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input
    }
    outputs = {
        o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output
    }
    assert inputs == {"emg": [1, 4, SPEC.window_samples], "history_deg": [1, 10]}
    assert outputs == {"angles_deg": [1, 5]}


def test_onnx_agrees_with_pytorch_on_emg_like_and_given_inputs(
    exported: tuple[Path, Any, float],
) -> None:
    path, net, _ = exported
    runtime = OnnxModel(path)
    assert runtime.spec == SPEC  # the previous file was replaced
    net.eval()
    pairs: list[tuple[npt.NDArray[Any], npt.NDArray[Any]]] = [*check_inputs(SPEC), *EXTRA]
    for window, history in pairs:
        with torch.no_grad():
            want = net(
                torch.tensor(np.asarray(window).T[None], dtype=torch.float32),
                torch.tensor(np.asarray(history)[None], dtype=torch.float32),
            )[0].numpy()
        assert np.max(np.abs(runtime.infer(window, history) - want)) < 1e-3


def test_check_inputs_cover_random_and_burst_windows() -> None:
    inputs = check_inputs(SPEC)
    assert len(inputs) == 8
    for window, history in inputs:
        assert window.shape == (SPEC.window_samples, 4) and window.dtype == np.float32
        assert history.shape == (10,)
        assert np.all((history >= 0.0) & (history <= 180.0))
    # a burst window is louder near its newest sample than at its start
    burst = inputs[-1][0]
    assert np.std(burst[-50:]) > 5 * np.std(burst[:50])


def test_a_failed_check_writes_nothing_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous model")
    with pytest.raises(ModelError, match=r"onnxruntime and PyTorch differ by .* export refused"):
        export_onnx(EmgNet(SPEC, seed=1), SPEC, CONTRACT, {}, path, max_diff_deg=-1.0)
    assert path.read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    net = EmgNet(SPEC, seed=1)
    with pytest.raises(ModelError, match="opset 16 is too old"):
        export_onnx(net, SPEC, CONTRACT, {}, tmp_path / "a.onnx", opset=16)
    with pytest.raises(ModelError, match="does not exist"):
        export_onnx(net, SPEC, CONTRACT, {}, tmp_path / "missing" / "a.onnx")
    drifted = dataclasses.replace(CONTRACT, window_samples=SPEC.window_samples + 3)
    with pytest.raises(ModelError, match="window_samples"):
        export_onnx(net, SPEC, drifted, {}, tmp_path / "a.onnx")
    other = ModelSpec(sample_rate_hz=500.0, n_channels=4, common_length=5, mlp=(16,))
    with pytest.raises(ModelError, match="another spec"):
        export_onnx(EmgNet(other), SPEC, CONTRACT, {}, tmp_path / "a.onnx")
    assert list(tmp_path.iterdir()) == []


def test_json_ready_makes_strict_json() -> None:
    value = {"a": (1, np.float32(2.5)), "b": np.array([1.0, np.inf]), 3: math.nan}
    assert json_ready(value) == {"a": [1, 2.5], "b": [1.0, None], "3": None}
    json.dumps(json_ready(value), allow_nan=False)
