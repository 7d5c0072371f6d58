"""Run one stream worker as a process: the health side door first, then topics,
logging, GC, the worker until SIGTERM/SIGINT."""

from __future__ import annotations

import gc
import logging
import sys

from codex_analytics.runtime.banner import log_banner
from codex_analytics.runtime.http import ListenError
from codex_analytics.runtime.kafka import KafkaCluster
from codex_analytics.runtime.kafka_start import KafkaStartError, prepare_topics, start_failed
from codex_analytics.runtime.logs import configure_logging, logging_dict_config
from codex_analytics.runtime.shutdown import run_unless_signalled

from . import settings as declared
from .health import StreamHealth
from .settings import HEALTH_ADDR, StreamSettings

#: Full collections 10x rarer than Python's default (700, 10, 10).
GC_THRESHOLDS = (700, 10, 100)


def tune_gc() -> tuple[int, int, int]:
    """The worker keeps up to ``ANALYTICS_STREAM_STATE_CACHE`` decoded states, and every
    batch turns thousands of them over: they reach the oldest generation, and full
    collections then walk the whole cache again and again. The scaling bench measured
    45% of the time in the collector at 10^5 live instances; with full collections 10x
    rarer, about 10%. Returns the previous thresholds."""
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    return previous


def run_worker(settings: StreamSettings, cluster: KafkaCluster) -> int:
    """The worker's exit status; 2 when its health address cannot be served."""
    health = StreamHealth(stall_after_s=settings.health_stall_s)
    port: int | None = None
    if settings.health_addr:
        # Before anything that waits: a probe must get an answer while the broker is
        # waited for, the topics are created, Faust is imported, the group joined and
        # the changelogs read back.
        try:
            port = health.open(settings.health_addr, HEALTH_ADDR.name)
        except ListenError as exc:
            print(f"stream worker: {exc}", file=sys.stderr, flush=True)
            return 2
    try:
        return _run(settings, cluster, health, port)
    finally:
        health.close()


def _run(
    settings: StreamSettings, cluster: KafkaCluster, health: StreamHealth, port: int | None
) -> int:
    from .worker import StreamWorker  # imports Faust: only when a worker runs

    # Before the first Kafka call: the client's lines are JSON lines too.
    configure_logging(settings.log_level)
    if port is not None:
        logging.getLogger("codex_analytics.stream").info(
            "/livez, /readyz and /metrics on port %d", port
        )
    topics = settings.topics
    # Start-up, before Faust: wait for the cluster (ANALYTICS_KAFKA_WAIT_S), then create
    # the topic plan's missing topics, the state changelog included. SIGTERM ends it.
    # /readyz says "connecting" meanwhile; the heartbeat beats beside it.
    try:
        started, existing = run_unless_signalled(
            health.connecting(
                prepare_topics(cluster, settings.topic_plan, within=cluster.start_wait_s)
            ),
            settings.shutdown_timeout_s,
        )
    except KafkaStartError as exc:
        return start_failed("stream worker", exc)
    if not started or existing is None:
        return 0  # stopped before it started: nothing to finish
    # The state table is co-partitioned with the facts topic, whatever its count is.
    partitions = existing[topics.facts].partitions
    log_banner(
        "stream worker",
        f"stream worker: Kafka {cluster.bootstrap}; facts {topics.facts} ({partitions} partitions) -> "
        f"events {topics.events}; dead letters {topics.facts_dlq}; state store {settings.store}; "
        f"group {settings.app_id}; batch {settings.batch_max_records} records / {settings.batch_max_wait_ms} ms",
        declared.SETTINGS,
        cluster=cluster,
        facts_topic=topics.facts,
        events_topic=topics.events,
        facts_dlq_topic=topics.facts_dlq,
        partitions=partitions,
        group=settings.app_id,
        store=settings.store,
        health_addr=settings.health_addr,
    )
    tune_gc()
    worker = StreamWorker(settings, cluster, partitions)
    return worker.app.run(
        settings.log_level,
        logging_dict_config(settings.log_level),
        beside=health.follow(worker.readiness, worker.metrics.render),
    )
