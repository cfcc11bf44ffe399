"""Tests of calibration storage: round trip, atomic replace, corrupt files named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emgd.calibration.store import (
    FILE_NAME,
    PREVIOUS_NAME,
    StoredCalibration,
    load,
    save,
)
from emgd.errors import CalibrationError


def cal(scale: float = 10.0) -> StoredCalibration:
    return StoredCalibration(
        offset=(0.0, 1.0),
        scale=(scale, 2 * scale),
        sample_rate_hz=1000.0,
        noise_floor_uv=(2.0, 3.0),
        effort_level_uv=(50.0, 60.0),
        created="2026-11-25T12:00:00+00:00",
    )


def test_round_trip_and_normaliser(tmp_path: Path) -> None:
    assert load(tmp_path) is None
    save(tmp_path, cal())
    got = load(tmp_path)
    assert got == cal()
    np.testing.assert_allclose(got.normaliser().apply(np.array([[10.0, 21.0]])), [[1.0, 1.0]])
    assert len(got.identity()) == 12 and got.identity() != cal(11.0).identity()


def test_saving_keeps_the_previous_file_and_leaves_no_temporaries(tmp_path: Path) -> None:
    save(tmp_path, cal(10.0))
    save(tmp_path, cal(20.0))
    assert load(tmp_path) == cal(20.0)
    prev = json.loads((tmp_path / PREVIOUS_NAME).read_text())
    assert prev["scale"] == [10.0, 20.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME, PREVIOUS_NAME]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "corrupt"),
        ("[1, 2]", "not a JSON object"),
        ('{"version": 99}', "version 99"),
        ('{"version": 1, "scale": [1], "sample_rate_hz": 1000}', "missing key 'offset'"),
        (
            '{"version": 1, "offset": [0], "scale": [0], "sample_rate_hz": 1000}',
            "channel 1",
        ),
    ],
)
def test_corrupt_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / FILE_NAME).write_text(content)
    with pytest.raises(CalibrationError, match=message) as info:
        load(tmp_path)
    assert str(tmp_path / FILE_NAME) in str(info.value)


def test_unusable_values_are_refused() -> None:
    with pytest.raises(CalibrationError, match="channel 2"):
        StoredCalibration(offset=(0.0, 0.0), scale=(1.0, float("nan")), sample_rate_hz=1000)
