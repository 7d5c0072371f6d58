"""Logs a log shipper can use: fields, not JSON in a string; repeated lines limited with
a count that adds up; one start banner that never shows a secret."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from codex_analytics.runtime.banner import (
    SET,
    log_banner,
    readings_for,
    settings_in_effect,
    without_userinfo,
)
from codex_analytics.runtime.config import LOG_LEVEL, SETTINGS, declare, text
from codex_analytics.runtime.log_repeats import RepeatedLines
from codex_analytics.runtime.logs import (
    BANNER_LOGGER,
    HIDDEN_ON_TERMINAL,
    JsonFormatter,
    PlainFormatter,
    configure_logging,
    logging_dict_config,
)
from sinks import settings as sink_settings
from sinks.settings import BEARER_TOKEN, SINK_LOG_LEVEL

# -- a fake clock and a fake event loop timer -------------------------------------------


class FakeTimers:
    """``schedule`` for :class:`RepeatedLines`: callbacks run when the test says so."""

    def __init__(self, now: list[float]) -> None:
        self.now = now
        self.pending: list[tuple[float, Callable[[], None], _Handle]] = []

    def schedule(self, delay_s: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle()
        self.pending.append((self.now[0] + delay_s, callback, handle))
        return handle

    def advance(self, to: float) -> None:
        self.now[0] = to
        due = [p for p in self.pending if p[0] <= to]
        self.pending = [p for p in self.pending if p[0] > to]
        for _, callback, handle in due:
            if not handle.cancelled:
                callback()


class _Handle:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def fields(self, name: str) -> list[Any]:
        return [getattr(r, name, None) for r in self.records]


@pytest.fixture
def lines() -> Iterator[Lines]:
    logger = logging.getLogger("test.repeats")
    handler = Lines()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _repeats(now: list[float], timers: FakeTimers, **options: Any) -> RepeatedLines:
    return RepeatedLines(
        logging.getLogger("test.repeats"),
        10.0,
        clock=lambda: now[0],
        schedule=timers.schedule,
        **options,
    )


# -- RepeatedLines -----------------------------------------------------------------------


def test_a_thousand_repeats_are_two_lines_whose_counts_add_up(lines: Lines) -> None:
    now = [100.0]
    timers = FakeTimers(now)
    repeats = _repeats(now, timers)
    for seq in range(1000):
        now[0] = 100.0 + seq * 0.001
        repeats.warning("dropping %s", "turn", reason="no_connection", seq=seq)
    # The first at once; the rest held, with one timer for the end of the interval.
    assert [r.getMessage() for r in lines.records] == ["dropping turn"]
    assert lines.fields("repeated") == [0]
    assert len(timers.pending) == 1
    assert timers.pending[0][0] == pytest.approx(110.0)
    timers.advance(109.9)
    assert len(lines.records) == 1
    timers.advance(110.0)
    # The latest held line, late, standing for itself and the 998 before it.
    assert lines.fields("repeated") == [0, 998]
    assert lines.fields("seq") == [0, 999]
    assert lines.fields("reason") == ["no_connection", "no_connection"]
    assert sum(1 + n for n in lines.fields("repeated")) == 1000


def test_reasons_and_per_keys_are_kept_apart_ids_are_not(lines: Lines) -> None:
    now = [0.0]
    repeats = _repeats(now, FakeTimers(now))
    repeats.warning("dropped", reason="a", instance_id="i-1")
    repeats.warning("dropped", reason="a", instance_id="i-2")  # same kind: held
    repeats.warning("dropped", reason="b", instance_id="i-1")
    repeats.warning("retry", per=1)
    repeats.warning("retry", per=2)
    repeats.warning("retry", per=1)  # held
    assert [(r.getMessage(), getattr(r, "reason", None)) for r in lines.records] == [
        ("dropped", "a"),
        ("dropped", "b"),
        ("retry", None),
        ("retry", None),
    ]


def test_a_line_after_the_interval_carries_the_count_and_the_summed_fields(
    lines: Lines,
) -> None:
    now = [0.0]
    timers = FakeTimers(now)
    repeats = _repeats(now, timers, summed=("events",))
    repeats.warning("skipped (%s)", "no_token", reason="no_token", events=5)
    now[0] = 1.0
    repeats.warning("skipped (%s)", "no_token", reason="no_token", events=7)
    now[0] = 2.0
    repeats.warning("skipped (%s)", "no_token", reason="no_token", events=11)
    now[0] = 12.0  # the interval ended; this line comes before the timer would
    repeats.warning("skipped (%s)", "no_token", reason="no_token", events=1)
    assert lines.fields("repeated") == [0, 2]
    assert lines.fields("events") == [5, 7 + 11 + 1]
    timers.advance(20.0)  # the timer was cancelled: nothing held, nothing logged
    assert len(lines.records) == 2
    assert lines.records[1].getMessage() == "skipped (no_token)"


def test_flush_logs_what_is_held_and_a_level_that_is_off_counts_nothing(
    lines: Lines,
) -> None:
    now = [0.0]
    repeats = _repeats(now, FakeTimers(now), summed=("events",))
    repeats.log(logging.DEBUG, "noise")  # the logger is at INFO
    repeats.error("dead-lettered", reason="http_400", events=3)
    repeats.error("dead-lettered", reason="http_400", events=4)
    repeats.error("dead-lettered", reason="http_400", events=5)
    repeats.flush()
    repeats.flush()  # nothing more held: nothing more logged
    assert [r.levelno for r in lines.records] == [logging.ERROR, logging.ERROR]
    assert lines.fields("repeated") == [0, 1]
    assert lines.fields("events") == [3, 9]


def test_past_max_keys_the_oldest_key_is_flushed_not_lost(lines: Lines) -> None:
    now = [0.0]
    repeats = _repeats(now, FakeTimers(now), max_keys=2)
    for _ in range(3):
        repeats.warning("dropped", reason="a")
    repeats.warning("dropped", reason="b")
    repeats.warning("dropped", reason="c")  # "a" makes room: its 2 held are logged
    logged = [(getattr(r, "reason", None), r.repeated) for r in lines.records]  # type: ignore[attr-defined]
    assert logged == [("a", 0), ("b", 0), ("a", 1), ("c", 0)]


async def test_on_a_running_loop_the_held_line_comes_when_the_interval_ends(
    lines: Lines,
) -> None:
    repeats = RepeatedLines(logging.getLogger("test.repeats"), 0.05)
    for _ in range(5):
        repeats.warning("dropped", reason="a")
    assert lines.fields("repeated") == [0]
    import asyncio

    await asyncio.sleep(0.2)
    assert lines.fields("repeated") == [0, 3]


# -- formatters ----------------------------------------------------------------------------


def _record(msg: str, *args: object, **fields: Any) -> logging.LogRecord:
    record = logging.LogRecord(
        "codex_analytics.stream", logging.WARNING, __file__, 1, msg, args, None
    )
    record.__dict__.update(fields)
    return record


def test_json_lines_hold_fields_as_top_level_keys_never_json_in_the_message() -> None:
    record = _record("dropping %s", "turn", reason="r", seq=3, ids={"a": 1}, repeated=0)
    line = orjson.loads(JsonFormatter().format(record))
    assert line["message"] == "dropping turn"
    assert (line["reason"], line["seq"], line["ids"], line["repeated"]) == ("r", 3, {"a": 1}, 0)
    assert set(line) == {"ts", "level", "logger", "message", "reason", "seq", "ids", "repeated"}


def test_the_terminal_format_shows_the_fields_as_key_value() -> None:
    record = _record(
        "dropping %s",
        "turn",
        reason="r",
        seq=3,
        detail="two words",
        settings={"A": 1},
        **{HIDDEN_ON_TERMINAL: ("settings",)},
    )
    text = PlainFormatter().format(record)
    assert text.endswith(
        'WARNING codex_analytics.stream: dropping turn reason=r seq=3 detail="two words"'
    )


# -- the banner ----------------------------------------------------------------------------


def test_settings_in_effect_show_values_and_defaults_and_never_a_secret() -> None:
    password = declare("X_PASSWORD", text(), None, help="", used_by=("t",), secret=True)
    unset = declare("X_TOKEN", text(), None, help="", used_by=("t",), secret=True)
    url = declare("X_URL", text(), None, help="", used_by=("t",))
    env = {
        "X_PASSWORD": "hunter2-Zq9",
        "X_URL": "https://user:pw-Zq9@example.com:8443/backend-api/",
        "ANALYTICS_LOG_LEVEL": "info",
    }
    shown = settings_in_effect([password, unset, url, LOG_LEVEL], env)
    assert shown == {
        "X_PASSWORD": SET,
        "X_URL": "https://example.com:8443/backend-api/",
        "ANALYTICS_LOG_LEVEL": "INFO",
    }
    assert "Zq9" not in orjson.dumps(shown).decode()
    assert without_userinfo("127.0.0.1:9092,b:9092") == "127.0.0.1:9092,b:9092"


def test_a_command_reads_the_variant_made_for_it() -> None:
    readings = readings_for("sink worker", SETTINGS, sink_settings.SETTINGS)
    names = [s.name for s in readings]
    assert len(names) == len(set(names))
    assert SINK_LOG_LEVEL in readings
    assert LOG_LEVEL not in readings
    assert BEARER_TOKEN in readings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The test configures logging as a service does; it is put back afterwards."""
    root, banner = logging.getLogger(), logging.getLogger(BANNER_LOGGER)
    saved = (root.handlers[:], root.level, banner.level)
    try:
        yield
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        banner.setLevel(saved[2])


@pytest.mark.usefixtures("restore_logging")
def test_the_banner_is_one_json_line_even_at_level_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("ERROR", json=True)
    env = {"ANALYTICS_BEARER_TOKEN": "sekret-Zq9", "CODEX_ANALYTICS_EVENTS_CAPTURE_FILE": "/c"}
    log_banner("sink worker", "sink worker: ...", sink_settings.SETTINGS, env=env, group="g")
    logging.getLogger("codex_analytics.sink").warning("below the level")
    (line,) = capsys.readouterr().err.splitlines()
    banner = orjson.loads(line)
    assert (banner["logger"], banner["service"], banner["group"]) == (BANNER_LOGGER, "sink", "g")
    assert banner["version"]
    assert banner["settings"]["ANALYTICS_BEARER_TOKEN"] == SET
    assert banner["settings"]["CODEX_ANALYTICS_EVENTS_CAPTURE_FILE"] == "/c"
    assert banner["settings"]["ANALYTICS_BATCH_MAX_EVENTS"] == 500  # a default, as read
    assert "sekret" not in line


@pytest.mark.usefixtures("restore_logging")
def test_on_a_terminal_the_banner_is_one_readable_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING", json=False)
    log_banner("gateway", "gateway: POST ...", (), env={}, addr="127.0.0.1:1")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("gateway: POST ... service=gateway version=0.1.0 addr=127.0.0.1:1")


#: A process that configures logging as a service does, then lets Python report a
#: warning, an exception in a thread and one that ends the process.
_UNCAUGHT = """
import threading, warnings
from codex_analytics.runtime.logs import configure_logging
configure_logging("WARNING", json=True)
warnings.warn("old api", DeprecationWarning, stacklevel=1)
thread = threading.Thread(target=lambda: 1 / 0, name="worker-x")
thread.start()
thread.join()
raise RuntimeError("boom")
"""


def test_what_python_itself_would_print_is_a_json_line_too() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", _UNCAUGHT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = [orjson.loads(line) for line in done.stderr.splitlines()]
    assert [(line["level"], line["logger"]) for line in lines] == [
        ("warning", "py.warnings"),
        ("critical", "codex_analytics"),
        ("critical", "codex_analytics"),
    ]
    assert "old api" in lines[0]["message"]
    assert lines[1]["message"] == "uncaught ZeroDivisionError in thread worker-x: division by zero"
    assert lines[2]["message"] == "uncaught RuntimeError: boom"
    assert "Traceback" in lines[2]["exception"]


def test_the_kafka_client_never_logs_below_info_even_at_debug() -> None:
    """At DEBUG aiokafka logs each request it sends: SASL PLAIN's SaslAuthenticate holds
    the password in clear, OAUTHBEARER's the token."""
    assert logging_dict_config("DEBUG")["loggers"]["aiokafka"]["level"] == "INFO"
    assert logging_dict_config("WARNING")["loggers"]["aiokafka"]["level"] == "WARNING"
    configure_logging("DEBUG", json=True)
    try:
        assert not logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("codex_analytics.stream").isEnabledFor(logging.DEBUG)
    finally:
        configure_logging("WARNING", json=True)
