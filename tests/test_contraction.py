"""Tests of emgd.data.contraction: file names, proportional targets, ramps, errors, real files.

Tests marked as using the real ContractionIntensity files read them from the datasets folder
(``$EMGD_DATASETS`` or ``../shared/datasets``) and skip when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emgd.data import contraction
from emgd.data.splits import find_datasets_root
from emgd.errors import DatasetError


def _rows(n: int) -> str:
    return "".join(",".join(f"{0.001 * (r + c):.4f}" for c in range(8)) + "\n" for r in range(n))


def _write(folder: Path, name: str, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(_rows(n))
    return path


def test_parse_file_name() -> None:
    assert contraction.parse_file_name("S1_20P_C6_R3.csv") == ("S1", "20P", "C6", 3)
    assert contraction.parse_file_name("S10_Ramp_C7_R1.csv") == ("S10", "Ramp", "C7", 1)
    assert contraction.parse_file_name("S2_MVC_C1_R2.csv") == ("S2", "MVC", "C1", 2)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("S1_90P_C6_R1.csv", r"unknown level '90P'"),
        ("S1_20P_C8_R1.csv", r"unknown class 'C8'"),
        ("S1_20P_C6.csv", r"unexpected file name 'S1_20P_C6\.csv'"),
        ("S1_20P_C6_R1.txt", r"unexpected file name"),
        ("Info.txt", r"unexpected file name 'Info\.txt'"),
    ],
)
def test_bad_file_names(name: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        contraction.parse_file_name(name)


def test_fixed_level_targets_by_hand(tmp_path: Path) -> None:
    # chuck at 20 %: 30 + 0.2·(110 − 30) = 46 (thumb..middle), 30 + 0.2·150 = 60 (ring, little)
    rec = contraction.load_file(_write(tmp_path / "S1", "S1_20P_C6_R3.csv"))
    np.testing.assert_allclose(rec.targets_deg, [[46, 46, 46, 60, 60]] * 3, atol=1e-12)
    np.testing.assert_allclose(rec.effort, [0.2] * 3)
    assert (rec.participant, rec.rep, rec.condition, rec.emg_unit) == ("S1", 3, "20P", "V")
    assert rec.emg[2, 7] == pytest.approx(0.009)  # row 2, column 7: 0.001·(2 + 7)
    assert list(rec.labels()) == ["chuck_grip"] * 3


def test_named_levels_and_classes(tmp_path: Path) -> None:
    folder = tmp_path / "S2"
    mvc_open = contraction.load_file(_write(folder, "S2_MVC_C7_R1.csv"))
    np.testing.assert_array_equal(mvc_open.targets_deg, np.zeros((3, 5)))
    light_open = contraction.load_file(_write(folder, "S2_Light_C7_R1.csv"))
    np.testing.assert_allclose(light_open.targets_deg, np.full((3, 5), 21.0))  # 30·(1 − 0.3)
    wrist = contraction.load_file(_write(folder, "S2_Hard_C3_R1.csv"))
    np.testing.assert_array_equal(wrist.targets_deg, np.full((3, 5), 30.0))
    assert list(wrist.poses()) == ["rest"] * 3


def test_ramp_rises_linearly(tmp_path: Path) -> None:
    rec = contraction.load_file(_write(tmp_path / "S1", "S1_Ramp_C6_R1.csv", n=5))
    np.testing.assert_allclose(rec.effort, [0.2, 0.35, 0.5, 0.65, 0.8])
    # thumb 30 + p·80, little 30 + p·150
    np.testing.assert_allclose(rec.targets_deg[:, 0], [46, 58, 70, 82, 94])
    np.testing.assert_allclose(rec.targets_deg[:, 4], [60, 82.5, 105, 127.5, 150])
    assert rec.is_ramp


def test_file_in_wrong_subject_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"file of subject S1 inside folder S2"):
        contraction.load_file(_write(tmp_path / "S2", "S1_20P_C6_R1.csv"))


def test_malformed_files(tmp_path: Path) -> None:
    folder = tmp_path / "S1"
    folder.mkdir()
    (folder / "S1_30P_C1_R1.csv").write_text(_rows(2) + "1,2,3,4,5,6,7\n")
    with pytest.raises(
        DatasetError,
        match=r"S1_30P_C1_R1\.csv: line 3: expected 8 comma-separated columns, found 7",
    ):
        contraction.load_participant(tmp_path, "S1")
    (folder / "S1_30P_C1_R1.csv").write_text("")
    with pytest.raises(DatasetError, match=r"S1_30P_C1_R1\.csv: file is empty"):
        contraction.load_participant(tmp_path, "S1")
    (folder / "S1_30P_C1_R1.csv").unlink()
    (folder / "results.xlsx").write_text("x")
    with pytest.raises(DatasetError, match=r"S1: unexpected file name 'results\.xlsx'"):
        contraction.load_participant(tmp_path, "S1")


def test_load_participant_filters_reps(tmp_path: Path) -> None:
    folder = tmp_path / "S1"
    for name in ("S1_20P_C1_R1.csv", "S1_20P_C1_R3.csv", "S1_MVC_C6_R1.csv", "S1_MVC_C6_R2.csv"):
        _write(folder, name)
    (folder / ".hidden").write_text("ignored")
    every = contraction.load_participant(tmp_path, "S1")
    assert [r.source for r in every] == [
        "S1_20P_C1_R1.csv",
        "S1_20P_C1_R3.csv",
        "S1_MVC_C6_R1.csv",
        "S1_MVC_C6_R2.csv",
    ]
    some = contraction.load_participant(
        tmp_path, "S1", reps_of_level={"*": frozenset({3}), "MVC": frozenset({2})}
    )
    assert [r.source for r in some] == ["S1_20P_C1_R3.csv", "S1_MVC_C6_R2.csv"]


def test_participants_and_missing_folders(tmp_path: Path) -> None:
    for name in ("S10", "S2", "S1", "Info"):
        (tmp_path / name).mkdir()
    assert contraction.participants(tmp_path) == ["S1", "S2", "S10"]
    with pytest.raises(DatasetError, match=r"ContractionIntensity dataset folder not found"):
        contraction.participants(tmp_path / "absent")
    with pytest.raises(DatasetError, match=r"ContractionIntensity folder not found: .*S3"):
        contraction.load_participant(tmp_path, "S3")
    with pytest.raises(DatasetError, match=r"S1: no S<s>_<level>_C<class>_R<rep>\.csv files"):
        contraction.load_participant(tmp_path, "S1")


# --- real data (skips without the datasets folder) ----------------------------------------------


@pytest.fixture(scope="module")
def contraction_dir() -> Path:
    try:
        folder = find_datasets_root() / contraction.FOLDER_NAME
    except DatasetError as exc:
        pytest.skip(f"uses the real ContractionIntensity files, not available here: {exc}")
    if not folder.is_dir():
        pytest.skip(f"uses the real ContractionIntensity files, not available here: {folder}")
    return folder


def test_real_subject_loads(contraction_dir: Path) -> None:
    subject = contraction.participants(contraction_dir)[0]
    recs = contraction.load_participant(contraction_dir, subject)
    assert len(recs) >= 30
    assert {r.n_channels for r in recs} == {8}
    ramps = [r for r in recs if r.is_ramp]
    assert ramps, "the subset has Ramp files"
    for rec in ramps:
        assert rec.effort[0] == pytest.approx(0.2) and rec.effort[-1] == pytest.approx(0.8)
    # values are volts: well below 10 V
    assert max(float(np.abs(r.emg).max()) for r in recs) < 10.0
