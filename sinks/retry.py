"""When to try a failed batch again: response classification and the backoff schedule.

The schedule is tenacity's full-jitter exponential backoff (``wait_random_exponential``,
capped), except that a destination's ``Retry-After`` wins when it gave one: the next
attempt waits at least that long (plus up to 10% jitter, so that many sinks released
at once do not return in step), capped by ``max_retry_after_s``.
"""

from __future__ import annotations

import email.utils
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
    stop_never,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from .errors import (
    BackpressureError,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)

#: Statuses worth another try besides 5xx: an expired or rotated token (the sink
#: re-reads its credentials before each try), request timeout, and rate limit.
RETRYABLE_4XX = frozenset({401, 408, 429})
#: How much of a refusal's response body is kept (in the dead letter, never in logs).
BODY_EXCERPT_BYTES = 4096


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def check_response(status: int, retry_after: str | None, body: bytes) -> DeliveryError | None:
    """``None`` for a 2xx; otherwise the error that says what to do with the batch."""
    if 200 <= status < 300:
        return None
    wait = parse_retry_after(retry_after)
    message = f"events failed with status {status}"
    if status == 429 or (status >= 500 and wait is not None):
        return BackpressureError(message, retry_after=wait, status=status)
    if status >= 500 or status in RETRYABLE_4XX:
        return RetryableDeliveryError(message, retry_after=wait, status=status)
    return PermanentDeliveryError(message, status=status, body=body[:BODY_EXCERPT_BYTES])


class wait_retry_after(wait_base):
    """``Retry-After`` when the last failure carried one, else ``fallback``."""

    def __init__(self, fallback: wait_base, max_retry_after_s: float) -> None:
        self.fallback = fallback
        self.max_retry_after_s = max_retry_after_s

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            base = min(float(retry_after), self.max_retry_after_s)
            return base + random.uniform(0, min(base * 0.1, 1.0))
        return float(self.fallback(retry_state))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_s: float = 0.5
    max_s: float = 30.0
    max_retry_after_s: float = 300.0
    #: Give up (and dead-letter) after this long; ``None`` retries for ever, leaving
    #: the backlog in Kafka while the consumption of the partition is paused.
    max_elapsed_s: float | None = None

    def wait(self) -> wait_base:
        return wait_retry_after(
            wait_random_exponential(multiplier=self.initial_s, max=self.max_s),
            self.max_retry_after_s,
        )

    def retrying(
        self,
        *,
        sleep: Callable[[float], Awaitable[Any]],
        before_sleep: Callable[[RetryCallState], Awaitable[None] | None] | None = None,
    ) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception_type(RetryableDeliveryError),
            wait=self.wait(),
            stop=stop_never if self.max_elapsed_s is None else stop_after_delay(self.max_elapsed_s),
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
