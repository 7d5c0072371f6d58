"""The one seam between producers and Kafka: hand records over, return once acked.

:class:`KafkaFactTransport` is the aiokafka implementation. The client library, the
gateway and the ``produce`` / ``generate --to-kafka`` commands all publish through it, so
"published" means the same everywhere: every record acknowledged by the broker
(``acks=all``). Tests of the pure parts use an in-memory transport of the same shape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from codex_analytics.runtime.kafka import producer_options
from producers.publishing.records import MAX_REQUEST_BYTES, Record


class PublishError(Exception):
    """Records were not (all) acknowledged by the broker."""


class RetryablePublishError(PublishError):
    """The broker is unreachable, slow or electing a leader: try the same records again."""


class PermanentPublishError(PublishError):
    """Trying again cannot help (e.g. a record over the broker's size limit)."""


class FactTransport(Protocol):
    async def start(self) -> None: ...

    async def send(self, records: Sequence[Record]) -> None:
        """Publish ``records`` in order; return when all are acknowledged, or raise
        :class:`PublishError`. On failure some of them may have been published: a retry
        repeats them, and the stream drops the repeats by ``(instance_id, seq)``."""
        ...

    async def probe(self) -> bool:
        """True when the broker answers and knows the topic (readiness checks)."""
        ...

    async def close(self) -> None: ...


def classify(exc: BaseException) -> PublishError:
    """aiokafka's errors as the two publish errors (the message names the cause only).

    Only errors that cannot change by waiting are permanent; anything else (aiokafka's
    retriable errors, connection loss, timeouts, and the ``UnknownError`` a freshly
    restarted broker answers with) is retried, because giving up loses facts.
    """
    if isinstance(exc, PublishError):
        return exc
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if type(exc).__name__ in _PERMANENT_NAMES or not isinstance(exc, Exception):
        return PermanentPublishError(detail)
    return RetryablePublishError(detail)


_PERMANENT_NAMES = frozenset(
    {
        "MessageSizeTooLargeError",
        "RecordTooLargeError",
        "InvalidTopicError",
        "TopicAuthorizationFailedError",
        "ClusterAuthorizationFailedError",
        "UnsupportedVersionError",
        "UnsupportedForMessageFormatError",
        "CorruptRecordException",
        "InvalidRequiredAcksError",
        "IllegalOperation",
    }
)


def publish_backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (0-based): 50 ms doubling, at most 2 s."""
    return float(min(0.05 * 2**attempt, 2.0))


async def send_with_retry(
    transport: FactTransport,
    records: Sequence[Record],
    *,
    deadline: Callable[[], float],
    on_retry: Callable[[RetryablePublishError, int], None] | None = None,
) -> None:
    """Send ``records``, retrying a :class:`RetryablePublishError` with backoff until
    ``deadline()`` (a ``time.monotonic()`` instant, read before each wait so the caller
    may move it); then the last error is raised. A permanent error is raised at once.
    The one retry loop of the client, the gateway and the bulk commands."""
    attempt = 0
    while True:
        try:
            await transport.send(records)
            return
        except RetryablePublishError as exc:
            remaining = deadline() - time.monotonic()
            if remaining <= 0:
                raise
            if on_retry is not None:
                on_retry(exc, attempt)
            await asyncio.sleep(min(publish_backoff(attempt), remaining))
            attempt += 1


class KafkaFactTransport:
    """aiokafka producer with the project's defaults (``acks=all``, no idempotence: the
    embedded broker cannot do it; the stream's seq check makes repeats harmless)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        client_id: str = "codex-analytics-producer",
        request_timeout_ms: int = 10_000,
        linger_ms: int = 5,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._client_id = client_id
        self._request_timeout_ms = request_timeout_ms
        self._linger_ms = linger_ms
        self._producer: Any = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        if self._producer is not None:
            return
        options = producer_options()
        options.update(
            linger_ms=self._linger_ms,
            request_timeout_ms=self._request_timeout_ms,
            max_request_size=MAX_REQUEST_BYTES,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, client_id=self._client_id, **options
        )
        try:
            await producer.start()
        except Exception as exc:
            await producer.stop()
            raise classify(exc) from exc
        self._producer = producer

    async def send(self, records: Sequence[Record]) -> None:
        if self._producer is None:
            await self.start()
        producer = self._producer
        try:
            pending = [
                await producer.send(self.topic, value=value, key=key) for key, value in records
            ]
            if pending:
                await asyncio.gather(*pending)
        except Exception as exc:
            raise classify(exc) from exc

    async def probe(self) -> bool:
        if self._producer is None:
            await self.start()
        client = self._producer.client
        client.add_topic(self.topic)
        if not await client.force_metadata_update():
            return False
        return client.cluster.partitions_for_topic(self.topic) is not None

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
