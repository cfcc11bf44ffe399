"""The training recipe's settings: :class:`TrainConfig`, the recipe's network spec, and ``--set``.

Owns the defaults the recipe trains with (the record of why is ``docs/model.md``), the spec
:func:`recipe_spec` builds from them, and the parsing of ``emgd train --set KEY=VALUE`` into a
config or a spec (:func:`config_with_settings`, :func:`spec_with_settings`). Pure data: it must
not train or touch tensors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from emgd.data.recording import Recording
from emgd.dsp.filters import FilterSpec
from emgd.dsp.normalise import Normaliser
from emgd.errors import ConfigError
from emgd.model.ensemble import MedianEnsemble
from emgd.model.network import EmgNet
from emgd.model.spec import HEAD_POSE_MIXTURE, ModelSpec
from emgd.offline.stream import (
    gestures_of,
)
from emgd.poses import REST

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
HistoryMode = Literal["own", "rest", "target"]
Network = EmgNet | MedianEnsemble


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe (the same for every participant and dataset).

    Attributes
    ----------
    sequence_hops:
        Hops per rolled-out training sequence (closed loop inside, truncated BPTT at its ends).
    batch_sequences:
        Sequences per optimiser step.
    learning_rate:
        AdamW learning rate.
    weight_decay:
        Decoupled weight decay (AdamW).
    max_epochs:
        Upper bound on passes over the training stream.
    patience_epochs:
        Stop after this many epochs without a better validation MAE.
    pose_loss_weight:
        Weight of the auxiliary pose cross-entropy (pose-mixture head only).
    gain_jitter:
        Standard deviation of the log of a per-channel, per-sequence gain (augmentation).
    intensity_jitter:
        Standard deviation of the log of one more gain per sequence, the same on every
        channel: the wearer contracting harder or softer than in the training session
        (augmentation; 0 = off). Only for a head without graded effort, since where the
        effort is a target the amplitude is what it is learned from.
    history_noise_deg:
        Standard deviation of the noise on the initial history of a sequence.
    detach_history:
        Cut gradients through the fed-back outputs (True) or back-propagate through them.
    validation_reps:
        How many of the last reps of the training session to hold out for early stopping.
    refit_all:
        After early stopping, train again on every training rep for the best epoch count.
        The first fit then gets the share of the time budget that its samples are of both
        fits' samples, so the refit has time for the same epochs.
    pieces_per_recording:
        0: train on the session in protocol order. ``k`` ≥ 1: every epoch, cut each
        training recording into ``k`` pieces at random points and join all pieces in a
        random order, so the stream holds many more gesture transitions, in every pairing
        (``k`` = 1: whole recordings; each cut adds a change whose first windows still hold
        the previous piece's EMG).
    min_piece_s:
        Shortest piece when cutting (seconds).
    lr_drop_factor:
        Multiply the learning rate by this after every ``lr_drop_after_epochs`` epochs
        in a row without a better validation MAE (1 = never).
    lr_drop_after_epochs:
        See ``lr_drop_factor``.
    cosine_decay:
        Anneal the learning rate along a half cosine over ``max_epochs``: epoch ``e``
        (from 1) trains at ``learning_rate · (1 + cos(π (e − 1) / max_epochs)) / 2``
        (times any ``lr_drop_factor`` drops), so the last epochs take small steps.
    electrode_shift:
        Largest simulated shift of the electrode ring, as a fraction of the electrode
        spacing (augmentation; 0 = off; see :func:`shift_electrodes`).
    map_dropout:
        Probability of zeroing all of a training sequence's map features (the flattened
        convolution maps), so that the band amplitudes and the history alone must carry it;
        kept sequences see the maps unscaled, as at inference (0 = off). Only for a spec
        with band amplitudes: without them nothing but the history would be left.
    rotate_validation:
        Ensemble only: member ``i`` holds out the ``validation_reps`` reps ``i`` blocks
        before the last (cyclically), so the members train on different reps and early-stop
        on different held-out ones, and together they see every rep. The class sharpness
        is then chosen on each member's own held-out reps (see :func:`choose_sharpness_folds`).
    stop_on_sharpest:
        Pose-mixture head: early stopping on the better of the validation MAE at class
        sharpness 1 and at the largest candidate (one more validation replay per epoch),
        since the sharpness is picked after training.
    """

    sequence_hops: int = 50
    batch_sequences: int = 4
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    max_epochs: int = 60
    patience_epochs: int = 30
    pose_loss_weight: float = 0.3
    gain_jitter: float = 0.15
    intensity_jitter: float = 0.0
    history_noise_deg: float = 10.0
    detach_history: bool = False
    validation_reps: int = 1
    refit_all: bool = False
    pieces_per_recording: int = 4
    min_piece_s: float = 1.0
    electrode_shift: float = 0.0
    map_dropout: float = 0.25
    stop_on_sharpest: bool = False
    rotate_validation: bool = False
    lr_drop_factor: float = 1.0
    lr_drop_after_epochs: int = 3
    cosine_decay: bool = False


# The network choices of docs/model.md (every other spec field keeps its seed value).
RECIPE_COMMON_LENGTH = 10
RECIPE_DROPOUT = 0.1
RECIPE_HEAD = HEAD_POSE_MIXTURE
RECIPE_BAND_AMPLITUDE_S = 0.2
RECIPE_MEMBERS = 3
# Training minutes per member that the recipe's figures were measured with (`emgd train`
# gives each member this much unless --minutes says otherwise).
RECIPE_MINUTES_PER_MEMBER = 6.0


def recipe_spec(
    sample_rate_hz: float,
    n_channels: int,
    gestures: Sequence[tuple[str, str]] = (),
    graded_effort: bool = True,
) -> ModelSpec:
    """The spec the recipe trains by default (the one ``docs/model.md`` validated).

    The seed network with ``T`` = :data:`RECIPE_COMMON_LENGTH`, dropout
    :data:`RECIPE_DROPOUT` before each MLP layer, log band amplitudes over
    :data:`RECIPE_BAND_AMPLITUDE_S` and the pose-mixture head over ``gestures`` (default:
    one class per pose), at the data's sampling rate and channel count, as a median of
    :data:`RECIPE_MEMBERS` members. ``graded_effort`` False: the head commits whole poses
    (for data without partial ones, :func:`has_graded_effort`).
    """
    return ModelSpec(
        sample_rate_hz=sample_rate_hz,
        n_channels=n_channels,
        common_length=RECIPE_COMMON_LENGTH,
        dropout=RECIPE_DROPOUT,
        head=RECIPE_HEAD,
        band_amplitude_s=RECIPE_BAND_AMPLITUDE_S,
        gestures=tuple(gestures),
        graded_effort=graded_effort,
        members=RECIPE_MEMBERS,
    )


def recipe_spec_for(recordings: Sequence[Recording]) -> ModelSpec:
    """:func:`recipe_spec` at the first recording's rate and channels, over the data's
    gestures, with an effort output only if the data holds a gesture part way
    (:func:`has_graded_effort`).

    ``recordings`` must not be empty.
    """
    first = recordings[0]
    return recipe_spec(
        first.sample_rate_hz,
        first.n_channels,
        recipe_gestures(recordings),
        graded_effort=has_graded_effort(recordings),
    )


def has_graded_effort(recordings: Sequence[Recording]) -> bool:
    """True when some sample of a gesture other than rest has an effort below 1.

    Such targets lie part way between rest and a pose (ContractionIntensity, the synthetic
    wearer), and the pose-mixture head needs its effort to reach them. Where every target
    is rest or a whole pose (3DC) the effort has nothing to learn but the training
    session's EMG amplitude: on 3DC Participant3's test session the classes were read
    right for the open hand while the effort fell to 0.05-0.84, and the hand stopped
    14-18 deg short (docs/model.md).
    """
    for rec in recordings:
        moving = np.array([pose != REST for pose in rec.label_poses])[rec.label_index]
        if np.any(moving & (rec.effort < 1.0)):
            return True
    return False


def recipe_gestures(recordings: Sequence[Recording]) -> tuple[tuple[str, str], ...]:
    """The pose-mixture classes the recipe trains: the data's gestures (:func:`gestures_of`).

    Empty (one class per pose, the pose table) when every label is already its pose's name,
    as in synthetic data: the classes would be the poses anyway.
    """
    gestures = gestures_of(recordings)
    if all(label == pose for label, pose in gestures):
        return ()
    return gestures


def with_config(config: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of ``config`` with some fields changed (for sweeps)."""
    return replace(config, **changes)


# TrainConfig fields that count things a run needs at least one of.
SPEC_SETTING_PREFIX = "spec."
# Model-spec fields `emgd train --set spec.KEY=VALUE` may change, with their kind ("?": the
# value may also be none). The spec validates the result.
SPEC_SETTINGS: dict[str, str] = {
    "common_length": "int",
    "dropout": "float",
    "pool_s": "float?",
    "band_amplitude_s": "float?",
    "members": "int",
    "graded_effort": "bool",
}
_AT_LEAST_ONE = frozenset({"sequence_hops", "batch_sequences", "max_epochs", "patience_epochs"})
# ... and fields that are factors of at most 1.
_AT_MOST_ONE = frozenset({"lr_drop_factor", "map_dropout"})
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _setting_value(key: str, kind: str, text: str) -> bool | int | float:
    """``text`` as the type ``kind`` of TrainConfig field ``key``, range-checked."""
    where = f"--set {key}={text}"
    word = text.strip().lower()
    if kind not in ("bool", "int", "float"):
        raise ConfigError(f"{where}: a {kind} setting cannot be set from the command line")
    if kind == "bool":
        if word in _TRUE_WORDS | _FALSE_WORDS:
            return word in _TRUE_WORDS
        raise ConfigError(f"{where}: expected true or false")
    try:
        value: int | float = int(word) if kind == "int" else float(word)
    except ValueError:
        expected = "a whole number" if kind == "int" else "a number"
        raise ConfigError(f"{where}: expected {expected}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: must be finite and at least 0")
    if key in _AT_LEAST_ONE and value < 1:
        raise ConfigError(f"{where}: must be at least 1")
    if key in _AT_MOST_ONE and value > 1:
        raise ConfigError(f"{where}: must be at most 1")
    return value


def config_with_settings(settings: Sequence[str], base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (the recipe) with ``KEY=VALUE`` settings applied (``emgd train --set``).

    Each key is a :class:`TrainConfig` field; the value is parsed as that field's type
    (``true``/``false`` for flags). A later setting of the same key wins. Settings of the
    model spec (``spec.KEY=VALUE``) are left to :func:`spec_with_settings`.

    Raises
    ------
    ConfigError
        One line naming the setting: no ``=``, an unknown key (listing the known ones),
        or a value of the wrong type or out of range.
    """
    config = TrainConfig() if base is None else base
    kinds = {f.name: str(f.type) for f in fields(TrainConfig)}
    changes: dict[str, Any] = {}
    for setting in settings:
        key, sep, text = setting.partition("=")
        key = key.strip()
        if key.startswith(SPEC_SETTING_PREFIX):
            continue
        if not sep:
            raise ConfigError(f"--set {setting}: expected KEY=VALUE")
        if key not in kinds:
            raise ConfigError(
                f"--set {setting}: no recipe setting {key!r} (one of: {', '.join(kinds)})"
            )
        changes[key] = _setting_value(key, kinds[key], text)
    return with_config(config, **changes)


def spec_with_settings(settings: Sequence[str], base: ModelSpec) -> ModelSpec:
    """``base`` with its ``spec.KEY=VALUE`` settings applied (``emgd train --set``).

    Each key is one of :data:`SPEC_SETTINGS`; the value is a number (``none`` for the
    optional ones), or true / false for a switch. Other settings are
    :func:`config_with_settings`'. A later setting of the same key wins, and the spec's
    own validation applies to the result.

    Raises
    ------
    ConfigError
        One line naming the setting: no ``=``, an unknown key (listing the known ones),
        a value that is not a number, or a spec the values make invalid.
    """
    changes: dict[str, Any] = {}
    for setting in settings:
        key, sep, text = setting.partition("=")
        name = key.strip().removeprefix(SPEC_SETTING_PREFIX)
        if not key.strip().startswith(SPEC_SETTING_PREFIX):
            continue
        if not sep:
            raise ConfigError(f"--set {setting}: expected {SPEC_SETTING_PREFIX}KEY=VALUE")
        if name not in SPEC_SETTINGS:
            raise ConfigError(
                f"--set {setting}: no model-spec setting {name!r} "
                f"(one of: {', '.join(SPEC_SETTING_PREFIX + k for k in SPEC_SETTINGS)})"
            )
        kind = SPEC_SETTINGS[name]
        word = text.strip().lower()
        if kind == "bool":
            changes[name] = _setting_value(key.strip(), kind, text)
            continue
        if kind.endswith("?") and word == "none":
            changes[name] = None
            continue
        try:
            changes[name] = int(word) if kind.startswith("int") else float(word)
        except ValueError:
            expected = "a whole number" if kind.startswith("int") else "a number"
            expected += " or none" if kind.endswith("?") else ""
            raise ConfigError(f"--set {setting}: expected {expected}") from None
    if not changes:
        return base
    try:
        return replace(base, **changes)
    except ConfigError as error:
        raise ConfigError(f"--set {SPEC_SETTING_PREFIX}: {error}") from None


@dataclass
class TrainResult:
    """What :func:`train_model` gives back (and a checkpoint stores).

    Attributes
    ----------
    net:
        The trained network (eval mode).
    spec:
        Its spec.
    normaliser:
        The calibration normaliser applied to the filtered EMG.
    filter_spec:
        The streaming filter of the contract.
    history:
        One dict per epoch: ``epoch``, ``train_loss``, ``val_mae_deg``, ``seconds``.
    report:
        JSON-ready summary: seed, config, data, best epoch, validation metrics, timing.
    """

    net: Network
    spec: ModelSpec
    normaliser: Normaliser
    filter_spec: FilterSpec
    history: list[dict[str, float]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
