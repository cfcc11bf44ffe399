"""Loader for the public 3DC dataset layout (Côté-Allard et al., IEEE TNSRE 2019).

This module owns the 3DC folder and file-name conventions and the mapping of its eleven
gesture classes to the project's poses (via :data:`emgd.poses.POSE_OF_3DC_CLASS`)::

    3DCDataset/
      Participant<N>/                 N = 1, 2, … (the full dataset has 22)
        train/EMG/3dc_EMG_gesture_<rep>_<class>.txt     rep 0–3, class 0–10
        test/EMG/ 3dc_EMG_gesture_<rep>_<class>.txt     four more reps after a break

Each file is one ~5 s sustained gesture: CSV, no header, one row per sample, ten columns of
integer ADC counts at 1000 Hz. Every sample of a file gets its pose's full-effort angles.
It must not decide splits (see :mod:`emgd.data.splits`) or touch the signal values.
"""

from __future__ import annotations

import re
from pathlib import Path

from emgd.data.recording import Recording, numbered_folders, read_csv_matrix
from emgd.errors import DatasetError
from emgd.poses import POSE_OF_3DC_CLASS

DATASET_NAME = "3dc"
FOLDER_NAME = "3DCDataset"
N_CHANNELS = 10
SAMPLE_RATE_HZ = 1000.0
EMG_UNIT = "counts"
SESSIONS: tuple[str, ...] = ("train", "test")
EMG_SUBFOLDER = "EMG"
EFFORT = 1.0  # every 3DC file is a sustained gesture: its pose's full angles

# Class index -> label, in the dataset's order.
CLASS_NAMES: tuple[str, ...] = (
    "no_motion",
    "radial_deviation",
    "wrist_flexion",
    "ulnar_deviation",
    "wrist_extension",
    "supination",
    "pronation",
    "power_grip",
    "open_hand",
    "chuck_grip",
    "pinch_grip",
)

FILE_PATTERN = re.compile(r"^3dc_EMG_gesture_(?P<rep>\d+)_(?P<cls>\d+)\.txt$")
PARTICIPANT_PATTERN = re.compile(r"^Participant(?P<number>\d+)$")


def parse_file_name(name: str) -> tuple[int, int]:
    """Return ``(rep, class)`` from a 3DC EMG file name.

    Raises
    ------
    DatasetError
        If the name does not follow ``3dc_EMG_gesture_<rep>_<class>.txt`` or the class is not
        0–10.
    """
    match = FILE_PATTERN.match(name)
    if match is None:
        raise DatasetError(
            f"unexpected file name {name!r} in a 3DC EMG folder "
            "(expected 3dc_EMG_gesture_<rep>_<class>.txt)"
        )
    rep, cls = int(match["rep"]), int(match["cls"])
    if cls not in POSE_OF_3DC_CLASS:
        raise DatasetError(f"3DC file {name!r}: class {cls} is not one of 0–{len(CLASS_NAMES) - 1}")
    return rep, cls


def load_file(path: Path, *, participant: str = "", session: str = "") -> Recording:
    """Load one 3DC EMG file.

    Parameters
    ----------
    path:
        ``…/3dc_EMG_gesture_<rep>_<class>.txt``.
    participant, session:
        Provenance stored in the recording.

    Returns
    -------
    Recording
        ``emg`` shape ``(n, 10)`` in ADC counts, constant targets of the class's pose.
    """
    rep, cls = parse_file_name(path.name)
    emg = read_csv_matrix(path, N_CHANNELS)
    return Recording.single_gesture(
        emg,
        SAMPLE_RATE_HZ,
        label=CLASS_NAMES[cls],
        pose=POSE_OF_3DC_CLASS[cls],
        effort=EFFORT,
        dataset=DATASET_NAME,
        participant=participant,
        session=session,
        rep=rep,
        source=path.name,
        emg_unit=EMG_UNIT,
    )


def participants(dataset_dir: Path) -> list[str]:
    """Participant folder names under ``dataset_dir``, in numeric order.

    Raises
    ------
    DatasetError
        If the folder is missing or holds no ``Participant<N>`` folder.
    """
    return numbered_folders(dataset_dir, PARTICIPANT_PATTERN, "3DC", "Participant<N>")


def load_session(dataset_dir: Path, participant: str, session: str) -> list[Recording]:
    """Load every EMG file of one participant's ``train`` or ``test`` session.

    Hidden files (names starting with ``.``) are ignored; any other unexpected name is an
    error. Recordings come sorted by (rep, class).

    Raises
    ------
    DatasetError
        If the session is not ``train``/``test``, the folder is missing or empty, a file name
        is unexpected, or a file is malformed.
    """
    if session not in SESSIONS:
        raise DatasetError(f"3DC session must be one of {SESSIONS}, got {session!r}")
    folder = dataset_dir / participant / session / EMG_SUBFOLDER
    if not folder.is_dir():
        raise DatasetError(f"3DC folder not found: {folder}")
    keyed: list[tuple[tuple[int, int], Path]] = []
    for path in folder.iterdir():
        if path.name.startswith("."):
            continue
        try:
            key = parse_file_name(path.name)
        except DatasetError as exc:
            raise DatasetError(f"{folder}: {exc}") from None
        keyed.append((key, path))
    if not keyed:
        raise DatasetError(f"{folder}: no 3dc_EMG_gesture_<rep>_<class>.txt files")
    keyed.sort()
    return [load_file(p, participant=participant, session=session) for _, p in keyed]
