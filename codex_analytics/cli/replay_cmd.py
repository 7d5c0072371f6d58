"""``codex-analytics replay``: re-run the stream stage from topic offsets."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codex_analytics.ops.replay import StartPoint
    from codex_analytics.runtime.kafka import KafkaCluster
    from streams.settings import StreamSettings

DESCRIPTION = """\
Re-run the stream stage over the facts topic, from a start point to the topic's end as
of now, into a capture file or a fresh events topic.

It reads without a consumer group: nothing is committed and the live stream and sink
groups are not disturbed (see 'codex-analytics offsets' to move those). The reducer
starts with empty state, so a replay from the middle of the topic lacks what came
before (turns whose connection was initialized earlier are dropped, with the counts
in the summary); replay from earliest to rebuild everything.

The output is deterministic: partitions are replayed one after another, each in offset
order, and capture lines are request bodies batched per route within a partition
(ANALYTICS_BATCH_MAX_EVENTS / ANALYTICS_BATCH_MAX_BYTES). The same input gives the
same bytes, and the events equal 'codex-analytics reduce' over the same facts.

Start points (--from):
  earliest                      every partition from its first offset
  0:1200,3:40                   an offset per partition; the others from earliest
  2026-11-22T08:00:00Z          the first record at or after a time (ISO 8601)
  1763798400000                 the same, in epoch milliseconds
  2h                            the same, for the time 2 hours ago (30m, 1d, 1h30m)

Needs KAFKA_BOOTSTRAP_SERVERS (an embedded broker would be empty).
"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="POINT",
        help="earliest | PARTITION:OFFSET[,...] | ISO 8601 time | epoch ms | 2h (ago)",
    )
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument(
        "--capture", metavar="PATH", help="write request bodies here (replaced at the end; 0600)"
    )
    out.add_argument(
        "--to-topic",
        metavar="TOPIC",
        help="produce event records to this topic; it must be new or empty",
    )
    parser.add_argument(
        "--topic",
        metavar="FACTS_TOPIC",
        help="facts topic to replay (default: ANALYTICS_FACTS_TOPIC or analytics.facts)",
    )


def run(args: argparse.Namespace) -> int:
    from codex_analytics.ops.replay import StartPoint
    from codex_analytics.runtime.kafka import KafkaCluster
    from streams.settings import StreamSettings

    try:
        start = StartPoint.parse(args.start)
        settings = StreamSettings.from_env()
        limits = _batch_limits(os.environ)
    except ValueError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    try:
        cluster = KafkaCluster.configured()
    except ValueError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    if cluster is None:
        print(
            "replay: KAFKA_BOOTSTRAP_SERVERS is not set: replay reads an existing facts topic",
            file=sys.stderr,
        )
        return 2
    if args.capture and not Path(args.capture).resolve().parent.is_dir():
        print(f"replay: the directory of {args.capture} does not exist", file=sys.stderr)
        return 2
    topic = args.topic or settings.topics.facts
    from aiokafka.errors import KafkaError

    from codex_analytics.runtime.logs import configure_logging

    # Before the first Kafka call: the client's lines and the job's own report are
    # log lines (JSON when stderr is not a terminal).
    configure_logging(settings.log_level)

    try:
        return asyncio.run(_main(args, cluster, topic, start, settings, limits))
    except KafkaError as exc:
        print(f"replay: Kafka at {cluster.bootstrap}: {exc}; nothing was written", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nreplay: interrupted; nothing was written", file=sys.stderr)
        return 130


def _batch_limits(env: Mapping[str, str]) -> tuple[int, int]:
    """Events and body bytes per capture line: the sink's batch limits."""
    from sinks.settings import BATCH_MAX_BYTES, BATCH_MAX_EVENTS

    return BATCH_MAX_EVENTS.read(env), BATCH_MAX_BYTES.read(env)


async def _main(
    args: argparse.Namespace,
    cluster: KafkaCluster,
    topic: str,
    start: StartPoint,
    settings: StreamSettings,
    limits: tuple[int, int],
) -> int:
    from codex_analytics.ops.replay import (
        CaptureOutput,
        ReplayError,
        ReplayOutput,
        ReplayStats,
        TopicOutput,
        replay,
    )
    from codex_analytics.runtime.kafka_start import KafkaStartError, start_failed, wait_for_cluster
    from codex_analytics.runtime.logs import REPORT_LOGGER
    from codex_analytics.runtime.progress import Progress

    try:
        await wait_for_cluster(cluster, cluster.start_wait_s)
    except KafkaStartError as exc:
        return start_failed("replay", exc, then="; nothing was written")
    report = logging.getLogger(REPORT_LOGGER)
    progress = Progress(plain_every_s=10.0, log=report.info)

    def show(stats: ReplayStats, total: int) -> None:
        share = 100 * stats.records / total if total else 100.0
        progress.show(
            f"replayed {stats.records:,}/{total:,} records ({share:.0f}%)  facts {stats.facts:,}  "
            f"events {stats.events:,}  dead letters {sum(stats.dead_letters.values()):,}"
        )

    capture: CaptureOutput | None = None
    producer = None
    output: ReplayOutput
    if args.capture:
        capture = CaptureOutput(args.capture, max_events=limits[0], max_bytes=limits[1])
        output = capture
        where = f"capture file {args.capture}"
    else:
        problem = await _fresh_topic(cluster, args.to_topic, settings)
        if problem:
            print(f"replay: {problem}", file=sys.stderr)
            return 2
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(**cluster.producer_options(settings.max_record_bytes))
        await producer.start()
        output = TopicOutput(producer, args.to_topic)
        where = f"topic {args.to_topic}"
    _banner(cluster, topic, start, where)
    try:
        stats = await replay(cluster, topic, start, output, settings, on_progress=show)
    except ReplayError as exc:
        progress.done()
        if capture is not None:
            capture.abort()
        print(f"replay: {exc}", file=sys.stderr)
        return 1
    except BaseException:
        progress.done()
        if capture is not None:
            capture.abort()
        raise
    finally:
        if producer is not None:
            await producer.stop()
    progress.done()
    if capture is not None:
        capture.commit()
    ranges = ", ".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(stats.ranges.items()))
    letters = ", ".join(f"{k} {v}" for k, v in sorted(stats.dead_letters.items())) or "none"
    unit = "lines" if capture is not None else "records"
    report.info(
        f"replay: {stats.records:,} records ({stats.facts:,} facts) from partitions {ranges}; "
        f"{stats.events:,} events in {stats.outputs:,} {unit} to {where}; "
        f"undecodable facts: {letters}",
        extra={
            "records": stats.records,
            "facts": stats.facts,
            "events": stats.events,
            "outputs": stats.outputs,
            "dead_letters": dict(stats.dead_letters),
            "ranges": {str(p): [a, b] for p, (a, b) in sorted(stats.ranges.items())},
        },
    )
    return 0


def _banner(cluster: KafkaCluster, topic: str, start: StartPoint, where: str) -> None:
    from codex_analytics.runtime.banner import log_banner
    from sinks import settings as sink_settings
    from streams import settings as stream_settings

    log_banner(
        "replay",
        f"replay: {topic} on {cluster.bootstrap} from {start.describe()} -> {where}",
        (*stream_settings.SETTINGS, *sink_settings.SETTINGS),  # batches as the sink's
        cluster=cluster,
        facts_topic=topic,
        start=start.describe(),
        output=where,
    )


async def _fresh_topic(cluster: KafkaCluster, topic: str, settings: StreamSettings) -> str:
    """Create ``topic`` when missing (as the events topic's policy says); a problem
    message when it already holds records."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from codex_analytics.runtime.kafka import ensure_topics
    from codex_analytics.runtime.kafka_start import KafkaStartError
    from codex_analytics.runtime.topic_plan import TopicPlan

    try:
        await ensure_topics(cluster, TopicPlan.pipeline(settings.topics).renamed("events", topic))
    except KafkaStartError as exc:
        return str(exc)
    consumer = AIOKafkaConsumer(**cluster.client_options(), group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    held = sum(ends.values())
    if held:
        return f"topic {topic} already holds {held:,} records: replay into a new topic"
    return ""
