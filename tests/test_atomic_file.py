"""Atomic files: the old content or the new, never a torn file or a missing one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emgd.atomic_file import keep_copy, write_atomic
from emgd.calibration import store as calibration_store
from emgd.calibration.store import FILE_NAME, PREVIOUS_NAME


def test_write_atomic_replaces_the_file_with_the_mode_asked(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(b"old")
    write_atomic(path, b"new", mode=0o640)
    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(b"old")

    def fail(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_keep_copy_leaves_the_original_in_place(tmp_path: Path) -> None:
    path, copy = tmp_path / "a.json", tmp_path / "a.prev.json"
    path.write_bytes(b"one")
    copy.write_bytes(b"older")
    keep_copy(path, copy)
    assert path.read_bytes() == b"one" and copy.read_bytes() == b"one"
    write_atomic(path, b"two")
    assert copy.read_bytes() == b"one"  # a new inode for the file, the copy untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.prev.json"]


def test_a_calibration_save_cut_at_any_step_never_leaves_the_wearer_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = calibration_store.StoredCalibration(
        offset=(0.0, 0.0), scale=(10.0, 20.0), sample_rate_hz=1000.0, created="t0"
    )
    second = calibration_store.StoredCalibration(
        offset=(0.0, 0.0), scale=(30.0, 40.0), sample_rate_hz=1000.0, created="t1"
    )
    calibration_store.save(tmp_path, first)
    real_replace = os.replace
    calls = {"n": 0}

    def replace_then_die(src: str | Path, dst: str | Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the copy was kept; the new file's rename is cut
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        calibration_store.save(tmp_path, second)
    monkeypatch.setattr(os, "replace", real_replace)
    loaded = calibration_store.load(tmp_path)
    assert loaded is not None and loaded.scale == (10.0, 20.0)
    assert (tmp_path / PREVIOUS_NAME).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME, PREVIOUS_NAME]
