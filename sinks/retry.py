"""When to try a failed batch again: which responses are worth another try, and when.

The schedule is the pipeline's one retry policy (:class:`RetryPolicy`, from
:mod:`codex_analytics.runtime.retry`) in its jittered shape; a ``Retry-After`` header,
parsed here, lengthens the wait when it asks for more than the backoff, and never
shortens it: ``Retry-After: 0`` or a date in the past leaves the backoff as it is.
"""

from __future__ import annotations

import email.utils
import time

from codex_analytics.runtime.retry import RetryPolicy

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
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date
    (0 for a date in the past; the policy's backoff still applies)."""
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


__all__ = [
    "BODY_EXCERPT_BYTES",
    "RETRYABLE_4XX",
    "RetryPolicy",
    "check_response",
    "parse_retry_after",
]
