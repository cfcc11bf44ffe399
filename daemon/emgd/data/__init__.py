"""Data for training and evaluation: recordings, dataset loaders, synthetic sessions, splits.

This package owns getting EMG with finger-angle targets into memory as
:class:`~emgd.data.recording.Recording` objects: the public 3DC and ContractionIntensity
layouts (:mod:`emgd.data.threedc`, :mod:`emgd.data.contraction`), seeded synthetic sessions
(:mod:`emgd.data.synthetic`) and the per-participant train/test protocol
(:mod:`emgd.data.splits`). It must not filter, window or model the signals.
"""

from emgd.data.recording import Recording, read_csv_matrix
from emgd.data.splits import (
    DATASETS,
    Split,
    find_datasets_root,
    iter_splits,
    load_split,
    participants,
)

__all__ = [
    "DATASETS",
    "Recording",
    "Split",
    "find_datasets_root",
    "iter_splits",
    "load_split",
    "participants",
    "read_csv_matrix",
]
