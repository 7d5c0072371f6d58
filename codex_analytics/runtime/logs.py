"""Logging for every service: one JSON object per line when stderr is not a terminal
(for log shippers), a short human format when it is.

Structured details are fields, never text inside ``message``: pass them as
``extra={...}``; the JSON formatter makes each a top-level key of the line, the terminal
format appends them as ``key=value``. Nothing secret is ever passed to a logger in this
code base; the formatters do not try to redact, they only serialize.

The start banner (:mod:`codex_analytics.runtime.banner`) is logged on
:data:`BANNER_LOGGER`, and a one-shot command's progress and result on
:data:`REPORT_LOGGER`; both log at INFO whatever the level: what a process runs with,
and what a job did, are wanted at ``WARNING`` too.

The handler throttles the Kafka client's repeated warnings and errors
(:class:`~codex_analytics.runtime.log_repeats.RepeatLimit`): with its broker gone,
aiokafka logs the same failure tens of times a second in every service.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import threading
import time
from types import TracebackType
from typing import Any

import orjson

#: A record's own attributes (and those formatting adds): the rest are its fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}

#: Logs the start banner at INFO whatever the level of the root logger.
BANNER_LOGGER = "codex_analytics.start"
#: Logs what a one-shot command (``replay``) reports, at INFO whatever the level.
REPORT_LOGGER = "codex_analytics.report"

#: A record attribute: names of fields the terminal format leaves out (the banner's
#: full settings, which only a log shipper wants on one line).
HIDDEN_ON_TERMINAL = "_hidden_on_terminal"


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of ``record``: what the call passed as ``extra``."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(record_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


_PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class PlainFormatter(logging.Formatter):
    """The terminal format: ``time level logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__(_PLAIN_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        hidden = getattr(record, HIDDEN_ON_TERMINAL, ())
        shown = (f"{k}={_plain(v)}" for k, v in record_fields(record).items() if k not in hidden)
        return " ".join((line, *shown))


def _plain(value: object) -> str:
    """A field's value on a terminal: text as is unless it needs quotes, else JSON."""
    if isinstance(value, str) and value and not any(c.isspace() or c in '="' for c in value):
        return value
    return orjson.dumps(value, default=str).decode()


#: Loggers whose repeated warnings and errors are throttled (one per message per 10 s).
THROTTLED_LOGGERS = ("aiokafka",)


def logging_dict_config(level: str = "WARNING", *, json: bool | None = None) -> dict[str, Any]:
    """The same configuration as a ``logging.config.dictConfig`` mapping, for frameworks
    that install their own (Faust's worker takes it as ``logging_config``)."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    formatter = {"()": f"{__name__}.{'JsonFormatter' if use_json else 'PlainFormatter'}"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {
            "repeats": {
                "()": "codex_analytics.runtime.log_repeats.RepeatLimit",
                "prefixes": THROTTLED_LOGGERS,
            }
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["repeats"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
        # Propagates to the root's handler, whose own level is not checked again.
        "loggers": {
            **{name: {"level": "INFO"} for name in (BANNER_LOGGER, REPORT_LOGGER)},
            # Never below INFO, whatever the service's level: at DEBUG, aiokafka logs
            # every request it sends, SASL PLAIN's password and OAUTHBEARER's token too.
            "aiokafka": {"level": _at_least_info(level)},
        },
    }


def _at_least_info(level: str) -> str:
    named = logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
    return logging.getLevelName(max(named, logging.INFO))


def configure_logging(level: str = "WARNING", *, json: bool | None = None) -> None:
    """Configure the root logger once per process (replaces earlier handlers).

    What Python itself would write to stderr goes through it too, so that a log shipper
    reads one JSON object per line whatever happens: warnings (``py.warnings``), and an
    exception nothing caught, in the main thread or another (one ``critical`` line with
    its traceback in ``exception``)."""
    logging.root.handlers.clear()
    logging.config.dictConfig(logging_dict_config(level, json=json))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):  # Ctrl-C: Python's own way
        sys.__excepthook__(kind, error, trace)
        return
    logging.getLogger("codex_analytics").critical(
        "uncaught %s: %s", kind.__name__, error, exc_info=(kind, error, trace)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return  # a thread that exits: not an error (as Python's own hook)
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("codex_analytics").critical(
        "uncaught %s in thread %s: %s",
        args.exc_type.__name__,
        thread,
        args.exc_value,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
