"""The sink's metrics (Prometheus text format on /metrics), in the runtime's one style.

Labels are outcomes and reasons, never accounts or routes: nothing here can carry an
identifier, let alone a token. What became of a batch is recorded in one call,
``record(outcome)``; attempts, retries, closes and pauses as they happen.
"""

from __future__ import annotations

from codex_analytics.runtime.metrics import ServiceMetrics

from .auth import SkipReason
from .outcomes import BatchOutcome, DeadLettered, Delivered, GateCounts, GateSkipped

#: Every way the sink finishes with an event.
OUTCOMES = ("delivered", "captured", "skipped", "dead_lettered")


class SinkMetrics(ServiceMetrics):
    PREFIX = "codex_sink"

    def __init__(self) -> None:
        super().__init__()
        self.events = self.counter(
            "events",
            "Events handled, by outcome (delivered, captured, skipped, dead_lettered).",
            ["outcome"],
        )
        self.batches = self.counter("batches", "Batches handled, by outcome.", ["outcome"])
        # Every outcome exported at 0 from the start: a sink that has handled nothing
        # since it started must show a rate of 0 (the not-consuming alert), not no series.
        for outcome in OUTCOMES:
            self.events.labels(outcome)
            self.batches.labels(outcome)
        self.batches_closed = self.counter(
            "batches_closed",
            "Batches closed, by what closed them (count, bytes, time, isolated, flush...).",
            ["reason"],
        )
        self.gate_skips = self.counter(
            "gate_skipped_events",
            "Events skipped or filtered out by the upstream auth gate, by reason.",
            ["reason"],
        )
        for reason in SkipReason:
            self.gate_skips.labels(reason.value)
        self.attempts = self.counter(
            "delivery_attempts",
            "Delivery attempts, by result (an HTTP status class, transport_error, capture_error).",
            ["result"],
        )
        self.retries = self.counter("retries", "Delivery retries scheduled.")
        self.paused_partitions = self.gauge(
            "paused_partitions", "Partitions whose consumption is paused (retrying or full)."
        )
        self.delivery_seconds = self.histogram(
            "delivery_seconds",
            "Time to deliver one batch, retries included.",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.dead_letters = self.counter(
            "dead_letters",
            "Events sent to the events dead-letter topic, by reason (http_400, too_large...).",
            ["reason"],
        )
        self.capture_bytes = self.counter(
            "capture_bytes", "Bytes appended to the capture file (capture mode)."
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
            self._gated(outcome.skipped, also_skipped=True)
        elif isinstance(outcome, GateSkipped):
            self._gated(outcome.by_reason, also_skipped=False)
        elif isinstance(outcome, DeadLettered):
            self.dead_letters.labels(outcome.reason).inc(outcome.events)

    def _gated(self, counts: GateCounts, *, also_skipped: bool) -> None:
        """Events the gate kept out, by reason; and, for a batch that was sent, under
        ``events{outcome="skipped"}`` too (a skipped batch counted them already)."""
        for reason, count in counts:
            self.gate_skips.labels(reason.value).inc(count)
            if also_skipped:
                self.events.labels("skipped").inc(count)
