"""The sink's counters, in a registry of its own (Prometheus text format on /metrics).

Labels are outcomes and reasons, never accounts or routes: nothing here can carry an
identifier, let alone a token. What became of a batch is recorded in one call,
``record(outcome)``; attempts, retries, closes and pauses as they happen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from codex_analytics.runtime.metrics import CallbackCollector, lag_family

from .outcomes import BatchOutcome, DeadLettered, Delivered, GateSkipped


class SinkMetrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.events = Counter(
            "codex_sink_events",
            "Events handled, by outcome (delivered, captured, skipped, dead_lettered).",
            ["outcome"],
            registry=registry,
        )
        self.batches = Counter(
            "codex_sink_batches",
            "Batches handled, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.batches_closed = Counter(
            "codex_sink_batches_closed",
            "Batches closed, by what closed them (count, bytes, time, isolated, flush...).",
            ["reason"],
            registry=registry,
        )
        self.gate_skips = Counter(
            "codex_sink_gate_skipped_events",
            "Events skipped by the upstream auth gate, by reason.",
            ["reason"],
            registry=registry,
        )
        self.attempts = Counter(
            "codex_sink_delivery_attempts",
            "Delivery attempts, by result (an HTTP status class, transport_error, capture_error).",
            ["result"],
            registry=registry,
        )
        self.retries = Counter(
            "codex_sink_retries", "Delivery retries scheduled.", registry=registry
        )
        self.paused_partitions = Gauge(
            "codex_sink_paused_partitions",
            "Partitions whose consumption is paused (retrying or full).",
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "codex_sink_delivery_seconds",
            "Time to deliver one batch, retries included.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )

        self.dead_letters = Counter(
            "codex_sink_dead_letters",
            "Events sent to the events dead-letter topic, by reason (http_400, too_large...).",
            ["reason"],
            registry=registry,
        )
        self.capture_bytes = Counter(
            "codex_sink_capture_bytes",
            "Bytes appended to the capture file (capture mode).",
            registry=registry,
        )

    def record(self, outcome: BatchOutcome) -> None:
        """Count one finished batch: its events and itself under its outcome, and what
        that outcome says besides (time taken, bytes captured, skip or dead-letter reason)."""
        self.events.labels(outcome.outcome).inc(outcome.events)
        self.batches.labels(outcome.outcome).inc()
        if isinstance(outcome, Delivered):
            self.delivery_seconds.observe(outcome.seconds)
            if outcome.outcome == "captured":
                self.capture_bytes.inc(outcome.body_bytes + 1)  # the line: body and newline
        elif isinstance(outcome, GateSkipped):
            self.gate_skips.labels(outcome.reason.value).inc(outcome.events)
        elif isinstance(outcome, DeadLettered):
            self.dead_letters.labels(outcome.reason).inc(outcome.events)

    def watch_lag(self, lag: Callable[[], Mapping[int, int]]) -> None:
        """Report ``lag()`` as ``codex_sink_consumer_lag{partition}`` on every scrape."""
        self.registry.register(
            CallbackCollector(
                lambda: [
                    lag_family(
                        "codex_sink_consumer_lag",
                        "Events records on the broker not yet delivered and committed, "
                        "per assigned partition.",
                        lag(),
                    )
                ]
            )
        )

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when never touched): for logs and tests."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def render(self) -> bytes:
        return generate_latest(self.registry)
