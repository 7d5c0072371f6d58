"""Run one sink worker as a process: logging, signals, the health/metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys

from codex_analytics.runtime.banner import log_banner, without_userinfo
from codex_analytics.runtime.health import Heartbeat
from codex_analytics.runtime.http import HealthEndpoints, ListenError, ServiceHttp
from codex_analytics.runtime.kafka import KafkaCluster
from codex_analytics.runtime.kafka_start import KafkaStartError, start_failed
from codex_analytics.runtime.logs import configure_logging
from codex_analytics.runtime.shutdown import ShutdownDeadline, stop_on_signals

from . import settings as declared
from .credentials import CredentialChain
from .settings import CAPTURE_IGNORES_AUTH, HEALTH_ADDR, SinkSettings
from .worker import SinkWorker

log = logging.getLogger("codex_analytics.sink")

#: Exit status when the worker stopped on an internal failure (BSD EX_SOFTWARE).
EXIT_FAILURE = 70

#: After SIGTERM, the worker has ``ANALYTICS_SHUTDOWN_TIMEOUT_S`` to deliver and its
#: bounded close-down steps (``sinks.worker.CLOSE_STEP_S`` each) to commit and leave;
#: past that plus this, the process exits whatever it was waiting for (status 75).
OVERDUE_AFTER_S = 4.5

#: The sink allocates a few objects per event (records, batches, request bodies) and
#: they form no reference cycles, so the cyclic collector has almost nothing to find.
#: At Python's default (700, 10, 10) it ran 10-12% of the time, with 50-68 ms pauses;
#: here about 0.5% (py-spy, 150k events).
GC_THRESHOLDS = (50_000, 20, 100)


def run_sink(settings: SinkSettings, cluster: KafkaCluster, credentials: CredentialChain) -> int:
    """The worker's exit status; 2 when its health address cannot be served."""
    configure_logging(settings.log_level)
    gc.collect()
    gc.freeze()  # what start-up built (modules, settings) is never scanned again
    gc.set_threshold(*GC_THRESHOLDS)
    return asyncio.run(_main(settings, cluster, credentials))


async def _main(settings: SinkSettings, cluster: KafkaCluster, credentials: CredentialChain) -> int:
    stop = asyncio.Event()
    deadline = ShutdownDeadline(settings.shutdown_timeout_s, grace_s=OVERDUE_AFTER_S)
    stop_on_signals(stop, deadline)
    worker = SinkWorker(settings, cluster, credentials=credentials)
    heartbeat = Heartbeat()
    side_door: ServiceHttp | None = None
    port: int | None = None
    if settings.health_addr:
        # Served on the worker's loop from before the broker is reached: a blocked loop
        # then fails /livez by not answering at all.
        side_door = ServiceHttp(
            HealthEndpoints(
                "sink",
                readiness=worker.readiness,
                heartbeat=heartbeat,
                stall_after_s=settings.health_stall_s,
                metrics=worker.metrics.render,
            )
        )
        try:
            port = await side_door.start(settings.health_addr, setting=HEALTH_ADDR.name)
        except ListenError as exc:
            print(f"sink worker: {exc}", file=sys.stderr, flush=True)
            return 2
    _banner(settings, cluster, worker, credentials)
    if port is not None:
        log.info("/livez, /readyz and /metrics on port %d", port)
    beating = asyncio.create_task(heartbeat.run(), name="sink-heartbeat")
    try:
        await worker.run(stop)
    except KafkaStartError as exc:
        return start_failed("sink worker", exc)
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        if side_door is not None:
            await side_door.stop()
    return EXIT_FAILURE if worker.failure is not None else 0


def _banner(
    settings: SinkSettings, cluster: KafkaCluster, worker: SinkWorker, credentials: CredentialChain
) -> None:
    limits, topics = settings.limits, settings.topics
    target = without_userinfo(worker.destination.target)
    log_banner(
        "sink worker",
        f"sink worker: Kafka {cluster.bootstrap}; events {topics.events} -> {target}; "
        f"dead letters {topics.events_dlq}; group {settings.group_id}; batches of "
        f"{limits.max_events} events / {limits.max_bytes} bytes / {limits.max_wait_ms} ms; "
        f"credentials {credentials!r}",
        declared.SETTINGS,
        cluster=cluster,
        events_topic=topics.events,
        events_dlq_topic=topics.events_dlq,
        group=settings.group_id,
        mode=settings.mode,
        target=target,
        credentials=credentials.sources,
        health_addr=settings.health_addr,
    )
    if settings.mode == "capture" and not settings.capture_ignores_auth and not credentials.sources:
        # Upstream's gate skips every event it cannot authenticate, in capture mode too:
        # without a credential, that is every event of a ChatGPT login.
        log.warning(
            "capture mode without credentials: events the auth gate cannot authenticate are "
            "skipped, not captured (counted per reason every minute); configure "
            "ANALYTICS_SECRETS_DIR, ANALYTICS_BEARER_TOKEN or CODEX_HOME, or set %s=true "
            "to capture them anyway (tests only)",
            CAPTURE_IGNORES_AUTH.name,
            extra={"mode": settings.mode, "credentials": []},
        )
