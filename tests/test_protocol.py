"""Tests of the recording protocol: defaults, the TOML loader's one-line errors, the schedule."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from emgd.errors import ConfigError
from emgd.poses import GESTURE_NAMES
from emgd.recording.protocol import (
    DEFAULT_HOLD_S,
    DEFAULT_LEAD_IN_S,
    DEFAULT_REPS,
    DEFAULT_REST_S,
    Protocol,
    from_mapping,
    load_protocol,
    schedule,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "protocol.toml"
    path.write_text(text)
    return path


def test_defaults_cover_every_gesture_with_rests_between() -> None:
    p = Protocol()
    cues = schedule(p)
    assert cues[0].pose == "rest" and cues[0].rep == 0 and cues[0].duration_s == DEFAULT_LEAD_IN_S
    holds = [c for c in cues if c.pose != "rest"]
    assert len(holds) == DEFAULT_REPS * len(GESTURE_NAMES)
    assert [c.pose for c in holds[: len(GESTURE_NAMES)]] == list(GESTURE_NAMES)
    assert all(c.duration_s == DEFAULT_HOLD_S and c.effort_start == 1.0 for c in holds)
    # Every hold is followed by a rest, and the cues are back to back.
    for a, b in itertools.pairwise(cues):
        assert b.onset_s == pytest.approx(a.end_s)
        if a.pose != "rest":
            assert b.pose == "rest" and b.duration_s == DEFAULT_REST_S
    expected = DEFAULT_LEAD_IN_S + len(holds) * (DEFAULT_HOLD_S + DEFAULT_REST_S)
    assert p.total_s == pytest.approx(expected)


def test_a_file_with_levels_and_ramps_expands_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'name = "grades"\ngestures = ["pinch"]\nreps = 2\nhold_s = 2\nrest_s = 1.5\n'
        "lead_in_s = 3\nefforts = [0.3, 0.6]\nramps = [[0.2, 0.8]]\n",
    )
    p = load_protocol(path)
    assert p.name == "grades" and p.reps == 2 and p.ramps == ((0.2, 0.8),)
    cues = [c for c in schedule(p) if c.pose != "rest"]
    assert [(c.rep, c.effort_text()) for c in cues] == [
        (1, "0.3"),
        (1, "0.6"),
        (1, "0.2:0.8"),
        (2, "0.3"),
        (2, "0.6"),
        (2, "0.2:0.8"),
    ]
    ramp = cues[2]
    assert ramp.is_ramp and ramp.onset_s == pytest.approx(3 + 2 * 3.5)
    assert ramp.effort_at(ramp.onset_s + 1.0) == pytest.approx(0.5)
    assert ramp.effort_at(ramp.end_s + 5) == pytest.approx(0.8)
    assert p.total_s == pytest.approx(3 + 6 * 3.5)
    assert from_mapping(p.to_mapping(), "round trip") == p


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("repz = 3\n", ["unknown key 'repz'", "known keys"]),
        ('gestures = ["fist"]\n', ["'fist' is not a gesture"]),
        ('gestures = ["power", "power"]\n', ["listed twice"]),
        ("reps = 0\n", ["reps = 0", "1-100"]),
        ("reps = 2.5\n", ["reps = 2.5"]),
        ("hold_s = 0.1\n", ["hold_s = 0.1", "0.5-60"]),
        ('rest_s = "long"\n', ["rest_s = 'long'"]),
        ("efforts = [0]\n", ["efforts value 0"]),
        ("efforts = [1.5]\n", ["efforts value 1.5"]),
        ("ramps = [[0.5, 0.5]]\n", ["must differ"]),
        ("ramps = [0.2]\n", ["expected [from, to]"]),
        ("efforts = []\n", ["nothing to record"]),
        ('name = "two words"\n', ["name = 'two words'"]),
        ("reps = 100\nhold_s = 60\nrest_s = 60\n", ["at most 120 min"]),
        ("reps = \n", ["not valid TOML"]),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_protocol(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    for word in words:
        assert word in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="protocol file not found"):
        load_protocol(tmp_path / "nope.toml")


def test_a_mapping_from_the_socket_is_checked_the_same_way() -> None:
    with pytest.raises(ConfigError, match=r"^record.start protocol: unknown key 'x'"):
        from_mapping({"x": 1}, "record.start protocol")
    with pytest.raises(ConfigError, match="expected a table"):
        from_mapping([1, 2], "record.start protocol")  # type: ignore[arg-type]


def test_the_shipped_example_file_loads() -> None:
    import emgd.recording

    path = Path(emgd.recording.__file__).parent / "example_protocol.toml"
    p = load_protocol(path)
    assert p.name == "grades" and p.efforts == (0.3, 0.6, 1.0) and p.ramps == ((0.2, 0.8),)
    # 5 s lead-in, then 3 reps x 4 gestures x (3 levels + 1 ramp) x (4 s hold + 3 s rest).
    assert p.total_s == pytest.approx(5 + 3 * 4 * 4 * 7)
