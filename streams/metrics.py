"""The stream worker's metrics (Prometheus text format on ``/metrics``).

Counts live where they are made (the reducer's stats, the worker's dicts) and are read
at scrape time. Labels are kinds, types and reasons: never an instance or an account.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric

from codex_analytics.runtime.metrics import Backlog, ServiceMetrics
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
    #: Assignments received (each rebalance gives one, the first join too).
    rebalances: int = 0
    #: Per facts partition, where its records are (what a stall or a loss shows in):
    #: handed to the batch loop,
    fetched: dict[int, int] = field(default_factory=dict)
    #: reduced,
    processed: dict[int, int] = field(default_factory=dict)
    #: acked (reduced, or repeats after a seek back): the commit follows these,
    acked: dict[int, int] = field(default_factory=dict)
    #: held back behind an offset hole by the continuity guard (neither reduced nor
    #: acked: read again after the seek back),
    held: dict[int, int] = field(default_factory=dict)
    #: and seeks back (holes and stalls).
    partition_seeks: dict[int, int] = field(default_factory=dict)

    @classmethod
    def for_partitions(cls, partitions: int) -> StreamCounts:
        """Counts with every per-partition series at 0 for ``partitions`` partitions."""
        counts = cls()
        for series in counts.per_partition().values():
            series.update(dict.fromkeys(range(partitions), 0))
        return counts

    def per_partition(self) -> dict[str, dict[int, int]]:
        """The per-partition series by name (the metric's and the progress log's)."""
        return {
            "fetched": self.fetched,
            "processed": self.processed,
            "acked": self.acked,
            "held": self.held,
            "seeks": self.partition_seeks,
        }

    def count_dead_letter(self, reason: str) -> None:
        self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1


class PendingTimestamps:
    """Per facts partition, the (offset, timestamp) of each record handed to the batch
    loop and not processed yet, oldest first: the timestamp of the oldest unprocessed
    record is the consumer's lag in seconds (:class:`~codex_analytics.runtime.metrics.LagClock`).

    Bounded by what the handoff and the held-back records hold: every processed offset
    pops its entries, and a seek or a lost partition forgets them.
    """

    def __init__(self) -> None:
        self._pending: dict[int, deque[tuple[int, int]]] = {}

    def handed(self, partition: int, records: list[tuple[int, int]]) -> None:
        """(offset, timestamp) of each record of one partition handed over, in order."""
        self._pending.setdefault(partition, deque()).extend(records)

    def processed(self, partition: int, position: int) -> None:
        """Everything of ``partition`` below ``position`` (the next offset to process)."""
        pending = self._pending.get(partition)
        while pending and pending[0][0] < position:
            pending.popleft()

    def oldest_ms(self, partition: int) -> int | None:
        pending = self._pending.get(partition)
        return pending[0][1] if pending else None

    def forget(self, partition: int) -> None:
        """The partition is read again from an earlier offset, or is no longer ours."""
        self._pending.pop(partition, None)

    def keep_only(self, partitions: Iterable[int]) -> None:
        kept = set(partitions)
        for partition in [p for p in self._pending if p not in kept]:
            del self._pending[partition]


class StreamMetrics(ServiceMetrics):
    PREFIX = "codex_stream"

    def __init__(
        self,
        stats: ReducerStats,
        counts: StreamCounts,
        backlog: Callable[[], Mapping[int, Backlog | None]],
        committed: Callable[[], Mapping[int, int | None]] = dict,
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
            yield self.total("records", "Facts records processed.", counts.records)
            yield self.total("batches", "Batches processed.", counts.batches)
            yield self.total(
                "misrouted_facts",
                "Facts whose record key is not their instance id (per-instance order is luck).",
                counts.misrouted,
            )
            yield self.total("offset_seeks", "Offset gaps read again (seeks back).", counts.seeks)
            yield self.total(
                "stalled_partitions",
                "Partitions found fetched past what arrived, and read again.",
                counts.stalls,
            )
            yield self.total(
                "corrupt_states",
                "Instance states that could not be decoded.",
                counts.corrupt_states,
            )
            yield self.total(
                "swept_states",
                "Idle instance states deleted by the idle sweep.",
                counts.swept_states,
            )
            yield self.total("sweeps", "Idle sweeps finished.", counts.sweeps)
            yield self.total(
                "rebalances",
                "Assignments received (rebalances and the first join).",
                counts.rebalances,
            )
            yield from self._per_partition(counts)
            offsets = GaugeMetricFamily(
                self.name("committed_offset"),
                "The group's committed offset (the next to read), per assigned facts "
                "partition whose commit is known.",
                labels=["partition"],
            )
            for partition, offset in sorted(committed().items()):
                if offset is not None:
                    offsets.add_metric([str(partition)], offset)
            yield offsets

        self.at_scrape(build)
        self.watch_lag("Facts records", backlog)

    def _per_partition(self, counts: StreamCounts) -> Iterable[Metric]:
        series = counts.per_partition()
        for short, doc in (
            ("fetched", "Facts records handed to the batch loop, per partition."),
            ("processed", "Facts records reduced, per partition."),
            ("acked", "Facts records acked (reduced, or repeats after a seek), per partition."),
            (
                "held",
                "Facts records held back behind an offset hole (read again after the seek "
                "back), per partition.",
            ),
        ):
            values = {str(p): n for p, n in series[short].items()}
            yield self.counts(f"{short}_records", doc, "partition", values)
        yield self.counts(
            "partition_seeks",
            "Seeks back (offset holes and stalls), per facts partition.",
            "partition",
            {str(p): n for p, n in series["seeks"].items()},
        )
