"""The bench's report: the machine it ran on, the targets judged, a short human table.

This module owns turning the bench's JSON result into what a reader needs: a description
of the machine (CPU model, cores usable, kernel, Python, onnxruntime and numpy versions,
load average before and after, since these machines are shared), the issue's targets each
with the figure measured and whether it was met (or ``None`` when this run did not
measure it at the target's settings), and a compact table. Pure functions of dicts and
files under an injected ``/proc``; it runs nothing.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from emgd import __version__

PROC_ROOT = Path("/proc")
DASH = "—"

# --- targets on the 2-core development machines (issue 5) -------------------------------
LOSSLESS_RATE_HZ = 2000
LOSSLESS_MIN_S = 600.0
SUSTAINED_MIN_HZ = 4000
SUSTAINED_MIN_S = 60.0
LATENCY_RATE_HZ = 1000
END_TO_END_P99_MAX_MS = 5.0
COMPUTE_P99_MAX_FRACTION = 0.05
ONNX_SPEEDUP_MIN = 5.0
FILTER_RATIO_MIN = 10.0
READY_MAX_S = 2.0
MEMORY_MAX_MB = 150.0
TARGET_CHANNELS = 8
BYTES_PER_MIB = 1024 * 1024
BYTES_PER_MB = 1_000_000


def cpu_model(proc_root: Path = PROC_ROOT) -> str:
    """``model name`` (x86) or ``Model`` (Raspberry Pi) from ``cpuinfo``, else the arch."""
    try:
        text = (proc_root / "cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.machine()
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("model name", "Model", "Hardware") and value.strip():
            found.setdefault(key.strip(), value.strip())
    return found.get("Model") or found.get("model name") or found.get("Hardware") or "unknown"


def _version(module: str) -> str | None:
    try:
        imported = __import__(module)
    except ImportError:
        return None
    return str(getattr(imported, "__version__", "unknown"))


def machine_info(proc_root: Path = PROC_ROOT) -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu_model": cpu_model(proc_root),
        "arch": platform.machine(),
        "cpus_online": os.cpu_count(),
        "cpus_used": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "onnxruntime": _version("onnxruntime"),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "emgd": __version__,
        "load_average_1m": os.getloadavg()[0],
    }


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _target(
    name: str, goal: str, measured: Any, met: bool | None, note: str = ""
) -> dict[str, Any]:
    return {"name": name, "target": goal, "measured": measured, "met": met, "note": note}


def judge_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with the measured figure; ``met`` is None when not measured
    at the target's settings (e.g. latency targets are for 1 kSPS × 8 channels)."""
    run = result.get("run") or {}
    plan = result.get("plan") or {}
    rate_hz, channels = plan.get("sample_rate_hz"), plan.get("channels")
    targets: list[dict[str, Any]] = []

    lost = _get(run, "samples", "lost")
    floor = result.get("machine_floor") or {}
    floor_note = (
        f"; machine floor: a bare SCHED_FIFO loop woke more than a period late "
        f"{floor['later_than_a_period']} times in {floor['duration_s']:g} s"
        if "later_than_a_period" in floor
        else ""
    )
    at_lossless = (
        rate_hz == LOSSLESS_RATE_HZ
        and channels == TARGET_CHANNELS
        and (run.get("measured_s") or 0) >= LOSSLESS_MIN_S * 0.99
    )
    targets.append(
        _target(
            "lost samples",
            f"0 at {LOSSLESS_RATE_HZ} SPS x {TARGET_CHANNELS} ch for {LOSSLESS_MIN_S / 60:g} min",
            lost,
            (lost == 0) if at_lossless and lost is not None else None,
            ("" if at_lossless else f"this run: {rate_hz} SPS, {run.get('measured_s', 0):.0f} s")
            + floor_note,
        )
    )
    search = result.get("rate_search")
    highest = None if search is None else search.get("highest_sustained_hz")
    targets.append(
        _target(
            "highest sustained rate",
            f">= {SUSTAINED_MIN_HZ} SPS x {TARGET_CHANNELS} ch, {SUSTAINED_MIN_S:g} s without a "
            "lost sample",
            highest,
            None
            if search is None
            or channels != TARGET_CHANNELS
            or search.get("duration_s", 0) < SUSTAINED_MIN_S
            else highest is not None and highest >= SUSTAINED_MIN_HZ,
            ""
            if search is None
            else f"{search.get('duration_s'):g} s per rate; keeps up (losses at the machine's "
            f"jitter only) to {search.get('highest_keeping_up_hz')} SPS",
        )
    )
    at_latency = rate_hz == LATENCY_RATE_HZ and channels == TARGET_CHANNELS
    e2e = _get(run, "latency_ms", "end_to_end", "p99")
    targets.append(
        _target(
            "end-to-end latency p99",
            f"<= {END_TO_END_P99_MAX_MS:g} ms at {LATENCY_RATE_HZ} SPS",
            e2e,
            (e2e <= END_TO_END_P99_MAX_MS) if at_latency and e2e is not None else None,
        )
    )
    compute = _get(run, "compute_fraction_of_hop", "p99")
    targets.append(
        _target(
            "compute per hop p99",
            f"<= {COMPUTE_P99_MAX_FRACTION:.0%} of the hop at {LATENCY_RATE_HZ} SPS",
            compute,
            (compute <= COMPUTE_P99_MAX_FRACTION) if at_latency and compute is not None else None,
        )
    )
    speedup = _get(result, "inference", "speedup_p50")
    targets.append(
        _target(
            "onnxruntime vs PyTorch eager",
            f">= {ONNX_SPEEDUP_MIN:g}x faster (p50)",
            speedup,
            None if speedup is None else speedup >= ONNX_SPEEDUP_MIN,
            str(_get(result, "inference", "torch_skipped") or ""),
        )
    )
    ratio = _get(result, "filter", "ratio_p50")
    targets.append(
        _target(
            "streaming filter vs filtfilt",
            f">= {FILTER_RATIO_MIN:g}x cheaper per hop (p50)",
            ratio,
            None if ratio is None else ratio >= FILTER_RATIO_MIN,
        )
    )
    ready = run.get("ready_s")
    targets.append(
        _target(
            "start-up to READY",
            f"<= {READY_MAX_S:g} s",
            ready,
            None if ready is None else ready <= READY_MAX_S,
        )
    )
    pss_mib = _get(run, "memory_mib", "daemon_peak_pss_sum")
    pss_mb = None if pss_mib is None else pss_mib * BYTES_PER_MIB / BYTES_PER_MB
    targets.append(
        _target(
            "peak memory of the daemon",
            f"<= {MEMORY_MAX_MB:g} MB (PSS summed over its processes)",
            pss_mb,
            None if pss_mb is None else pss_mb <= MEMORY_MAX_MB,
            "RSS counts shared libraries once per process; PSS splits them. The simulated "
            "wearer's renderer is reported apart",
        )
    )
    return targets


def _num(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value}{suffix}"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return str(value)


def render_table(result: dict[str, Any]) -> str:
    """A short human summary of a bench result (the JSON holds everything)."""
    machine = result.get("machine", {})
    plan = result.get("plan", {})
    run = result.get("run") or {}
    lines = [
        f"emgd bench {machine.get('emgd', '')} on {machine.get('cpu_model', '?')}, "
        f"{len(machine.get('cpus_used', []))} of {machine.get('cpus_online', '?')} CPUs, "
        f"load {_num(machine.get('load_average_1m'))} before, "
        f"{_num(result.get('load_average_1m_after'))} after",
        f"run: {plan.get('sample_rate_hz')} SPS x {plan.get('channels')} ch, "
        f"{_num(run.get('measured_s'), 0)} s after READY ({_num(run.get('ready_s'))} s to READY, "
        f"{_num(run.get('first_inference_s'))} s to the first inference); "
        f"frames {_num(_get(run, 'samples', 'frames'))}, lost {_num(_get(run, 'samples', 'lost'))}"
        f", windows late {_num(_get(run, 'samples', 'windows_late'))}",
        "",
        f"{'latency ms':<14}{'p50':>8}{'p99':>8}{'max':>8}",
    ]
    for stage, figures in (run.get("latency_ms") or {}).items():
        lines.append(
            f"  {stage:<12}{_num(figures.get('p50')):>8}{_num(figures.get('p99')):>8}"
            f"{_num(figures.get('max')):>8}"
        )
    fraction = run.get("compute_fraction_of_hop") or {}
    lines.append(
        f"  {'compute/hop':<12}{_num(fraction.get('p50'), 3):>8}{_num(fraction.get('p99'), 3):>8}"
        f"{_num(fraction.get('max'), 3):>8}  (fraction of {_num(run.get('hop_ms'), 0)} ms)"
    )
    cpu, mem = run.get("cpu_percent") or {}, run.get("memory_mib") or {}
    lines += [
        "",
        f"CPU % of one core: daemon {_num(cpu.get('daemon'), 1)}, simulator "
        f"{_num(cpu.get('simulator'), 1)}; memory MiB (daemon): peak PSS "
        f"{_num(mem.get('daemon_peak_pss_sum'), 1)}, "
        f"peak RSS {_num(mem.get('daemon_peak_rss_sum'), 1)}",
    ]
    floor = result.get("machine_floor") or {}
    if "later_than_a_period" in floor:
        lines.append(
            f"machine floor at {floor['sample_rate_hz']:g} Hz: a bare SCHED_FIFO loop woke more "
            f"than a period late {floor['later_than_a_period']} times in "
            f"{floor['duration_s']:g} s (late p99 {floor['late_p99_us']:.0f} us, max "
            f"{floor['late_max_us']:.0f} us)"
        )
    elif floor:
        lines.append(f"machine floor: {floor.get('error')}")
    search = result.get("rate_search")
    if search:
        tried = ", ".join(
            f"{r['sample_rate_hz']}: {r['lost']} lost"
            + ("" if r.get("keeps_up") else " (falls behind)")
            for r in search["runs"]
        )
        lines.append(
            f"rate search ({search.get('duration_s'):g} s each): {tried}; lossless up to "
            f"{_num(search.get('highest_sustained_hz'))} SPS, keeps up to "
            f"{_num(search.get('highest_keeping_up_hz'))} SPS"
        )
    flood = result.get("flood")
    if flood:
        without, with_flood, sent = flood["without"], flood["with"], flood.get("flooder") or {}
        lines.append(
            f"status-socket flood ({_num(sent.get('requests_sent'))} requests never read, "
            f"{_num(sent.get('cut_offs'))} cut-offs): lost {_num(without['lost'])} without, "
            f"{_num(with_flood['lost'])} with; end-to-end p99 "
            f"{_num(without['end_to_end_p99_ms'])} / {_num(with_flood['end_to_end_p99_ms'])} ms, "
            f"max {_num(without['end_to_end_max_ms'])} / {_num(with_flood['end_to_end_max_ms'])}"
            f" ms; server CPU peak {_num(with_flood['status_server_cpu_peak_ms_per_s'], 1)} ms/s"
        )
    inference, filt = result.get("inference") or {}, result.get("filter") or {}
    if inference:
        lines.append(
            f"inference p50 ms: onnxruntime {_num(_get(inference, 'onnxruntime_ms', 'p50'), 3)}, "
            f"PyTorch eager {_num(_get(inference, 'torch_ms', 'p50'), 3)} "
            f"(x{_num(inference.get('speedup_p50'), 1)})"
        )
    if filt:
        lines.append(
            f"filter p50 ms per hop: streaming {_num(_get(filt, 'streaming_ms', 'p50'), 3)}, "
            f"whole-window filtfilt {_num(_get(filt, 'filtfilt_window_ms', 'p50'), 3)} "
            f"(x{_num(filt.get('ratio_p50'), 1)})"
        )
    lines += ["", "targets"]
    for t in result.get("targets", []):
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"  {t['name']:<30}{_num(t['measured']):>10}  {t['target']}: {verdict}")
    return "\n".join(lines)
