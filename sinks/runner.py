"""Run one sink worker as a process: logging, signals, the health/metrics endpoint."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading

from codex_analytics.runtime.http import ServiceHttp
from codex_analytics.runtime.log_repeats import limit_repeats
from codex_analytics.runtime.logs import configure_logging

from .credentials import CredentialChain
from .settings import SinkSettings
from .worker import SinkWorker

#: Exit status when the worker stopped on an internal failure (BSD EX_SOFTWARE).
EXIT_FAILURE = 70

#: Exit status when the shutdown did not end in time and the process was ended anyway
#: (BSD EX_TEMPFAIL: what was not committed is delivered by the next owner).
EXIT_OVERDUE = 75

#: After SIGTERM, the worker has ``ANALYTICS_SHUTDOWN_TIMEOUT_S`` to deliver and its
#: bounded close-down steps (``sinks.worker.CLOSE_STEP_S`` each) to commit and leave;
#: past that plus this, the process exits whatever it was waiting for.
OVERDUE_AFTER_S = 4.5

#: Kafka client loggers, whose errors repeat many times a second while a broker is gone.
RATE_LIMITED_LOGGERS = ("aiokafka",)

#: The sink allocates a few objects per event (records, batches, request bodies) and
#: they form no reference cycles, so the cyclic collector has almost nothing to find.
#: At Python's default (700, 10, 10) it ran 10-12% of the time, with 50-68 ms pauses;
#: here about 0.5% (py-spy, 150k events).
GC_THRESHOLDS = (50_000, 20, 100)


def run_sink(settings: SinkSettings, bootstrap: str, credentials: CredentialChain) -> int:
    configure_logging(settings.log_level)
    limit_repeats(RATE_LIMITED_LOGGERS)
    gc.collect()
    gc.freeze()  # what start-up built (modules, settings) is never scanned again
    gc.set_threshold(*GC_THRESHOLDS)
    return asyncio.run(_main(settings, bootstrap, credentials))


async def _main(settings: SinkSettings, bootstrap: str, credentials: CredentialChain) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop, settings.shutdown_timeout_s)
    worker = SinkWorker(settings, bootstrap, credentials=credentials)
    limits = settings.limits
    print(
        f"sink worker: Kafka {bootstrap}; events {settings.topics.events} -> {worker.destination.target}; "
        f"dead letters {settings.topics.events_dlq}; group {settings.group_id}; batches of "
        f"{limits.max_events} events / {limits.max_bytes} bytes / {limits.max_wait_ms} ms; "
        f"credentials {credentials!r}",
        file=sys.stderr,
        flush=True,
    )
    side_door: ServiceHttp | None = None
    if settings.health_addr:
        side_door = ServiceHttp(worker.health, worker.metrics.render)
        port = await side_door.start(settings.health_addr)
        logging.getLogger("codex_analytics.sink").info("health and metrics on port %d", port)
    try:
        await worker.run(stop)
    finally:
        if side_door is not None:
            await side_door.stop()
    return EXIT_FAILURE if worker.failure is not None else 0


def _on_signal(sig: signal.Signals, stop: asyncio.Event, shutdown_timeout_s: float) -> None:
    """The first SIGTERM / SIGINT stops the worker gracefully, with a deadline kept by a
    thread (it fires even if the event loop is stuck); a second one ends the process at
    once. Either forced exit leaves undelivered batches uncommitted, never lost."""
    if stop.is_set():
        _exit_now(f"second {sig.name}: exiting without waiting for the shutdown", 128 + sig)
    stop.set()
    watchdog = threading.Timer(
        shutdown_timeout_s + OVERDUE_AFTER_S,
        _exit_now,
        (
            f"shutdown not done {shutdown_timeout_s + OVERDUE_AFTER_S:.1f} s after {sig.name}: exiting",
            EXIT_OVERDUE,
        ),
    )
    watchdog.daemon = True
    watchdog.start()


def _exit_now(why: str, status: int) -> None:
    logging.getLogger("codex_analytics.sink").warning(
        "%s; uncommitted batches are delivered by the next owner", why
    )
    logging.shutdown()  # flush what is logged
    os._exit(status)
