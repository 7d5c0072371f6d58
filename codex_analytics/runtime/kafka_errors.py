"""aiokafka's errors, mapped by type onto the pipeline's error vocabulary.

Only errors that cannot change by waiting are permanent. Anything else (aiokafka's
retriable errors, connection loss, timeouts, and the ``UnknownError`` a freshly
restarted broker answers with) is worth another try, because giving up loses facts.
"""

from __future__ import annotations

from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    IllegalOperation,
    InvalidRequiredAcksError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
    UnsupportedVersionError,
)

#: Refusals no retry can turn into an acknowledgement.
PERMANENT_KAFKA_ERRORS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    UnsupportedVersionError,
    UnsupportedForMessageFormatError,
    CorruptRecordException,
    InvalidRequiredAcksError,
    IllegalOperation,
)


#: Permanent refusals of a record for its size (the producer's own check or the broker's).
SIZE_KAFKA_ERRORS: tuple[type[BaseException], ...] = (MessageSizeTooLargeError, RecordTooLargeError)


def is_too_large(exc: BaseException) -> bool:
    return isinstance(exc, SIZE_KAFKA_ERRORS)


def is_permanent(exc: BaseException) -> bool:
    """True for a refusal that waiting cannot change (and for anything that is not an
    ``Exception``, such as a cancellation: never retried)."""
    return isinstance(exc, PERMANENT_KAFKA_ERRORS) or not isinstance(exc, Exception)


def describe(exc: BaseException) -> str:
    """``ClassName: message`` (or the class name alone): the cause, never the records."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
