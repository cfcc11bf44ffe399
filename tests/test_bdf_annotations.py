"""Tests of emgd.data.bdf_annotations: texts parse back to what was formatted, bad texts fail."""

from __future__ import annotations

import pytest

from emgd.data.bdf_annotations import Annotation, format_annotation, parse_annotation
from emgd.errors import DatasetError


@pytest.mark.parametrize(
    ("kind", "fields", "marker", "text"),
    [
        ("cue", {"gesture": "power", "effort": 0.5, "rep": 2}, "start",
         "cue gesture=power effort=0.5 rep=2 start"),
        ("cue", {"gesture": "chuck", "effort": "0.2:0.8", "rep": 1}, "end",
         "cue gesture=chuck effort=0.2:0.8 rep=1 end"),
        ("gap", {"frames": 12, "from_seq": 1234}, "", "gap frames=12 from_seq=1234"),
        ("session", {"device": "ads1299", "protocol": "default"}, "start",
         "session start device=ads1299 protocol=default"),
    ],
)  # fmt: skip
def test_format_and_parse_round_trip(
    kind: str, fields: dict[str, object], marker: str, text: str
) -> None:
    assert format_annotation(kind, fields, marker) == text
    parsed = parse_annotation(text, "f.bdf")
    assert parsed.kind == kind and parsed.marker == marker
    assert dict(parsed.fields) == {k: str(v) for k, v in fields.items()}
    assert parsed.text() == text


@pytest.mark.parametrize(
    ("kind", "fields", "marker"),
    [
        ("cue", {"gesture": "power grip"}, "start"),
        ("cue", {"gesture": "a=b"}, ""),
        ("cue", {"Gesture": "power"}, ""),
        ("note", {}, ""),
        ("cue", {}, "middle"),
    ],
)
def test_format_rejects_what_could_not_be_parsed_back(
    kind: str, fields: dict[str, object], marker: str
) -> None:
    with pytest.raises(ValueError, match="annotation"):
        format_annotation(kind, fields, marker)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "does not start"),
        ("hello world", "does not start"),
        ("cue gesture=power rep", "'rep' is not key=value"),
        ("cue rep=1 rep=2 start", "key 'rep' repeats"),
    ],
)
def test_parse_names_file_and_problem(text: str, match: str) -> None:
    with pytest.raises(DatasetError, match=match) as info:
        parse_annotation(text, "rec.bdf: annotation at 3 s")
    assert str(info.value).startswith("rec.bdf: annotation at 3 s")


def test_annotation_fields_are_read_only() -> None:
    a = Annotation("gap", {"frames": "1"})
    with pytest.raises(TypeError):
        a.fields["frames"] = "2"  # type: ignore[index]
