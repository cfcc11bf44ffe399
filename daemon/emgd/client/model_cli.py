"""``emgd model install|list|rollback``: the installed models of the controller, from the CLI.

This module owns the three commands' arguments, their output and how they tell the running
daemon (``reload`` over the status socket). The store itself (versioned files, the active
pointer, atomic writes) is :mod:`emgd.model.store`. When the daemon is not running, install
and rollback still change the active model and say that the daemon will use it at its next
start; when the daemon refuses the model, the previous active version is restored, so the
pointer never names a model the daemon rejected. It must not load models for inference or
touch hardware.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from emgd.config import Config, load_config
from emgd.errors import ModelError
from emgd.model.store import InstalledModel, ModelStore

NOT_RUN = "-"


def add_arguments(
    model_sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    config_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``install``, ``list`` and ``rollback`` to the ``emgd model`` sub-commands."""
    inst = model_sub.add_parser(
        "install", help="check a model against the config, install it and make it active"
    )
    config_options(inst)
    inst.add_argument("file", type=Path, metavar="FILE", help="an .onnx file exported by emgd")
    inst.add_argument("--socket", type=Path, default=None, help="the daemon's status socket")
    lst = model_sub.add_parser("list", help="installed models, the active one marked *")
    config_options(lst)
    lst.add_argument("--json", action="store_true", help="the entries as JSON")
    rb = model_sub.add_parser("rollback", help="make the previous (or --to N) version active")
    config_options(rb)
    rb.add_argument("--to", type=int, default=None, metavar="N", help="version to activate")
    rb.add_argument("--socket", type=Path, default=None, help="the daemon's status socket")


def run(args: argparse.Namespace, out: TextIO, socket_path: Callable[[], Path]) -> int:
    """Run ``emgd model install|list|rollback``; returns the exit code."""
    from emgd.service.runner import resolve_state_dir

    config = load_config(args.config, overrides=args.set)
    store = ModelStore(resolve_state_dir(config))
    if args.model_command == "list":
        return _list(store, out, json_output=args.json)
    store.check_writable()
    previous = store.active_version()
    if args.model_command == "install":
        entry = store.install(args.file, config)
        out.write(
            f"installed {args.file} as version {entry.version} ({entry.file}, sha256 "
            f"{entry.sha_short}) in {store.folder}; active\n"
        )
    else:
        entry = store.rollback_target(args.to)
        _check_against(entry, config)
        store.activate(entry.version)
        out.write(f"active: version {entry.version} ({entry.file}, sha256 {entry.sha_short})\n")
    if config.model.path:
        out.write(
            f"note: the config sets model.path = {config.model.path!r}, which wins over the "
            "installed model: clear it to run this one\n"
        )
    return _tell_daemon(store, previous, socket_path(), out)


def _check_against(entry: InstalledModel, config: Config) -> None:
    from emgd.model.runtime import OnnxModel

    try:
        OnnxModel(entry.path).contract.check_against(config)
    except ModelError as exc:
        raise ModelError(f"version {entry.version}: {exc}") from None


def _tell_daemon(store: ModelStore, previous: int | None, path: Path, out: TextIO) -> int:
    """``reload`` the daemon; on refusal put the previous active version back."""
    from emgd.client.status_client import DaemonUnavailable, RemoteError, StatusClient

    try:
        with StatusClient(path) as client:
            reply = client.call("reload")
    except RemoteError as exc:
        if previous is None:
            store.deactivate()
            kept = "no installed model is active (the daemon keeps its model)"
        else:
            store.activate(previous)
            kept = f"version {previous} is active again"
        raise RemoteError(exc.method, exc.code, f"{exc.remote_message}; {kept}") from None
    except DaemonUnavailable as exc:
        if type(exc) is not DaemonUnavailable:  # access denied or no answer: it is running
            raise
        out.write(f"{exc}: it will use the active model at its next start\n")
        return 0
    model = reply.get("model", {}) if isinstance(reply, dict) else {}
    identity = str(model.get("identity", "?"))
    out.write(f"daemon reloaded: now running {identity}\n")
    active = store.active()
    if active is not None and not identity.endswith("@" + active.sha256[:12]):
        # Installed and active here, yet not what the daemon runs: its config names a
        # model.path (which wins), or it keeps its models in another state directory.
        out.write(
            f"but version {active.version} (sha256 {active.sha256[:12]}) is not what it runs: "
            f"its config sets model.path, or its state directory is not {store.folder.parent}\n"
        )
        return 10
    return 0


def _list(store: ModelStore, out: TextIO, *, json_output: bool) -> int:
    entries = store.entries()
    active = store.active_version()
    if json_output:
        rows = [{**e.to_dict(), "active": e.version == active} for e in entries]
        out.write(json.dumps({"folder": str(store.folder), "models": rows}, indent=2) + "\n")
        return 0
    if not entries:
        out.write(f"no models installed in {store.folder}\n")
        return 0
    out.write(f"installed models in {store.folder} (* active)\n")
    out.write("    ver  sha256        installed                  contract        TAC test  card\n")
    for e in entries:
        mark = "*" if e.version == active else " "
        tac = NOT_RUN if e.tac_test is None else _tac_summary(e.tac_test)
        contract = f"{e.sample_rate_hz:g} Hz, {e.n_channels} ch"
        card = e.card_file or NOT_RUN
        out.write(
            f"  {mark} {e.version:3d}  {e.sha_short}  {e.installed:25s}  {contract:14s}  "
            f"{tac:8s}  {card}\n"
        )
    return 0


def _tac_summary(result: dict[str, object]) -> str:
    rate = result.get("completion_rate")
    return f"{100 * rate:.0f} %" if isinstance(rate, (int, float)) else "stored"
