"""Tests of emgd.data.splits: the datasets folder, participant discovery and protocol splits.

Tests marked as using the real datasets read them from ``$EMGD_DATASETS`` or
``../shared/datasets`` and skip when the folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from emgd.data import splits
from emgd.errors import DatasetError

CI_LINE = ",".join(["0.001"] * 8) + "\n"
DC_LINE = ",".join(["1"] * 10) + "\n"


def _contraction_layout(root: Path, subject: str = "S1") -> None:
    folder = root / "ContractionIntensity" / subject
    folder.mkdir(parents=True)
    for rep in (1, 2, 3, 4):
        (folder / f"{subject}_40P_C6_R{rep}.csv").write_text(CI_LINE * 3)
    for rep in (1, 2):
        (folder / f"{subject}_MVC_C7_R{rep}.csv").write_text(CI_LINE * 3)


def _threedc_layout(root: Path, participant: str = "Participant1") -> None:
    for session in ("train", "test"):
        folder = root / "3DCDataset" / participant / session / "EMG"
        folder.mkdir(parents=True)
        for cls in (0, 7):
            (folder / f"3dc_EMG_gesture_0_{cls}.txt").write_text(DC_LINE * 2)


def test_env_var_wins(tmp_path: Path) -> None:
    assert splits.find_datasets_root({"EMGD_DATASETS": str(tmp_path)}) == tmp_path


def test_env_var_to_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"EMGD_DATASETS=.*absent: folder not found"):
        splits.find_datasets_root({"EMGD_DATASETS": str(tmp_path / "absent")})


def test_default_folder_is_next_to_the_repository() -> None:
    assert splits.DEFAULT_DATASETS_DIRS[0] == splits.REPO_ROOT.parent / "shared" / "datasets"
    assert (splits.REPO_ROOT / "daemon" / "emgd" / "data" / "splits.py").is_file()


def test_contraction_split_by_rep(tmp_path: Path) -> None:
    _contraction_layout(tmp_path)
    split = splits.load_split("contraction", "S1", tmp_path)
    assert [r.source for r in split.train] == [
        "S1_40P_C6_R1.csv",
        "S1_40P_C6_R2.csv",
        "S1_MVC_C7_R1.csv",
    ]
    assert [r.source for r in split.test] == [
        "S1_40P_C6_R3.csv",
        "S1_40P_C6_R4.csv",
        "S1_MVC_C7_R2.csv",
    ]
    assert (split.dataset, split.participant) == ("contraction", "S1")


def test_contraction_split_needs_both_sides(tmp_path: Path) -> None:
    folder = tmp_path / "ContractionIntensity" / "S1"
    folder.mkdir(parents=True)
    (folder / "S1_40P_C6_R1.csv").write_text(CI_LINE)
    with pytest.raises(DatasetError, match=r"no files for the test \(R3-R4\) side"):
        splits.contraction_split("S1", tmp_path)


def test_threedc_split_by_folder(tmp_path: Path) -> None:
    _threedc_layout(tmp_path)
    split = splits.load_split("3dc", "Participant1", tmp_path)
    assert {r.session for r in split.train} == {"train"}
    assert {r.session for r in split.test} == {"test"}
    assert len(split.train) == len(split.test) == 2


def test_participants_are_discovered(tmp_path: Path) -> None:
    for subject in ("S2", "S11", "S1"):
        _contraction_layout(tmp_path, subject)
    for participant in ("Participant3", "Participant12"):
        _threedc_layout(tmp_path, participant)
    assert splits.participants("contraction", tmp_path) == ["S1", "S2", "S11"]
    assert splits.participants("3dc", tmp_path) == ["Participant3", "Participant12"]
    got = [
        (s.participant, len(s.train), len(s.test))
        for s in splits.iter_splits("contraction", tmp_path)
    ]
    assert got == [("S1", 3, 3), ("S2", 3, 3), ("S11", 3, 3)]


def test_unknown_datasets(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"unknown dataset 'ninapro'"):
        splits.load_split("ninapro", "S1", tmp_path)
    with pytest.raises(DatasetError, match=r"unknown real dataset 'synthetic'"):
        splits.participants("synthetic", tmp_path)
    with pytest.raises(DatasetError, match=r"synthetic participant must be seed<k>"):
        splits.load_split("synthetic", "S1")
    with pytest.raises(DatasetError, match=r"3DC dataset folder not found"):
        splits.participants("3dc", tmp_path)


def test_synthetic_split() -> None:
    split = splits.synthetic_split(3, n_train=2, n_test=1, duration_s=1.0, n_channels=2)
    assert [r.rep for r in split.train] == [0, 1]
    assert [r.rep for r in split.test] == [2]
    assert split.participant == "seed3"
    with pytest.raises(DatasetError, match=r"n_train, n_test >= 1"):
        splits.synthetic_split(3, n_train=0)


# --- real data (skips without the datasets folder) ----------------------------------------------


@pytest.fixture(scope="module")
def datasets_root() -> Path:
    try:
        return splits.find_datasets_root()
    except DatasetError as exc:
        pytest.skip(f"uses the real datasets, not available here: {exc}")


def test_real_participants_discovered(datasets_root: Path) -> None:
    found_3dc = splits.participants("3dc", datasets_root)
    found_ci = splits.participants("contraction", datasets_root)
    assert found_3dc[:1] == ["Participant1"]
    assert found_ci[:1] == ["S1"]


def test_real_contraction_protocol(datasets_root: Path) -> None:
    split = splits.contraction_split("S1", datasets_root)
    assert {r.rep for r in split.train if r.condition != "MVC"} == {1, 2}
    assert {r.rep for r in split.test if r.condition != "MVC"} == {3, 4}
    assert {r.rep for r in split.train if r.condition == "MVC"} == {1}
    assert {r.rep for r in split.test if r.condition == "MVC"} == {2}
    assert {r.source for r in split.train}.isdisjoint({r.source for r in split.test})


# --- the wearer's own BDF+ recordings --------------------------------------------------


def _wearer_file(path: Path, reps: int, rate_hz: float = 500.0, seed: int = 0) -> Path:
    from emgd.data.cued_session import cued_protocol, write_cued_session

    protocol = cued_protocol(reps, gestures=("power", "open"), hold_s=2.0, rest_s=2.0)
    write_cued_session(path, protocol, seed=seed, sample_rate_hz=rate_hz, n_channels=4)
    return path


def test_recordings_split_puts_the_latest_reps_of_every_file_in_test(tmp_path: Path) -> None:
    from emgd.data.splits import WEARER, recordings_split

    folder = tmp_path / "sessions"
    folder.mkdir()
    _wearer_file(folder / "b.bdf", 4, seed=1)
    _wearer_file(folder / "a.bdf", 4, seed=2)
    (folder / "notes.txt").write_text("not a recording")
    split, sessions = recordings_split([folder])
    assert [s.path.name for s in sessions] == ["a.bdf", "b.bdf"]
    assert split.dataset == WEARER and split.participant == "wearer"
    assert {r.rep for r in split.train} == {1, 2, 3} and {r.rep for r in split.test} == {4}
    assert {r.session for r in split.test} == {"a", "b"}
    # Time order within each file, files in name order: a's reps before b's.
    sources = [r.source for r in split.train]
    assert sources.index(next(s for s in sources if s.startswith("b"))) > max(
        i for i, s in enumerate(sources) if s.startswith("a")
    )
    split2, _ = recordings_split([folder / "a.bdf"], test_reps=2)
    assert {r.rep for r in split2.test} == {3, 4} and {r.rep for r in split2.train} == {1, 2}
    n_all = sum(r.n_samples for r in (*split2.train, *split2.test))
    assert n_all == sessions[0].n_frames


def test_recordings_split_refuses_mixed_files_and_a_single_rep(tmp_path: Path) -> None:
    from emgd.data.splits import recordings_split

    first = _wearer_file(tmp_path / "s1.bdf", 2)
    other_rate = _wearer_file(tmp_path / "s2.bdf", 2, rate_hz=250.0)
    with pytest.raises(DatasetError, match=r"s2\.bdf: recorded at 250 Hz, expected 500 Hz"):
        recordings_split([first, other_rate])
    with pytest.raises(DatasetError, match=r"s1\.bdf: recorded at 500 Hz, expected 1000 Hz"):
        recordings_split([first], expect_rate_hz=1000.0)
    one_rep = _wearer_file(tmp_path / "one.bdf", 1)
    with pytest.raises(DatasetError, match=r"one\.bdf: cue reps \[1\] cannot be split"):
        recordings_split([one_rep])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"no \.bdf recordings in the folder"):
        recordings_split([empty])
    with pytest.raises(DatasetError, match="recording file or folder not found"):
        recordings_split([tmp_path / "nope.bdf"])
