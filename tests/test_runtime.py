"""Tests of the onnxruntime model: metadata checks naming the file, inference, no torch."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emgd.dsp.filters import FilterSpec
from emgd.errors import ModelError
from emgd.model.contract import PreprocessContract
from emgd.model.runtime import OnnxModel
from emgd.model.spec import ModelSpec

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

SPEC = ModelSpec(sample_rate_hz=500.0, n_channels=4, common_length=4, mlp=(16,))
CONTRACT = PreprocessContract.for_spec(SPEC, FilterSpec(mains_hz=50.0))
CARD = {"data": "none (untrained)", "seed": 3, "metrics": {"mae_mean_deg": None}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    from emgd.model.export import export_onnx
    from emgd.model.network import EmgNet

    net = EmgNet(SPEC, seed=3)
    path = tmp_path_factory.mktemp("runtime") / "tiny.onnx"
    export_onnx(net, SPEC, CONTRACT, CARD, path)
    return path, net


def with_metadata(src: Path, dst: Path, **changes: str | None) -> Path:
    """Copy a model file with some metadata values replaced (None removes the key)."""
    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        name = key.replace("_", ".")
        if value is None:
            props.pop(name, None)
        else:
            props[name] = value
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(dst))
    return dst


def test_metadata_is_read_back(exported: tuple[Path, Any]) -> None:
    path, _ = exported
    model = OnnxModel(path)
    assert model.spec == SPEC
    assert model.contract == CONTRACT
    assert model.card == CARD
    assert model.version == "0.1.0"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.identity == f"tiny.onnx@{digest[:12]}"
    assert model.size_bytes == path.stat().st_size


def test_infer_matches_pytorch(exported: tuple[Path, Any]) -> None:
    path, net = exported
    model = OnnxModel(path)
    rng = np.random.default_rng(11)
    outputs = []
    for _ in range(3):
        window = rng.standard_normal((SPEC.window_samples, SPEC.n_channels)).astype(np.float32)
        history = rng.uniform(0.0, 180.0, 10)
        got = model.infer(window, history)
        with torch.no_grad():
            want = net(
                torch.from_numpy(window.T.copy())[None],
                torch.tensor(history[None], dtype=torch.float32),
            )[0].numpy()
        assert got.shape == (5,) and got.dtype == np.float64
        assert np.max(np.abs(got - want)) < 1e-3
        outputs.append(got)
    # the preallocated buffers are refilled each time: different inputs, different outputs
    assert not np.allclose(outputs[0], outputs[1])


def test_infer_refuses_wrong_shapes(exported: tuple[Path, Any]) -> None:
    model = OnnxModel(exported[0])
    with pytest.raises(
        ModelError,
        match=rf"window shape \(100, 4\), the model expects \({SPEC.window_samples}, 4\)",
    ):
        model.infer(np.zeros((100, 4), np.float32), np.zeros(10))
    with pytest.raises(ModelError, match=r"history shape \(5,\)"):
        model.infer(np.zeros((SPEC.window_samples, 4), np.float32), np.zeros(5))


def test_missing_and_corrupt_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match=f"{missing}: model file not found"):
        OnnxModel(missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07not a protobuf at all" * 10)
    with pytest.raises(ModelError) as info:
        OnnxModel(corrupt)
    assert str(corrupt) in str(info.value)
    assert "not a loadable ONNX model" in str(info.value)
    with pytest.raises(ModelError, match="is a directory"):
        OnnxModel(tmp_path)


def test_an_onnx_file_without_emgd_metadata_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
    )
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModelError) as info:
        OnnxModel(path)
    assert str(info.value) == (
        f"{path}: not an emgd model: ONNX metadata lacks emgd.spec, emgd.contract, emgd.version"
    )


def test_bad_metadata_is_refused_naming_file_and_key(
    exported: tuple[Path, Any], tmp_path: Path
) -> None:
    src = exported[0]
    spec_dict = SPEC.to_dict() | {"window_samples": SPEC.window_samples, "hop_samples": 10}
    cases: list[tuple[dict[str, str | None], str]] = [
        ({"emgd_spec": "{not json"}, "metadata emgd.spec is not valid JSON"),
        (
            {"emgd_spec": json.dumps(SPEC.to_dict() | {"n_channels": 0})},
            "metadata emgd.spec does not parse",
        ),
        (
            {"emgd_spec": json.dumps(spec_dict | {"window_samples": 5})},
            f"emgd.spec window_samples = 5 but the spec gives {SPEC.window_samples}",
        ),
        (
            {"emgd_contract": json.dumps(CONTRACT.to_dict() | {"hop_samples": 11})},
            "model spec hop_samples = 10 but emgd.contract says 11",
        ),
        ({"emgd_contract": None}, "ONNX metadata lacks emgd.contract"),
        ({"emgd_card": "[1, 2]"}, "metadata emgd.card is not an object"),
        ({"emgd_version": "1.0"}, "metadata emgd.version is not a string"),
    ]
    for i, (changes, words) in enumerate(cases):
        path = with_metadata(src, tmp_path / f"bad{i}.onnx", **changes)
        with pytest.raises(ModelError) as info:
            OnnxModel(path)
        assert str(path) in str(info.value), changes
        assert words in str(info.value), (changes, str(info.value))


def test_metadata_that_contradicts_the_graph_is_refused(
    exported: tuple[Path, Any], tmp_path: Path
) -> None:
    # Metadata claiming 5 channels on a graph built for 4: the input shapes disagree.
    spec5 = ModelSpec(sample_rate_hz=500.0, n_channels=5, common_length=4, mlp=(16,))
    contract5 = PreprocessContract.for_spec(spec5, FilterSpec(mains_hz=50.0))
    spec_json = json.dumps(
        spec5.to_dict() | {"window_samples": spec5.window_samples, "hop_samples": 10}
    )
    path = with_metadata(
        exported[0],
        tmp_path / "liar.onnx",
        emgd_spec=spec_json,
        emgd_contract=json.dumps(contract5.to_dict()),
    )
    with pytest.raises(
        ModelError, match=r"input emg has shape \[1, 4, \d+\], the metadata implies \[1, 5, \d+\]"
    ):
        OnnxModel(path)


def test_the_daemon_side_does_not_import_torch() -> None:
    code = (
        "import sys, emgd.model.runtime, emgd.model.contract, emgd.pipeline, emgd.offline.evaluate;"
        "print('torch' in sys.modules, 'onnx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
