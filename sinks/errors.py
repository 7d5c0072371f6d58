"""The sink's errors: a small hierarchy, as httpx does it, joined to the pipeline's
vocabulary (:mod:`codex_analytics.runtime.errors`): retryable delivery errors are
``RetryableError``s (the one retry policy retries them), refusals ``PermanentError``s.

``SinkError``
├── ``SinkConfigError``          bad settings; raised at start, before anything runs
└── ``DeliveryError``            one batch could not be handed to its destination
    ├── ``RetryableDeliveryError``   try again later (``retry_after`` seconds, if known)
    │   ├── ``BackpressureError``    the endpoint asked us to slow down (429 / 503 + Retry-After)
    │   └── ``CaptureWriteError``    the capture file could not be appended to
    ├── ``PermanentDeliveryError``   the endpoint refused the batch (4xx); dead-letter it
    ├── ``UnsendableRequestError``   the request could not even be written; dead-letter it
    └── ``CredentialError``          an account's credential is there but unusable: retried
        │                            (re-read every time) until ``credential_wait_s`` after
        │                            it began to fail, then dead-letter the batch
        ├── ``UnreadableCredentialError``  reading it failed (EACCES, EIO, EMFILE...)
        └── ``InvalidCredentialError``     it holds no token that can go in a header

Messages never contain a credential: they are built from statuses, reasons, account
ids, file names and the response body, which is the endpoint's and is truncated; an
error whose text could quote a request header is replaced by its type's name.
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


class UnsendableRequestError(DeliveryError, PermanentError):
    """The HTTP client refused to write the request (a header it cannot encode). The
    credentials are checked when they are read, so this is a bug's safety net: the
    batch is dead-lettered (``unsendable_request``) instead of retried for ever or
    crashing the sink."""

    reason = "unsendable_request"


class CredentialError(DeliveryError, RetryableError):
    """The credential of an account exists but cannot be used now. Retried with the
    batch's backoff, re-read before every try and never cached; ``since`` is when this
    source began to fail (``time.monotonic()``), shared by every batch of the account, so
    only the first batches of an outage wait ``credential_wait_s`` for it to end.
    ``reason`` is the dead letters' ``error.reason``."""

    reason = "credentials_unusable"

    def __init__(self, message: str, *, since: float) -> None:
        super().__init__(message)
        self.since = since


class UnreadableCredentialError(CredentialError):
    """Reading the account's secret failed (permissions, I/O, descriptors, a missing
    secrets directory): often transient, as during a rotation."""

    reason = "credentials_unreadable"


class InvalidCredentialError(CredentialError):
    """The account's secret holds no usable token: not a header-safe value (a control
    or non-ASCII character, a space), empty, or malformed JSON."""

    reason = "invalid_credentials"
