"""Files that are either wholly old or wholly new after a power cut: the one way we write them.

This module owns the write pattern every stored artefact uses (calibrations, installed
models and their pointer, exported models): a temporary file in the destination's folder,
written and fsynced, renamed over the destination, then the folder fsynced so the rename
itself is on disk. A reader therefore sees the previous file or the new one, never a torn
one, whatever moment the machine dies at. It must not know what the bytes mean.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

DEFAULT_FILE_MODE = 0o644  # mkstemp makes 0600; the daemon's user reads what root wrote


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries (a rename, a new file) durable; a no-op where unsupported."""
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(
    path: Path, data: bytes, *, prefix: str = ".tmp-", mode: int = DEFAULT_FILE_MODE
) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync of the folder.

    Parameters
    ----------
    path:
        The destination; its folder must exist. The temporary file lives beside it (a
        rename is only atomic within one file system) and is removed on any failure.
    data:
        The whole new content.
    prefix:
        Name prefix of the temporary file, so a store can recognise leftovers of a crash.
    mode:
        Permission bits of the new file.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_dir(path.parent)


def keep_copy(path: Path, copy: Path, *, prefix: str = ".tmp-") -> None:
    """Make ``copy`` a durable copy of ``path`` without ``path`` ever being absent.

    A hard link to a temporary name renamed over ``copy`` (so ``copy`` too is either the old
    copy or the new one); where the file system has no hard links, the bytes are copied.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=copy.parent)
    os.close(fd)
    try:
        os.unlink(tmp_name)
        try:
            os.link(path, tmp_name)
        except OSError:
            write_atomic(Path(tmp_name), path.read_bytes(), prefix=prefix)
        os.replace(tmp_name, copy)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_dir(copy.parent)
