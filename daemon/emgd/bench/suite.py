"""What ``emgd bench`` runs, in order, and the figures it takes from each run.

This module owns the bench's plan: one measured daemon run at the chosen rate and
duration (latency per stage and end to end, compute per hop as a fraction of the hop,
samples lost, start-up time, CPU and memory of every process), the search for the
highest sampling rate sustained without a lost sample (1, 2, 4, 8, 16 kSPS, stopping at
the first that loses one), and the side-by-side micro-benchmarks (onnxruntime versus
PyTorch eager, streaming filter versus whole-window ``filtfilt``). Each daemon run goes
through an injected ``run`` function, so the plan and the arithmetic are tested without
starting anything; the report layout lives in :mod:`emgd.bench.report`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from emgd.bench.daemon_run import DaemonRunResult

#: The ADS1299's rates the search climbs (SPS per channel).
SEARCH_RATES_HZ = (1000, 2000, 4000, 8000, 16000)

RunFn = Callable[[Sequence[str], float], DaemonRunResult]


@dataclasses.dataclass(frozen=True)
class BenchPlan:
    """What to run.

    Attributes
    ----------
    duration_s:
        Length of the measured run after READY.
    sample_rate_hz, channels:
        ADC settings of the measured run.
    model_path:
        ``model.path`` for the daemon ("" = the shipped default).
    search_rates_hz, search_s:
        Rates tried by the sustained-rate search and how long each; ``search_s = 0`` skips it.
    """

    duration_s: float = 60.0
    sample_rate_hz: int = 1000
    channels: int = 8
    model_path: str = ""
    search_rates_hz: tuple[int, ...] = SEARCH_RATES_HZ
    search_s: float = 60.0

    def overrides(self, sample_rate_hz: int) -> list[str]:
        """``--set`` options of a daemon run at ``sample_rate_hz``."""
        items = [f"adc.sample_rate_hz={sample_rate_hz}", f"adc.channels={self.channels}"]
        if self.model_path:
            items.append(f"model.path={self.model_path}")
        return items


def lost_samples(status: dict[str, Any]) -> int:
    """Samples that never reached the model: lost at the chip plus overrun in the ring."""
    acq = status.get("acquisition", {})
    return int(acq.get("lost", 0)) + int(acq.get("overrun", 0))


def summarise_run(result: DaemonRunResult) -> dict[str, Any]:
    """The figures of one daemon run, from its final status and its process samples."""
    status = result.status
    acq = dict(status.get("acquisition", {}))
    latency = dict(status.get("latency_run_ms", {}))
    compute = latency.pop("compute", None)
    hop_ms = float(status.get("hop_ms", 0.0))
    fraction: dict[str, float] | None = None
    if compute is not None and hop_ms > 0:
        fraction = {k: compute[k] / hop_ms for k in ("p50", "p99", "max")}
    procs = result.processes
    return {
        "sample_rate_hz": acq.get("sample_rate_hz"),
        "ready_s": result.ready_s,
        "first_inference_s": None
        if status.get("first_inference_after_ready_s") is None
        else result.ready_s + float(status["first_inference_after_ready_s"]),
        "measured_s": result.measured_s,
        "exit_code": result.exit_code,
        "samples": {
            "frames": acq.get("frames"),
            "lost": lost_samples(status),
            "lost_at_chip": acq.get("lost"),
            "overrun": acq.get("overrun"),
            "stale": acq.get("stale"),
            "railed": acq.get("railed"),
            "invalid": acq.get("invalid"),
            "timeouts": acq.get("timeouts"),
            "achieved_rate_hz": acq.get("achieved_rate_hz"),
            # Hops whose wait for the window-completing frame gave up (hop_timing).
            "windows_late": acq.get("windows_late"),
        },
        "hop_ms": hop_ms,
        "latency_ms": latency,
        "compute_ms": compute,
        "compute_fraction_of_hop": fraction,
        "cpu_percent": {
            "total": procs.get("cpu_percent"),
            **{g: v["cpu_percent"] for g, v in procs.get("groups", {}).items()},
        },
        "memory_mib": {
            "peak_rss_sum": procs.get("peak_rss_sum_mib"),
            "peak_pss_sum": procs.get("peak_pss_sum_mib"),
            **{
                f"{g}_peak_{kind}_sum": v[f"peak_{kind}_sum_mib"]
                for g, v in procs.get("groups", {}).items()
                for kind in ("rss", "pss")
            },
        },
        "processes": procs.get("processes", []),
        "state": status.get("state"),
        "socket": status.get("socket"),
        "load": result.load,
        "faults": status.get("faults"),
        "hardware": status.get("hardware"),
        "model": status.get("model"),
    }


def compare_flood(quiet: dict[str, Any], flooded: dict[str, Any]) -> dict[str, Any]:
    """The measured run without and with a client flooding the status socket, side by side.

    Both arguments are :func:`summarise_run` results of runs with the same plan.
    """

    def figures(run: dict[str, Any]) -> dict[str, Any]:
        e2e = run["latency_ms"].get("end_to_end", {})
        socket_counters = run.get("socket") or {}
        return {
            "frames": run["samples"]["frames"],
            "lost": run["samples"]["lost"],
            "end_to_end_p50_ms": e2e.get("p50"),
            "end_to_end_p99_ms": e2e.get("p99"),
            "end_to_end_max_ms": e2e.get("max"),
            "status_server_cpu_s": socket_counters.get("cpu_s"),
            "status_server_cpu_peak_ms_per_s": socket_counters.get("cpu_peak_ms_per_s"),
            "cpu_percent_total": run["cpu_percent"].get("total"),
        }

    without, with_flood = figures(quiet), figures(flooded)
    p99_without, p99_with = without["end_to_end_p99_ms"], with_flood["end_to_end_p99_ms"]
    return {
        "without": without,
        "with": with_flood,
        "extra_lost": with_flood["lost"] - without["lost"],
        "end_to_end_p99_change_ms": None
        if p99_without is None or p99_with is None
        else p99_with - p99_without,
        "flooder": flooded.get("load"),
        "socket": flooded.get("socket"),
    }


#: A run "keeps up" when it lost at most this share of its frames, with no ring overrun
#: and the achieved rate within ACHIEVED_RATE_TOLERANCE of the set one: the loop and the
#: acquisition process have the CPU for the rate, and what was lost is the machine's
#: scheduling jitter (compare the machine floor), not a backlog.
KEEP_UP_MAX_LOST_FRACTION = 0.005
ACHIEVED_RATE_TOLERANCE = 0.01


def keeps_up(entry: dict[str, Any]) -> bool:
    """Whether a search run kept up with its rate (see ``KEEP_UP_MAX_LOST_FRACTION``)."""
    frames = entry.get("frames") or 0
    lost = entry.get("lost") or 0
    achieved = entry.get("achieved_rate_hz") or 0.0
    rate = entry["sample_rate_hz"]
    return (
        frames > 0
        and not entry.get("overrun")
        and lost <= KEEP_UP_MAX_LOST_FRACTION * (frames + lost)
        and abs(achieved - rate) <= ACHIEVED_RATE_TOLERANCE * rate
    )


def search_sustained_rate(
    rates_hz: Sequence[int],
    duration_s: float,
    run_at: Callable[[int], DaemonRunResult],
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Climb ``rates_hz`` while runs keep up; report each run's losses.

    ``highest_sustained_hz`` is the highest rate of the climb whose run lost no sample
    (None when every run lost some); ``highest_keeping_up_hz`` the highest that kept up
    (:func:`keeps_up`). The climb stops at the first rate that does not keep up.

    Returns
    -------
    dict
        ``{"duration_s", "runs": [{sample_rate_hz, lost, frames, keeps_up, ...}],
        "highest_sustained_hz", "highest_keeping_up_hz"}``.
    """
    runs: list[dict[str, Any]] = []
    lossless: int | None = None
    keeping_up: int | None = None
    for rate_hz in rates_hz:
        summary = summarise_run(run_at(rate_hz))
        samples = summary["samples"]
        entry = {
            "sample_rate_hz": rate_hz,
            "lost": samples["lost"],
            "overrun": samples["overrun"],
            "frames": samples["frames"],
            "stale": samples["stale"],
            "achieved_rate_hz": samples["achieved_rate_hz"],
            "end_to_end_p99_ms": summary["latency_ms"].get("end_to_end", {}).get("p99"),
            "compute_p99_fraction": (summary["compute_fraction_of_hop"] or {}).get("p99"),
            "cpu_percent": summary["cpu_percent"].get("total"),
        }
        entry["keeps_up"] = keeps_up(entry)
        runs.append(entry)
        if on_result is not None:
            on_result(entry)
        if not entry["keeps_up"]:
            break
        keeping_up = rate_hz
        if not samples["lost"]:
            lossless = rate_hz
    return {
        "duration_s": duration_s,
        "runs": runs,
        "highest_sustained_hz": lossless,
        "highest_keeping_up_hz": keeping_up,
    }


def run_bench(
    plan: BenchPlan,
    *,
    run: RunFn,
    inference: Callable[[], Any] | None = None,
    filters: Callable[[], Any] | None = None,
    floor: Callable[[], Any] | None = None,
    machine: Callable[[], dict[str, Any]] | None = None,
    progress: Callable[[str], None] = lambda line: None,
    flood_run: RunFn | None = None,
) -> dict[str, Any]:
    """Run the plan: the measured run, the rate search, the micro-benchmarks; judge targets.

    Parameters
    ----------
    run:
        Starts a daemon with ``--set`` overrides for a duration (:func:`run_daemon`).
    inference, filters:
        The side-by-side micro-benchmarks (skipped when None).
    floor:
        The machine's real-time floor at the plan's rate (:func:`emgd.bench.floor.measure_floor`).
    machine:
        Describes the machine (called before and after, for the load average).
    progress:
        Gets one line per step (the CLI prints them to stderr).
    flood_run:
        Like ``run`` with a client flooding the status socket; when given, the measured run
        is repeated with it and both are compared under ``"flood"`` (:func:`compare_flood`).
    """
    from emgd.bench.report import judge_targets

    plan_dict = dataclasses.asdict(plan)
    plan_dict["search_rates_hz"] = list(plan.search_rates_hz)  # JSON has no tuples
    result: dict[str, Any] = {"plan": plan_dict}
    if machine is not None:
        result["machine"] = machine()
    if inference is not None:
        progress("inference: onnxruntime vs PyTorch eager")
        result["inference"] = inference()
    if filters is not None:
        progress("filter: streaming vs whole-window filtfilt")
        result["filter"] = filters()
    if floor is not None:
        progress(f"machine floor: a bare SCHED_FIFO loop waking at {plan.sample_rate_hz} Hz")
        result["machine_floor"] = floor()
    progress(
        f"measured run: {plan.sample_rate_hz} SPS x {plan.channels} ch for {plan.duration_s:g} s"
    )
    result["run"] = summarise_run(run(plan.overrides(plan.sample_rate_hz), plan.duration_s))
    if flood_run is not None:
        progress(f"flooded run: the same for {plan.duration_s:g} s, a client flooding the socket")
        flooded = flood_run(plan.overrides(plan.sample_rate_hz), plan.duration_s)
        result["flood"] = compare_flood(result["run"], summarise_run(flooded))
    if plan.search_s > 0:
        result["rate_search"] = search_sustained_rate(
            plan.search_rates_hz,
            plan.search_s,
            lambda rate_hz: run(plan.overrides(rate_hz), plan.search_s),
            on_result=lambda r: progress(
                f"rate search: {r['sample_rate_hz']} SPS for {plan.search_s:g} s: "
                f"{r['lost']} lost of {r['frames']}, "
                + ("keeps up" if r["keeps_up"] else "falls behind")
            ),
        )
    if machine is not None:
        result["load_average_1m_after"] = machine()["load_average_1m"]
    result["targets"] = judge_targets(result)
    return result
