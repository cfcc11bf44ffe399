"""Names the daemon's processes, so ``ps``, ``top`` and ``emgd bench`` tell them apart.

Spawned Python children all look like ``python -c from multiprocessing.spawn ...``; this
module owns giving each a short name with Linux ``prctl(PR_SET_NAME)`` (the ``comm`` field,
at most 15 bytes). Best effort: elsewhere, or if the call fails, nothing changes.
"""

from __future__ import annotations

import ctypes
import sys

PR_SET_NAME = 15
MAX_NAME_BYTES = 15


def set_process_name(name: str) -> bool:
    """Set this process's ``comm`` to ``name`` (truncated to 15 bytes); True on success."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    raw = name.encode()[:MAX_NAME_BYTES]
    return bool(libc.prctl(PR_SET_NAME, ctypes.c_char_p(raw), 0, 0, 0) == 0)
