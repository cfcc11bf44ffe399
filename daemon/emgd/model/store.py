"""Installed models on disk: versioned copies in the state directory and an "active" pointer.

This module owns the folder ``<state_dir>/models/``: every ``emgd model install`` adds
``NNNN-<sha12>.onnx`` (plus ``NNNN-<sha12>.md``, the Markdown model card, when one lies
beside the source file) and an entry ``NNNN-<sha12>.json`` (sha256, date, source, contract
summary, and a ``tac_test`` field for the stored target-achievement result), keeps every
earlier version, and then points ``active.json`` at the new one. Every file is written the
same atomic way (temporary file in the same folder, fsync, rename, fsync of the folder), and
the pointer is written last, so a ``kill -9`` or a power cut at any moment leaves either the
previous active model or the new one, both complete; files of an install that did not reach
the pointer are ignored (and swept by the next install). The model is checked before anything
is written: it must load (:class:`~emgd.model.runtime.OnnxModel`) and its contract must fit
the config (:meth:`~emgd.model.contract.PreprocessContract.check_against`, the check the
daemon makes at start-up). Every problem is one :class:`~emgd.errors.ModelError` line naming
the file. This module does not talk to the daemon or decide which model the daemon runs
(:func:`emgd.runner.resolve_model_path` does).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emgd.atomic_file import fsync_dir
from emgd.atomic_file import write_atomic as _write_file
from emgd.errors import ModelError, describe_os_error
from emgd.model.contract import DaemonConfig

STORE_DIR_NAME = "models"
ACTIVE_NAME = "active.json"
ENTRY_FORMAT_VERSION = 1
SHA_SHOWN_CHARS = 12
VERSION_DIGITS = 4
TMP_PREFIX = ".install-"
_VERSIONED = re.compile(r"^(\d{4,})-([0-9a-f]{12})\.(onnx|md|json)$")

#: Called with the name of each step of an install as it completes (tests kill there).
StepHook = Callable[[str], None]
INSTALL_STEPS: tuple[str, ...] = ("checked", "model", "card", "entry", "active")


@dataclass(frozen=True)
class InstalledModel:
    """One installed version, as its entry file describes it."""

    version: int
    file: str
    sha256: str
    installed: str
    source: str
    sample_rate_hz: float
    n_channels: int
    card_file: str | None
    tac_test: dict[str, Any] | None
    path: Path

    @property
    def sha_short(self) -> str:
        return self.sha256[:SHA_SHOWN_CHARS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ENTRY_FORMAT_VERSION,
            "version": self.version,
            "file": self.file,
            "sha256": self.sha256,
            "installed": self.installed,
            "source": self.source,
            "sample_rate_hz": self.sample_rate_hz,
            "n_channels": self.n_channels,
            "card_file": self.card_file,
            "tac_test": self.tac_test,
        }


def store_dir(state_dir: Path) -> Path:
    return state_dir / STORE_DIR_NAME


def sha256_of(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file: {describe_os_error(exc)}") from None


def write_atomic(path: Path, data: bytes) -> None:
    """Write one file of the store (its temporary name marks a crash's leftover)."""
    _write_file(path, data, prefix=TMP_PREFIX)


def _entry_from(path: Path) -> InstalledModel:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable model entry: {exc}") from None
    try:
        if data["format"] != ENTRY_FORMAT_VERSION:
            raise ModelError(f"{path}: entry format {data['format']!r}, expected 1")
        tac = data.get("tac_test")
        return InstalledModel(
            version=int(data["version"]),
            file=str(data["file"]),
            sha256=str(data["sha256"]),
            installed=str(data["installed"]),
            source=str(data["source"]),
            sample_rate_hz=float(data["sample_rate_hz"]),
            n_channels=int(data["n_channels"]),
            card_file=None if data.get("card_file") is None else str(data["card_file"]),
            tac_test=tac if isinstance(tac, dict) else None,
            path=path.parent / str(data["file"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: bad model entry: {exc!r}") from None


class ModelStore:
    """The installed models of one state directory.

    Parameters
    ----------
    state_dir:
        The daemon's state directory (:func:`emgd.runner.resolve_state_dir`).
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.folder = store_dir(self.state_dir)

    # -- reading ---------------------------------------------------------------------------

    def entries(self) -> list[InstalledModel]:
        """Every completely installed version, oldest first (a model file and its entry)."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            match = _VERSIONED.match(path.name)
            if match and match.group(3) == "json":
                entry = _entry_from(path)
                if entry.path.is_file():
                    found.append(entry)
        return sorted(found, key=lambda e: e.version)

    def active_version(self) -> int | None:
        """The version ``active.json`` points at, or None when nothing is installed."""
        pointer = self.folder / ACTIVE_NAME
        try:
            data = json.loads(pointer.read_text(encoding="utf-8"))
            return int(data["version"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{pointer}: unreadable active-model pointer: {exc!r}") from None

    def active(self) -> InstalledModel | None:
        """The active installed model, its file checked against its sha256; None if none.

        Raises
        ------
        ModelError
            When the pointer names a version that is missing or whose file changed.
        """
        version = self.active_version()
        if version is None:
            return None
        entry = self._by_version(version)
        digest = sha256_of(entry.path)
        if digest != entry.sha256:
            raise ModelError(
                f"{entry.path}: sha256 {digest[:SHA_SHOWN_CHARS]} does not match the installed "
                f"{entry.sha_short}: the file changed since it was installed"
            )
        return entry

    def _by_version(self, version: int) -> InstalledModel:
        for entry in self.entries():
            if entry.version == version:
                return entry
        raise ModelError(f"{self.folder}: no installed model version {version}")

    # -- writing ---------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Create the folder if needed and prove a file can be made in it.

        Raises
        ------
        ModelError
            Naming the folder and the OS's reason.
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=TMP_PREFIX):
                pass
        except OSError as exc:
            raise ModelError(
                f"{self.folder}: the model store is not writable: {describe_os_error(exc)} "
                "(set daemon.state_dir or run as the emgd user)"
            ) from None

    def _sweep_unfinished(self) -> None:
        """Remove temp files and versions without an entry (installs cut short)."""
        complete = {e.file for e in self.entries()}
        complete |= {e.card_file for e in self.entries() if e.card_file}
        for path in self.folder.iterdir():
            match = _VERSIONED.match(path.name)
            unfinished = match is not None and match.group(3) != "json"
            if path.name.startswith(TMP_PREFIX) or (unfinished and path.name not in complete):
                with contextlib.suppress(OSError):
                    path.unlink()

    def _next_version(self) -> int:
        numbers = [0]
        for path in self.folder.iterdir():
            match = _VERSIONED.match(path.name)
            if match:
                numbers.append(int(match.group(1)))
        return max(numbers) + 1

    def install(
        self, source: Path, config: DaemonConfig, *, on_step: StepHook | None = None
    ) -> InstalledModel:
        """Check ``source`` against ``config``, copy it in under the next version, make it
        active; returns the new entry.

        Raises
        ------
        ModelError
            The file is unreadable or not an emgd model, its contract does not fit the
            config (naming both values), or the store cannot be written. Nothing is changed.
        """
        from emgd.model.runtime import OnnxModel

        step = on_step or (lambda name: None)
        source = Path(source)
        model = OnnxModel(source)
        try:
            model.contract.check_against(config)
        except ModelError as exc:
            raise ModelError(f"{source}: {exc}") from None
        data = source.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        step("checked")
        self.check_writable()
        self._sweep_unfinished()
        version = self._next_version()
        stem = f"{version:0{VERSION_DIGITS}d}-{digest[:SHA_SHOWN_CHARS]}"
        try:
            write_atomic(self.folder / f"{stem}.onnx", data)
            step("model")
            card_source = source.with_suffix(".md")
            card_file = None
            if card_source.is_file():
                card_file = f"{stem}.md"
                write_atomic(self.folder / card_file, card_source.read_bytes())
            step("card")
            entry = InstalledModel(
                version=version,
                file=f"{stem}.onnx",
                sha256=digest,
                installed=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                source=str(source.resolve()),
                sample_rate_hz=model.contract.sample_rate_hz,
                n_channels=model.contract.n_channels,
                card_file=card_file,
                tac_test=None,
                path=self.folder / f"{stem}.onnx",
            )
            text = json.dumps(entry.to_dict(), indent=2) + "\n"
            write_atomic(self.folder / f"{stem}.json", text.encode())
            step("entry")
            self.activate(version)
            step("active")
        except OSError as exc:
            raise ModelError(
                f"{self.folder}: cannot write the model store: {describe_os_error(exc)}"
            ) from None
        return entry

    def activate(self, version: int) -> InstalledModel:
        """Point ``active.json`` at an installed ``version`` (atomically)."""
        entry = self._by_version(version)
        pointer = {"version": entry.version, "file": entry.file, "sha256": entry.sha256}
        write_atomic(self.folder / ACTIVE_NAME, (json.dumps(pointer) + "\n").encode())
        return entry

    def set_tac_test(self, version: int, result: dict[str, Any]) -> Path:
        """Store a TAC test result in the entry of ``version`` (atomically); returns the
        entry file. The previous result, if any, is replaced."""
        entry = self._by_version(version)
        path = entry.path.with_suffix(".json")
        data = {**entry.to_dict(), "tac_test": result}
        try:
            write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())
        except OSError as exc:
            raise ModelError(f"{path}: TAC result not saved: {describe_os_error(exc)}") from None
        return path

    def deactivate(self) -> None:
        """Remove the pointer (the daemon falls back to the shipped default)."""
        with contextlib.suppress(FileNotFoundError):
            (self.folder / ACTIVE_NAME).unlink()
            fsync_dir(self.folder)

    def rollback_target(self, to: int | None = None) -> InstalledModel:
        """The version a rollback goes to: ``to``, or the newest one older than the active."""
        if to is not None:
            return self._by_version(to)
        active = self.active_version()
        older = [e for e in self.entries() if active is None or e.version < active]
        if not older:
            raise ModelError(
                f"{self.folder}: no installed version older than the active one "
                f"({active if active is not None else 'none'}) to roll back to"
            )
        return older[-1]
