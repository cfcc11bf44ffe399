"""Turn a training run into a shipped model: ONNX file, metadata card, Markdown model card.

After :func:`emgd.training.train.train_model`, :func:`publish` exports the network with its
preprocessing contract (:mod:`emgd.model.export`), scores it in closed loop on the split's
test side with the official scorer (:func:`emgd.offline.evaluate.evaluate_model`, baselines beside
it), and writes the card twice: as JSON in the ONNX metadata (with the training
calibration, which the daemon uses until the wearer runs ``emgd calibrate``) and as a
Markdown file next to the model. Imports torch (through export); training only.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from emgd import __version__
from emgd.calibration.store import StoredCalibration, now_text
from emgd.data.splits import Split
from emgd.model.contract import PreprocessContract
from emgd.training.settings import TrainResult


def _calibration_of(result: TrainResult) -> StoredCalibration:
    return StoredCalibration(
        offset=tuple(float(v) for v in result.normaliser.offset),
        scale=tuple(float(v) for v in result.normaliser.scale),
        sample_rate_hz=result.spec.sample_rate_hz,
        created=now_text(),
        source="model training session",
    )


def publish(
    result: TrainResult,
    split: Split,
    out_path: Path,
    *,
    seed: int,
    command: str,
    evaluate: bool = True,
    recordings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export ``result`` to ``out_path`` (+ ``.md`` card); return the card dict.

    ``recordings`` (:func:`emgd.data.bdf_reader.recordings_card`) describes the wearer's
    BDF+ files the split came from and how their labels were aligned.
    """
    from emgd.model.export import export_onnx
    from emgd.model.info import model_info_text
    from emgd.offline.evaluate import SYSTEMS, evaluate_model

    contract = PreprocessContract.for_spec(result.spec, result.filter_spec)
    card: dict[str, Any] = {
        "emgd_version": __version__,
        "created": now_text(),
        "command": command,
        "data": {
            "dataset": split.dataset,
            "participant": split.participant,
            "train_recordings": len(split.train),
            "test_recordings": len(split.test),
            **({"recordings": recordings} if recordings is not None else {}),
        },
        "seed": seed,
        "training": result.report,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "calibration": _calibration_of(result).to_dict(),
        "parameters": result.spec.parameter_count(),
        "macs_per_inference": result.spec.macs_per_inference(),
        "receptive_fields_ms": result.spec.receptive_fields_ms(),
    }
    max_diff = export_onnx(result.net, result.spec, contract, card, out_path)
    card["onnx_vs_torch_max_diff_deg"] = max_diff
    if evaluate:
        scores = evaluate_model(out_path, split)
        card["test_closed_loop"] = {
            system: scores[system] for system in SYSTEMS if system in scores
        }
        for key in (
            "best_baseline",
            "network_vs_best_pct",
            "network_at_baseline_windows_vs_best_pct",
            "best_baseline_same_hops",
            "network_vs_best_same_hops_pct",
        ):
            card[key] = scores.get(key)
        # Re-export so the metadata carries the test scores too (same weights).
        export_onnx(result.net, result.spec, contract, card, out_path)
    card_text = _markdown(card, model_info_text(result.spec, title=out_path.name), out_path)
    out_path.with_suffix(".md").write_text(card_text, encoding="utf-8")
    return card


def rewrite_card(model_path: Path) -> Path:
    """Write the Markdown card again from the card stored in the model's metadata."""
    from emgd.model.info import model_info_text
    from emgd.model.runtime import OnnxModel

    model = OnnxModel(model_path)
    text = _markdown(
        dict(model.card), model_info_text(model.spec, title=model_path.name), model_path
    )
    out = model_path.with_suffix(".md")
    out.write_text(text, encoding="utf-8")
    return out


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "—" if value is None else str(value)


def _epochs_text(training: dict[str, Any]) -> str:
    """Best epoch of the network, or of each member of an ensemble, with its validation MAE."""
    members = training.get("members")
    if not isinstance(members, list) or len(members) < 2:
        return f"best epoch {training.get('best_epoch', '—')} of {training.get('epochs_run', '—')}"
    each = "; ".join(
        f"seed {m.get('seed', '—')}: best epoch {m.get('best_epoch', '—')} of "
        f"{m.get('epochs_run', '—')}, validation {_fmt(m.get('best_val_mae_deg'))}°"
        for m in members
        if isinstance(m, dict)
    )
    return f"{len(members)} members ({each})"


def _sharpness_lines(report: object) -> list[str]:
    """The validation scores behind the chosen class sharpness (pose-mixture head)."""
    if not isinstance(report, dict) or not report.get("candidates"):
        return []
    tried = ", ".join(
        f"{_fmt(row.get('sharpness'))}: {_fmt(row.get('val_mae_deg'))}°"
        + (f" (ramp r {_fmt(row['val_ramp_r'])})" if row.get("val_ramp_r") is not None else "")
        for row in report["candidates"]
    )
    return [
        "",
        f"Class sharpness {_fmt(report.get('chosen'))}, chosen on "
        f"{report.get('scored_on', 'the validation rep')} "
        f"(closed-loop MAE per candidate: {tried}).",
    ]


def _recordings_lines(recordings: object) -> list[str]:
    """The wearer's files and the label alignment, for the Data section."""
    if not isinstance(recordings, dict):
        return []
    lines = [
        f"- from {f['file']}: {f['device']}, {f['channels']} channels at "
        f"{_fmt(f['sample_rate_hz'])} Hz, {_fmt(f['seconds'])} s, wearer {f['participant']}, "
        f"reps {', '.join(str(r) for r in f['reps'])}, {f['cues']} cues, "
        f"{f['frames_lost']} frames lost" + ("" if f["finished"] else " (unfinished)")
        for f in recordings.get("files", [])
    ]
    align = recordings.get("label_alignment", {})
    delay, rise = align.get("delay_s"), align.get("rise_s")
    found = f"onsets found for {align.get('onsets_found')} of {align.get('cues')} cues"
    if isinstance(delay, dict) and isinstance(rise, dict):
        found += (
            f"; delay after the cue median {_fmt(delay['median'])} s "
            f"(range {_fmt(delay['min'])}-{_fmt(delay['max'])} s), rise median "
            f"{_fmt(rise['median'])} s (range {_fmt(rise['min'])}-{_fmt(rise['max'])} s)"
        )
    lines.append(f"- labels aligned to the EMG: {align.get('method', '—')}; {found}")
    lines.append("- split by cue rep: the latest reps test, the last training rep validates")
    return lines


def _markdown(card: dict[str, Any], info: str, path: Path) -> str:
    lines = [
        f"# Model card: {path.name}",
        "",
        f"Made by `{card['command']}` (emgd {card['emgd_version']}, {card['created']}, "
        f"seed {card['seed']}, on {card['machine'] or 'unknown machine'}).",
        "",
        "## Data",
        "",
        f"- dataset {card['data']['dataset']}, participant {card['data']['participant']}: "
        f"{card['data']['train_recordings']} training recordings, "
        f"{card['data']['test_recordings']} test recordings",
        *_recordings_lines(card["data"].get("recordings")),
        "- trained closed loop on the training session (own outputs fed back), early stopping "
        "on its last rep; scored in closed loop on the test session with the training "
        "session's calibration (`emgd eval`)",
        "",
        "## Results (test split, closed loop)",
        "",
        "| system | MAE ° | R² | ramp r |",
        "| --- | --- | --- | --- |",
    ]
    for system, scores in card.get("test_closed_loop", {}).items():
        lines.append(
            f"| {system} | {_fmt(scores.get('mae_mean_deg'))} | {_fmt(scores.get('r2_mean'))} "
            f"| {_fmt(scores.get('ramp_r'))} |"
        )
    training = card.get("training", {})
    lines += [
        "",
        f"Training time: {_fmt(training.get('training_seconds'))} s "
        f"({training.get('torch_threads', '?')} torch threads), "
        f"{_epochs_text(training)}. "
        f"ONNX vs PyTorch max difference: {card['onnx_vs_torch_max_diff_deg']:.1e}°.",
        *_sharpness_lines(training.get("class_sharpness")),
        "",
        "## Network",
        "",
        "```",
        info,
        "```",
        "",
        "## Training report",
        "",
        "```json",
        json.dumps(training, indent=2, default=str)[:4000],
        "```",
        "",
    ]
    return "\n".join(lines)
