"""A limit on log lines that repeat: a client that fails the same way many times a
second (aiokafka with its broker gone logs ~40 errors a second) must not flood the log.

``RepeatLimit`` is a ``logging.Filter`` for a handler: per logger and message template
(``record.msg``, before its arguments are filled in), the first record passes, the
repeats within ``interval_s`` are counted and dropped, and the first one after that
passes with the count of those dropped. Only warnings and errors of loggers under the
given prefixes are limited (a client's info lines, such as its group joins, are not
errors, and each says something new); the service's own lines always pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

#: Keys remembered at most; past it the oldest are forgotten (a repeat then passes).
_MAX_KEYS = 1024


class RepeatLimit(logging.Filter):
    def __init__(
        self,
        prefixes: Iterable[str],
        *,
        interval_s: float = 10.0,
        min_level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.min_level = min_level
        self.interval_s = interval_s
        self._clock = clock
        #: (logger, template) -> (when the last passing record was, repeats dropped since)
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level or not record.name.startswith(self.prefixes):
            return True
        decided: bool | None = getattr(record, "_repeat_limit", None)
        if decided is not None:  # one record, several handlers: decided once
            return decided
        record._repeat_limit = passes = self._passes(record)
        return passes

    def _passes(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            # Appended as an argument-free suffix: the template's own %-arguments stay.
            record.msg = (
                f"{record.msg} [{last[1]} like this in the last {now - last[0]:.0f} s not logged]"
            )
        if len(self._seen) >= _MAX_KEYS and key not in self._seen:
            del self._seen[next(iter(self._seen))]
        self._seen.pop(key, None)
        self._seen[key] = (now, 0)
        return True


def limit_repeats(prefixes: Iterable[str], *, interval_s: float = 10.0) -> RepeatLimit:
    """Install a ``RepeatLimit`` on every handler of the root logger; returns it."""
    limit = RepeatLimit(prefixes, interval_s=interval_s)
    for handler in logging.root.handlers:
        handler.addFilter(limit)
    return limit
