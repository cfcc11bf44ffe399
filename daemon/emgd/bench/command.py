"""``emgd bench``: its options, and wiring the real parts into :func:`run_bench`.

This module owns the command's arguments and what each part is bound to: the daemon runs
(:func:`~emgd.bench.daemon_run.run_daemon` on the system clock), the micro-benchmarks on
the model the daemon loads, the machine description, ``--cores`` (this process's CPU
affinity, which the daemon and its children inherit). JSON goes to stdout (or ``--json
FILE``), the human table and progress lines to stderr, so ``emgd bench > bench.json``
keeps both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from emgd.bench.suite import SEARCH_RATES_HZ, BenchPlan, run_bench
from emgd.errors import ConfigError

DEFAULT_DURATION_S = 60.0
DEFAULT_SEARCH_S = 60.0
DEFAULT_RUNS = 300
DEFAULT_FLOOR_S = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=float, default=DEFAULT_DURATION_S, metavar="S",
        help=f"measured run after READY (default {DEFAULT_DURATION_S:g} s)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=int, default=1000, metavar="SPS", help="ADC rate per channel"
    )
    parser.add_argument("--channels", type=int, default=8, metavar="N", help="EMG channels")
    parser.add_argument("--model", type=Path, default=None, help="model (default: the shipped one)")
    parser.add_argument(
        "--search", type=float, default=DEFAULT_SEARCH_S, metavar="S",
        help="seconds per rate of the sustained-rate search (0: skip it)",
    )  # fmt: skip
    parser.add_argument(
        "--search-rates", default=",".join(str(r) for r in SEARCH_RATES_HZ), metavar="LIST",
        help="rates the search climbs, comma-separated",
    )  # fmt: skip
    parser.add_argument(
        "--cores", type=int, default=None, metavar="N",
        help="confine the bench and the daemon to the first N usable CPUs",
    )  # fmt: skip
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, metavar="N",
        help="timed calls of each micro-benchmark",
    )  # fmt: skip
    parser.add_argument(
        "--floor", type=float, default=DEFAULT_FLOOR_S, metavar="S",
        help="seconds of the machine's real-time floor measurement (0: skip it)",
    )  # fmt: skip
    parser.add_argument(
        "--flood", action="store_true",
        help="repeat the measured run with a client flooding the status socket (never reading)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write JSON here")


def _plan(args: argparse.Namespace) -> BenchPlan:
    try:
        rates = tuple(int(r) for r in str(args.search_rates).split(",") if r.strip())
    except ValueError:
        raise ConfigError(
            f"--search-rates {args.search_rates!r}: expected e.g. 1000,2000"
        ) from None
    if args.duration <= 0:
        raise ConfigError(f"--duration {args.duration:g}: must be > 0 s")
    if args.search < 0:
        raise ConfigError(f"--search {args.search:g}: must be >= 0 s")
    model = "" if args.model is None else str(Path(args.model).resolve())
    return BenchPlan(
        duration_s=args.duration,
        sample_rate_hz=args.rate,
        channels=args.channels,
        model_path=model,
        search_rates_hz=rates,
        search_s=args.search,
    )


def confine_to_cores(n_cores: int) -> list[int]:
    """Pin this process (and so what it starts) to the first ``n_cores`` usable CPUs."""
    usable = sorted(os.sched_getaffinity(0))
    if not 1 <= n_cores <= len(usable):
        raise ConfigError(f"--cores {n_cores}: this machine lets us use 1-{len(usable)}")
    chosen = usable[:n_cores]
    os.sched_setaffinity(0, chosen)
    return chosen


def run(args: argparse.Namespace, out: TextIO, err: TextIO | None = None) -> int:
    """The command: 0 when it ran (targets missed are in the report, not the exit code)."""
    from emgd.bench import micro
    from emgd.bench.daemon_run import run_daemon
    from emgd.bench.flood import Flooder
    from emgd.bench.floor import measure_floor
    from emgd.bench.report import machine_info, render_table
    from emgd.clock import SystemClock
    from emgd.config import load_config
    from emgd.model.runtime import OnnxModel
    from emgd.service.runner import live_contract, resolve_model_path

    err = sys.stderr if err is None else err
    plan = _plan(args)
    if args.cores is not None:
        confine_to_cores(args.cores)
    overrides = [*plan.overrides(plan.sample_rate_hz), "adc.bus=simulated", "servo.bus=simulated"]
    config = load_config(env={}, overrides=overrides)
    model_path = resolve_model_path(config)
    contract = live_contract(OnnxModel(model_path), config)
    clock = SystemClock()

    def progress(line: str) -> None:
        print(f"bench: {line}", file=err, flush=True)

    result: dict[str, Any] = run_bench(
        plan,
        run=lambda sets, duration_s: run_daemon(sets, duration_s, clock),
        inference=lambda: micro.compare_inference(model_path, runs=args.runs),
        filters=lambda: micro.compare_filters(contract, runs=args.runs),
        floor=None
        if args.floor <= 0
        else lambda: measure_floor(plan.sample_rate_hz, duration_s=args.floor),
        machine=machine_info,
        progress=progress,
        flood_run=(lambda sets, duration_s: run_daemon(sets, duration_s, clock, load=Flooder))
        if args.flood
        else None,
    )
    result["command"] = ["emgd", "bench", *sys.argv[2:]] if sys.argv[1:2] == ["bench"] else []
    text = json.dumps(result, indent=2, sort_keys=False)
    if args.json is not None:
        Path(args.json).write_text(text + "\n")
    else:
        out.write(text + "\n")
    print(render_table(result), file=err)
    return 0
