"""The events dead-letter topic: where a batch goes when it can never be delivered.

Dead letters hold the original record bytes and key (produce them back to the events
topic to retry), with ``error.*``, ``source.*``, ``batch.idempotency_key`` and
``batch.size`` headers: the same shape as the facts DLQ
(``codex_analytics.runtime.deadletter``). A failed produce raises
``RetryableDeliveryError``: the delivery step retries it like a failed request, and the
batch is not done until the topic has it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from codex_analytics.runtime.deadletter import DeadLetter, dead_letter
from codex_analytics.runtime.health import topic_known
from codex_analytics.runtime.kafka import KafkaCluster, KafkaTarget, TopicSettings

from .batching import Batch, CloseReason
from .errors import RetryableDeliveryError


class DeadLetterQueue:
    """The producer of the events DLQ, started and stopped with the worker."""

    def __init__(self, cluster: KafkaTarget, topics: TopicSettings) -> None:
        self.cluster = KafkaCluster.of(cluster)
        self.source_topic = topics.events
        self.topic = topics.events_dlq
        self.max_record_bytes = topics.max_record_bytes
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(**self.cluster.producer_options(self.max_record_bytes))
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def probe(self, topic: str) -> bool:
        """One metadata round trip on this producer's connection: the broker answers and
        knows ``topic`` (the sink's readiness)."""
        if self._producer is None:
            return False
        return await topic_known(self._producer.client, topic)

    def letters(
        self, batch: Batch, reason: str, *, detail: str, extra: list[tuple[str, bytes]]
    ) -> list[DeadLetter]:
        """One dead letter per record of ``batch``, built once however often the produce
        is retried."""
        return list(_dead_letters(batch, reason, self.source_topic, detail, extra))

    async def produce(self, letters: list[DeadLetter]) -> None:
        producer = self._producer
        assert producer is not None
        try:
            futures = [
                await producer.send(self.topic, value=dl.value, key=dl.key, headers=dl.headers)
                for dl in letters
            ]
            await asyncio.gather(*futures)
        except KafkaError as err:
            raise RetryableDeliveryError(f"dead-letter produce failed: {err!r}") from None


def undeliverable(batch: Batch, max_bytes: int) -> tuple[str, str]:
    """Reason and detail of a batch that is not sendable (one undecodable or too large
    record)."""
    record = batch.records[0]
    if record.error is not None:
        return record.error.reason.value, record.error.detail
    return "too_large", (
        f"an event of {len(record.event_json)} bytes does not fit in a request body of "
        f"at most {max_bytes} bytes (ANALYTICS_BATCH_MAX_BYTES)"
    )


def _dead_letters(
    batch: Batch, reason: str, topic: str, detail: str, extra: list[tuple[str, bytes]]
) -> Iterable[DeadLetter]:
    stage = "decode" if batch.closed_by is CloseReason.UNDECODABLE else "deliver"
    batch_headers = [
        ("batch.idempotency_key", batch.idempotency_key().encode()),
        ("batch.size", str(len(batch.records)).encode()),
        *extra,
    ]
    for record in batch.records:
        error = record.error
        yield dead_letter(
            record.raw,
            record.key,
            reason=reason,
            stage=stage,
            topic=topic,
            partition=batch.partition,
            offset=record.offset,
            path=error.path if error is not None else "",
            detail=detail,
            extra=batch_headers,
        )
