"""Tests of emgd.data.threedc: file names, the public folder layout, errors, real files.

Tests marked as using the real 3DC files read them from the datasets folder
(``$EMGD_DATASETS`` or ``../shared/datasets``) and skip when it is absent.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from emgd.data import threedc
from emgd.data.splits import find_datasets_root
from emgd.errors import DatasetError


def _rows(n: int, first: int = 0) -> str:
    return "".join(",".join(str(first + 10 * r + c) for c in range(10)) + "\n" for r in range(n))


def _layout(tmp_path: Path, files: dict[str, str], participant: str = "Participant1") -> Path:
    folder = tmp_path / "3DCDataset" / participant / "train" / "EMG"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return tmp_path / "3DCDataset"


def test_parse_file_name() -> None:
    assert threedc.parse_file_name("3dc_EMG_gesture_3_10.txt") == (3, 10)
    assert threedc.parse_file_name("3dc_EMG_gesture_0_0.txt") == (0, 0)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("3dc_EMG_gesture_0_11.txt", r"class 11 is not one of 0–10"),
        ("3dc_IMU_gesture_0_1.txt", r"unexpected file name '3dc_IMU_gesture_0_1.txt'"),
        ("3dc_EMG_gesture_0_1.csv", r"unexpected file name"),
        ("notes.txt", r"unexpected file name 'notes.txt'"),
    ],
)
def test_bad_file_names(name: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        threedc.parse_file_name(name)


def test_load_session_from_public_layout(tmp_path: Path) -> None:
    root = _layout(
        tmp_path,
        {
            "3dc_EMG_gesture_1_7.txt": _rows(3, first=100),
            "3dc_EMG_gesture_0_9.txt": _rows(2),
            "3dc_EMG_gesture_0_2.txt": _rows(4),
            ".DS_Store": "junk",
        },
    )
    recs = threedc.load_session(root, "Participant1", "train")
    assert [r.source for r in recs] == [
        "3dc_EMG_gesture_0_2.txt",
        "3dc_EMG_gesture_0_9.txt",
        "3dc_EMG_gesture_1_7.txt",
    ]
    wrist, chuck, power = recs
    # wrist flexion (class 2) leaves the hand at rest 30°; chuck grip is 110,110,110,180,180
    np.testing.assert_array_equal(wrist.targets_deg, [[30.0] * 5] * 4)
    np.testing.assert_array_equal(chuck.targets_deg, [[110, 110, 110, 180, 180]] * 2)
    np.testing.assert_array_equal(power.targets_deg, [[180.0] * 5] * 3)
    assert list(chuck.labels()) == ["chuck_grip"] * 2
    assert list(wrist.poses()) == ["rest"] * 4
    # row r, column c of the power file holds 100 + 10·r + c
    assert power.emg[2, 9] == 129.0 and power.emg[0, 0] == 100.0
    assert (power.rep, power.session, power.participant) == (1, "train", "Participant1")
    assert (power.sample_rate_hz, power.n_channels, power.emg_unit) == (1000.0, 10, "counts")


def test_unexpected_file_in_emg_folder(tmp_path: Path) -> None:
    root = _layout(tmp_path, {"3dc_EMG_gesture_0_0.txt": _rows(2), "readme.md": "hi"})
    with pytest.raises(DatasetError, match=r"EMG: unexpected file name 'readme.md'"):
        threedc.load_session(root, "Participant1", "train")


def test_wrong_column_count_names_file_and_line(tmp_path: Path) -> None:
    bad = _rows(3) + "1,2,3,4,5,6,7,8,9\n"
    root = _layout(tmp_path, {"3dc_EMG_gesture_0_4.txt": bad})
    with pytest.raises(
        DatasetError,
        match=r"3dc_EMG_gesture_0_4\.txt: line 4: expected 10 comma-separated columns, found 9",
    ):
        threedc.load_session(root, "Participant1", "train")


def test_non_numeric_and_empty_files(tmp_path: Path) -> None:
    root = _layout(tmp_path, {"3dc_EMG_gesture_0_4.txt": _rows(1) + "1,2,3,4,5,x,7,8,9,10\n"})
    with pytest.raises(DatasetError, match=r"gesture_0_4\.txt: line 2 column 6: not a number"):
        threedc.load_session(root, "Participant1", "train")
    empty = _layout(tmp_path / "b", {"3dc_EMG_gesture_0_4.txt": ""})
    with pytest.raises(DatasetError, match=r"gesture_0_4\.txt: file is empty"):
        threedc.load_session(empty, "Participant1", "train")


def test_missing_folders(tmp_path: Path) -> None:
    root = _layout(tmp_path, {"3dc_EMG_gesture_0_0.txt": _rows(2)})
    with pytest.raises(DatasetError, match=r"3DC folder not found: .*Participant1/test/EMG"):
        threedc.load_session(root, "Participant1", "test")
    with pytest.raises(DatasetError, match=r"session must be one of"):
        threedc.load_session(root, "Participant1", "validation")
    with pytest.raises(DatasetError, match=r"3DC dataset folder not found"):
        threedc.participants(tmp_path / "absent")
    (root / "Participant1" / "test" / "EMG").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no 3dc_EMG_gesture_<rep>_<class>\.txt files"):
        threedc.load_session(root, "Participant1", "test")


def test_participants_in_numeric_order(tmp_path: Path) -> None:
    for name in ("Participant10", "Participant2", "Participant1", "notes"):
        (tmp_path / name).mkdir()
    assert threedc.participants(tmp_path) == ["Participant1", "Participant2", "Participant10"]
    with pytest.raises(DatasetError, match=r"no Participant<N> folders"):
        threedc.participants(tmp_path / "Participant1")


# --- real data (skips without the datasets folder) ----------------------------------------------


@pytest.fixture(scope="module")
def threedc_dir() -> Path:
    try:
        folder = find_datasets_root() / threedc.FOLDER_NAME
    except DatasetError as exc:
        pytest.skip(f"uses the real 3DC files, not available here: {exc}")
    if not folder.is_dir():
        pytest.skip(f"uses the real 3DC files, not available here: {folder} is missing")
    return folder


def test_real_participant_loads_quickly(threedc_dir: Path) -> None:
    participant = threedc.participants(threedc_dir)[0]
    start = time.perf_counter()
    recs = threedc.load_session(threedc_dir, participant, "train")
    recs += threedc.load_session(threedc_dir, participant, "test")
    elapsed_s = time.perf_counter() - start
    assert elapsed_s < 10.0
    assert len(recs) == 88  # 4 reps × 11 classes × 2 sessions
    assert {r.n_channels for r in recs} == {10}
    assert {r.rep for r in recs} == {0, 1, 2, 3}
    assert {r.label_names[0] for r in recs} == set(threedc.CLASS_NAMES)
    # most files are a ~5 s gesture
    assert np.median([r.duration_s for r in recs]) > 4.0
