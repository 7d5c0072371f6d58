"""Run one stream worker as a process: topics, logging, GC, the worker until SIGTERM/SIGINT."""

from __future__ import annotations

import gc

from codex_analytics.runtime.banner import log_banner
from codex_analytics.runtime.kafka import KafkaCluster
from codex_analytics.runtime.kafka_start import KafkaStartError, prepare_topics, start_failed
from codex_analytics.runtime.logs import configure_logging, logging_dict_config
from codex_analytics.runtime.shutdown import run_unless_signalled

from . import settings as declared
from .settings import StreamSettings

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
    from .worker import StreamWorker  # imports Faust: only when a worker runs

    # Before the first Kafka call: the client's lines are JSON lines too.
    configure_logging(settings.log_level)
    topics = settings.topics
    # Start-up, before Faust: wait for the cluster (ANALYTICS_KAFKA_WAIT_S), then create
    # the topic plan's missing topics, the state changelog included. SIGTERM ends it.
    # Health: a side door that must answer during this wait opens before this call.
    try:
        started, existing = run_unless_signalled(
            prepare_topics(cluster, settings.topic_plan, within=cluster.start_wait_s),
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
    return worker.app.run(settings.log_level, logging_dict_config(settings.log_level))
