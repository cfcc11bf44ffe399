"""Tests of the command line: exit codes, one-line errors, config commands, the monitor."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from emgd import cli
from emgd.cli import main
from emgd.config import default_config_text


def test_config_default_prints_the_shipped_file() -> None:
    out = io.StringIO()
    assert main(["config", "default"], stdout=out) == 0
    assert out.getvalue() == default_config_text()


def test_config_check_accepts_the_default_and_refuses_an_unknown_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text(default_config_text())
    out = io.StringIO()
    assert main(["config", "check", str(good)], stdout=out) == 0
    assert out.getvalue() == f"{good}: OK\n"

    bad = tmp_path / "bad.toml"
    bad.write_text("[adc]\nsample_rate_hz = 1000\nsampel_rate = 2\n")
    assert main(["config", "check", str(bad)], stdout=io.StringIO()) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert str(bad) in err[0] and "adc.sampel_rate" in err[0]


def test_config_show_reflects_overrides() -> None:
    out = io.StringIO()
    assert main(["config", "show", "--set", "adc.sample_rate_hz=2000"], stdout=out) == 0
    assert "adc.sample_rate_hz = 2000\n" in out.getvalue()
    assert "servo.little.channel = 4\n" in out.getvalue()


def test_monitor_refuses_a_bad_rate_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["monitor", "--simulate", "--set", "adc.sample_rate_hz=3000", "--duration", "0"])
    assert code == 2
    assert "adc.sample_rate_hz = 3000" in capsys.readouterr().err


def test_monitor_without_hardware_is_a_hardware_init_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["monitor", "--set", "adc.bus=spidev", "--set", "adc.spi_bus=6"])
    assert code == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/dev/spidev6.0" in err[0]


def test_monitor_runs_the_simulated_board_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    code = main(["monitor", "--simulate", "--plain", "--duration", "0.5"], stdout=out)
    assert code == 0
    lines = out.getvalue().splitlines()
    assert lines and lines[0].startswith("t=")
    assert "stopped:" in capsys.readouterr().err


def test_a_closed_stdout_pipe_ends_quietly_with_exit_code_141() -> None:
    # `emgd config default | head -0`: the reader is gone before emgd writes a byte.
    child = subprocess.Popen(
        [sys.executable, "-m", "emgd", "config", "default"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 128 + signal.SIGPIPE
    assert err == ""  # no traceback, no "Exception ignored" from the flush at exit


def test_a_broken_pipe_that_is_not_stdout_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    # A peer closing a socket raises the same exception: that is a failure, not `| head`.
    def daemon_went_away(*_: object) -> int:
        raise BrokenPipeError("status socket")

    monkeypatch.setattr(cli, "_config", daemon_went_away)
    with pytest.raises(BrokenPipeError, match="status socket"):
        main(["config", "default"], stdout=io.StringIO())


def test_eval_scores_a_model_on_the_latest_reps_of_recordings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from emgd.data.cued_session import cued_protocol, write_cued_session

    shipped = Path(__file__).resolve().parents[1] / "models" / "default.onnx"
    protocol = cued_protocol(2, gestures=("power", "pinch"), hold_s=2.0, rest_s=2.0)
    good = tmp_path / "good.bdf"
    write_cued_session(good, protocol, seed=0)  # the shipped model's own simulated wearer
    out = io.StringIO()
    assert main(["eval", str(shipped), "--recordings", str(tmp_path), "--json"], stdout=out) == 0
    result = json.loads(out.getvalue())["results"][0]
    assert result["dataset"] == "wearer" and result["participant"] == "wearer"
    assert result["network"]["mae_mean_deg"] < result["rest"]["mae_mean_deg"]
    slow = tmp_path / "other" / "four.bdf"
    slow.parent.mkdir()
    write_cued_session(slow, protocol, seed=4, n_channels=4)
    assert main(["eval", str(shipped), "--recordings", str(slow)]) == 8
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(slow) in err
    assert f"has 4 channels, expected 8 by model {shipped}" in err
