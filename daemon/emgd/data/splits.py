"""The evaluation protocol: where the datasets live and which files train and which test.

This module owns the per-participant train → test splits of ``datasets/README.md``: 3DC
``train/`` (first four reps) versus ``test/`` (four reps after a break); ContractionIntensity
reps R1–R2 versus R3–R4, and for MVC (two reps only) R1 versus R2; synthetic data earlier
versus later reps of one seeded session; the wearer's own BDF+ recordings (:func:`recordings_split`)
earlier versus later cue reps. Participants are discovered from the folders, so
the full public datasets work as well as the development subset. It also finds the datasets
folder: ``$EMGD_DATASETS``, else ``../shared/datasets`` next to the repository, else
``/work/shared/datasets``. It must not parse files (the loaders do) or compute anything.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from emgd.data import bdf_reader, contraction, synthetic, threedc
from emgd.data.recording import Recording
from emgd.errors import DatasetError
from emgd.sim.synthetic_emg import DEFAULT_N_CHANNELS

DATASETS_ENV_VAR = "EMGD_DATASETS"
# daemon/emgd/data/splits.py -> repository root is three folders above the package folder.
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATASETS_DIRS: tuple[Path, ...] = (
    REPO_ROOT.parent / "shared" / "datasets",
    Path("/work/shared/datasets"),
)

THREEDC = threedc.DATASET_NAME
CONTRACTION = contraction.DATASET_NAME
SYNTHETIC = synthetic.DATASET_NAME
WEARER = bdf_reader.DATASET_NAME
DATASETS: tuple[str, ...] = (THREEDC, CONTRACTION, SYNTHETIC)

# ContractionIntensity: reps per level ("*" = every level but MVC).
CONTRACTION_TRAIN_REPS: Mapping[str, frozenset[int]] = MappingProxyType(
    {"*": frozenset({1, 2}), contraction.MVC_LEVEL: frozenset({1})}
)
CONTRACTION_TEST_REPS: Mapping[str, frozenset[int]] = MappingProxyType(
    {"*": frozenset({3, 4}), contraction.MVC_LEVEL: frozenset({2})}
)

# Synthetic: one session of this many recordings, the first ones train.
SYNTHETIC_TRAIN_RECORDINGS = 3
SYNTHETIC_TEST_RECORDINGS = 1
SYNTHETIC_PARTICIPANT_PREFIX = "seed"

# The wearer's recordings: this share of the cue reps (the latest, at least one) is the test.
RECORDING_TEST_REP_FRACTION = 0.25
RECORDING_SUFFIX = ".bdf"


@dataclass(frozen=True)
class Split:
    """One participant's train and test recordings.

    Attributes
    ----------
    dataset:
        One of :data:`DATASETS`.
    participant:
        Folder name (``"Participant3"``, ``"S2"``) or ``"seed<k>"``.
    train, test:
        The recordings of each side.
    """

    dataset: str
    participant: str
    train: tuple[Recording, ...]
    test: tuple[Recording, ...]


def find_datasets_root(env: Mapping[str, str] | None = None) -> Path:
    """The folder holding ``3DCDataset/`` and ``ContractionIntensity/``.

    Parameters
    ----------
    env:
        Environment to read :data:`DATASETS_ENV_VAR` from (default ``os.environ``).

    Raises
    ------
    DatasetError
        If the variable names a missing folder, or it is unset and no default folder exists.
    """
    environ = os.environ if env is None else env
    value = environ.get(DATASETS_ENV_VAR, "")
    if value:
        path = Path(value).expanduser()
        if not path.is_dir():
            raise DatasetError(f"{DATASETS_ENV_VAR}={value}: folder not found")
        return path
    for path in DEFAULT_DATASETS_DIRS:
        if path.is_dir():
            return path
    tried = ", ".join(str(p) for p in DEFAULT_DATASETS_DIRS)
    raise DatasetError(f"datasets folder not found: set {DATASETS_ENV_VAR} (tried {tried})")


def dataset_dir(dataset: str, root: Path | None = None) -> Path:
    """The folder of one real dataset under ``root`` (default :func:`find_datasets_root`)."""
    base = find_datasets_root() if root is None else root
    if dataset == THREEDC:
        return base / threedc.FOLDER_NAME
    if dataset == CONTRACTION:
        return base / contraction.FOLDER_NAME
    raise DatasetError(
        f"dataset {dataset!r} has no folder; real datasets: {THREEDC}, {CONTRACTION}"
    )


def participants(dataset: str, root: Path | None = None) -> list[str]:
    """The participants of a real dataset, discovered from its folder, in numeric order."""
    if dataset == THREEDC:
        return threedc.participants(dataset_dir(dataset, root))
    if dataset == CONTRACTION:
        return contraction.participants(dataset_dir(dataset, root))
    raise DatasetError(f"unknown real dataset {dataset!r}; known: {THREEDC}, {CONTRACTION}")


def threedc_split(participant: str, root: Path | None = None) -> Split:
    """3DC: ``train/`` versus ``test/`` of one participant."""
    folder = dataset_dir(THREEDC, root)
    return Split(
        dataset=THREEDC,
        participant=participant,
        train=tuple(threedc.load_session(folder, participant, "train")),
        test=tuple(threedc.load_session(folder, participant, "test")),
    )


def contraction_split(participant: str, root: Path | None = None) -> Split:
    """ContractionIntensity: R1–R2 versus R3–R4 (MVC: R1 versus R2) of one subject.

    Raises
    ------
    DatasetError
        If either side is empty.
    """
    folder = dataset_dir(CONTRACTION, root)
    train = contraction.load_participant(folder, participant, reps_of_level=CONTRACTION_TRAIN_REPS)
    test = contraction.load_participant(folder, participant, reps_of_level=CONTRACTION_TEST_REPS)
    if not train or not test:
        side = "train (R1-R2)" if not train else "test (R3-R4)"
        raise DatasetError(f"{folder / participant}: no files for the {side} side of the split")
    return Split(CONTRACTION, participant, tuple(train), tuple(test))


def synthetic_split(
    seed: int,
    *,
    n_train: int = SYNTHETIC_TRAIN_RECORDINGS,
    n_test: int = SYNTHETIC_TEST_RECORDINGS,
    duration_s: float = synthetic.DEFAULT_DURATION_S,
    sample_rate_hz: float = synthetic.DEFAULT_SAMPLE_RATE_HZ,
    n_channels: int = DEFAULT_N_CHANNELS,
) -> Split:
    """Synthetic: the first ``n_train`` recordings of a seeded session versus the next ``n_test``.

    Each recording lasts ``duration_s``; see :func:`emgd.data.synthetic.synthetic_recordings`.
    """
    if n_train < 1 or n_test < 1:
        raise DatasetError(f"synthetic split needs n_train, n_test >= 1, got {n_train}, {n_test}")
    recordings = synthetic.synthetic_recordings(
        seed,
        n_recordings=n_train + n_test,
        duration_s=duration_s,
        sample_rate_hz=sample_rate_hz,
        n_channels=n_channels,
    )
    return Split(
        SYNTHETIC,
        synthetic.participant_name(seed),
        tuple(recordings[:n_train]),
        tuple(recordings[n_train:]),
    )


def load_split(dataset: str, participant: str, root: Path | None = None) -> Split:
    """The split of one participant of any dataset (synthetic participants are ``seed<k>``)."""
    if dataset == THREEDC:
        return threedc_split(participant, root)
    if dataset == CONTRACTION:
        return contraction_split(participant, root)
    if dataset == SYNTHETIC:
        digits = participant.removeprefix(SYNTHETIC_PARTICIPANT_PREFIX)
        if not digits.isdigit():
            raise DatasetError(f"synthetic participant must be seed<k>, got {participant!r}")
        return synthetic_split(int(digits))
    raise DatasetError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")


def iter_splits(dataset: str, root: Path | None = None) -> Iterator[Split]:
    """Every participant's split of a real dataset, one at a time (loads lazily)."""
    for participant in participants(dataset, root):
        yield load_split(dataset, participant, root)


def recording_files(paths: Sequence[Path]) -> list[Path]:
    """The BDF+ files named by ``paths``: files as given, folders' ``*.bdf`` in name order.

    Raises
    ------
    DatasetError
        If a path does not exist, a folder holds no ``.bdf`` file, or nothing is named.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() == RECORDING_SUFFIX)
            if not found:
                raise DatasetError(f"{path}: no {RECORDING_SUFFIX} recordings in the folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DatasetError(f"{path}: recording file or folder not found")
    if not files:
        raise DatasetError("no recordings named")
    return list(dict.fromkeys(files))


def recordings_split(
    paths: Sequence[Path],
    *,
    expect_channels: int | None = None,
    expect_rate_hz: float | None = None,
    test_reps: int | None = None,
    allow_unfinished: bool = False,
    expected_by: str = "",
) -> tuple[Split, list[bdf_reader.BdfSession]]:
    """The wearer's recordings split by cue rep: the latest reps test, the earlier train.

    Reps are the cue annotations' ``rep`` numbers, taken over every file (a protocol run in
    several files numbers its reps the same in each). The last ``test_reps`` of them
    (default: :data:`RECORDING_TEST_REP_FRACTION` of them, at least one) are the test side
    in every file; the training recipe's own validation then holds out the last training
    rep. Every file must have the channels, rate and device of the first (or the
    ``expect_*`` values, e.g. a model's, which ``expected_by`` names).

    Returns
    -------
    (Split, sessions)
        The split (dataset :data:`WEARER`, participant = the files' wearer codes) and each
        file's :class:`~emgd.data.bdf_reader.BdfSession` (alignment, gaps, dropped cues).

    Raises
    ------
    DatasetError
        One line naming the file for any problem reading it or a mismatch; naming the reps
        if there are fewer than two, so one side would be empty.
    """
    sessions: list[bdf_reader.BdfSession] = []
    channels: Sequence[str] | int | None = expect_channels
    rate_hz, device, by = expect_rate_hz, None, expected_by
    for path in recording_files(paths):
        session = bdf_reader.read_session(
            path,
            expect_channels=channels,
            expect_rate_hz=rate_hz,
            expect_device=device,
            allow_unfinished=allow_unfinished,
            expected_by=by,
        )
        sessions.append(session)
        channels, rate_hz, device = session.channel_labels, session.sample_rate_hz, session.device
        by = f"the first file {session.path.name}"
    reps = sorted({rec.rep for s in sessions for rec in s.recordings})
    n_test = (
        test_reps if test_reps is not None else math.ceil(len(reps) * RECORDING_TEST_REP_FRACTION)
    )
    if len(reps) < 2 or not 1 <= n_test < len(reps):
        names = ", ".join(str(s.path) for s in sessions)
        raise DatasetError(
            f"{names}: cue reps {reps} cannot be split into earlier (train) and "
            f"{n_test} later (test) reps"
        )
    test_set = set(reps[-n_test:])
    recordings = [rec for s in sessions for rec in s.recordings]
    participant = "+".join(dict.fromkeys(s.participant for s in sessions))
    split = Split(
        WEARER,
        participant,
        tuple(r for r in recordings if r.rep not in test_set),
        tuple(r for r in recordings if r.rep in test_set),
    )
    return split, sessions
