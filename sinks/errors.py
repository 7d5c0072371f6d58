"""The sink's errors: a small hierarchy, as httpx does it, joined to the pipeline's
vocabulary (:mod:`codex_analytics.runtime.errors`): retryable delivery errors are
``RetryableError``s (the one retry policy retries them), refusals ``PermanentError``s.

``SinkError``
├── ``SinkConfigError``          bad settings; raised at start, before anything runs
└── ``DeliveryError``            one batch could not be handed to its destination
    ├── ``RetryableDeliveryError``   try again later (``retry_after`` seconds, if known)
    │   ├── ``BackpressureError``    the endpoint asked us to slow down (429 / 503 + Retry-After)
    │   └── ``CaptureWriteError``    the capture file could not be appended to
    └── ``PermanentDeliveryError``   the endpoint refused the batch (4xx); dead-letter it

Messages never contain a credential: they are built from statuses, reasons and the
response body, which is the endpoint's and is truncated.
"""

from __future__ import annotations

from codex_analytics.runtime.errors import (
    ConfigError,
    PermanentError,
    PipelineError,
    RetryableError,
)


class SinkError(PipelineError):
    """Base class of every error the sink raises on purpose."""


class SinkConfigError(SinkError, ConfigError):
    """The sink's settings are incomplete or invalid."""


class DeliveryError(SinkError):
    """A batch was not delivered."""


class RetryableDeliveryError(DeliveryError, RetryableError):
    """A transient failure: transport error, timeout, 429 or 5xx, or a failed file write.

    ``retry_after`` is the wait the destination asked for, in seconds, when it said one.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class BackpressureError(RetryableDeliveryError):
    """The endpoint is overloaded (429, or a 5xx with ``Retry-After``): back off."""


class CaptureWriteError(RetryableDeliveryError):
    """Appending to the capture file failed (missing directory, full disk...)."""


class PermanentDeliveryError(DeliveryError, PermanentError):
    """The endpoint refused the batch for good (a 4xx other than 408 and 429)."""

    def __init__(self, message: str, *, status: int, body: bytes) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
