"""Logging for every service: one JSON object per line when stderr is not a terminal
(for log shippers), a short human format when it is.

Nothing secret is ever passed to a logger in this code base; the JSON formatter does
not try to redact, it only serializes.

The handler throttles the Kafka client's repeated warnings and errors
(:class:`~codex_analytics.runtime.log_repeats.RepeatLimit`): with its broker gone,
aiokafka logs the same failure tens of times a second in every service.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import time
from typing import Any

import orjson

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


_PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Loggers whose repeated warnings and errors are throttled (one per message per 10 s).
THROTTLED_LOGGERS = ("aiokafka",)


def logging_dict_config(level: str = "WARNING", *, json: bool | None = None) -> dict[str, Any]:
    """The same configuration as a ``logging.config.dictConfig`` mapping, for frameworks
    that install their own (Faust's worker takes it as ``logging_config``)."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if use_json else {"format": _PLAIN_FORMAT}
    )
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
    }


def configure_logging(level: str = "WARNING", *, json: bool | None = None) -> None:
    """Configure the root logger once per process (replaces earlier handlers)."""
    logging.root.handlers.clear()
    logging.config.dictConfig(logging_dict_config(level, json=json))
