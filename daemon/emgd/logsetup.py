"""Logging set-up: journald priority prefixes under systemd, plain lines elsewhere, and
rate-limiting of repeated warnings.

Under systemd (stderr connected to the journal, detected through ``$JOURNAL_STREAM``) every
line, continuation lines of tracebacks included, starts with ``<N>`` (sd-daemon(3)) so
``journalctl -p warning`` works; on a terminal lines carry a time and level instead. The
rate limiter lets the first few copies of a message through per interval and then reports
how many were suppressed. This module configures logging; it logs nothing itself.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

#: Python level → syslog priority used by journald.
JOURNAL_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}

RATE_LIMIT_INTERVAL_S = 10.0
RATE_LIMIT_BURST = 3


def journal_priority(levelno: int) -> int:
    """The syslog priority for a Python log level (levels between map downwards)."""
    for level in sorted(JOURNAL_PRIORITY, reverse=True):
        if levelno >= level:
            return JOURNAL_PRIORITY[level]
    return 7


class JournalFormatter(logging.Formatter):
    """Prefix every line of a record with its ``<priority>``."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{journal_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.splitlines() or [""])


class RateLimitFilter(logging.Filter):
    """Pass at most ``burst`` records with the same message template per ``interval_s``.

    Records at ERROR and above are never dropped. When an interval ends with suppressed
    copies, the next copy carries a note saying how many were dropped.
    """

    def __init__(
        self,
        interval_s: float = RATE_LIMIT_INTERVAL_S,
        burst: int = RATE_LIMIT_BURST,
        now_s: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._burst = burst
        self._now_s = now_s
        # key → [window start, passed in window, suppressed in window]
        self._seen: dict[tuple[str, int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._now_s()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self._interval_s:
            suppressed = int(entry[2]) if entry is not None else 0
            self._seen[key] = [now, 1, 0]
            if suppressed:
                record.msg = f"{record.msg} (repeated {suppressed} more times, suppressed)"
            return True
        if entry[1] < self._burst:
            entry[1] += 1
            return True
        entry[2] += 1
        return False


def running_under_journal(stream: TextIO, env: Mapping[str, str]) -> bool:
    """True when ``stream`` is the journal stream systemd announced in ``$JOURNAL_STREAM``."""
    announced = env.get("JOURNAL_STREAM", "")
    if ":" not in announced:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    dev, _, ino = announced.partition(":")
    return f"{st.st_dev}" == dev and f"{st.st_ino}" == ino


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def setup_logging(
    *,
    debug: bool = False,
    stream: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Configure the ``emgd`` logger once; returns the handler (tests inspect it)."""
    env = os.environ if env is None else env
    handler: logging.StreamHandler[TextIO] = (
        _CurrentStderrHandler() if stream is None else logging.StreamHandler(stream)
    )
    if running_under_journal(handler.stream, env):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.addFilter(RateLimitFilter())
    logger = logging.getLogger("emgd")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False
    return handler
