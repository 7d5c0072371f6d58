"""Kafka glue shared by every service: settings from the environment, topic creation,
and client defaults tuned for the brokers we run on.

The defaults come from measurements (``shared/notes/embedded-broker.md``): small fetch
waits (the broker holds a fetch open for most of ``fetch_max_wait_ms`` even when data is
there), a 10 s session timeout (JoinGroup takes half of it), and producer batches of
256 KB with a short linger. The idempotent producer is off: the embedded broker cannot
do it; at-least-once plus idempotent reduction is the design.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codex_analytics.contract import topics

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
PARTITIONS_ENV = "ANALYTICS_TOPIC_PARTITIONS"
DEFAULT_PARTITIONS = 8


@dataclass(frozen=True, slots=True)
class TopicSettings:
    facts: str = topics.FACTS_TOPIC
    facts_dlq: str = topics.FACTS_DLQ_TOPIC
    events: str = topics.EVENTS_TOPIC
    events_dlq: str = topics.EVENTS_DLQ_TOPIC
    partitions: int = DEFAULT_PARTITIONS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TopicSettings:
        env = os.environ if environ is None else environ
        raw_partitions = env.get(PARTITIONS_ENV, "") or str(DEFAULT_PARTITIONS)
        try:
            partitions = int(raw_partitions)
        except ValueError:
            raise ValueError(
                f"{PARTITIONS_ENV} must be an integer, got {raw_partitions!r}"
            ) from None
        if partitions < 1:
            raise ValueError(f"{PARTITIONS_ENV} must be at least 1")
        return cls(
            facts=env.get(topics.FACTS_TOPIC_ENV) or topics.FACTS_TOPIC,
            facts_dlq=env.get(topics.FACTS_DLQ_TOPIC_ENV) or topics.FACTS_DLQ_TOPIC,
            events=env.get(topics.EVENTS_TOPIC_ENV) or topics.EVENTS_TOPIC,
            events_dlq=env.get(topics.EVENTS_DLQ_TOPIC_ENV) or topics.EVENTS_DLQ_TOPIC,
            partitions=partitions,
        )


def producer_options() -> dict[str, Any]:
    return {
        "enable_idempotence": False,
        "acks": "all",
        "linger_ms": 10,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30_000,
    }


def consumer_options(*, session_timeout_ms: int = 10_000) -> dict[str, Any]:
    return {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": 100,
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": max(100, min(1_000, session_timeout_ms // 4)),
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }


async def ensure_topics(bootstrap: str, wanted: Mapping[str, int]) -> dict[str, int]:
    """Create the missing topics of ``{name: partitions}``; return every topic's partition
    count as the cluster has it (an existing topic keeps its own count)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=count, replication_factor=1)
            for name, count in wanted.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(missing)
        described = await admin.describe_topics(list(wanted))
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


async def read_from_start(
    bootstrap: str, topic: str, *, want: int, within: float, settle: float = 0.0
) -> list[Any]:
    """Every record of ``topic`` from its earliest offset, without a consumer group, until
    ``want`` arrived (then ``settle`` seconds more, to catch extra ones) or ``within``
    seconds passed. For checks, replays and benchmarks; returns aiokafka records."""
    import time

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + within
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(batch)
            if settle_until is None and len(records) >= want:
                settle_until = time.monotonic() + settle
    finally:
        await consumer.stop()
    return records
