"""Limits on log lines that repeat: a retry loop must not write a line per attempt, and a
client that fails the same way many times a second (aiokafka with its broker gone logs
~40 errors a second) must not flood the log.

* :class:`LogThrottle`: at most one line per interval for each key; the first passes at
  once, the next one after the interval says how many were held back.
* :class:`RepeatLimit`: a ``logging.Filter`` for a handler that throttles, per logger and
  message template (``record.msg``, before its arguments are filled in), the warnings
  and errors of loggers under the given prefixes (a client's info lines, such as its
  group joins, are not errors, and each says something new); the service's own lines
  always pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

#: Keys a throttle remembers at most; past it the oldest are forgotten (a repeat passes).
MAX_KEYS = 1024


class LogThrottle:
    """At most one line per ``interval_s`` for each key (a partition, a topic, a message
    template): the first line passes at once, the repeats within the interval are
    counted, and the first one after it passes with that count. Keys are few (never one
    per record); each holds two numbers, and at most ``max_keys`` are kept."""

    def __init__(
        self,
        interval_s: float = 10.0,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._clock = clock
        #: key -> (when the last admitted line was, lines held back since)
        self._last: dict[object, tuple[float, int]] = {}

    def admit(self, key: object) -> int | None:
        """``None`` to hold this line back; else the number held back since the last
        line of ``key`` (log it with the line)."""
        now = self._clock()
        last = self._last.pop(key, None)
        if last is not None and now - last[0] < self.interval_s:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if len(self._last) >= self.max_keys:
            del self._last[next(iter(self._last))]  # the least recently admitted
        self._last[key] = (now, 0)
        return last[1] if last is not None else 0

    def since_last(self, key: object) -> float:
        """Seconds since ``key``'s last admitted line (0 when it has none)."""
        last = self._last.get(key)
        return self._clock() - last[0] if last is not None else 0.0


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
        self._throttle = LogThrottle(interval_s, clock=clock)

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
        elapsed = self._throttle.since_last(key)
        held = self._throttle.admit(key)
        if held is None:
            return False
        if held:
            # Appended as an argument-free suffix: the template's own %-arguments stay.
            record.msg = f"{record.msg} [{held} like this in the last {elapsed:.0f} s not logged]"
        return True
