"""The ``emgd`` command line: argument parsing, one-line errors and documented exit codes.

Commands:

- ``emgd monitor [--simulate]``: EMG through the real ADC driver and servo commands through
  the real PCA9685 path, with a live view (what ``make run`` starts until the daemon lands);
- ``emgd calibrate [servos]``: the guided EMG calibration through the running daemon (rest,
  then each gesture), or the servo end points set interactively;
- ``emgd record [--protocol FILE] [--gestures …] [--reps N] [--out PATH]``: a guided,
  labelled BDF+ recording through the running daemon (:mod:`emgd.client.record_cli`);
- ``emgd test [--reps N] [--tolerance-deg X] [--dwell-s S] [--limit-s S] [--json]``: the
  target-achievement control test through the running daemon (:mod:`emgd.client.tac_cli`);
- ``emgd config check|show|default``: validate a config, print the effective values, print
  the commented default file;
- ``emgd model info MODEL``: the spec, receptive fields, contract and card of a model file;
- ``emgd model install FILE|list|rollback [--to N]``: the installed models
  (:mod:`emgd.client.model_cli`);
- ``emgd train --dataset D --participant P | --recordings FILE|DIR… [--quick [--from M]]``:
  train a per-user model (:mod:`emgd.training`) on a public dataset or the wearer's BDF+
  sessions (the latest cue reps test); ``--quick`` starts one network from a model;
- ``emgd eval MODEL --dataset 3dc|contraction|synthetic | --recordings FILE|DIR…``:
  closed-loop scores of a model per participant (or on the recordings' latest reps), beside
  the ridge and LDA baselines and "always rest" (``--json`` for the dict);
- ``emgd bench``: the real loop on the simulated board, measured (:mod:`emgd.bench`).

Every failure prints one line naming what and where and returns the exit code of its
error class (see :mod:`emgd.errors` and the README); ``--debug`` adds the traceback.
This module parses and dispatches; the work is done by the modules it calls.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from emgd import __version__
from emgd.errors import ConfigError, EmgdError, exit_code_for
from emgd.logsetup import setup_logging
from emgd.poses import FINGERS, GESTURE_NAMES

log = logging.getLogger("emgd.cli")

#: What --simulate means: both buses on the built-in simulators (beats every other source).
SIMULATE_OVERRIDES = ("adc.bus=simulated", "servo.bus=simulated")
SCREEN_REFRESH_S = 0.1
LINE_REFRESH_S = 1.0
CARD_VALUE_CHARS = 100  # longest model-card value printed by `emgd model info`
#: Exit code when stdout's reader closed the pipe: what a shell shows for death by SIGPIPE.
EXIT_STDOUT_CLOSED = 128 + signal.SIGPIPE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emgd", description="Myoelectric prosthetic-hand controller for the Raspberry Pi."
    )
    parser.add_argument("--version", action="version", version=f"emgd {__version__}")
    parser.add_argument("--debug", action="store_true", help="debug logs and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def config_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, help="TOML config (default: $EMGD_CONFIG)")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="SECTION.KEY=VALUE",
            help="override one option (repeatable; beats env and file)",
        )

    def recording_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--allow-unfinished",
            action="store_true",
            help="with --recordings: use the whole seconds of a session that has no end "
            "(the recorder was killed or the power cut)",
        )

    run = sub.add_parser("run", help="the controller (what systemd starts)")
    config_options(run)
    run.add_argument(
        "--simulate", action="store_true", help="the simulated board (no hardware, no files)"
    )
    run.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S s")

    st = sub.add_parser("status", help="state, rates, latencies and angles of the daemon")
    config_options(st)
    st.add_argument("--json", action="store_true", help="the status snapshot as JSON")
    st.add_argument("--watch", action="store_true", help="live view (Ctrl-C ends it)")
    st.add_argument("--socket", type=Path, default=None, help="the daemon's status socket")

    cal = sub.add_parser("calibrate", help="guided EMG calibration, or servo end points")
    config_options(cal)
    cal.add_argument(
        "target",
        nargs="?",
        choices=("emg", "servos"),
        default="emg",
        help="emg (default): rest, then each gesture; servos: end points per finger",
    )
    cal.add_argument("--socket", type=Path, default=None, help="the daemon's status socket")
    cal.add_argument(
        "--gestures",
        default=",".join(GESTURE_NAMES),
        metavar="G1,G2…",
        help=f"gestures to record (default {','.join(GESTURE_NAMES)})",
    )
    cal.add_argument("--rest-seconds", type=float, default=5.0, metavar="S", help="rest (5 s)")
    cal.add_argument("--seconds", type=float, default=4.0, metavar="S", help="each gesture (4 s)")
    cal.add_argument("--countdown", type=int, default=3, metavar="N", help="N-…-1 countdown")
    cal.add_argument("--yes", action="store_true", help="no 'press Enter' prompts (scripts)")
    cal.add_argument(
        "--fingers",
        default=",".join(FINGERS),
        metavar="F1,F2…",
        help="servos: fingers to set (default all five)",
    )

    rec = sub.add_parser("record", help="guided, labelled BDF+ recording through the daemon")
    config_options(rec)
    rec.add_argument("--socket", type=Path, default=None, help="the daemon's status socket")
    rec.add_argument("--protocol", type=Path, default=None, metavar="FILE", help="TOML protocol")
    rec.add_argument("--gestures", default=None, metavar="G1,G2…", help="gestures to cue")
    rec.add_argument("--reps", type=int, default=None, metavar="N", help="repetitions")
    rec.add_argument("--hold-seconds", type=float, default=None, metavar="S", help="each hold")
    rec.add_argument("--rest-seconds", type=float, default=None, metavar="S", help="each rest")
    rec.add_argument("--efforts", default=None, metavar="E1,E2…", help="effort levels 0-1")
    rec.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="PATH",
        help="the .bdf file (written by the daemon, so a path it may write; default: its "
        "state folder's recordings/emgd-<date>-<time>.bdf)",
    )
    rec.add_argument("--participant", default=None, help="wearer code for the file header")
    rec.add_argument("--yes", action="store_true", help="no 'press Enter' prompt (scripts)")

    tac = sub.add_parser("test", help="target-achievement control test of the running model")
    config_options(tac)
    tac.add_argument("--socket", type=Path, default=None, help="the daemon's status socket")
    tac.add_argument("--reps", type=int, default=1, metavar="N", help="rounds of targets (1)")
    tac.add_argument("--tolerance-deg", type=float, default=15.0, metavar="X", help="(15)")
    tac.add_argument("--dwell-s", type=float, default=1.0, metavar="S", help="hold (1 s)")
    tac.add_argument("--limit-s", type=float, default=15.0, metavar="S", help="per target (15 s)")
    tac.add_argument("--rest-s", type=float, default=3.0, metavar="S", help="before each (3 s)")
    tac.add_argument("--poses", default=None, metavar="P1,P2…", help="only these poses' targets")
    tac.add_argument("--json", action="store_true", help="the result as JSON, no display")

    tr = sub.add_parser("train", help="train a per-user model (needs the train extra)")
    tr_data = tr.add_mutually_exclusive_group(required=True)
    tr_data.add_argument("--dataset", choices=("3dc", "contraction", "synthetic"))
    tr_data.add_argument(
        "--recordings",
        nargs="+",
        type=Path,
        metavar="FILE|DIR",
        help="the wearer's BDF+ sessions (files, or folders of .bdf); the latest cue reps test",
    )
    tr.add_argument("--participant", help="with --dataset: e.g. Participant1, S1, seed0")
    recording_options(tr)
    tr.add_argument(
        "--quick",
        action="store_true",
        help="a usable model in minutes: one network started from --from (default the "
        "shipped model), fewer epochs",
    )
    tr.add_argument(
        "--from",
        dest="from_model",
        type=Path,
        default=None,
        metavar="MODEL",
        help="--quick: the model to start from (the wearer's previous one; default "
        "models/default.onnx)",
    )
    tr.add_argument("--datasets", type=Path, default=None, help="datasets folder")
    tr.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    tr.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="training time budget in all (default: 6 per member of the model, 18 for the "
        "recipe's three; each member gets an equal share of the time left)",
    )
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: 2, or 1 on a one-core machine; 1 per training when "
        "running two side by side)",
    )
    tr.add_argument("--no-eval", action="store_true", help="skip the test-split scoring")
    tr.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="settings",
        help="change one recipe setting (a TrainConfig field, e.g. pieces_per_recording=1, "
        "or spec.KEY for a model-spec field, e.g. spec.dropout=0.1) for an experiment; "
        "repeatable; recorded in the model card",
    )
    tr.add_argument(
        "--synthetic-recordings",
        type=int,
        default=12,
        metavar="N",
        help="synthetic only: 20 s training recordings to generate (test: a quarter)",
    )
    tr.add_argument(
        "--sample-rate",
        type=float,
        default=1000.0,
        help="synthetic only: sampling rate of the generated session (Hz)",
    )

    mon = sub.add_parser("monitor", help="live view of EMG and servo pulses, no model")
    config_options(mon)
    mon.add_argument(
        "--simulate", action="store_true", help="use the simulated board (no hardware)"
    )
    mon.add_argument(
        "--servo-source",
        choices=("intent", "sweep", "hold"),
        default=None,
        help="what the servos follow (default: intent when simulated, hold otherwise)",
    )
    mon.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S s")
    mon.add_argument(
        "--plain", action="store_true", help="one line per second instead of the full screen"
    )

    cfg = sub.add_parser("config", help="check or print configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = cfg_sub.add_parser("check", help="validate a config file")
    check.add_argument("path", type=Path, nargs="?")
    show = cfg_sub.add_parser("show", help="print every effective option")
    config_options(show)
    cfg_sub.add_parser("default", help="print the commented default config")

    model = sub.add_parser("model", help="inspect, install, list and roll back models")
    model_sub = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    info = model_sub.add_parser("info", help="spec, receptive fields, contract and card")
    info.add_argument("model", type=Path, metavar="MODEL", help="an .onnx file exported by emgd")
    from emgd.client.model_cli import add_arguments as add_model_arguments

    add_model_arguments(model_sub, config_options)

    ev = sub.add_parser("eval", help="closed-loop scores of a model beside the baselines")
    ev.add_argument("model", type=Path, metavar="MODEL", help="an .onnx file exported by emgd")
    ev_data = ev.add_mutually_exclusive_group(required=True)
    ev_data.add_argument("--dataset", choices=("3dc", "contraction", "synthetic"), help="data set")
    ev_data.add_argument(
        "--recordings",
        nargs="+",
        type=Path,
        metavar="FILE|DIR",
        help="the wearer's BDF+ sessions: scored on their latest cue reps",
    )
    recording_options(ev)
    ev.add_argument(
        "--participant",
        action="append",
        default=[],
        metavar="P",
        help="Participant1, S2, seed<k>… (repeatable; default: every participant found)",
    )
    ev.add_argument("--datasets", type=Path, default=None, metavar="DIR", help="datasets folder")
    ev.add_argument(
        "--history",
        choices=("closed_loop", "rest", "target"),
        default="closed_loop",
        help="history inputs: own outputs (default), held at rest, or true targets",
    )
    ev.add_argument("--json", action="store_true", help="print the results as JSON")

    bench = sub.add_parser(
        "bench", help="latency, lost samples, CPU and memory of the real loop, measured"
    )
    from emgd.bench.command import add_arguments as add_bench_arguments

    add_bench_arguments(bench)
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    out = sys.stdout if stdout is None else stdout
    args = build_parser().parse_args(argv)
    setup_logging(debug=args.debug)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "status":
            return _status(args, out)
        if args.command == "calibrate":
            return _calibrate(args, out)
        if args.command == "record":
            return _record(args, out)

        if args.command == "test":
            return _tac(args, out)
        if args.command == "train":
            return _train(args, out)
        if args.command == "monitor":
            return _monitor(args, out)
        if args.command == "config":
            return _config(args, out)
        if args.command == "model" and args.model_command == "info":
            return _model_info(args, out)
        if args.command == "model":
            from emgd.client.model_cli import run as run_model_command

            return run_model_command(args, out, lambda: _daemon_socket(args))
        if args.command == "eval":
            return _eval(args, out)
        if args.command == "bench":
            from emgd.bench.command import run as run_bench_command

            return run_bench_command(args, out)
    except EmgdError as exc:
        if args.debug:
            log.exception("%s", exc)
        else:
            log.error("%s", exc)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`emgd model info M | head`): no traceback, and nothing left
        # for the interpreter to flush into the closed pipe at exit. A broken pipe anywhere
        # else (the daemon's socket) is a failure like any other.
        if not _stdout_reader_gone(out):
            raise
        _silence_stdout(out)
        return EXIT_STDOUT_CLOSED
    raise AssertionError(f"unhandled command {args.command}")


def _stdout_reader_gone(out: TextIO) -> bool:
    """Whether ``out`` is the process's stdout and a pipe nobody reads any more.

    Linux reports ``POLLERR`` on the write end of a pipe once its last reader has closed it.
    """
    if out is not sys.stdout:
        return False
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _silence_stdout(out: TextIO) -> None:
    """Point the process's stdout (``out``) at /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, out.fileno())
    finally:
        os.close(devnull)


def _config(args: argparse.Namespace, out: TextIO) -> int:
    from emgd.config import default_config_text, describe_options, load_config

    if args.config_command == "default":
        out.write(default_config_text())
        return 0
    if args.config_command == "check":
        config = load_config(args.path)
        out.write(f"{config.source}: OK\n")
        return 0
    config = load_config(args.config, overrides=args.set)
    out.write(f"# effective configuration from {config.source}\n")
    for key, _default, _doc in describe_options():
        value: object = config
        for part in key.split("."):
            value = getattr(value, part)
        out.write(f"{key} = {value!r}\n")
    return 0


def _model_info(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from emgd.model.info import model_info_text
    from emgd.model.runtime import OnnxModel

    model = OnnxModel(args.model)
    out.write(model_info_text(model.spec, title=f"{args.model} ({model.identity})"))
    out.write(f"file: {model.size_bytes:,} bytes, exported by emgd {model.version}\n")
    out.write("contract\n")
    for line in model.contract.summary_lines():
        out.write(f"  {line}\n")
    out.write("card\n")
    card = model.card
    if not card:
        out.write("  (empty)\n")
    for key, value in card.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if len(text) > CARD_VALUE_CHARS:
            text = text[: CARD_VALUE_CHARS - 1] + "…"
        out.write(f"  {key}: {text}\n")
    return 0


def _eval(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from emgd.data.splits import load_split, participants
    from emgd.errors import DatasetError
    from emgd.model.export import json_ready
    from emgd.model.runtime import OnnxModel
    from emgd.offline.evaluate import evaluate_model, format_report, format_summary

    model = OnnxModel(args.model)
    names = list(args.participant)
    if args.recordings is not None:
        from emgd.data.splits import recordings_split

        split, _sessions = recordings_split(
            args.recordings,
            expect_channels=model.spec.n_channels,
            expect_rate_hz=model.spec.sample_rate_hz,
            allow_unfinished=args.allow_unfinished,
            expected_by=f"model {args.model}",
        )
        results = [evaluate_model(model, split, history_mode=args.history)]
        if args.json:
            out.write(json.dumps(json_ready({"model": model.identity, "results": results})))
            out.write("\n")
        else:
            out.write(format_report(results[0]) + "\n" + format_summary(results))
        return 0
    if not names:
        if args.dataset == "synthetic":
            raise DatasetError("emgd eval --dataset synthetic needs --participant seed<k>")
        names = participants(args.dataset, args.datasets)
    results = []
    for name in names:
        split = load_split(args.dataset, name, args.datasets)
        result = evaluate_model(model, split, history_mode=args.history)
        results.append(result)
        if not args.json:
            out.write(format_report(result) + "\n")
            out.flush()
    if args.json:
        out.write(json.dumps(json_ready({"model": model.identity, "results": results}), indent=2))
        out.write("\n")
    else:
        out.write(format_summary(results))
    return 0


def _run(args: argparse.Namespace) -> int:
    from emgd.config import load_config
    from emgd.service.runner import Daemon

    extra = SIMULATE_OVERRIDES if args.simulate else ()
    config = load_config(args.config, overrides=[*args.set, *extra])
    stop = _StopFlag(also_sigint=True)
    daemon = Daemon(config)
    try:
        daemon.start()
        daemon.run(lambda: stop.requested, duration_s=args.duration)
    finally:
        stop.restore()
        daemon.shutdown()
    return 0


def _daemon_socket(args: argparse.Namespace) -> Path:
    from emgd.client.status_client import socket_path
    from emgd.config import load_config

    if args.socket is not None:
        return Path(args.socket)
    config = load_config(args.config, overrides=args.set)
    path = socket_path(config.daemon.runtime_dir)
    # A daemon started by hand without root puts its socket in a per-user temp folder.
    fallback = Path(tempfile.gettempdir()) / f"emgd-{os.getuid()}" / path.name
    if not path.exists() and fallback.exists():
        path = fallback
    return path


def _tac(args: argparse.Namespace, out: TextIO) -> int:
    from emgd.client.status_client import StatusClient
    from emgd.client.tac_cli import tac_main
    from emgd.clock import SystemClock

    with StatusClient(_daemon_socket(args)) as client:
        return tac_main(
            client,
            SystemClock(),
            out,
            reps=args.reps,
            tolerance_deg=args.tolerance_deg,
            dwell_s=args.dwell_s,
            limit_s=args.limit_s,
            rest_s=args.rest_s,
            poses=None if args.poses is None else [p.strip() for p in args.poses.split(",")],
            json_output=args.json,
            tty=out.isatty(),
        )


def _calibrate(args: argparse.Namespace, out: TextIO) -> int:
    from emgd.client.calibrate_cli import calibrate_main, heartbeat, servos_main, terminal_keys
    from emgd.client.status_client import StatusClient
    from emgd.clock import SystemClock
    from emgd.config import load_config

    path = _daemon_socket(args)
    if args.target == "servos":
        fingers = [f.strip() for f in args.fingers.split(",") if f.strip()]
        unknown = [f for f in fingers if f not in FINGERS]
        if unknown or not fingers:
            raise ConfigError(f"--fingers {args.fingers!r}: choose from {', '.join(FINGERS)}")
        config = load_config(args.config, overrides=args.set)
        starts = {}
        for finger, s in zip(FINGERS, config.servo.fingers(), strict=True):
            ends = (s.min_pulse_us, s.max_pulse_us)
            starts[finger] = ends[::-1] if s.inverted else ends
        with StatusClient(path) as client:
            if sys.stdin.isatty():
                with terminal_keys(sys.stdin) as read:
                    return servos_main(client, out, read, starts, fingers=fingers)
            return servos_main(client, out, input, starts, fingers=fingers)
    gestures = [g.strip() for g in args.gestures.split(",") if g.strip()]
    if not gestures:
        raise ConfigError(f"--gestures {args.gestures!r}: name at least one gesture")
    if args.countdown < 0 or args.rest_seconds <= 0 or args.seconds <= 0:
        raise ConfigError("--countdown must be >= 0, --rest-seconds and --seconds > 0")
    with StatusClient(path) as client:
        return calibrate_main(
            client,
            SystemClock(),
            out,
            gestures=gestures,
            rest_s=args.rest_seconds,
            gesture_s=args.seconds,
            countdown_s=args.countdown,
            yes=args.yes,
            tty=out.isatty(),
            keepalive=lambda: heartbeat(lambda: StatusClient(path)),
        )


def _record(args: argparse.Namespace, out: TextIO) -> int:
    from emgd.client.record_cli import build_protocol, record_main
    from emgd.client.status_client import StatusClient
    from emgd.clock import SystemClock

    overrides: dict[str, object] = {}
    if args.gestures is not None:
        overrides["gestures"] = [g.strip() for g in args.gestures.split(",") if g.strip()]
    if args.efforts is not None:
        try:
            overrides["efforts"] = [float(e) for e in args.efforts.split(",") if e.strip()]
        except ValueError:
            raise ConfigError(
                f"--efforts {args.efforts!r}: expected numbers like 0.3,0.6"
            ) from None
    for key, value in (
        ("reps", args.reps),
        ("hold_s", args.hold_seconds),
        ("rest_s", args.rest_seconds),
    ):
        if value is not None:
            overrides[key] = value
    protocol = build_protocol(args.protocol, overrides)
    path = _daemon_socket(args)
    out_path = None if args.out is None else str(args.out.expanduser().absolute())
    with StatusClient(path) as client:
        return record_main(
            client,
            SystemClock(),
            out,
            protocol,
            path=out_path,
            participant=args.participant,
            tty=out.isatty(),
            ask=None if args.yes else input,
        )


def _train(args: argparse.Namespace, out: TextIO) -> int:
    from emgd.data.splits import find_datasets_root, load_split

    try:
        import torch
    except ImportError:
        from emgd.errors import MissingDependencyError

        raise MissingDependencyError(
            "emgd train needs the train extra: pip install 'emgd[train]' (torch==2.13.0, onnx)"
        ) from None
    from emgd.model.spec import ModelSpec
    from emgd.training.publish import publish
    from emgd.training.settings import (
        RECIPE_MINUTES_PER_MEMBER,
        config_with_settings,
        recipe_spec_for,
        spec_with_settings,
    )
    from emgd.training.train import train_model

    config = config_with_settings(args.settings)
    threads = min(2, os.cpu_count() or 1) if args.threads is None else args.threads
    if threads < 1:
        raise ConfigError(f"emgd train --threads {threads}: must be at least 1")
    torch.set_num_threads(threads)
    from emgd.errors import DatasetError

    recordings_card = None
    if args.recordings is not None:
        from emgd.data.bdf_reader import recordings_card as card_of_recordings
        from emgd.data.splits import recordings_split

        split, sessions = recordings_split(args.recordings, allow_unfinished=args.allow_unfinished)
        recordings_card = card_of_recordings(sessions)
    elif args.participant is None:
        raise DatasetError(f"emgd train --dataset {args.dataset} needs --participant")
    elif args.dataset == "synthetic":
        from emgd.data.splits import SYNTHETIC_PARTICIPANT_PREFIX, synthetic_split

        number = args.participant.removeprefix(SYNTHETIC_PARTICIPANT_PREFIX)
        if not number.isdigit():
            raise DatasetError(f"synthetic participant {args.participant!r}: expected seed<k>")
        split = synthetic_split(
            int(number),
            n_train=args.synthetic_recordings,
            n_test=max(1, args.synthetic_recordings // 4),
            sample_rate_hz=args.sample_rate,
        )
    else:
        split = load_split(args.dataset, args.participant, args.datasets or find_datasets_root())
    init = None
    spec: ModelSpec | None
    if args.quick and split.train:
        from emgd.training.quick import QUICK_MINUTES, SHIPPED_MODEL, quick_config, warm_start

        start_from = SHIPPED_MODEL if args.from_model is None else args.from_model
        init, base_spec = warm_start(start_from, split.train)
        spec = spec_with_settings(args.settings, base_spec)
        config = quick_config(config)
        minutes = QUICK_MINUTES if args.minutes is None else args.minutes
    elif args.from_model is not None:
        raise ConfigError("emgd train --from MODEL needs --quick")
    else:
        # No training recordings: no spec, and train_model says so in one line.
        spec = (
            spec_with_settings(args.settings, recipe_spec_for(split.train)) if split.train else None
        )
        members = 1 if spec is None else spec.members
        minutes = RECIPE_MINUTES_PER_MEMBER * members if args.minutes is None else args.minutes
    log.info(
        "training %s %s: %d recordings, %d member(s)%s, budget %.1f min",
        split.dataset,
        split.participant,
        len(split.train),
        1 if spec is None else spec.members,
        "" if init is None else f" started from {start_from}",
        minutes,
    )
    result = train_model(
        split, spec=spec, seed=args.seed, max_minutes=minutes, config=config, init=init
    )
    if init is not None:
        result.report["started_from"] = str(start_from)
    command = " ".join(["emgd", *sys.argv[1:]]) if sys.argv else "emgd train"
    card = publish(
        result,
        split,
        args.out,
        seed=args.seed,
        command=command,
        evaluate=not args.no_eval,
        recordings=recordings_card,
    )
    scores = card.get("test_closed_loop", {})
    for system, s in scores.items():
        out.write(
            f"{system:8s} MAE {s.get('mae_mean_deg', float('nan')):6.2f}°  "
            f"R² {s.get('r2_mean') if s.get('r2_mean') is not None else float('nan'):5.2f}\n"
        )
    out.write(f"wrote {args.out} and {args.out.with_suffix('.md')}\n")
    return 0


def _status(args: argparse.Namespace, out: TextIO) -> int:
    from emgd.client.status_view import status_main

    path = _daemon_socket(args)
    return status_main(stdout=out, socket_path=path, json_output=args.json, watch=args.watch)


def _monitor(args: argparse.Namespace, out: TextIO) -> int:
    from emgd.client.liveview import CLEAR_HOME, render_line, render_screen
    from emgd.clock import SystemClock
    from emgd.config import load_config
    from emgd.service.board import open_board
    from emgd.service.monitor import Monitor

    extra = SIMULATE_OVERRIDES if args.simulate else ()
    config = load_config(args.config, overrides=[*args.set, *extra])
    clock = SystemClock()
    board = open_board(config, clock)
    source = args.servo_source or ("intent" if board.sim is not None else "hold")
    log.info("emgd %s monitor: %s; config %s", __version__, board.description, config.source)
    log.info("servos follow: %s", source)

    stop = _StopFlag()
    full_screen = out.isatty() and not args.plain
    refresh_s = SCREEN_REFRESH_S if full_screen else LINE_REFRESH_S
    header = (
        f"emgd {__version__} monitor: {board.description}\nservos follow: {source}   (Ctrl-C stops)"
    )
    try:
        monitor = Monitor(board, clock, servo_source=source)
        monitor.start()
        next_draw = 0.0
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.requested:
            summary = monitor.hop()
            now = time.monotonic()
            if now >= next_draw:
                next_draw = now + refresh_s
                if full_screen:
                    out.write(CLEAR_HOME + render_screen(summary, header) + "\n")
                else:
                    out.write(render_line(summary) + "\n")
                out.flush()
            if deadline is not None and now >= deadline:
                break
    except KeyboardInterrupt:
        pass
    finally:
        stop.restore()
        board.close()
    stats = board.adc.stats
    log.info(
        "stopped: %d frames read, %d lost, %d stale, %d invalid, %d timeouts",
        stats.frames_read,
        stats.frames_lost,
        stats.frames_stale,
        stats.frames_invalid,
        stats.timeouts,
    )
    return 0


class _StopFlag:
    """SIGTERM (and SIGINT if asked) set a flag the loop checks, so shutdown is orderly."""

    def __init__(self, *, also_sigint: bool = False) -> None:
        self.requested = False
        self._signals = [signal.SIGTERM, *([signal.SIGINT] if also_sigint else [])]
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self._signals}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
