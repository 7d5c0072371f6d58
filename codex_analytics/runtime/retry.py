"""The one retry policy: tenacity's exponential backoff over the ``RetryableError``
family, for the sink's deliveries and for publishing facts.

Two shapes of the same policy:

* **jittered** (the sink): full-jitter exponential backoff (``wait_random_exponential``),
  so that many sinks released at once do not return in step; retried for ever unless
  ``max_elapsed_s`` is set.
* **steady** (publishing): plain exponential backoff (50 ms doubling to 2 s) until a
  deadline the caller may move while it waits (a client's delivery timeout restarts
  when new facts arrive).

Either way a ``Retry-After`` the other side gave is honoured: the next attempt waits at
least that long (plus up to 10% jitter), capped by ``max_retry_after_s``, and never
less than the backoff would have waited: ``Retry-After: 0`` or a date in the past
cannot remove the backoff (it once let the sink loop at ~730 requests/s per partition).
The backoff itself never waits less than ``initial_s`` (full jitter starts there), and
no wait runs past the deadline.

:class:`LogThrottle` keeps a retry loop from writing a line per attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    stop_any,
    stop_never,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from codex_analytics.runtime.errors import RetryableError

#: ``time.monotonic()`` instant after which no attempt starts, read before every wait.
Deadline = Callable[[], float]


class wait_retry_after(wait_base):
    """``fallback``, or longer when the last failure carried a ``Retry-After`` that
    asks for more: the other side may ask us to slow down, never to stop backing off."""

    def __init__(self, fallback: wait_base, max_retry_after_s: float) -> None:
        self.fallback = fallback
        self.max_retry_after_s = max_retry_after_s

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = float(self.fallback(retry_state))
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is None:
            return backoff
        base = min(max(0.0, float(retry_after)), self.max_retry_after_s)
        return max(backoff, base + random.uniform(0, min(base * 0.1, 1.0)))


class wait_within(wait_base):
    """``inner``, but never past ``deadline()``."""

    def __init__(self, inner: wait_base, deadline: Deadline) -> None:
        self.inner = inner
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> float:
        return max(0.0, min(self.inner(retry_state), self.deadline() - time.monotonic()))


class stop_at(stop_base):
    """Stop once ``deadline()`` has passed (the caller may move it between attempts)."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.deadline() - time.monotonic() <= 0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_s: float = 0.5
    max_s: float = 30.0
    max_retry_after_s: float = 300.0
    #: Give up after this long; ``None`` retries for ever (the sink then leaves the
    #: backlog in Kafka while the consumption of the partition is paused).
    max_elapsed_s: float | None = None
    #: Full jitter (many independent workers) or a steady doubling (one caller).
    jitter: bool = True

    def wait(self) -> wait_base:
        # Both shapes wait at least ``initial_s``: full jitter drawn from 0 let a retry
        # follow its failure at once.
        backoff: wait_base = (
            wait_random_exponential(multiplier=self.initial_s, min=self.initial_s, max=self.max_s)
            if self.jitter
            else wait_exponential(multiplier=self.initial_s, min=self.initial_s, max=self.max_s)
        )
        return wait_retry_after(backoff, self.max_retry_after_s)

    def retrying(
        self,
        *,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        before_sleep: Callable[[RetryCallState], Awaitable[None] | None] | None = None,
        deadline: Deadline | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = RetryableError,
    ) -> AsyncRetrying:
        """An ``async for`` retrier: attempts until success, a non-retryable error (raised
        as is), the policy's ``max_elapsed_s`` or ``deadline`` (the last error raised)."""
        stop: stop_base = (
            stop_never if self.max_elapsed_s is None else stop_after_delay(self.max_elapsed_s)
        )
        wait = self.wait()
        if deadline is not None:
            stop = stop_any(stop, stop_at(deadline))
            wait = wait_within(wait, deadline)
        options: dict[str, Any] = {}
        if sleep is not None:
            options["sleep"] = sleep
        return AsyncRetrying(
            retry=retry_if_exception_type(retry_on),
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            reraise=True,
            **options,
        )


#: Publishing facts: 50 ms doubling to 2 s, until the caller's deadline.
PUBLISH_RETRY = RetryPolicy(initial_s=0.05, max_s=2.0, jitter=False)


class LogThrottle:
    """At most one line per ``interval_s`` for each key (a partition, a topic): a retry
    loop logs its first failure at once, then one line per interval that says how many
    it held back, instead of a line per attempt. Keys are few (one per partition or
    loop, never per record) and each holds two numbers."""

    def __init__(
        self, interval_s: float = 10.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[object, tuple[float, int]] = {}

    def admit(self, key: object) -> int | None:
        """``None`` to hold this line back; else the number held back since the last
        line of ``key`` (log it with the line)."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval_s:
            self._last[key] = (last[0], last[1] + 1)
            return None
        self._last[key] = (now, 0)
        return last[1] if last is not None else 0
