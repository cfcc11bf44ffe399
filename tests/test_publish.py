"""`emgd train` end to end on a small synthetic session: ONNX, metadata card, Markdown card."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from emgd.cli import main
from emgd.errors import ConfigError, exit_code_for

pytest.importorskip("torch")
pytest.importorskip("onnx")


def test_train_publishes_a_model_the_daemon_can_load(tmp_path: Path) -> None:
    from emgd.model.runtime import OnnxModel

    out_path = tmp_path / "m.onnx"
    out = io.StringIO()
    code = main(
        [
            "train",
            "--dataset",
            "synthetic",
            "--participant",
            "seed3",
            "--recordings",
            "2",
            "--minutes",
            "0.05",
            "--threads",
            "1",
            "--set",
            "pieces_per_recording=0",
            "--set",
            "gain_jitter=0.2",
            "--set",
            "spec.dropout=0.1",
            "--out",
            str(out_path),
        ],
        stdout=out,
    )
    assert code == 0
    assert f"wrote {out_path}" in out.getvalue()
    model = OnnxModel(out_path)
    card = model.card
    assert card["data"] == {
        "dataset": "synthetic",
        "participant": "seed3",
        "train_recordings": 2,
        "test_recordings": 1,
    }
    # The training calibration travels with the model, for the daemon's first start.
    assert len(card["calibration"]["scale"]) == 8
    assert card["training"]["torch_threads"] == 1
    # --set changes the recipe for this run, and the card says so.
    assert card["training"]["config"]["pieces_per_recording"] == 0
    assert card["training"]["config"]["gain_jitter"] == 0.2
    assert card["training"]["config"]["learning_rate"] == 1e-3  # the rest is the recipe
    # --set spec.KEY changes the model spec, which the exported graph and card carry.
    assert model.spec.dropout == 0.1
    assert model.spec.band_amplitude_s == 0.2  # the rest is the recipe's spec
    # The recipe is a median of three networks, seeded 0, 1, 2 for --seed 0 (the default).
    assert model.spec.members == 3
    assert [m["seed"] for m in card["training"]["members"]] == [0, 1, 2]
    scores = card["test_closed_loop"]
    assert {"network", "ridge", "lda", "rest", "lda_same_hops", "ridge_same_hops"} <= set(scores)
    assert card["best_baseline_same_hops"] in ("lda_same_hops", "ridge_same_hops")
    assert card["onnx_vs_torch_max_diff_deg"] < 1e-3
    md = out_path.with_suffix(".md").read_text()
    assert md.startswith("# Model card: m.onnx") and "| network |" in md
    # The class sharpness chosen on validation is the one the exported graph runs.
    chosen = card["training"]["class_sharpness"]["chosen"]
    assert model.spec.class_sharpness == chosen
    assert f"Class sharpness {chosen:.2f}, chosen on the validation rep" in md
    assert "3 members (seed 0: best epoch" in md
    json.dumps(card)  # JSON-clean
    assert out_path.stat().st_mode & 0o777 == 0o644


def test_bad_synthetic_participant_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--dataset", "synthetic", "--participant", "bob", "--out", "x.onnx"])
    assert code == 8
    assert "expected seed<k>" in capsys.readouterr().err


def test_train_threads_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--dataset", "synthetic", "--participant", "seed1", "--out", "x.onnx"]
    code = main([*args, "--threads", "0"])
    assert code == exit_code_for(ConfigError("x"))
    err = capsys.readouterr().err.strip()
    assert "--threads 0: must be at least 1" in err and "\n" not in err


def test_train_set_names_a_bad_spec_setting_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["train", "--dataset", "synthetic", "--participant", "seed1", "--recordings", "2"]
    code = main([*args, "--out", "x.onnx", "--set", "spec.dropout=1.5"])
    assert code == exit_code_for(ConfigError("x"))
    err = capsys.readouterr().err.strip()
    assert "--set spec.: model spec: dropout = 1.5 is out of range" in err and "\n" not in err


def test_train_set_names_the_bad_setting_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--dataset", "synthetic", "--participant", "seed1", "--out", "x.onnx"]
    assert main([*args, "--set", "pieces=1"]) == exit_code_for(ConfigError("x"))
    err = capsys.readouterr().err.strip()
    assert "--set pieces=1: no recipe setting 'pieces'" in err and "pieces_per_recording" in err
    assert "\n" not in err


@pytest.mark.parametrize(
    ("extra", "minutes"),
    [((), 18.0), (("--set", "spec.members=1"), 6.0), (("--minutes", "2"), 2.0)],
)
def test_train_budget_defaults_to_six_minutes_per_member(
    monkeypatch: pytest.MonkeyPatch, extra: tuple[str, ...], minutes: float
) -> None:
    import emgd.training.train

    seen: list[float] = []

    def record(*args: object, max_minutes: float, **kwargs: object) -> None:
        seen.append(max_minutes)
        raise ConfigError("stop here")

    monkeypatch.setattr(emgd.training.train, "train_model", record)
    args = ["train", "--dataset", "synthetic", "--participant", "seed1", "--recordings", "2"]
    assert main([*args, "--out", "x.onnx", *extra]) == exit_code_for(ConfigError("x"))
    assert seen == [minutes]
