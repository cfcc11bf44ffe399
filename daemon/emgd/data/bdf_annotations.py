"""The text grammar of the annotations in an emgd BDF+ recording: format and parse.

This module owns the one-line annotation texts the session writer puts into a recording and
the reader parses back. Every text is ``<kind> [key=value ...] [start|end]``: a kind word,
then space-separated ``key=value`` fields (keys ``[a-z_][a-z0-9_]*``, values without spaces,
``=`` or control characters), then an optional ``start``/``end`` marker::

    session start device=ads1299 rate_hz=250 channels=8 protocol=default
    cue gesture=power effort=0.5 rep=2 start
    cue gesture=power effort=0.5 rep=2 end
    cue gesture=chuck effort=0.2:0.8 rep=1 start        (a ramp: effort from 0.2 to 0.8)
    gap frames=12 from_seq=1234
    session end frames=7513

It must not know files, samples or the BDF byte layout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from emgd.errors import DatasetError

KIND_SESSION = "session"
KIND_CUE = "cue"
KIND_GAP = "gap"
KINDS: tuple[str, ...] = (KIND_SESSION, KIND_CUE, KIND_GAP)
MARKER_START = "start"
MARKER_END = "end"
MARKERS: tuple[str, ...] = (MARKER_START, MARKER_END)

_KEY = re.compile(r"^[a-z_][a-z0-9_]*$")
_VALUE = re.compile(r"^[!-<>-~]+$")  # printable ASCII except space and '='


@dataclass(frozen=True)
class Annotation:
    """One parsed annotation text.

    Attributes
    ----------
    kind:
        One of :data:`KINDS`.
    fields:
        The ``key=value`` pairs, in file order.
    marker:
        ``"start"``, ``"end"`` or ``""``.
    """

    kind: str
    fields: Mapping[str, str] = field(default_factory=dict)
    marker: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    def text(self) -> str:
        """The annotation as one line (see the module docstring)."""
        return format_annotation(self.kind, self.fields, self.marker)


def format_annotation(kind: str, fields: Mapping[str, object], marker: str = "") -> str:
    """Return ``"<kind> key=value ... [marker]"``.

    Raises
    ------
    ValueError
        If the kind or marker is unknown, a key is not ``[a-z_][a-z0-9_]*`` or a value holds
        a space, ``=`` or a non-printable character (the text could not be parsed back).
    """
    if kind not in KINDS:
        raise ValueError(f"annotation kind {kind!r} is not one of {', '.join(KINDS)}")
    if marker not in ("", *MARKERS):
        raise ValueError(f"annotation marker {marker!r} is not one of {', '.join(MARKERS)}")
    words = [kind]
    if kind == KIND_SESSION and marker:
        words.append(marker)
        marker = ""
    for key, value in fields.items():
        text = str(value)
        if not _KEY.match(key):
            raise ValueError(f"annotation {kind}: key {key!r} is not [a-z_][a-z0-9_]*")
        if not _VALUE.match(text):
            raise ValueError(
                f"annotation {kind}: value {text!r} of {key} must be printable ASCII "
                "without spaces or '='"
            )
        words.append(f"{key}={text}")
    if marker:
        words.append(marker)
    return " ".join(words)


def parse_annotation(text: str, where: str) -> Annotation:
    """Parse one annotation text written by :func:`format_annotation`.

    ``session start …`` puts its marker second (it reads as a phrase); every other kind puts
    it last. ``where`` (file and onset) is named in errors.

    Raises
    ------
    DatasetError
        If the kind is unknown, a word is neither ``key=value`` nor a marker in its place,
        or a key repeats.
    """
    words = text.split()
    if not words or words[0] not in KINDS:
        raise DatasetError(f"{where}: annotation {text!r} does not start with one of {KINDS}")
    kind, rest = words[0], words[1:]
    marker = ""
    if kind == KIND_SESSION and rest and rest[0] in MARKERS:
        marker, rest = rest[0], rest[1:]
    elif kind != KIND_SESSION and rest and rest[-1] in MARKERS:
        marker, rest = rest[-1], rest[:-1]
    fields: dict[str, str] = {}
    for word in rest:
        key, eq, value = word.partition("=")
        if not eq or not _KEY.match(key) or not _VALUE.match(value):
            raise DatasetError(f"{where}: annotation {text!r}: {word!r} is not key=value")
        if key in fields:
            raise DatasetError(f"{where}: annotation {text!r}: key {key!r} repeats")
        fields[key] = value
    return Annotation(kind=kind, fields=fields, marker=marker)
