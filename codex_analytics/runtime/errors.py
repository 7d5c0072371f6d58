"""The pipeline's error vocabulary: one small tree every service's errors join.

``PipelineError``
├── ``RetryableError``   the same work may succeed later (``retry_after`` seconds, if known)
└── ``PermanentError``   trying again cannot help: dead-letter, report or refuse

Services subclass these with a name of their own (``RetryablePublishError``,
``RetryableDeliveryError``...), so a caller can catch "any retryable failure" across
publishing and delivery, and the one retry policy (:mod:`codex_analytics.runtime.retry`)
retries exactly the ``RetryableError`` family. Messages never carry a credential.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class RetryableError(PipelineError):
    """A transient failure. ``retry_after`` is the wait the other side asked for, in
    seconds, when it said one (an HTTP ``Retry-After``); ``None`` lets the policy choose."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(PipelineError):
    """A failure that waiting cannot change."""


class ConfigError(PipelineError, ValueError):
    """Settings are incomplete or invalid; raised at start, before anything runs."""
