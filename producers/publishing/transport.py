"""The one seam between producers and Kafka: hand records over, return once acked.

:class:`KafkaFactTransport` is the aiokafka implementation. The client library, the
gateway and the ``produce`` / ``generate --to-kafka`` commands all publish through it, so
"published" means the same everywhere: every record acknowledged by the broker
(``acks=all``). Tests of the pure parts use an in-memory transport of the same shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tenacity import RetryCallState

from codex_analytics.runtime.errors import PermanentError, PipelineError, RetryableError
from codex_analytics.runtime.kafka import producer_options
from codex_analytics.runtime.kafka_errors import describe, is_permanent
from codex_analytics.runtime.retry import PUBLISH_RETRY
from producers.publishing.records import MAX_RECORD_BYTES, Record


class PublishError(PipelineError):
    """Records were not (all) acknowledged by the broker."""


class RetryablePublishError(PublishError, RetryableError):
    """The broker is unreachable, slow or electing a leader: try the same records again."""


class PermanentPublishError(PublishError, PermanentError):
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
    """aiokafka's errors as the two publish errors, by type (the message names the cause
    only; :mod:`codex_analytics.runtime.kafka_errors` says which are permanent)."""
    if isinstance(exc, PublishError):
        return exc
    if is_permanent(exc):
        return PermanentPublishError(describe(exc))
    return RetryablePublishError(describe(exc))


async def send_with_retry(
    transport: FactTransport,
    records: Sequence[Record],
    *,
    deadline: Callable[[], float],
    on_retry: Callable[[RetryablePublishError, int], None] | None = None,
) -> None:
    """Send ``records``, retrying a :class:`RetryablePublishError` by the publishing
    policy (50 ms doubling to 2 s) until ``deadline()`` (a ``time.monotonic()`` instant,
    read before each wait so the caller may move it); then the last error is raised. A
    permanent error is raised at once. The client, the gateway and the bulk commands all
    publish through it."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if on_retry is not None and isinstance(error, RetryablePublishError):
            on_retry(error, state.attempt_number - 1)

    async for attempt in PUBLISH_RETRY.retrying(
        deadline=deadline, before_sleep=before_sleep, retry_on=RetryablePublishError
    ):
        with attempt:
            await transport.send(records)


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
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        #: The one record-size limit; the client's ``max_request_size`` derives from it.
        self.max_record_bytes = max_record_bytes
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
        options = producer_options(self.max_record_bytes)
        options.update(linger_ms=self._linger_ms, request_timeout_ms=self._request_timeout_ms)
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
