"""The stream worker's metrics (Prometheus text format on ``/metrics``).

Counts live where they are made (the reducer's stats, the worker's dicts) and are read
at scrape time. Labels are kinds, types and reasons: never an instance or an account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import Metric

from codex_analytics.runtime.metrics import ServiceMetrics
from streams.reducer.drops import ReducerStats


@dataclass(slots=True)
class StreamCounts:
    """What the worker glue counts (the reducer counts the rest)."""

    records: int = 0
    batches: int = 0
    misrouted: int = 0
    seeks: int = 0
    #: Partitions found fetched past what arrived, and read again (OffsetGuard.stalled).
    stalls: int = 0
    corrupt_states: int = 0
    #: States deleted by the idle sweep (streams.sweep), and sweeps finished.
    swept_states: int = 0
    sweeps: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)

    def count_dead_letter(self, reason: str) -> None:
        self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1


class StreamMetrics(ServiceMetrics):
    PREFIX = "codex_stream"

    def __init__(
        self,
        stats: ReducerStats,
        counts: StreamCounts,
        lag: Callable[[], Mapping[int, int]],
    ) -> None:
        super().__init__()
        self.batch_seconds = self.histogram(
            "batch_seconds",
            "Time to process one batch: reduce, produce events, write state, ack.",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

        def build() -> Iterable[Metric]:
            yield self.counts("facts", "Facts decoded, by kind.", "kind", stats.facts)
            yield self.counts(
                "events", "Track events emitted, by event type.", "type", stats.events
            )
            yield self.counts(
                "drops",
                "Facts that emitted nothing where they might have, by reason (dedupe_repeat: "
                "dedupe hits; duplicate_seq: redelivered facts).",
                "reason",
                stats.drops,
            )
            yield self.counts(
                "dead_letters",
                "Records sent to the facts dead-letter topic, by reason.",
                "reason",
                counts.dead_letters,
            )
            yield self.counts(
                "expired_state",
                "Idle reducer state expired past the horizon, by what.",
                "what",
                stats.expired,
            )
            yield self.counts(
                "worker",
                "Worker counts: records, batches, misrouted facts, offset seeks, stalled partitions"
                " read again, corrupt states,"
                " idle states swept, sweeps finished.",
                "what",
                {
                    "records": counts.records,
                    "batches": counts.batches,
                    "misrouted": counts.misrouted,
                    "seeks": counts.seeks,
                    "stalls": counts.stalls,
                    "corrupt_states": counts.corrupt_states,
                    "swept_states": counts.swept_states,
                    "sweeps": counts.sweeps,
                },
            )
            yield self.lag(
                "consumer_lag",
                "Facts records on the broker not yet processed, per assigned partition.",
                lag(),
            )

        self.at_scrape(build)
