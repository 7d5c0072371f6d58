"""aiokafka's errors, mapped by type onto the pipeline's error vocabulary.

Only errors that cannot change by waiting are permanent. Anything else (aiokafka's
retriable errors, connection loss, timeouts, and the ``UnknownError`` a freshly
restarted broker answers with) is worth another try, because giving up loses facts.
"""

from __future__ import annotations

import ssl

from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    GroupAuthorizationFailedError,
    IllegalOperation,
    InvalidRequiredAcksError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    SaslAuthenticationFailed,
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


#: Failures to connect that no wait can mend: who we are, what we may do, or how the
#: connection is protected is wrong.
_REFUSED_CONNECTIONS: tuple[type[BaseException], ...] = (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    ssl.SSLError,  # a certificate that does not verify, a TLS client on a plaintext port
)


def is_permanent_connection_failure(exc: BaseException) -> bool:
    """True for a failure to reach or use the cluster that waiting cannot change
    (authentication, authorization, TLS); False for "unreachable" (connection refused,
    no answer, a broker starting), worth waiting for. The start-up wait
    (:mod:`codex_analytics.runtime.kafka_start`) asks this; the security seam may
    refine it."""
    return isinstance(exc, _REFUSED_CONNECTIONS)


def describe_connection_failure(exc: BaseException) -> str:
    """What went wrong connecting, in a few words for a one-line error (never a
    credential: aiokafka's texts name the mechanism and the user at most)."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {getattr(exc, 'reason', None) or exc}"
    return describe(exc)
