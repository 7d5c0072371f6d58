"""Small async helpers for tests that talk to a real Kafka-compatible broker."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code


async def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    """Create ``name``; raise the broker's error if it refuses (for example, it exists)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()
    # create_topics reports per-topic errors in the response instead of raising.
    for topic, error_code, *rest in response.topic_errors:
        if error_code != 0:
            raise for_code(error_code)(f"cannot create topic {topic!r}: {rest}")
