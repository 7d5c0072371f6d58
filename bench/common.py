"""Helpers every Kafka benchmark shares."""

from __future__ import annotations

import subprocess
from pathlib import Path

from aiokafka import AIOKafkaProducer

from codex_analytics.kafka import ensure_topics, producer_options

PARTITIONS = 8


async def produce_records(
    bootstrap: str, topic: str, values: list[bytes], keys: list[bytes]
) -> None:
    """Create ``topic`` (8 partitions) and produce ``values`` keyed by ``keys``, in order."""
    await ensure_topics(bootstrap, {topic: PARTITIONS})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **producer_options())
    await producer.start()
    try:
        for value, key in zip(values, keys, strict=True):
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


ROOT = Path(__file__).resolve().parents[1]


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a service process from the project root, its output in ``log``."""
    with open(log, "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
