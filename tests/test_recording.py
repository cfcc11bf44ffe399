"""Tests of emgd.data.recording: the Recording invariants and the strict CSV reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from emgd.data.recording import Recording, check_same_layout, read_csv_matrix
from emgd.errors import DatasetError


def _rec(n: int = 4, **overrides: Any) -> Recording:
    fields: dict[str, object] = {
        "emg": np.zeros((n, 2)),
        "sample_rate_hz": 1000.0,
        "targets_deg": np.full((n, 5), 30.0),
        "effort": np.zeros(n),
        "label_names": ("no_motion",),
        "label_poses": ("rest",),
        "label_index": np.zeros(n, dtype=np.int64),
        "dataset": "test",
        "participant": "P",
        "source": "x.txt",
    }
    fields.update(overrides)
    return Recording(**fields)  # type: ignore[arg-type]


def test_single_gesture_targets_by_hand() -> None:
    # chuck G = (110, 110, 110, 180, 180), rest R = 30: R + 0.5·(G − R) = 70, 70, 70, 105, 105
    rec = Recording.single_gesture(
        np.ones((3, 2)), 1000.0, label="chuck_grip", pose="chuck", effort=0.5,
        dataset="d", participant="S1", rep=2, condition="50P", source="f.csv", emg_unit="V",
    )  # fmt: skip
    np.testing.assert_array_equal(rec.targets_deg, [[70, 70, 70, 105, 105]] * 3)
    np.testing.assert_array_equal(rec.effort, [0.5, 0.5, 0.5])
    assert list(rec.labels()) == ["chuck_grip"] * 3
    assert list(rec.poses()) == ["chuck"] * 3
    assert (rec.n_samples, rec.n_channels, rec.duration_s) == (3, 2, 0.003)
    assert not rec.is_ramp
    assert rec.rep == 2 and rec.emg_unit == "V"


def test_single_gesture_effort_per_sample() -> None:
    # open hand O = 0: R + p·(0 − 30) = 30·(1 − p)
    rec = Recording.single_gesture(
        np.ones((3, 1)), 1000.0, label="open", pose="open", effort=[0.0, 0.5, 1.0],
        dataset="d", participant="S1", condition="Ramp",
    )  # fmt: skip
    np.testing.assert_array_equal(rec.targets_deg[:, 0], [30.0, 15.0, 0.0])
    assert rec.is_ramp


def test_arrays_are_copied_and_read_only() -> None:
    emg = np.zeros((4, 2))
    rec = _rec(emg=emg)
    emg[0, 0] = 99.0
    assert rec.emg[0, 0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        rec.emg[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        rec.label_index[0] = 0


def test_per_sample_labels() -> None:
    rec = _rec(
        label_names=("a", "b"), label_poses=("rest", "power"), label_index=np.array([0, 1, 1, 0])
    )
    assert list(rec.labels()) == ["a", "b", "b", "a"]
    assert list(rec.poses()) == ["rest", "power", "power", "rest"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"emg": np.zeros((0, 2))}, r"emg must have shape"),
        ({"emg": np.zeros(4)}, r"emg must have shape"),
        ({"emg": np.array([[0, 0], [0, np.nan], [0, 0], [0, 0]])}, r"sample 1 channel 1"),
        ({"sample_rate_hz": 0.0}, r"sample_rate_hz must be > 0"),
        ({"targets_deg": np.zeros((4, 4))}, r"targets_deg must have shape \(4, 5\)"),
        ({"targets_deg": np.full((4, 5), 181.0)}, r"target 181.0 at sample 0 finger 0"),
        ({"effort": np.full(4, 1.5)}, r"effort 1.5 at sample 0"),
        ({"effort": np.zeros(3)}, r"effort must have shape \(4,\)"),
        ({"label_poses": ("fist",)}, r"unknown pose 'fist'"),
        ({"label_poses": ()}, r"one pose per label"),
        ({"label_index": np.array([0, 0, 1, 0])}, r"label_index values must be in \[0, 0\]"),
        ({"label_index": np.zeros(4)}, r"label_index must be 4 integers"),
    ],
)
def test_invalid_recordings(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        _rec(**overrides)


def test_check_same_layout() -> None:
    a = _rec()
    assert check_same_layout([a, _rec()], "here") == (2, 1000.0)
    with pytest.raises(DatasetError, match=r"here: x\.txt has 3 channels"):
        check_same_layout([a, _rec(emg=np.zeros((4, 3)))], "here")
    with pytest.raises(DatasetError, match="no recordings"):
        check_same_layout([], "here")


# --- CSV reader ------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_read_csv_exact_values(tmp_path: Path) -> None:
    path = _write(tmp_path, "1,-2,3.5\n-0.25,1e-3,7\n")
    np.testing.assert_array_equal(read_csv_matrix(path, 3), [[1, -2, 3.5], [-0.25, 0.001, 7]])


def test_read_csv_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "1,2\r\n\r\n3,4\r\n\n")
    np.testing.assert_array_equal(read_csv_matrix(path, 2), [[1, 2], [3, 4]])


def test_read_csv_single_row(tmp_path: Path) -> None:
    assert read_csv_matrix(_write(tmp_path, "5,6\n"), 2).shape == (1, 2)


def test_wrong_column_count_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "1,2,3\n4,5,6\n7,8\n")
    with pytest.raises(
        DatasetError, match=r"f\.csv: line 3: expected 3 comma-separated columns, found 2"
    ):
        read_csv_matrix(path, 3)


def test_consistent_but_wrong_column_count(tmp_path: Path) -> None:
    path = _write(tmp_path, "1,2\n3,4\n")
    with pytest.raises(DatasetError, match=r"line 1: expected 3 comma-separated columns, found 2"):
        read_csv_matrix(path, 3)


def test_non_numeric_cell_names_line_and_column(tmp_path: Path) -> None:
    # the blank second line still counts: the error is on physical line 4
    path = _write(tmp_path, "1,2\n\n3,4\n5,abc\n")
    with pytest.raises(DatasetError, match=r"f\.csv: line 4 column 2: not a number: 'abc'"):
        read_csv_matrix(path, 2)


def test_header_row_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "ch1,ch2\n1,2\n")
    with pytest.raises(DatasetError, match=r"line 1 column 1: not a number: 'ch1'"):
        read_csv_matrix(path, 2)


def test_non_finite_cell(tmp_path: Path) -> None:
    path = _write(tmp_path, "1,2\n3,nan\n")
    with pytest.raises(DatasetError, match=r"line 2 column 2: not a finite number: 'nan'"):
        read_csv_matrix(path, 2)


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(DatasetError, match=r"f\.csv: file is empty"):
        read_csv_matrix(_write(tmp_path, text), 2)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"nope\.csv: file not found"):
        read_csv_matrix(tmp_path / "nope.csv", 2)


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 20), st.integers(1, 6)),
        elements=st.floats(-1e6, 1e6, allow_nan=False, width=64),
    )
)
def test_csv_round_trip(tmp_path_factory: pytest.TempPathFactory, data: np.ndarray) -> None:
    folder = tmp_path_factory.mktemp("csv")
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in data) + "\n"
    path = _write(folder, text)
    np.testing.assert_array_equal(read_csv_matrix(path, data.shape[1]), data)
