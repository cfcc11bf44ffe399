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
            "--synthetic-recordings",
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
    args = [
        "train",
        "--dataset",
        "synthetic",
        "--participant",
        "seed1",
        "--synthetic-recordings",
        "2",
    ]
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
    args = [
        "train",
        "--dataset",
        "synthetic",
        "--participant",
        "seed1",
        "--synthetic-recordings",
        "2",
    ]
    assert main([*args, "--out", "x.onnx", *extra]) == exit_code_for(ConfigError("x"))
    assert seen == [minutes]


@pytest.fixture(scope="module")
def wearer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short BDF+ sessions of a simulated wearer at the shipped model's 1 kHz x 8."""
    from emgd.data.cued_session import cued_protocol, write_cued_session

    folder = tmp_path_factory.mktemp("wearer")
    protocol = cued_protocol(3, gestures=("power", "open"), hold_s=2.0, rest_s=2.0)
    for k in range(2):
        write_cued_session(folder / f"w_s{k + 1}.bdf", protocol, seed=9, session=k)
    return folder


def test_train_quick_on_recordings_says_where_the_data_came_from(
    wearer_folder: Path, tmp_path: Path
) -> None:
    from emgd.model.runtime import OnnxModel
    from emgd.training.quick import SHIPPED_MODEL

    out_path = tmp_path / "q.onnx"
    args = ["train", "--recordings", str(wearer_folder), "--quick", "--threads", "1"]
    code = main([*args, "--minutes", "0.05", "--out", str(out_path)], stdout=io.StringIO())
    assert code == 0
    model = OnnxModel(out_path)
    card = model.card
    assert model.spec.members == 1
    assert card["training"]["started_from"] == str(SHIPPED_MODEL)
    data = card["data"]
    assert data["dataset"] == "wearer" and data["participant"] == "wearer"
    files = data["recordings"]["files"]
    assert [f["file"] for f in files] == ["w_s1.bdf", "w_s2.bdf"]
    assert all(f["reps"] == [1, 2, 3] and f["cues"] == 6 for f in files)
    align = data["recordings"]["label_alignment"]
    assert align["cues"] == align["onsets_found"] == 12
    assert 0.2 <= align["delay_s"]["median"] <= 0.6
    md = out_path.with_suffix(".md").read_text()
    assert "- from w_s1.bdf: simulated, 8 channels at 1000.00 Hz" in md
    assert "- labels aligned to the EMG: EMG onset per cue" in md and "delay after the cue" in md
    assert "network" in card["test_closed_loop"]


def test_train_from_recordings_names_the_bad_file_or_model_in_one_line(
    wearer_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emgd.data.cued_session import cued_protocol, write_cued_session

    slow = tmp_path / "slow.bdf"
    write_cued_session(slow, cued_protocol(2, gestures=("power",)), sample_rate_hz=500.0)
    out = ["--out", str(tmp_path / "x.onnx"), "--threads", "1"]
    assert main(["train", "--recordings", str(slow), "--quick", *out]) == 7
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "the model is for 8 channels at 1000 Hz" in err
    mixed = ["train", "--recordings", str(wearer_folder / "w_s1.bdf"), str(slow), *out]
    assert main(mixed) == 8
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "slow.bdf: recorded at 500 Hz, expected 1000 Hz" in err
    assert "by the first file w_s1.bdf" in err
    assert main(["train", "--dataset", "3dc", *out]) == 8
    assert "needs --participant" in capsys.readouterr().err
    assert main(["train", "--recordings", str(slow), "--from", str(slow), *out]) == 2
    assert "--from MODEL needs --quick" in capsys.readouterr().err
