"""Helpers every Kafka benchmark shares."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from codex_analytics.devtools.localstack import child_env
from codex_analytics.runtime.kafka import ensure_topics, producer_options

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


def ceiling_producer_options() -> dict[str, Any]:
    """A ceiling's producer: our settings with aiokafka's own partitioner. The ceiling is
    what aiokafka alone does; our producers hash each key once
    (``codex_analytics.runtime.partitioner``), ~4 µs a keyed record that a ceiling with
    our partitioner would save as well (a pass-through produces a keyed record per
    fact, the stream ~0.4), and the ratio would no longer say what our code costs over
    aiokafka."""
    return {**producer_options(), "partitioner": DefaultPartitioner()}


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a service process from the project root, its output in ``log``."""
    with open(log, "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def stream_worker_env(bootstrap: str, facts_topic: str, prefix: str) -> dict[str, str]:
    """A stream worker's environment: this one's, minus any ANALYTICS_* setting, reading
    ``facts_topic`` with topics and group of its own named after ``prefix``."""
    env = child_env()
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        ANALYTICS_FACTS_TOPIC=facts_topic,
        ANALYTICS_EVENTS_TOPIC=f"{prefix}.events",
        ANALYTICS_FACTS_DLQ_TOPIC=f"{prefix}.dlq",
        ANALYTICS_STREAM_APP_ID=f"{prefix}-stream",
        ANALYTICS_TOPIC_PARTITIONS=str(PARTITIONS),
        # The progress lines (every 10 s: where each partition's records are) are at
        # INFO: a failed run's kept log must hold them.
        ANALYTICS_LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    return env


#: Where failed benchmark runs keep their logs (git-ignored); outlives the run.
FAILURES = ROOT / "bench-failures"


def keep_failure(logs: Path, suite: str) -> Path:
    """Copy the folder of a failed run's logs (workers', broker's) to
    ``bench-failures/<time>-<suite>/`` and return where it went."""
    FAILURES.mkdir(exist_ok=True)
    kept = FAILURES / f"{time.strftime('%Y%m%dT%H%M%S')}-{suite}"
    n = 1
    while kept.exists():
        n += 1
        kept = FAILURES / f"{time.strftime('%Y%m%dT%H%M%S')}-{suite}-{n}"
    shutil.copytree(logs, kept)
    return kept
