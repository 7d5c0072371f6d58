"""Limits on log lines that repeat: a retry loop must not write a line per attempt, a
stream fed bad facts must not write a line per fact, and a client that fails the same
way many times a second (aiokafka with its broker gone logs ~40 errors a second) must
not flood the log.

* :class:`LogThrottle`: at most one line per interval for each key; the first passes at
  once, the next one after the interval says how many were held back.
* :class:`RepeatedLines`: the services' per-record and per-event lines (drops, dead
  letters, skips, retries). Per logger, message template, ``reason`` field and an
  optional ``per`` key: the first line passes at once, repeats within the interval are
  held and counted, and one line (the latest repeat) is logged when the interval ends,
  with ``repeated=N``: every line stands for itself and ``N`` held back before it, so
  ``sum(1 + repeated)`` counts them all. Fields named ``summed`` add up over the lines a
  line stands for (events in skipped batches...).
* :class:`RepeatLimit`: a ``logging.Filter`` for a handler that throttles, per logger and
  message template (``record.msg``, before its arguments are filled in), the warnings
  and errors of loggers under the given prefixes (a client's info lines, such as its
  group joins, are not errors, and each says something new); the service's own lines
  always pass (they use :class:`RepeatedLines` where they repeat). A held line of a
  client is only counted: the next one that passes carries ``repeated=N``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

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


class Cancellable(Protocol):
    def cancel(self) -> None: ...


#: ``schedule(delay_s, callback)``: call ``callback`` about ``delay_s`` from now; what it
#: returns cancels that (``None``: nothing was scheduled).
Schedule = Callable[[float, Callable[[], None]], Cancellable | None]


def call_later_on_running_loop(delay_s: float, callback: Callable[[], None]) -> Cancellable | None:
    """On the running event loop; outside one, nothing (held lines then wait for the
    next line of their key, or :meth:`RepeatedLines.flush`)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.call_later(delay_s, callback)


#: What keeps lines of a :class:`RepeatedLines` apart: template, ``reason`` field, ``per``.
_Key = tuple[str, object, Hashable]


@dataclass(slots=True)
class _Held:
    """One key of :class:`RepeatedLines`: when its last line was logged, and what was
    held back since (the latest line's level, arguments and fields, the sums)."""

    since: float
    count: int = 0
    level: int = logging.WARNING
    args: tuple[object, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    timer: Cancellable | None = None


class RepeatedLines:
    """At most one line per ``interval_s`` for each kind of line of ``logger``; nothing
    held is lost: the held lines' count (``repeated``) comes with the next line, at the
    latest when the interval ends (a timer on the running loop) or at :meth:`flush`.

    Lines are kept apart by their template (``msg``, before its arguments are filled
    in), their ``reason`` field and ``per`` (a partition, say), never by an id: keys are
    few, and at most ``max_keys`` are kept (the oldest is flushed to make room)."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        *,
        summed: Collection[str] = (),
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
        schedule: Schedule = call_later_on_running_loop,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.summed = frozenset(summed)
        self.max_keys = max_keys
        self._clock = clock
        self._schedule = schedule
        self._keys: dict[_Key, _Held] = {}

    def warning(self, msg: str, *args: object, per: Hashable = None, **fields: Any) -> None:
        self.log(logging.WARNING, msg, *args, per=per, **fields)

    def error(self, msg: str, *args: object, per: Hashable = None, **fields: Any) -> None:
        self.log(logging.ERROR, msg, *args, per=per, **fields)

    def log(self, level: int, msg: str, *args: object, per: Hashable = None, **fields: Any) -> None:
        """Log ``msg % args`` with ``fields`` (JSON fields of the line), or hold it."""
        if not self.logger.isEnabledFor(level):
            return
        key: _Key = (msg, fields.get("reason"), per)
        now = self._clock()
        held = self._keys.get(key)
        if held is not None and now - held.since < self.interval_s:
            held.count += 1
            held.level, held.args, held.fields = level, args, fields
            _add(held.sums, fields, self.summed)
            if held.timer is None:
                delay = held.since + self.interval_s - now
                held.timer = self._schedule(delay, lambda: self._release(key))
            return
        sums: dict[str, float] = {}
        repeated = 0
        if held is not None:
            del self._keys[key]
            if held.timer is not None:
                held.timer.cancel()
            sums, repeated = held.sums, held.count
        _add(sums, fields, self.summed)
        if len(self._keys) >= self.max_keys:
            self._release(next(iter(self._keys)), forget=True)  # the least recently logged
        self._emit(level, msg, args, fields, sums, repeated)
        self._keys[key] = _Held(since=now)

    def flush(self) -> None:
        """Log every held line now (when the service stops)."""
        for key in list(self._keys):
            self._release(key)

    def _release(self, key: _Key, *, forget: bool = False) -> None:
        held = self._keys.pop(key, None)
        if held is None:
            return
        if held.timer is not None:
            held.timer.cancel()
        if held.count:
            # The latest held line stands for itself and the ones held before it.
            self._emit(held.level, key[0], held.args, held.fields, held.sums, held.count - 1)
        if not forget:
            self._keys[key] = _Held(since=self._clock() if held.count else held.since)

    def _emit(
        self,
        level: int,
        msg: str,
        args: tuple[object, ...],
        fields: dict[str, Any],
        sums: dict[str, float],
        repeated: int,
    ) -> None:
        extra = {**fields, **sums, "repeated": repeated}
        self.logger.log(level, msg, *args, extra=extra)


def _add(sums: dict[str, float], fields: dict[str, Any], summed: frozenset[str]) -> None:
    for name in summed:
        value = fields.get(name)
        if isinstance(value, int | float):
            sums[name] = sums.get(name, 0) + value


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
        held = self._throttle.admit(key)
        if held is None:
            return False
        record.repeated = held  # a field of the line, as RepeatedLines writes it
        return True
