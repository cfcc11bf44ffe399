"""Tests of emgd.model.info: the ``emgd model info`` report."""

from __future__ import annotations

import re
import subprocess
import sys

from emgd.model import model_info_text
from emgd.model.spec import ModelSpec


def _cells(line: str) -> list[str]:
    return line.split()


def _row(text: str, name: str) -> list[str]:
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row for {name!r} in:\n{text}")


def test_seed_report_has_counts_and_receptive_fields() -> None:
    text = model_info_text(ModelSpec(), title="models/default.onnx")
    assert text.startswith("models/default.onnx\n")
    assert text.endswith("\n")
    # Hand counts (see test_spec.py): 164 + 832 + 829,189 parameters; MACs at 8 channels.
    assert re.search(
        r"parameters\s+830,185 \(stage 1 164, stage 2 832, MLP 829,189; plus 7 fixed", text
    )
    assert re.search(r"MACs per inference\s+2,106,784 ", text)
    assert re.search(r"window\s+1729 samples \(1\.729 s; minimum 1729\)", text)
    assert re.search(r"hop\s+20 samples \(0\.020 s\)", text)
    assert re.search(r"MLP\s+6410 -> 128 -> 64 -> 5\n", text)
    # name, f, k, strides, 4 stage-1 dilations, 2 stage-2 dilations, R samples, R ms, input.
    assert _row(text, "type_I") == _cells("type_I 30 15 1/1 2 4 8 16 10 20 691 691.0 740")
    assert _row(text, "type_IIa") == _cells("type_IIa 100 10 1/2 1 2 4 8 10 20 586 586.0 684")
    assert _row(text, "type_IIb") == _cells("type_IIb 225 7 2/3 1 2 4 8 10 20 1435 1435.0 1729")
    assert _row(text, "silence") == _cells("silence - 7 2/1 1 1 1 1 10 20 583 583.0 681")


def test_report_at_another_rate_shows_its_dilations() -> None:
    text = model_info_text(ModelSpec(sample_rate_hz=2000.0, n_channels=4, dropout=0.2))
    assert text.startswith("model\n")
    assert "2000 Hz" in text
    assert "(dropout 0.2)" in text
    assert "3210 -> 128" in text  # 4 channels · 4 branches · 4 features · 50 steps + 10
    # Type IIb doubles everything at 2 kHz: 2869 samples = 1434.5 ms.
    assert _row(text, "type_IIb")[4:12] == _cells("2 4 8 16 20 40 2869 1434.5")


def test_info_does_not_import_torch() -> None:
    code = "import sys, emgd.model; emgd.model.model_info_text(emgd.model.ModelSpec()); " \
        "print('torch' in sys.modules)"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_info_names_the_gesture_classes_and_sharpness_of_a_pose_mixture() -> None:
    spec = ModelSpec(
        head="pose_mixture",
        gestures=(("no_motion", "rest"), ("wrist_flexion", "rest"), ("power_grip", "power")),
        class_sharpness=4.0,
    )
    text = model_info_text(spec)
    assert re.search(
        r"output\s+5 angles, rest \+ effort \* sum_k p_k \* \(pose_k - rest\), "
        r"p = softmax\(4 \* logits\) over 3 classes: no_motion=rest, wrist_flexion=rest, "
        r"power_grip=power\n",
        text,
    )
    default = model_info_text(ModelSpec(head="pose_mixture"))
    assert "over 5 classes: rest, open, power, chuck, pinch" in default
    whole = model_info_text(ModelSpec(head="pose_mixture", graded_effort=False))
    assert re.search(r"output\s+5 angles, rest \+ sum_k p_k \* \(pose_k - rest\), ", whole)


def test_info_shows_pooling_and_band_amplitudes() -> None:
    plain = model_info_text(ModelSpec(common_length=10))
    assert re.search(r"common length T\s+10 steps \(most recent kept\)", plain)
    assert re.search(r"band amplitudes\s+none\n", plain)
    banded = model_info_text(ModelSpec(common_length=10, pool_s=0.02, band_amplitude_s=0.2))
    assert re.search(r"common length T\s+10 steps \(each the mean over 20 ms\)", banded)
    assert re.search(
        r"band amplitudes\s+log mean \|first layer\| over 200 ms per channel and branch "
        r"\(32 inputs, standardised\)",
        banded,
    )
    # 8·4·4·10 maps, 8·4 band amplitudes, 10 history inputs.
    assert re.search(r"MLP\s+1322 -> 128 -> 64 -> 5\n", banded)
