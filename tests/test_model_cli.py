"""Tests of ``emgd model install|list|rollback``: files in tmp_path and a real daemon on the
simulated board that reloads over its status socket."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emgd.cli import main
from emgd.model.store import ModelStore, sha256_of

pytest.importorskip("torch")
pytest.importorskip("onnx")

from tests.test_model_store import export_small

RELOAD_WAIT_S = 5.0


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli-models")
    return {
        "a": export_small(folder / "a.onnx", seed=0),
        "b": export_small(folder / "b.onnx", seed=1),
        "four": export_small(folder / "four.onnx", seed=2, n_channels=4),
    }


def where(tmp_path: Path) -> list[str]:
    return [
        "--set",
        f"daemon.state_dir={str(tmp_path / 'state')!r}",
        "--set",
        f"daemon.runtime_dir={str(tmp_path / 'run')!r}",
    ]


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue()


def test_install_list_rollback_without_a_daemon(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = cli("model", "install", str(models["a"]), *where(tmp_path))
    assert code == 0
    assert "as version 1" in text and "it will use the active model at its next start" in text
    assert cli("model", "install", str(models["b"]), *where(tmp_path))[0] == 0
    code, text = cli("model", "list", *where(tmp_path))
    lines = text.splitlines()
    assert code == 0 and len(lines) == 4
    assert lines[2].startswith("      1  " + sha256_of(models["a"])[:12])
    assert lines[3].startswith("  *   2  " + sha256_of(models["b"])[:12])
    assert "1000 Hz, 8 ch" in lines[3] and "0002-" in lines[3]
    code, text = cli("model", "rollback", *where(tmp_path))
    assert code == 0 and text.startswith("active: version 1")
    assert cli("model", "rollback", "--to", "2", *where(tmp_path))[0] == 0
    active = ModelStore(tmp_path / "state").active()
    assert active is not None and active.version == 2
    capsys.readouterr()
    code, _ = cli("model", "rollback", "--to", "7", *where(tmp_path))
    assert code == 7 and "no installed model version 7" in capsys.readouterr().err


def test_bad_input_is_one_line_with_the_documented_code(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("model", "install", str(models["a"]), *where(tmp_path))[0] == 0
    folder = tmp_path / "state" / "models"
    before = sorted(p.name for p in folder.iterdir())
    capsys.readouterr()
    code, _ = cli("model", "install", str(models["four"]), *where(tmp_path))
    assert code == 7
    err = capsys.readouterr().err
    assert "model expects 4 channels (ch0, ch1, ch2, ch3), config adc.channels = 8" in err
    garbage = tmp_path / "g.onnx"
    garbage.write_text("hello")
    capsys.readouterr()
    code, _ = cli("model", "install", str(garbage), *where(tmp_path))
    assert code == 7 and "g.onnx: not a loadable ONNX model" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == before
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    capsys.readouterr()
    code, _ = cli(
        "model", "install", str(models["a"]), "--set", f"daemon.state_dir={str(blocker)!r}"
    )
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert code == 7 and len(err_lines) == 1
    assert "blocker/models: the model store is not writable: ENOTDIR" in err_lines[0]


@pytest.fixture
def running_daemon(models: dict[str, Path], tmp_path: Path) -> Iterator[object]:
    """A daemon with no model.path: it starts on the active installed model (version 1)."""
    from emgd.config import load_config
    from emgd.service.runner import Daemon

    assert cli("model", "install", str(models["a"]), *where(tmp_path))[0] == 0
    config = load_config(
        env={},
        overrides=[
            f"daemon.state_dir={str(tmp_path / 'state')!r}",
            f"daemon.runtime_dir={str(tmp_path / 'run')!r}",
            "daemon.realtime_priority=0",
            "daemon.loop_priority=0",
            "daemon.lock_memory=false",
        ],
    )
    daemon = Daemon(config, env={})
    daemon.start()
    stop = threading.Event()
    loop = threading.Thread(target=daemon.run, args=(stop.is_set,), daemon=True)
    loop.start()
    try:
        yield daemon
    finally:
        stop.set()
        loop.join(timeout=10)
        daemon.shutdown()


def running_identity(daemon: object, expected_prefix: str) -> str:
    deadline = time.monotonic() + RELOAD_WAIT_S
    while True:
        identity = str(daemon.status()["model"]["identity"])  # type: ignore[attr-defined]
        if identity.startswith(expected_prefix) or time.monotonic() > deadline:
            return identity


def test_install_reloads_the_daemon_and_a_refusal_restores_the_active(
    running_daemon: object,
    models: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sha_a, sha_b = sha256_of(models["a"])[:12], sha256_of(models["b"])[:12]
    # Started on the installed model: no model.path in its config.
    assert running_identity(running_daemon, "0001-").startswith(f"0001-{sha_a}.onnx@{sha_a}")
    code, text = cli("model", "install", str(models["b"]), *where(tmp_path))
    assert code == 0 and f"daemon reloaded: now running 0002-{sha_b}.onnx" in text
    assert running_identity(running_daemon, "0002-").startswith(f"0002-{sha_b}")
    # This CLI's config says 4 channels, the daemon's 8: the daemon refuses, keeps its
    # model, and the previous version is made active again.
    capsys.readouterr()
    code, _ = cli(
        "model", "install", str(models["four"]), *where(tmp_path), "--set", "adc.channels=4"
    )
    assert code == 10
    err = capsys.readouterr().err
    assert "emgd refused 'reload'" in err and "config adc.channels = 8" in err
    assert "version 2 is active again" in err
    active = ModelStore(tmp_path / "state").active()
    assert active is not None and active.version == 2
    time.sleep(0.2)
    assert running_identity(running_daemon, "0002-").startswith(f"0002-{sha_b}")
    code, text = cli("model", "rollback", *where(tmp_path), "--set", "adc.channels=8")
    assert code == 0 and "daemon reloaded: now running 0001-" in text
    assert running_identity(running_daemon, "0001-").startswith(f"0001-{sha_a}")


def test_install_says_when_the_daemon_runs_another_model_than_the_one_installed(
    running_daemon: object, models: dict[str, Path], tmp_path: Path
) -> None:
    """The same socket, another state directory on this side (a forgotten --set or config):
    the daemon reloads from its own store, and install must not claim the hand runs it."""
    elsewhere = [
        "--set",
        f"daemon.state_dir={str(tmp_path / 'other-state')!r}",
        "--set",
        f"daemon.runtime_dir={str(tmp_path / 'run')!r}",
    ]
    code, text = cli("model", "install", str(models["b"]), *elsewhere)
    assert code == 10
    assert "is not what it runs" in text and "model.path" in text
