"""The stream worker: facts topic -> reducer state table -> events topic, at least once,
by construction rather than by Faust defaults:

1. The consumer hands each fetch's facts records of a partition to the worker at once
   (the worker is the app's batch route, :class:`~streams.faust_adapter.transport.BatchRoute`:
   no Faust event, stream or per-record ack), and the intake (:mod:`streams.intake`)
   buffers them for the batch loop: fetching goes on while a batch is processed and its
   writes are acknowledged. Faust keeps the group, the assignment, the seeks, the
   commits, the changelog and its recovery.
2. Offsets must continue each partition's sequence (:mod:`streams.offsets`); a hole
   holds the rest of the partition back and asks for a seek back.
3. The pure :class:`~streams.processor.FactProcessor` turns the batch into event
   records, dead letters and the changed instance states.
4. The batch commit (:mod:`streams.commit`) sends the outputs, then the states, then
   acks the batch's records at once; any delivery failure ends the process.
5. Between batches, a slice of the idle sweep (:mod:`streams.idle_sweep`).

Faust stays behind :mod:`streams.faust_adapter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Hashable
from typing import Any

from codex_analytics.runtime.health import READY, RECOVERING, Readiness, not_ready
from codex_analytics.runtime.kafka import KafkaCluster
from codex_analytics.runtime.log_repeats import RepeatedLines
from codex_analytics.runtime.metrics import Backlog, backlogs, partition_lag

from .commit import BatchCommit, Output, StateChange, fatal
from .faust_adapter.app import StreamApp
from .faust_adapter.consumer import AssignmentChanged, OffsetLookupError
from .faust_adapter.stacks import task_chains
from .idle_sweep import IdleSweep
from .intake import FactRecord, Intake
from .metrics import PendingTimestamps, StreamCounts, StreamMetrics
from .offsets import Continuity, OffsetGuard
from .processor import FactProcessor, ProcessedBatch
from .reducer import Reducer
from .settings import StreamSettings
from .sweep import stamp, state_of

log = logging.getLogger("codex_analytics.stream")

#: How often the worker logs its progress, and where each partition's records are.
REPORT_EVERY_S = 10.0

#: Per-fact lines (drops, dead letters): at most one per kind and reason this often.
REPEATS_EVERY_S = 10.0


class StreamWorker:
    """The batch pipeline of the worker's one agent, and its health."""

    def __init__(self, settings: StreamSettings, cluster: KafkaCluster, partitions: int) -> None:
        self.settings = settings
        self.app = StreamApp(settings, cluster, partitions)
        self.consumer = self.app.consumer
        self.processor = FactProcessor(
            Reducer(
                horizon_ms=settings.state_horizon_ms,
                dedupe_horizon_ms=settings.dedupe_horizon_ms,
            ),
            max_record_bytes=settings.max_record_bytes,
            state_cache_size=settings.state_cache_size,
            compact_states=settings.compact_states,
        )
        self.counts = StreamCounts.for_partitions(partitions)
        #: A producer that sends bad facts sends many: one line per reason and interval.
        self.repeats = RepeatedLines(log, REPEATS_EVERY_S)
        #: Next offset to process per facts partition (for the lag metric).
        self.positions: dict[int, int] = {}
        #: Timestamps of the records handed over and not processed yet (lag in seconds).
        self.pending = PendingTimestamps()
        self.metrics = StreamMetrics(
            self.processor.reducer.stats, self.counts, self.backlog, self.committed
        )
        self.guard = OffsetGuard()
        self.commit = BatchCommit(self.app.send, self.app.store, self.app.store.changelog)
        self.sweep = IdleSweep(
            interval_s=settings.sweep_interval_s,
            retention_ms=settings.state_retention_ms,
            store=self.app.store,
            commit=self.commit,
            assignment=self.consumer,
            caught_up=self._caught_up,
            forget=self.processor.forget,
            counts=self.counts,
        )
        self._generation: int | None = None
        #: What the batch loop is doing, and since when (for the report).
        self.stage, self._stage_since = "starting", time.monotonic()
        self.intake = Intake(
            settings.batch_max_records,
            settings.batch_max_wait_ms / 1000,
            self.counts.fetched,
            self.pending,
        )
        self.app.consume(self, self._run)
        self.app.task(self._report_progress)

    # -- the batch route: the consumer hands each fetch's facts records over ------------

    @property
    def topic(self) -> str:
        """The topic whose records come through :meth:`deliver` (the facts topic)."""
        return self.app.facts_topic

    async def deliver(self, tp: Any, records: list[Any]) -> None:
        """One partition's fetched records, straight from the consumer's fetch; waits
        while the batch loop is behind (backpressure on the fetch)."""
        await self.intake.deliver(tp.topic, tp.partition, tp, records)

    def outstanding(self) -> int:
        """Records handed over and not done with (acked, or given up to be read again)."""
        return self.intake.outstanding()

    async def settled(self, within_s: float) -> None:
        await self.intake.settled(within_s)

    # -- the batch loop -------------------------------------------------------------------

    async def _run(self) -> None:
        """The batch loop, for as long as the app runs (Faust's agent runs it)."""
        idle = asyncio.Event()
        idle.set()
        batches = asyncio.ensure_future(self._batch_loop(idle))
        try:
            await asyncio.shield(batches)
        finally:
            # Stopping: let the batch in flight finish (its acks make the last commit
            # exact), then stop the loop where it waits for the next one. Half the
            # shutdown timeout at most: Faust's own stop (the final commit) needs the rest.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle.wait(), self.settings.shutdown_timeout_s / 2)
            batches.cancel()
            self.repeats.flush()
            log.info("stream totals", extra=self._totals())

    async def _batch_loop(self, idle: asyncio.Event) -> None:
        intake, counts, consumer = self.intake, self.counts, self.consumer
        acked, processed, held = counts.acked, counts.processed, counts.held

        async def acknowledge(records: list[FactRecord]) -> None:
            consumer.ack(records)
            for record in records:
                acked[record.partition] = acked.get(record.partition, 0) + 1
            ends: dict[int, int] = {r.partition: r.offset + 1 for r in records}
            for partition, position in ends.items():
                self.positions[partition] = position
                self.pending.processed(partition, position)

        while True:
            # Wake up without records too: to repeat a seek that was lost (the records
            # that would prompt it may never come), and for the idle sweep.
            self._enter("waiting for records")
            records = await intake.take(wait_s=self._wake_in())
            took = bool(records)
            idle.clear()
            try:
                if records:
                    started = time.monotonic()
                    self._enter(f"looking up where {len(records)} records start")
                    continuity = await self._continuity(records)
                    batch = self._reduce(continuity.process) if continuity.process else None
                    outputs, states = self._writes(batch)
                    self._enter(f"committing a batch of {len(continuity.ack)} records")
                    await self.commit.commit(outputs, states, continuity.ack, acknowledge)
                    if batch is not None:
                        self._count(len(continuity.process), batch)
                    for record in continuity.process:
                        processed[record.partition] = processed.get(record.partition, 0) + 1
                    for record in continuity.held:
                        held[record.partition] = held.get(record.partition, 0) + 1
                    # Acked, or held back behind a hole (read again after the seek back):
                    # either way done with here.
                    intake.done(len(records))
                    self.metrics.batch_seconds.observe(time.monotonic() - started)
                    self._enter("seeking back")
                    for tp, offset in continuity.seek.items():
                        await self._seek_back(tp, offset)
                    del records, continuity
                self._follow_assignment()
                if self.consumer.rebalancing:
                    # The flow is stopped: nothing arrives, and a seek now is undone by
                    # Faust's seek to the committed offsets when the assignment comes.
                    self.guard.flow_stopped(time.monotonic())
                else:
                    for tp, offset in self.guard.due_seeks(time.monotonic()).items():
                        await self._seek_back(tp, offset)
                    if not took and not len(intake):
                        await self._unstall()
                self._enter("sweeping")
                await self.sweep.step()
            except BaseException as exc:
                fatal(f"stream batch failed, exiting so nothing is committed past it: {exc!r}")
            idle.set()

    async def _unstall(self) -> None:
        """Idle, with nothing buffered: a partition fetched past the offset the guard
        expects, with nothing of it arriving, lost those records before delivery (see
        :meth:`OffsetGuard.stalled`); read them again rather than idle with a lag."""
        positions = self.consumer.positions(self.app.facts_topic)
        unseen = [tp for tp in positions if tp not in self.guard.expected]
        if unseen:
            try:
                starts = await self.consumer.start_offsets(unseen)
            except (AssignmentChanged, OffsetLookupError):
                return  # the next idle round asks again
            self.guard.watch(starts, time.monotonic())
        for tp, offset in self.guard.stalled(positions, time.monotonic()).items():
            log.warning(
                "stalled on %s: fetched up to offset %d, but nothing from offset %d "
                "arrived for %.0f s",
                tp,
                positions[tp],
                offset,
                self.guard.retry_after_s,
            )
            self.counts.stalls += 1
            await self._seek_back(tp, offset)

    def _enter(self, stage: str) -> None:
        self.stage, self._stage_since = stage, time.monotonic()

    def _wake_in(self) -> float:
        """Seconds the batch loop may wait for records before it has work of its own."""
        now = time.monotonic()
        sweep = self.sweep.due_in(now)
        retry = self.guard.next_retry_in(now)
        if retry is None:
            # To look for a stalled partition, one it knows or one none of whose records
            # arrived yet: a fetch lost whole leaves no record to prompt a look (the
            # chaos suite's slow-resume test idled 44 s, a sweep interval, with a
            # partition fetched to its end and nothing of it delivered).
            retry = self.guard.retry_after_s
        return max(0.0, min(sweep, retry))

    def _follow_assignment(self) -> None:
        """A new assignment: the guard's expectations and holes were the old one's."""
        if self.consumer.generation != self._generation:
            self._generation = self.consumer.generation
            self.counts.rebalances += 1
            self.guard.reset()
            self.processor.clear_cache()  # another worker may have owned these partitions
            # Revoked partitions: their pending records are another worker's now.
            self.pending.keep_only(
                tp.partition for tp in self.consumer.assigned(self.app.facts_topic)
            )

    async def _continuity(self, records: list[FactRecord]) -> Continuity[FactRecord]:
        self._follow_assignment()
        unknown = self.guard.unknown(records)
        if unknown:
            try:
                starts = await self.consumer.start_offsets(unknown)
            except AssignmentChanged:
                # Neither reduced nor acked: the new assignment reads them again.
                return Continuity(held=list(records))
            for tp, offset in starts.items():
                self.guard.start(tp, offset)
        return self.guard.check(records, time.monotonic())

    async def _seek_back(self, tp: Hashable, offset: int) -> None:
        if not await self.consumer.seek_back(tp, offset):
            # Revoked while its hole was open: its new owner starts from the committed
            # offset, which is below the hole.
            log.info("offset gap on %s: no longer assigned here, not re-reading", tp)
            self.guard.forget(tp)
            return
        log.warning("offset gap on %s: re-reading from offset %d", tp, offset)
        self.counts.seeks += 1
        partition = getattr(tp, "partition", -1)
        seeks = self.counts.partition_seeks
        seeks[partition] = seeks.get(partition, 0) + 1
        self.pending.forget(partition)  # handed over again from offset

    def _reduce(self, records: list[FactRecord]) -> ProcessedBatch:
        store = self.app.store

        def load_state(instance_id: str, partition: int) -> bytes | None:
            return state_of(store.get(instance_id.encode(), partition))

        return self.processor.process(records, load_state)

    def _writes(self, batch: ProcessedBatch | None) -> tuple[list[Output], list[StateChange]]:
        """A batch's outputs, and its states stamped for the idle sweep."""
        if batch is None:
            return [], []
        topics = self.settings.topics
        outputs = [Output(topics.events, key, value) for key, value in batch.events]
        outputs += [Output(topics.facts_dlq, d.key, d.value, d.headers) for d in batch.dead_letters]
        now_ms, partitions = int(time.time() * 1000), batch.partitions
        states = [
            StateChange(
                instance.encode(), stamp(state, now_ms, partitions[instance]), partitions[instance]
            )
            for instance, state in batch.states.items()
        ]
        return outputs, states

    def _count(self, records: int, batch: ProcessedBatch) -> None:
        counts = self.counts
        counts.records += records
        counts.batches += 1
        counts.misrouted += batch.misrouted
        counts.corrupt_states += batch.corrupt_states
        for letter in batch.dead_letters:
            counts.count_dead_letter(letter.reason)
        for drop in batch.warnings:
            self.repeats.warning(drop.message, **drop.fields())
        for letter in batch.dead_letters:
            self.repeats.warning(
                "fact sent to the dead-letter topic",
                reason=letter.reason,
                path=letter.header("error.path"),
                detail=letter.header("error.detail"),
                partition=int(letter.header("source.partition") or -1),
                offset=int(letter.header("source.offset") or -1),
                dead_letter_topic=self.settings.topics.facts_dlq,
            )

    async def _report_progress(self) -> None:
        """Every ``REPORT_EVERY_S``, whether batches come or not (a stalled worker must
        say where its records are): the totals, what the batch loop is doing, and per
        assigned partition where its records are."""
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            log.info("stream progress", extra=self._totals())
            partitions = self._partition_report()
            if partitions:
                log.info(
                    "stream partitions",
                    extra={
                        "stage": self.stage,
                        "stage_s": round(time.monotonic() - self._stage_since, 1),
                        "partitions": partitions,
                    },
                )
                if log.isEnabledFor(logging.DEBUG):
                    for chain in task_chains(("_drain_messages", "_resume", "wait_first")):
                        log.debug("stream task: %s", chain)

    def _partition_report(self) -> dict[str, dict[str, Any]]:
        """Per assigned facts partition: its counts (records fetched, i.e. handed to the
        batch loop, processed, acked, held back by the guard, seeks back), the next
        offset processed, the guard's expected offset and open hole, and the consumer's
        own view (fetch position, committed, highwater, active/paused/buffered)."""
        report = self.consumer.partition_report(self.app.facts_topic)
        expected = {getattr(tp, "partition", tp): o for tp, o in self.guard.expected.items()}
        holes = {getattr(tp, "partition", tp) for tp in self.guard.holes}
        series = self.counts.per_partition()
        for partition, row in report.items():
            for name, values in series.items():
                row[name] = values.get(partition, 0)
            row["processed_to"] = self.positions.get(partition)
            row["expected"] = expected.get(partition)
            row["hole"] = partition in holes
        return {str(p): row for p, row in sorted(report.items())}

    def _totals(self) -> dict[str, int]:
        """The worker's totals since it started (the progress and exit lines' fields)."""
        stats, counts = self.processor.reducer.stats, self.counts
        return {
            "records": counts.records,
            "facts": sum(stats.facts.values()),
            "events": sum(stats.events.values()),
            "dead_letters": sum(counts.dead_letters.values()),
            "batches": counts.batches,
            "dedupe_hits": stats.drops.get("dedupe_repeat", 0),
            "duplicates": stats.drops.get("duplicate_seq", 0),
            "seeks": counts.seeks,
            "stalls": counts.stalls,
            "rebalances": counts.rebalances,
            "held": sum(counts.held.values()),
        }

    # -- health and lag -------------------------------------------------------------------

    def lag(self) -> dict[int, int]:
        """Facts records not yet processed, per assigned partition."""
        assigned = self.consumer.assigned(self.app.facts_topic)
        highwaters = {tp.partition: self.consumer.highwater(tp) for tp in assigned}
        return partition_lag(highwaters, self.positions)

    def committed(self) -> dict[int, int | None]:
        """The group's committed offset per assigned facts partition (Faust's copy)."""
        consumer = self.consumer
        return {
            tp.partition: consumer.committed(tp) for tp in consumer.assigned(self.app.facts_topic)
        }

    def backlog(self) -> dict[int, Backlog | None]:
        """Per assigned facts partition, its backlog (``None`` while neither a position
        nor a committed offset is known): the lag metrics'."""
        consumer = self.consumer
        assigned = consumer.assigned(self.app.facts_topic)
        highwaters = {tp.partition: consumer.highwater(tp) for tp in assigned}
        # Nothing processed here yet: behind from the group's committed offset, so a
        # worker stuck before its first batch still reports its lag.
        positions = {
            tp.partition: self.positions.get(tp.partition, consumer.committed(tp))
            for tp in assigned
        }
        return backlogs(highwaters, positions, self.pending.oldest_ms)

    def _caught_up(self) -> set[int]:
        """Partitions processed up to their highwater (the idle sweep's)."""
        return {p for p, lag in self.lag().items() if lag == 0 and p in self.positions}

    def readiness(self) -> Readiness:
        """Ready once the group assigned this worker its partitions (none is fine: more
        workers than partitions) and their changelogs are read back; called on the
        app's loop (``streams.health`` publishes it with every heartbeat)."""
        phase = self.app.phase
        if phase == READY:
            return Readiness(
                READY,
                {
                    "partitions": len(self.consumer.assigned(self.app.facts_topic)),
                    "records": self.counts.records,
                    "lag": sum(self.lag().values()),
                    "batch_loop": self.stage,
                },
            )
        if phase == RECOVERING:
            return not_ready(
                RECOVERING,
                changelog_remaining=self.app.recovery_remaining(),
                records=self.counts.records,
            )
        return not_ready(phase, records=self.counts.records)
