"""The text report of ``emgd model info``: a model spec and the figures that follow from it.

This module owns the wording and layout of that report: the spec's numbers, the trainable
parameter count, the multiply-accumulates per inference and each branch's dilations and
receptive field in samples and ms. It only formats what :class:`~emgd.model.spec.ModelSpec`
computes; it must not compute figures itself, read model files or import torch.
"""

from __future__ import annotations

from emgd.model.spec import HEAD_POSE_MIXTURE, BranchPlan, ModelSpec

LABEL_WIDTH = 22


def _row(label: str, value: str) -> str:
    return f"  {label:<{LABEL_WIDTH}}{value}"


def _ints(values: tuple[int, ...]) -> str:
    return " ".join(str(v) for v in values)


def _branch_table(spec: ModelSpec) -> list[str]:
    header = (
        "branch",
        "f (Hz)",
        "k",
        "stride",
        "stage-1 dilations",
        "stage-2 dilations",
        "RF (samples)",
        "RF (ms)",
        "input (samples)",
    )
    rows: list[tuple[str, ...]] = [header]
    for branch, plan in zip(spec.branches, spec.plans, strict=True):
        rows.append(
            (
                branch.name,
                "-" if branch.char_freq_hz is None else f"{branch.char_freq_hz:g}",
                str(branch.kernel),
                f"{branch.stride}/{_stage2_stride(plan)}",
                _ints(plan.stage1_dilations),
                _ints(plan.stage2_dilations),
                str(plan.receptive_field_samples),
                f"{plan.receptive_field_ms:.1f}",
                str(plan.input_samples(spec.common_length)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _stage2_stride(plan: BranchPlan) -> int:
    return next(layer.stride for layer in plan.layers if layer.stage == 2)


def _band_text(spec: ModelSpec) -> str:
    if spec.band_amplitude_s is None:
        return "none"
    return (
        f"log mean |first layer| over {1000.0 * spec.band_amplitude_s:g} ms per channel and "
        f"branch ({spec.band_feature_count} inputs, standardised)"
    )


def _output_text(spec: ModelSpec) -> str:
    if spec.head != HEAD_POSE_MIXTURE:
        lo_deg, hi_deg = spec.angle_range_deg
        return f"{spec.n_outputs} angles, {lo_deg:g} + {hi_deg - lo_deg:g}*sigmoid deg"
    classes = ", ".join(
        label if label == pose else f"{label}={pose}"
        for label, pose in zip(spec.class_labels, spec.class_poses, strict=True)
    )
    effort = "effort * " if spec.graded_effort else ""
    return (
        f"{spec.n_outputs} angles, rest + {effort}sum_k p_k * (pose_k - rest), "
        f"p = softmax({spec.class_sharpness:g} * logits) over {len(spec.class_poses)} "
        f"classes: {classes}"
    )


def _members_text(spec: ModelSpec) -> str:
    if spec.members == 1:
        return "1 (a single network)"
    return (
        f"{spec.members} networks of this shape, trained from their own seeds; the output is "
        "their per-angle median (counts below are for all of them)"
    )


def model_info_text(spec: ModelSpec, title: str | None = None) -> str:
    """Return the ``emgd model info`` report of a spec (lines end with ``\\n``).

    Parameters
    ----------
    spec:
        The model spec (e.g. read back from a model's metadata).
    title:
        First line, e.g. the model file's name (default ``"model"``).

    Returns
    -------
    str
        The spec, parameter count, MACs per inference and per-branch receptive fields.
    """
    fs = spec.sample_rate_hz
    lo_deg, hi_deg = spec.angle_range_deg
    params = spec.parameter_breakdown()
    macs = spec.macs_breakdown()
    fixed = spec.fixed_weight_count()
    stage2 = spec.stage2
    lines = [
        title or "model",
        _row(
            "sample rate",
            f"{fs:g} Hz (dilations scaled from the {spec.reference_rate_hz:g} Hz seed)",
        ),
        _row("channels", f"{spec.n_channels} (stage-1 and stage-2 weights shared by all)"),
        _row(
            "window",
            f"{spec.window_samples} samples ({spec.window_samples / fs:.3f} s; "
            f"minimum {spec.min_window_samples})",
        ),
        _row("hop", f"{spec.hop_samples} samples ({spec.hop_samples / fs:.3f} s)"),
        _row(
            "stage 2",
            f"k={stage2.kernel}, dilations {_ints(stage2.dilations)} at "
            f"{spec.reference_rate_hz:g} Hz, strides {_ints(stage2.strides)}, "
            f"{stage2.features} features",
        ),
        _row(
            "common length T",
            f"{spec.common_length} steps "
            + (
                "(most recent kept)"
                if spec.pool_s is None
                else f"(each the mean over {1000.0 * spec.pool_s:g} ms)"
            ),
        ),
        _row("band amplitudes", _band_text(spec)),
        _row(
            "history",
            f"{spec.history} angle vectors ({spec.history_inputs} inputs, "
            f"scaled from {lo_deg:g}..{hi_deg:g} deg to 0..1)",
        ),
        _row(
            "MLP",
            " -> ".join(str(n) for n in spec.mlp_sizes)
            + (f" (dropout {spec.dropout:g})" if spec.dropout > 0 else ""),
        ),
        _row("output", _output_text(spec)),
        _row("members", _members_text(spec)),
        _row(
            "parameters",
            f"{spec.parameter_count():,} (stage 1 {params['stage1']:,}, stage 2 "
            f"{params['stage2']:,}, MLP {params['mlp']:,}; plus {fixed} fixed taps)",
        ),
        _row(
            "MACs per inference",
            f"{spec.macs_per_inference():,} (stage 1 {macs['stage1']:,}, stage 2 "
            f"{macs['stage2']:,}, MLP {macs['mlp']:,})",
        ),
        "branches (stride: stage 1/stage 2; RF: receptive field of one output step)",
        *_branch_table(spec),
    ]
    return "\n".join(lines) + "\n"
