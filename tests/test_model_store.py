"""Tests of the installed-model store: versions, the active pointer, bad input, kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emgd.config import Config, load_config
from emgd.errors import ModelError
from emgd.model.store import INSTALL_STEPS, ModelStore, sha256_of

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

DAEMON_DIR = Path(__file__).resolve().parents[1] / "daemon"


def export_small(path: Path, *, seed: int = 0, n_channels: int = 8, card: bool = True) -> Path:
    """An untrained but real network (with a training calibration in its card)."""
    from emgd.calibration.store import StoredCalibration
    from emgd.dsp.filters import FilterSpec
    from emgd.model.contract import PreprocessContract
    from emgd.model.export import export_onnx
    from emgd.model.network import EmgNet
    from emgd.model.spec import ModelSpec

    spec = ModelSpec(sample_rate_hz=1000.0, n_channels=n_channels, common_length=5, mlp=(16, 8))
    net = EmgNet(spec, seed=seed)
    contract = PreprocessContract.for_spec(spec, FilterSpec(mains_hz=50.0))
    cal = StoredCalibration(
        offset=(0.0,) * n_channels,
        scale=(20.0,) * n_channels,
        sample_rate_hz=1000.0,
        source="test",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(net, spec, contract, {"calibration": cal.to_dict()}, path)
    if card:
        path.with_suffix(".md").write_text(f"# Model card: {path.name}\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("models")
    return export_small(folder / "a.onnx", seed=0), export_small(
        folder / "b.onnx", seed=1, card=False
    )


def config(*extra: str) -> Config:
    return load_config(env={}, overrides=list(extra))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def test_install_versions_keeps_previous_and_points_active(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = models
    store = ModelStore(tmp_path / "state")
    assert store.entries() == [] and store.active() is None
    first = store.install(a, config())
    second = store.install(b, config())
    assert (first.version, second.version) == (1, 2)
    assert first.file == f"0001-{sha256_of(a)[:12]}.onnx"
    assert first.card_file == f"0001-{sha256_of(a)[:12]}.md" and second.card_file is None
    assert (store.folder / first.card_file).read_text().startswith("# Model card: a.onnx")
    active = store.active()
    assert active is not None and active.version == 2 and active.sha256 == sha256_of(b)
    assert [e.version for e in store.entries()] == [1, 2]
    assert first.n_channels == 8 and first.sample_rate_hz == 1000.0 and first.tac_test is None
    assert store.rollback_target().version == 1
    store.activate(1)
    now = store.active()
    assert now is not None and now.sha256 == sha256_of(a) == sha256_of(now.path)
    with pytest.raises(ModelError, match="no installed version older than the active one"):
        store.rollback_target()
    with pytest.raises(ModelError, match="no installed model version 9"):
        store.rollback_target(9)
    assert oct((store.folder / first.file).stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize(
    ("setting", "pattern"),
    [
        ("adc.sample_rate_hz=500", r"a\.onnx: model expects 1000 Hz .*adc\.sample_rate_hz = 500"),
        ("adc.channels=4", r"a\.onnx: model expects 8 channels .*adc\.channels = 4"),
    ],
)
def test_a_model_for_another_layout_changes_nothing(
    models: tuple[Path, Path], tmp_path: Path, setting: str, pattern: str
) -> None:
    store = ModelStore(tmp_path)
    store.install(models[1], config())
    before = snapshot(store.folder)
    with pytest.raises(ModelError, match=pattern):
        store.install(models[0], config(setting))
    assert snapshot(store.folder) == before


def test_garbage_and_missing_files_are_model_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model" * 50)
    store = ModelStore(tmp_path / "state")
    with pytest.raises(ModelError, match=r"garbage\.onnx: not a loadable ONNX model"):
        store.install(garbage, config())
    with pytest.raises(ModelError, match=r"missing\.onnx: model file not found"):
        store.install(tmp_path / "missing.onnx", config())
    assert not store.folder.exists()


def test_a_state_dir_that_cannot_be_written_is_one_line(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = ModelStore(blocker / "state")
    with pytest.raises(ModelError, match=r"file/state/models: the model store is not writable"):
        store.install(models[0], config())


def test_a_changed_installed_file_is_refused(models: tuple[Path, Path], tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    entry = store.install(models[0], config())
    entry.path.write_bytes(entry.path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ModelError, match="does not match the installed"):
        store.active()


# --- kill -9 during an install ----------------------------------------------------------

INSTALL_SCRIPT = """
import sys, time
from pathlib import Path
from emgd.config import load_config
from emgd.model.store import ModelStore

stop_at = sys.argv[3]

def step(name):
    print(name, flush=True)
    if name == stop_at:
        time.sleep(60)

ModelStore(Path(sys.argv[1])).install(Path(sys.argv[2]), load_config(env={}), on_step=step)
print("done", flush=True)
"""


def start_install(state: Path, model: Path, stop_at: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(DAEMON_DIR)}
    return subprocess.Popen(
        [sys.executable, "-c", INSTALL_SCRIPT, str(state), str(model), stop_at],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def assert_loadable_active(store: ModelStore, expected_sha: str) -> None:
    from emgd.model.runtime import OnnxModel

    active = store.active()
    assert active is not None and active.sha256 == expected_sha
    OnnxModel(active.path).contract.check_against(config())


@pytest.mark.parametrize("stop_at", INSTALL_STEPS)
def test_kill_9_after_each_step_leaves_a_loadable_active_model(
    models: tuple[Path, Path], tmp_path: Path, stop_at: str
) -> None:
    a, b = models
    store = ModelStore(tmp_path)
    store.install(a, config())
    proc = start_install(tmp_path, b, stop_at)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == stop_at:
            break
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    # Only once the pointer is renamed in does the new model become active.
    assert_loadable_active(store, sha256_of(b if stop_at == "active" else a))
    # The next install sweeps what was left and numbers on.
    again = store.install(b, config())
    assert_loadable_active(store, sha256_of(b))
    assert not [p for p in store.folder.iterdir() if p.name.startswith(".install-")]
    complete = {e.file for e in store.entries()} | {e.card_file for e in store.entries()}
    versioned = {p.name for p in store.folder.iterdir() if p.suffix in (".onnx", ".md")}
    assert versioned <= complete and again.version >= 2


def test_kill_9_at_random_times_leaves_old_or_new(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = models
    t0 = time.monotonic()
    proc = start_install(tmp_path / "timing", b, "never")
    assert proc.wait(timeout=60) == 0
    full_s = time.monotonic() - t0
    rng = random.Random(24)
    outcomes: list[bool] = []
    for i in range(6):
        state = tmp_path / f"run{i}"
        store = ModelStore(state)
        store.install(a, config())
        proc = start_install(state, b, "never")
        time.sleep(rng.uniform(0.3, 1.0) * full_s)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        active = store.active()
        assert active is not None and active.sha256 in (sha256_of(a), sha256_of(b))
        assert_loadable_active(store, active.sha256)
        outcomes.append(active.sha256 == sha256_of(b))
    print(f"install {full_s:.2f} s; new model active after the kill in {sum(outcomes)} of 6")
