"""Tests of emgd.logsetup: journald priority prefixes, journal detection through
$JOURNAL_STREAM, the plain terminal format and the rate limiter on an injected clock."""

from __future__ import annotations

import io
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from emgd.logsetup import (
    JournalFormatter,
    RateLimitFilter,
    journal_priority,
    running_under_journal,
    setup_logging,
)

INTERVAL_S = 10.0
BURST = 3


def make_record(
    msg: str = "ring buffer overrun on channel %d",
    args: tuple[object, ...] = (3,),
    level: int = logging.WARNING,
    name: str = "emgd.acq",
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


class ManualTime:
    """A seconds clock for the rate limiter that moves only when told."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def emgd_logger() -> Iterator[logging.Logger]:
    """The ``emgd`` logger, restored to its previous state after the test."""
    logger = logging.getLogger("emgd")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handlers, level, propagate = saved
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


def journal_env_for(stream: TextIO) -> dict[str, str]:
    st = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


# --------------------------------------------------------------------------------------
# Priorities and the journal format
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
        (logging.DEBUG, 7),
        (logging.CRITICAL + 10, 2),
        (35, 4),  # between WARNING and ERROR: the lower (less severe) priority's band
        (25, 6),
        (15, 7),
        (logging.NOTSET, 7),
    ],
)
def test_journal_priority_per_level(level: int, priority: int) -> None:
    assert journal_priority(level) == priority


@pytest.mark.parametrize(
    ("level", "prefix"),
    [
        (logging.CRITICAL, "<2>"),
        (logging.ERROR, "<3>"),
        (logging.WARNING, "<4>"),
        (logging.INFO, "<6>"),
        (logging.DEBUG, "<7>"),
    ],
)
def test_journal_formatter_prefixes_the_line_with_the_priority(level: int, prefix: str) -> None:
    record = make_record(level=level)
    assert (
        JournalFormatter().format(record) == f"{prefix}emgd.acq: ring buffer overrun on channel 3"
    )


def test_journal_formatter_prefixes_every_line_of_a_traceback() -> None:
    try:
        raise RuntimeError("SPI transfer failed\nsecond line of the reason")
    except RuntimeError:
        record = logging.LogRecord(
            "emgd.runner", logging.ERROR, __file__, 1, "acquisition stopped", (), None
        )
        record.exc_info = sys.exc_info()
    text = JournalFormatter().format(record)
    lines = text.split("\n")
    assert len(lines) >= 5
    assert lines[0] == "<3>emgd.runner: acquisition stopped"
    assert lines[1] == "<3>Traceback (most recent call last):"
    assert all(line.startswith("<3>") for line in lines), text
    assert "<3>RuntimeError: SPI transfer failed" in lines
    assert lines[-1] == "<3>second line of the reason"


def test_journal_formatter_prefixes_each_line_of_a_multiline_message() -> None:
    record = make_record("channel map:\n  ch1 flexor\n  ch2 extensor", (), logging.INFO)
    assert JournalFormatter().format(record) == (
        "<6>emgd.acq: channel map:\n<6>  ch1 flexor\n<6>  ch2 extensor"
    )


def test_journal_formatter_keeps_an_empty_message_as_one_prefixed_line() -> None:
    record = logging.LogRecord("", logging.WARNING, __file__, 1, "", (), None)
    text = JournalFormatter().format(record)
    assert text.startswith("<4>")
    assert "\n" not in text


# --------------------------------------------------------------------------------------
# Detecting the journal
# --------------------------------------------------------------------------------------


def test_running_under_journal_matches_the_streams_device_and_inode(tmp_path: Path) -> None:
    with (tmp_path / "stream").open("w") as stream:
        assert running_under_journal(stream, journal_env_for(stream))


def test_running_under_journal_refuses_another_files_identity(tmp_path: Path) -> None:
    with (tmp_path / "stream").open("w") as stream, (tmp_path / "other").open("w") as other:
        assert not running_under_journal(stream, journal_env_for(other))
        st = os.fstat(stream.fileno())
        assert not running_under_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not running_under_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev + 1}:{st.st_ino}"})


@pytest.mark.parametrize("announced", ["", "garbage", "12", ":", "a:b"])
def test_running_under_journal_is_false_for_a_missing_or_malformed_variable(
    tmp_path: Path, announced: str
) -> None:
    with (tmp_path / "stream").open("w") as stream:
        env = {"JOURNAL_STREAM": announced} if announced else {}
        assert not running_under_journal(stream, env)


def test_running_under_journal_is_false_for_a_stream_without_a_descriptor() -> None:
    assert not running_under_journal(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_running_under_journal_is_false_for_a_closed_stream(tmp_path: Path) -> None:
    stream = (tmp_path / "stream").open("w")
    env = journal_env_for(stream)
    stream.close()
    assert not running_under_journal(stream, env)


def test_setup_logging_under_the_journal_writes_prefixed_lines(
    tmp_path: Path, emgd_logger: logging.Logger
) -> None:
    with (tmp_path / "journal").open("w") as stream:
        handler = setup_logging(stream=stream, env=journal_env_for(stream))
        assert isinstance(handler.formatter, JournalFormatter)
        log = logging.getLogger("emgd.pipeline")
        log.info("READY after %d ms", 420)
        log.warning("channel %d railed", 5)
        log.debug("not shown without --debug")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.exception("model step failed")
        handler.flush()
    lines = (tmp_path / "journal").read_text().splitlines()
    assert lines[0] == "<6>emgd.pipeline: READY after 420 ms"
    assert lines[1] == "<4>emgd.pipeline: channel 5 railed"
    assert lines[2] == "<3>emgd.pipeline: model step failed"
    assert lines[-1] == "<3>ZeroDivisionError: division by zero"
    assert all(line.startswith("<3>") for line in lines[2:])
    assert not any("--debug" in line for line in lines)


def test_setup_logging_with_debug_lets_debug_records_through(
    tmp_path: Path, emgd_logger: logging.Logger
) -> None:
    with (tmp_path / "journal").open("w") as stream:
        setup_logging(debug=True, stream=stream, env=journal_env_for(stream))
        logging.getLogger("emgd.x").debug("register CONFIG1 = 0x%02X", 0x96)
    assert (tmp_path / "journal").read_text() == "<7>emgd.x: register CONFIG1 = 0x96\n"


def test_setup_logging_elsewhere_uses_the_plain_format(emgd_logger: logging.Logger) -> None:
    stream = io.StringIO()
    handler = setup_logging(stream=stream, env={"JOURNAL_STREAM": "1:2"})
    assert not isinstance(handler.formatter, JournalFormatter)
    logging.getLogger("emgd.cli").warning("socket %s is stale", "/run/emgd/emgd.sock")
    line = stream.getvalue()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d WARNING emgd.cli: socket /run/emgd/emgd.sock is stale\n", line
    ), line
    assert not line.startswith("<")


def test_setup_logging_twice_keeps_one_handler_and_does_not_propagate(
    emgd_logger: logging.Logger,
) -> None:
    first = io.StringIO()
    second = io.StringIO()
    setup_logging(stream=first, env={})
    handler = setup_logging(stream=second, env={})
    assert emgd_logger.handlers == [handler]
    assert emgd_logger.propagate is False
    assert emgd_logger.level == logging.INFO
    logging.getLogger("emgd").info("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1


def test_setup_logging_attaches_a_rate_limiter(emgd_logger: logging.Logger) -> None:
    stream = io.StringIO()
    setup_logging(stream=stream, env={})
    log = logging.getLogger("emgd.acq")
    for _ in range(BURST + 5):
        log.warning("late frame")
    assert stream.getvalue().count("late frame") == BURST


# --------------------------------------------------------------------------------------
# The rate limiter
# --------------------------------------------------------------------------------------


def test_rate_limiter_passes_a_burst_then_drops_the_rest() -> None:
    clock = ManualTime()
    limiter = RateLimitFilter(interval_s=INTERVAL_S, burst=BURST, now_s=clock)
    passed = []
    for i in range(10):
        clock.now_s += 0.5
        passed.append(limiter.filter(make_record(args=(i,))))
    assert passed == [True] * BURST + [False] * (10 - BURST)


def test_rate_limiter_reports_the_suppressed_count_in_the_next_interval() -> None:
    clock = ManualTime()
    limiter = RateLimitFilter(interval_s=INTERVAL_S, burst=BURST, now_s=clock)
    for _ in range(BURST + 4):
        limiter.filter(make_record())
    clock.now_s += INTERVAL_S - 0.001
    assert not limiter.filter(make_record())  # still inside the first interval: 5 dropped
    clock.now_s += 0.001
    record = make_record()
    assert limiter.filter(record)
    assert record.getMessage() == (
        "ring buffer overrun on channel 3 (repeated 5 more times, suppressed)"
    )
    # The count restarts: the rest of this burst passes unannotated.
    for _ in range(BURST - 1):
        follow = make_record()
        assert limiter.filter(follow)
        assert follow.getMessage() == "ring buffer overrun on channel 3"


def test_rate_limiter_adds_no_note_when_nothing_was_dropped() -> None:
    clock = ManualTime()
    limiter = RateLimitFilter(interval_s=INTERVAL_S, burst=BURST, now_s=clock)
    assert limiter.filter(make_record())
    clock.now_s += INTERVAL_S
    record = make_record()
    assert limiter.filter(record)
    assert record.getMessage() == "ring buffer overrun on channel 3"


@pytest.mark.parametrize("level", [logging.ERROR, logging.CRITICAL])
def test_rate_limiter_never_drops_errors(level: int) -> None:
    limiter = RateLimitFilter(interval_s=INTERVAL_S, burst=1, now_s=ManualTime())
    assert all(limiter.filter(make_record(level=level)) for _ in range(50))


def test_rate_limiter_counts_each_template_logger_and_level_apart() -> None:
    limiter = RateLimitFilter(interval_s=INTERVAL_S, burst=1, now_s=ManualTime())
    assert limiter.filter(make_record("a %d", (1,)))
    assert not limiter.filter(make_record("a %d", (2,)))  # same template, other argument
    assert limiter.filter(make_record("b %d", (1,)))
    assert limiter.filter(make_record("a %d", (1,), name="emgd.servo"))
    assert limiter.filter(make_record("a %d", (1,), level=logging.INFO))
    assert not limiter.filter(make_record("a %d", (3,), level=logging.INFO))


def test_rate_limiter_defaults_are_a_burst_of_three_per_ten_seconds() -> None:
    clock = ManualTime()
    limiter = RateLimitFilter(now_s=clock)
    assert [limiter.filter(make_record()) for _ in range(4)] == [True, True, True, False]
    clock.now_s += 9.999
    assert not limiter.filter(make_record())
    clock.now_s += 0.001
    assert limiter.filter(make_record())
