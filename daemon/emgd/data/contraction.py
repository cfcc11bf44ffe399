"""Loader for the public ContractionIntensity layout (Scheme & Englehart, JPO 2013).

This module owns the ContractionIntensity folder and file-name conventions and turns each
file into a :class:`~emgd.data.recording.Recording` with proportional targets
``R + p·(G − R)`` (:mod:`emgd.poses`)::

    ContractionIntensity/
      S<s>/S<s>_<level>_C<class>_R<rep>.csv     8 columns of volts at 1000 Hz, no header

Levels ``20P`` … ``80P`` and ``MVC``, ``Light``/``Medium``/``Hard`` have one effort for the
whole file; ``Ramp`` rises linearly from 0.2 to 0.8 across the file. Classes C1 (no
movement), C6 (chuck grip) and C7 (hand open) map to poses through
:data:`emgd.poses.POSE_OF_CONTRACTION_INTENSITY_CLASS`; the full public dataset also has the
wrist classes C2–C5, which leave the hand relaxed and map to the rest pose here. It must not
decide splits or touch the signal values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from emgd.data.recording import Recording, numbered_folders, read_csv_matrix
from emgd.errors import DatasetError
from emgd.poses import (
    EFFORT_OF_CONTRACTION_INTENSITY_LEVEL,
    POSE_OF_CONTRACTION_INTENSITY_CLASS,
    RAMP_EFFORT_RANGE,
    REST,
)

FloatArray = npt.NDArray[np.float64]

DATASET_NAME = "contraction"
FOLDER_NAME = "ContractionIntensity"
N_CHANNELS = 8
SAMPLE_RATE_HZ = 1000.0
EMG_UNIT = "V"
RAMP_LEVEL = "Ramp"
MVC_LEVEL = "MVC"

# Class -> label (Info.txt order: no movement, wrist flexion, wrist extension, pronation,
# supination, chuck grip, hand open).
CLASS_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "C1": "no_movement",
        "C2": "wrist_flexion",
        "C3": "wrist_extension",
        "C4": "pronation",
        "C5": "supination",
        "C6": "chuck_grip",
        "C7": "hand_open",
    }
)
# Wrist classes of the full dataset: the fingers stay relaxed.
WRIST_CLASSES: tuple[str, ...] = ("C2", "C3", "C4", "C5")

FILE_PATTERN = re.compile(
    r"^S(?P<subject>\d+)_(?P<level>[A-Za-z0-9]+)_(?P<cls>C\d+)_R(?P<rep>\d+)\.csv$"
)
PARTICIPANT_PATTERN = re.compile(r"^S(?P<number>\d+)$")


def pose_of_class(cls: str) -> str:
    """The pose of a ContractionIntensity class (C2–C5 are wrist motions: rest)."""
    if cls in POSE_OF_CONTRACTION_INTENSITY_CLASS:
        return POSE_OF_CONTRACTION_INTENSITY_CLASS[cls]
    if cls in WRIST_CLASSES:
        return REST
    raise DatasetError(f"unknown ContractionIntensity class {cls!r} (expected C1–C7)")


def parse_file_name(name: str) -> tuple[str, str, str, int]:
    """Return ``(subject, level, class, rep)`` from a file name like ``S1_20P_C6_R3.csv``.

    ``subject`` is the folder name (``"S1"``), ``class`` like ``"C6"``.

    Raises
    ------
    DatasetError
        If the name does not follow the pattern, or the level or class is unknown.
    """
    match = FILE_PATTERN.match(name)
    if match is None:
        raise DatasetError(
            f"unexpected file name {name!r} in a ContractionIntensity folder "
            "(expected S<s>_<level>_C<class>_R<rep>.csv)"
        )
    level, cls = match["level"], match["cls"]
    if level != RAMP_LEVEL and level not in EFFORT_OF_CONTRACTION_INTENSITY_LEVEL:
        known = ", ".join([*EFFORT_OF_CONTRACTION_INTENSITY_LEVEL, RAMP_LEVEL])
        raise DatasetError(f"ContractionIntensity file {name!r}: unknown level {level!r} ({known})")
    if cls not in CLASS_NAMES:
        raise DatasetError(f"ContractionIntensity file {name!r}: unknown class {cls!r} (C1–C7)")
    return f"S{int(match['subject'])}", level, cls, int(match["rep"])


def effort_of(level: str, n_samples: int) -> FloatArray:
    """Shape ``(n_samples,)``: the effort at each sample of a file at ``level``.

    A ramp rises linearly from ``RAMP_EFFORT_RANGE[0]`` at the first sample to
    ``RAMP_EFFORT_RANGE[1]`` at the last.
    """
    if level == RAMP_LEVEL:
        lo, hi = RAMP_EFFORT_RANGE
        ramp: FloatArray = np.linspace(lo, hi, n_samples)
        return ramp
    return np.full(n_samples, EFFORT_OF_CONTRACTION_INTENSITY_LEVEL[level])


def load_file(path: Path) -> Recording:
    """Load one ContractionIntensity file.

    Returns
    -------
    Recording
        ``emg`` shape ``(n, 8)`` in volts; targets ``R + p·(G − R)`` at each sample's effort.

    Raises
    ------
    DatasetError
        If the name is unexpected, the file sits in another subject's folder, or is malformed.
    """
    subject, level, cls, rep = parse_file_name(path.name)
    folder = path.parent.name
    if PARTICIPANT_PATTERN.match(folder) and folder != subject:
        raise DatasetError(f"{path}: file of subject {subject} inside folder {folder}")
    emg = read_csv_matrix(path, N_CHANNELS)
    return Recording.single_gesture(
        emg,
        SAMPLE_RATE_HZ,
        label=CLASS_NAMES[cls],
        pose=pose_of_class(cls),
        effort=effort_of(level, emg.shape[0]),
        dataset=DATASET_NAME,
        participant=subject,
        rep=rep,
        condition=level,
        source=path.name,
        emg_unit=EMG_UNIT,
    )


def participants(dataset_dir: Path) -> list[str]:
    """Subject folder names (``S1``, ``S2`` …) under ``dataset_dir`` in numeric order.

    Raises
    ------
    DatasetError
        If the folder is missing or holds no ``S<n>`` folder.
    """
    return numbered_folders(
        dataset_dir, PARTICIPANT_PATTERN, "ContractionIntensity", "S<n> subject"
    )


def list_files(dataset_dir: Path, participant: str) -> list[tuple[tuple[str, str, int], Path]]:
    """Every data file of a subject with its ``(level, class, rep)``, sorted.

    Hidden files are ignored; any other unexpected name is an error.
    """
    folder = dataset_dir / participant
    if not folder.is_dir():
        raise DatasetError(f"ContractionIntensity folder not found: {folder}")
    out: list[tuple[tuple[str, str, int], Path]] = []
    for path in folder.iterdir():
        if path.name.startswith("."):
            continue
        try:
            _, level, cls, rep = parse_file_name(path.name)
        except DatasetError as exc:
            raise DatasetError(f"{folder}: {exc}") from None
        out.append(((level, cls, rep), path))
    if not out:
        raise DatasetError(f"{folder}: no S<s>_<level>_C<class>_R<rep>.csv files")
    out.sort()
    return out


def load_participant(
    dataset_dir: Path,
    participant: str,
    *,
    reps_of_level: Mapping[str, frozenset[int]] | None = None,
) -> list[Recording]:
    """Load a subject's files, optionally only some reps per level.

    Parameters
    ----------
    dataset_dir:
        The ``ContractionIntensity`` folder.
    participant:
        Subject folder name, e.g. ``"S1"``.
    reps_of_level:
        If given, maps a level (``"MVC"``) or ``"*"`` (every other level) to the reps to keep.

    Returns
    -------
    list[Recording]
        Sorted by (level, class, rep).
    """
    chosen: list[Path] = []
    for (level, _cls, rep), path in list_files(dataset_dir, participant):
        if reps_of_level is not None:
            keep = reps_of_level.get(level, reps_of_level.get("*", frozenset()))
            if rep not in keep:
                continue
        chosen.append(path)
    return [load_file(p) for p in chosen]
