"""``emgd eval``: closed-loop scoring of a model on a split, side by side with the baselines.

This module owns the evaluation protocol of the network: the wearer's calibration from the
training side of a split (rest and effort samples of the filtered training stream, as
:mod:`emgd.offline.stream` defines them), a replay of the test side as one continuous stream
through :class:`~emgd.pipeline.InferencePipeline` (the daemon's code path) with the model fed
its own clamped outputs as history, scoring at every hop whose window is complete (MAE and
R² per finger and mean, ramp correlation per ramp file, mean MAE by time since each recording
began and by gesture), and the two baselines plus "always rest" from
:func:`emgd.offline.baselines.evaluate_baselines` on the same split, with each side also scored
at the other's instants (the baselines at the network's hops, the network at the
baselines' window ends) so that like can be compared with like. It also formats the
report tables. It must not train, import torch or change what it scores (no smoothing, no
post-hoc clipping beyond the contract's angle range).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from emgd.data.recording import Recording, check_same_layout
from emgd.data.splits import Split
from emgd.dsp.filters import FilterSpec
from emgd.dsp.normalise import Calibration, compute_calibration
from emgd.errors import CalibrationError, ConfigError, ModelError
from emgd.model.contract import PreprocessContract
from emgd.offline.baselines import HudginsExtractor, evaluate_baselines, fit_baselines
from emgd.offline.metrics import (
    STEADY_FROM_S,
    held_at,
    mae_by_gesture,
    mae_by_time_since_start,
    summarise,
)
from emgd.offline.stream import SessionStream, build_stream, ramp_scores
from emgd.pipeline import (
    DEFAULT_HISTORY,
    DEFAULT_REPLAY_BLOCK_S,
    Commander,
    InferencePipeline,
    Runner,
    replay_closed_loop,
)
from emgd.poses import FINGERS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

HistoryMode = Literal["closed_loop", "rest", "target"]
# closed_loop: the model's own clamped outputs (how the daemon runs it; the official score);
# rest: history held at the rest pose (what the model does without feedback);
# target: the true targets at the previous hops (teacher forcing, an optimistic bound).
HISTORY_MODES: tuple[str, ...] = ("closed_loop", "rest", "target")
# The baselines scored a second way: run on the test stream as one (windows straddle the
# joins between recordings, as on a device), output held between windows, and scored at
# exactly the network's hops. Their usual score takes windows inside each recording only.
SAME_HOPS = "_same_hops"
# ... and the network scored the baselines' usual way: its output held at each of their
# window ends inside each recording (so neither is charged for a recording's first window).
AT_BASELINE_WINDOWS = "network_at_baseline_windows"
SYSTEMS: tuple[str, ...] = (
    "network",
    AT_BASELINE_WINDOWS,
    "ridge",
    "lda",
    f"ridge{SAME_HOPS}",
    f"lda{SAME_HOPS}",
    "rest",
)
SYSTEM_LABELS: dict[str, str] = {
    "network": "network",
    AT_BASELINE_WINDOWS: "network, baselines' windows",
    "ridge": "TD+ridge",
    "lda": "TD+LDA->pose",
    f"ridge{SAME_HOPS}": "TD+ridge, same hops",
    f"lda{SAME_HOPS}": "TD+LDA->pose, same hops",
    "rest": "always rest",
}
# The offline calibration does not refuse weak channels: a recorded dataset cannot be
# repeated, and the check only raises (it does not change offset or scale).
OFFLINE_MIN_EFFORT_TO_REST = 0.0
MS_PER_S = 1000.0


def calibration_from_training(
    recordings: Sequence[Recording], filter_spec: FilterSpec, where: str = "train split"
) -> Calibration:
    """The wearer's calibration from a split's training side.

    The training recordings are joined in protocol order and filtered as one stream
    (:func:`emgd.offline.stream.build_stream`); rest = its no-motion samples, effort = all the
    others.

    Raises
    ------
    CalibrationError
        Naming ``where`` if there are no rest or no effort samples, or a channel is unusable.
    """
    stream = build_stream(recordings, filter_spec)
    rest = stream.emg_uv[stream.rest_mask]
    effort = stream.emg_uv[~stream.rest_mask]
    if rest.shape[0] == 0 or effort.shape[0] == 0:
        side = "rest (no-motion)" if rest.shape[0] == 0 else "effort (gesture)"
        raise CalibrationError(f"{where}: no {side} samples to calibrate on")
    try:
        return compute_calibration(
            rest, effort, stream.sample_rate_hz, min_effort_to_rest=OFFLINE_MIN_EFFORT_TO_REST
        )
    except CalibrationError as exc:
        raise CalibrationError(f"{where}: {exc}") from None


def _resolve_model(
    model: str | Path | Runner,
    contract: PreprocessContract | None,
    history: int | None,
) -> tuple[Runner, PreprocessContract, int, str]:
    """The runner, its contract, its history length and what to call it."""
    if isinstance(model, str | Path):
        from emgd.model.runtime import OnnxModel

        loaded = OnnxModel(model)
        return loaded, loaded.contract, loaded.spec.history, loaded.identity
    runner_contract = getattr(model, "contract", None)
    chosen = contract if contract is not None else runner_contract
    if not isinstance(chosen, PreprocessContract):
        raise ModelError("evaluate_model: a runner without a .contract needs contract=")
    spec = getattr(model, "spec", None)
    n_history = history if history is not None else getattr(spec, "history", DEFAULT_HISTORY)
    identity = str(getattr(model, "identity", type(model).__name__))
    return model, chosen, int(n_history), identity


def _commander(mode: str, rest_deg: FloatArray, targets_deg: FloatArray) -> Commander | None:
    if mode == "closed_loop":
        return None
    if mode == "rest":
        return lambda hop: rest_deg
    if mode == "target":
        return lambda hop: targets_deg[hop.newest_index]
    raise ConfigError(f"history_mode = {mode!r}: must be one of {', '.join(HISTORY_MODES)}")


def _relative_pct(network: dict[str, Any], best_mae: float) -> float | None:
    """How much lower (negative) or higher the network's mean MAE is, in percent."""
    if best_mae <= 0:
        return None
    return 100.0 * (float(network["mae_mean_deg"]) - best_mae) / best_mae


def _network_at_baseline_windows(
    test: SessionStream,
    extractor: HudginsExtractor,
    hop_index: IntArray,
    predicted_deg: FloatArray,
    rest_deg: FloatArray,
) -> dict[str, Any]:
    """The network's closed-loop output scored at the baselines' usual instants.

    Those are the ends of the feature windows inside each test recording; the network's
    output there is its latest hop's (held, as the daemon holds it), or rest before its
    first hop. Same keys as :func:`emgd.offline.metrics.summarise` plus the ramp scores.
    """
    instants: list[IntArray] = []
    files: list[IntArray] = []
    for i, rec in enumerate(test.recordings):
        ends = extractor.window_ends(rec.emg.shape[0])
        instants.append(int(test.file_starts[i]) + ends)
        files.append(np.full(ends.size, i, dtype=np.int64))
    at = np.concatenate(instants)
    held = held_at(at, hop_index, predicted_deg, rest_deg)
    target = test.targets_deg[at]
    report = summarise(held, target)
    report["ramp_r"], report["ramp_r_per_file"] = ramp_scores(
        test, np.concatenate(files), held, target
    )
    return report


def gestures_at(stream: SessionStream, index: IntArray) -> tuple[list[str], FloatArray]:
    """The gesture label at each sample ``index`` of a stream, and how long it had been held.

    Returns
    -------
    (labels, held_s):
        Each sample's label (from its recording's own vocabulary) and the seconds since
        that label began within its recording (the recording's start for a one-gesture file).
    """
    labels = np.empty(index.size, dtype=object)
    held_s = np.empty(index.size)
    files = stream.file_index[index]
    for f in np.unique(files).tolist():
        rec = stream.recordings[f]
        mine = np.flatnonzero(files == f)
        offsets = index[mine] - stream.file_starts[f]
        run = rec.label_index
        changed = np.r_[True, run[1:] != run[:-1]]
        run_start = np.maximum.accumulate(np.where(changed, np.arange(run.size), 0))
        held_s[mine] = (offsets - run_start[offsets]) / stream.sample_rate_hz
        labels[mine] = rec.labels()[offsets].tolist()
    return labels.tolist(), held_s


def evaluate_model(
    model: str | Path | Runner,
    split: Split,
    *,
    contract: PreprocessContract | None = None,
    history: int | None = None,
    history_mode: HistoryMode = "closed_loop",
    baselines: bool = True,
    block_s: float = DEFAULT_REPLAY_BLOCK_S,
) -> dict[str, Any]:
    """Score a model in closed loop on a split's test side, with the baselines beside it.

    Parameters
    ----------
    model:
        A model file (loaded with :class:`~emgd.model.runtime.OnnxModel`) or any runner
        with ``infer(window (W, C), history_deg) -> (5,)``.
    split:
        One participant's train and test recordings.
    contract:
        Required for a runner that has no ``.contract``; overrides it otherwise.
    history:
        History vectors the runner expects (default: its ``.spec.history``, else 2).
    history_mode:
        What the model sees as history (see :data:`HISTORY_MODES`); ``"closed_loop"`` is
        the official score.
    baselines:
        Also fit and score the ridge and LDA baselines and "always rest" (seconds).
    block_s:
        Block length of the replay (the result does not depend on it).

    Returns
    -------
    dict
        JSON-ready: ``dataset``, ``participant``, ``model``, ``history_mode``, ``network``
        (``mae_deg`` per finger, ``mae_mean_deg``, ``r2``, ``r2_mean``, ``ramp_r``,
        ``ramp_r_per_file``, ``n`` hops, ``ms_per_hop``, ``mae_by_time_since_start_deg``,
        ``mae_by_gesture_deg`` from :func:`emgd.offline.metrics.mae_by_gesture`),
        and with ``baselines``:
        ``ridge``, ``lda``, ``rest`` (same keys, from
        :func:`emgd.offline.baselines.evaluate_baselines`), ``baseline_windows``, ``best_baseline``
        and ``network_vs_best_pct`` (negative = the network's mean MAE is lower), the
        same-hops baselines (also with both breakdowns),
        ``network_at_baseline_windows`` (the network's held output scored at the
        baselines' window ends) and ``network_at_baseline_windows_vs_best_pct``, plus
        ``calibration`` and ``seconds``.

    Raises
    ------
    ModelError
        When the split's rate or channel count is not the model's (naming both values).
    CalibrationError
        When the training side cannot be calibrated.
    """
    runner, chosen, n_history, identity = _resolve_model(model, contract, history)
    where = f"dataset {split.dataset} {split.participant}"
    n_channels, fs_hz = check_same_layout([*split.train, *split.test], where)
    chosen.check_layout(fs_hz, n_channels, where)

    started = time.perf_counter()
    calibration = calibration_from_training(split.train, chosen.filter_spec, f"{where} train")
    calibrated = time.perf_counter()

    test = build_stream(split.test, chosen.filter_spec)
    raw_uv = np.concatenate([rec.emg for rec in test.recordings], axis=0)
    pipeline = InferencePipeline(chosen, calibration.normaliser, runner, history=n_history)
    commander = _commander(history_mode, pipeline.rest_deg, test.targets_deg)
    block_frames = max(1, round(block_s * fs_hz))
    replay = replay_closed_loop(pipeline, raw_uv, commander=commander, block_frames=block_frames)
    replayed = time.perf_counter()
    if replay.newest_index.size == 0:
        raise ModelError(
            f"{where}: the test stream ({raw_uv.shape[0]} samples) is shorter than one "
            f"window ({chosen.window_samples} samples)"
        )

    predicted = pipeline.clamp(replay.angles_deg)
    target = test.targets_deg[replay.newest_index]
    network = summarise(predicted, target)
    file_of_hop = test.file_index[replay.newest_index]
    network["ramp_r"], network["ramp_r_per_file"] = ramp_scores(
        test, file_of_hop, predicted, target
    )
    network["ms_per_hop"] = MS_PER_S * (replayed - calibrated) / replay.newest_index.size
    since_start_s = (replay.newest_index - test.file_starts[file_of_hop]) / fs_hz
    network["mae_by_time_since_start_deg"] = mae_by_time_since_start(
        predicted, target, since_start_s
    )
    gestures, held_s = gestures_at(test, replay.newest_index)
    network["mae_by_gesture_deg"] = mae_by_gesture(predicted, target, gestures, held_s)

    result: dict[str, Any] = {
        "dataset": split.dataset,
        "participant": split.participant,
        "model": identity,
        "history_mode": history_mode,
        "window_samples": chosen.window_samples,
        "hop_samples": chosen.hop_samples,
        "network": network,
        "calibration": {
            "scale": calibration.normaliser.scale.tolist(),
            "offset": calibration.normaliser.offset.tolist(),
            "effort_to_rest": calibration.effort_to_rest.tolist(),
        },
    }
    seconds = {"calibration": calibrated - started, "replay": replayed - calibrated}
    if baselines:
        fitted = fit_baselines(split.train)
        base = evaluate_baselines(split.train, split.test, fitted=fitted)
        for name in ("ridge", "lda", "rest"):
            result[name] = base[name]
        held = fitted.held_at(raw_uv, fs_hz, replay.newest_index, f"{where} test stream")
        for name in ("ridge", "lda"):
            same = summarise(held[name], target)
            same["ramp_r"], same["ramp_r_per_file"] = ramp_scores(
                test, file_of_hop, held[name], target
            )
            same["mae_by_time_since_start_deg"] = mae_by_time_since_start(
                held[name], target, since_start_s
            )
            same["mae_by_gesture_deg"] = mae_by_gesture(held[name], target, gestures, held_s)
            result[f"{name}{SAME_HOPS}"] = same
        result[AT_BASELINE_WINDOWS] = _network_at_baseline_windows(
            test, fitted.extractor, replay.newest_index, predicted, pipeline.rest_deg
        )
        result["baseline_windows"] = {
            key: base[key] for key in ("window_s", "hop_s", "n_train_windows", "n_test_windows")
        }
        best = min(("ridge", "lda"), key=lambda name: float(base[name]["mae_mean_deg"]))
        best_mae = float(base[best]["mae_mean_deg"])
        result["best_baseline"] = best
        result["network_vs_best_pct"] = _relative_pct(network, best_mae)
        result["network_at_baseline_windows_vs_best_pct"] = _relative_pct(
            result[AT_BASELINE_WINDOWS], best_mae
        )
        best_same = min(
            (f"ridge{SAME_HOPS}", f"lda{SAME_HOPS}"),
            key=lambda name: float(result[name]["mae_mean_deg"]),
        )
        result["best_baseline_same_hops"] = best_same
        result["network_vs_best_same_hops_pct"] = _relative_pct(
            network, float(result[best_same]["mae_mean_deg"])
        )
        seconds["baselines"] = time.perf_counter() - replayed
    result["seconds"] = seconds
    return result


# ----------------------------------------------------------------------------- reports


def _cell(value: object, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _aligned(rows: Sequence[Sequence[str]], indent: str) -> list[str]:
    """Rows as text columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(
            [
                row[0].ljust(widths[0]),
                *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
            ]
        )
        for row in rows
    ]


def format_report(result: dict[str, Any]) -> str:
    """One participant's table: per-finger MAE, mean MAE, mean R² and ramp r per system."""
    lines = [
        f"{result['dataset']} {result['participant']}: {result['model']}, "
        f"{result['history_mode'].replace('_', ' ')}, {result['network']['n']} hops, "
        f"{result['network']['ms_per_hop']:.2f} ms/hop",
    ]
    header = ["system", *FINGERS, "MAE", "R2", "ramp r"]
    rows = [header]
    for name in SYSTEMS:
        if name not in result:
            continue
        report = result[name]
        rows.append(
            [
                SYSTEM_LABELS[name],
                *(_cell(report["mae_deg"][f], ".1f") for f in FINGERS),
                _cell(report["mae_mean_deg"], ".1f"),
                _cell(report["r2_mean"], ".2f"),
                _cell(report.get("ramp_r"), ".2f"),
            ]
        )
    lines += _aligned(rows, "  ")
    lines += [
        "  (MAE in degrees. network: every hop of the joined test stream; baselines: every",
        "  50 ms window inside each recording; 'same hops': run on the joined stream, output",
        "  held between windows, scored at the network's hops; 'baselines' windows': the",
        "  network's held output scored at the baselines' window ends)",
    ]
    lines += _since_start_rows(result)
    lines += _gesture_rows(result)
    if result.get("network_vs_best_pct") is not None:
        best = result["best_baseline"]
        lines.append(
            f"  network vs the better baseline ({SYSTEM_LABELS[best]}): "
            f"{result['network_vs_best_pct']:+.1f} % mean MAE"
        )
    if result.get("network_at_baseline_windows_vs_best_pct") is not None:
        best = result["best_baseline"]
        lines.append(
            f"  network at the baselines' windows vs the better baseline "
            f"({SYSTEM_LABELS[best]}): "
            f"{result['network_at_baseline_windows_vs_best_pct']:+.1f} % mean MAE"
        )
    if result.get("network_vs_best_same_hops_pct") is not None:
        best = result["best_baseline_same_hops"]
        lines.append(
            f"  network vs the better baseline at the same hops ({SYSTEM_LABELS[best]}): "
            f"{result['network_vs_best_same_hops_pct']:+.1f} % mean MAE"
        )
    return "\n".join(lines) + "\n"


def _since_start_rows(result: dict[str, Any]) -> list[str]:
    """Mean MAE by time since each recording began, for the systems scored at the hops."""
    key = "mae_by_time_since_start_deg"
    systems = [name for name in SYSTEMS if key in result.get(name, {})]
    if not systems:
        return []
    bins = list(result[systems[0]][key])
    rows = [["since start", *bins]]
    rows += [[SYSTEM_LABELS[n], *(_cell(result[n][key][b], ".1f") for b in bins)] for n in systems]
    lines = ["  mean MAE by time since the recording began (onset, then the steady hold):"]
    return lines + _aligned(rows, "    ")


def _gesture_rows(result: dict[str, Any]) -> list[str]:
    """Steady-hold MAE per gesture, one row per gesture, for the systems scored at the hops."""
    key = "mae_by_gesture_deg"
    systems = [name for name in SYSTEMS if key in result.get(name, {})]
    if not systems:
        return []
    names = list(result[systems[0]][key])
    rows = [["gesture", *(SYSTEM_LABELS[n] for n in systems)]]
    rows += [
        [g, *(_cell(result[n][key][g]["steady_mae_deg"], ".1f") for n in systems)] for g in names
    ]
    lines = [
        f"  mean MAE by gesture, {STEADY_FROM_S:g} s and more after it began (the steady hold):"
    ]
    return lines + _aligned(rows, "    ")


def format_summary(results: Sequence[dict[str, Any]]) -> str:
    """Mean MAE of every system, one row per participant (and their mean)."""
    systems = [name for name in SYSTEMS if all(name in r for r in results)]
    header = ["participant", *(SYSTEM_LABELS[s] for s in systems)]
    rows = [header]
    for r in results:
        rows.append([r["participant"], *(_cell(r[s]["mae_mean_deg"], ".1f") for s in systems)])
    if len(results) > 1:
        rows.append(
            [
                "mean",
                *(
                    _cell(float(np.mean([r[s]["mae_mean_deg"] for r in results])), ".1f")
                    for s in systems
                ),
            ]
        )
    return "\n".join(["mean MAE (deg)", *_aligned(rows, "  ")]) + "\n"
