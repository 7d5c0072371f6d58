"""The Faust stream worker: facts topic -> reducer state table -> events topic.

At-least-once, by construction rather than by Faust defaults:

1. The agent takes a batch of events with ``noack_take``: Faust acks nothing by itself.
2. The pure :class:`~streams.processor.FactProcessor` turns the batch into event records,
   dead letters and the changed instance states.
3. Event records and dead letters are produced and every delivery future is awaited.
4. Only then are the states written: to the local store, and to the changelog with an
   explicit partition (the source partition), every future awaited; then one marker
   record per touched changelog partition (see ``_mark_changelog_ends``).
5. Only then are the batch's events acked, in order, so the commit that follows can
   never pass a fact whose outputs or state are not on the broker.

A crash anywhere repeats work, never loses it: a state in the changelog implies its
events were delivered, and facts already in a state are skipped by their ``seq``.
Anything that would break that (a delivery failure) ends the process at once instead of
raising into Faust, which would ack the batch and let it be committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any

import faust
import orjson

from codex_analytics.runtime.http import ServiceHttp
from codex_analytics.runtime.metrics import partition_lag

from .faust_adapter.transport import SCHEME
from .handoff import Handoff
from .metrics import StreamCounts, StreamMetrics
from .offsets import Continuity, OffsetGuard
from .processor import FactProcessor, SourceRecord
from .reducer import Reducer
from .settings import StreamSettings
from .sweep import find_idle, stamp, state_of

log = logging.getLogger("codex_analytics.stream")

#: Changelog key of the end markers; never an instance id (those are non-empty text).
MARKER_KEY = b"\x00end-marker"
#: Stored states the idle sweep looks at between two batches.
SWEEP_SLICE = 20_000
#: Exit status when delivery fails: a supervisor restarts the worker from its last commit.
EXIT_DELIVERY_FAILED = 70


class StreamWorker:
    """Builds the Faust app and owns the batch pipeline of its one agent."""

    def __init__(self, settings: StreamSettings, bootstrap: str, partitions: int) -> None:
        self.settings = settings
        topics = settings.topics
        self.app = faust.App(
            settings.app_id,
            broker=[f"{SCHEME}://{server.strip()}" for server in bootstrap.split(",")],
            store="rocksdb://" if settings.store == "rocksdb" else "memory://",
            datadir=settings.data_dir,
            web_enabled=False,
            producer_acks=-1,
            producer_linger=0.005,
            producer_max_batch_size=512 * 1024,
            producer_request_timeout=60.0,
            broker_session_timeout=10.0,
            broker_heartbeat_interval=1.0,
            broker_commit_interval=1.0,
            consumer_auto_offset_reset="earliest",
            stream_wait_empty=True,
            table_standby_replicas=0,
            topic_partitions=partitions,
            topic_replication_factor=settings.replication_factor,
        )
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        self.facts_topic = self.app.topic(topics.facts, partitions=partitions, **raw)
        self.table = self.app.Table(
            "reducer-state", partitions=partitions, key_type=bytes, value_type=bytes
        )
        self.changelog = self.table.changelog_topic.get_topic_name()
        self.processor = FactProcessor(
            Reducer(
                horizon_ms=settings.state_horizon_ms,
                dedupe_horizon_ms=settings.dedupe_horizon_ms,
            ),
            max_record_bytes=settings.max_record_bytes,
            state_cache_size=settings.state_cache_size,
        )
        self.counts = StreamCounts()
        #: Next offset to process per facts partition (for the lag metric).
        self.positions: dict[int, int] = {}
        self.metrics = StreamMetrics(self.processor.reducer.stats, self.counts, self.lag)
        self.guard = OffsetGuard()
        self._generation: int | None = None
        # The idle sweep in progress (streams.sweep): stored items still to look at, the
        # assignment it started under, and what it found so far.
        self._sweep_items: Iterator[tuple[bytes, bytes, int | None]] | None = None
        self._sweep_generation: int | None = None
        self._sweep_kept = self._sweep_deleted = 0
        self._next_sweep_at = time.monotonic() + settings.sweep_interval_s
        self._last_report = time.monotonic()
        self.app.agent(self.facts_topic, name="reduce-facts", concurrency=1)(self._agent)
        if settings.health_addr:
            self.app.task(self._serve_health)

    async def _serve_health(self) -> None:
        """``/healthz`` and ``/metrics`` on ``ANALYTICS_STREAM_HEALTH_ADDR`` while the
        worker runs (Faust's own web server stays off: one small side door per service)."""
        assert self.settings.health_addr is not None
        side_door = ServiceHttp(self.health, self.metrics.render)
        port = await side_door.start(self.settings.health_addr)
        log.info("health and metrics on port %d", port)
        try:
            await asyncio.Event().wait()  # until the app stops and cancels its tasks
        finally:
            await side_door.stop()

    # -- the agent ----------------------------------------------------------------------

    async def _agent(self, stream: Any) -> None:
        """Hands every event of the (never auto-acked) stream to the batch loop, which
        runs beside it, so that fetching and delivery go on while a batch is processed
        and its writes are acknowledged (see :mod:`streams.handoff`)."""
        events_stream = stream.noack()
        handoff: Handoff[Any] = Handoff(
            self.settings.batch_max_records, self.settings.batch_max_wait_ms / 1000
        )
        idle = asyncio.Event()
        idle.set()
        batches = asyncio.ensure_future(self._batch_loop(handoff, events_stream, idle))
        try:
            async for event in events_stream.events():
                await handoff.put(event)
        finally:
            # Stopping: let the batch in flight finish (its acks make the last commit
            # exact), then stop the loop where it waits for the next one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle.wait(), 30)
            batches.cancel()
            log.info("stream totals: %s", self._summary())

    async def _batch_loop(
        self, handoff: Handoff[Any], events_stream: Any, idle: asyncio.Event
    ) -> None:
        guard = self.guard
        while True:
            # Wake up without records too: to repeat a seek that was lost (the records
            # that would prompt it may never come), and for the idle sweep.
            events = await handoff.take(wait_s=self._wake_in())
            idle.clear()
            try:
                if events:
                    started = time.monotonic()
                    continuity = await self._continuity(events)
                    if continuity.process:
                        await self._process(continuity.process)
                    for event in continuity.ack:  # in order: Faust commits the first acked run
                        await events_stream.ack(event)
                        self.positions[event.message.partition] = event.message.offset + 1
                    self.metrics.batch_seconds.observe(time.monotonic() - started)
                    for tp, offset in continuity.seek.items():
                        await self._seek_back(tp, offset)
                    del events, continuity  # held-back records: nothing keeps them unacked
                for tp, offset in guard.due_seeks(time.monotonic()).items():
                    await self._seek_back(tp, offset)
                await self._sweep_slice()
            except BaseException as exc:
                _fatal(f"stream batch failed, exiting so nothing is committed past it: {exc!r}")
            idle.set()

    async def _continuity(self, events: list[Any]) -> Continuity:
        consumer: Any = self.app.consumer  # private attributes below: Faust 0.15.x
        if self.app.consumer_generation_id != self._generation:
            self._generation = self.app.consumer_generation_id
            self.guard.reset()
            self.processor.clear_cache()  # another worker may have owned these partitions
        unknown = self.guard.unknown(events)
        if unknown:
            # After an assignment the stream starts at the committed offsets (the next to
            # read); a partition never committed starts at its earliest offset. Faust's
            # copy is filled in only once its seek to them has finished, and the first
            # records can be delivered before that: what it lacks is asked of the broker.
            known = consumer._committed_offset
            committed = {tp: known.get(tp) for tp in unknown}
            lacking = [tp for tp, offset in committed.items() if offset is None]
            if lacking:
                committed.update(await _committed_offsets(consumer, lacking))
            missing = [tp for tp in unknown if committed.get(tp) is None]
            earliest = await consumer.earliest_offsets(*missing) if missing else {}
            for tp in unknown:
                start = committed.get(tp)
                self.guard.start(tp, start if start is not None else earliest.get(tp, 0))
        return self.guard.check(events, time.monotonic())

    async def _seek_back(self, tp: Any, offset: int) -> None:
        log.warning("offset gap on %s: re-reading from offset %d", tp, offset)
        self.counts.seeks += 1
        # Faust records jumps it saw itself as acked "gaps", which a commit may pass:
        # forget them for this partition, the records are about to be read again.
        consumer: Any = self.app.consumer
        consumer._gap.pop(tp, None)
        await consumer.seek(tp, offset)

    async def _process(self, events: list[Any]) -> None:
        records = [
            SourceRecord(
                e.message.topic,
                e.message.partition,
                e.message.offset,
                e.message.key,
                e.message.value,
            )
            for e in events
        ]
        last_event_of_partition = {e.message.partition: e for e in events}

        def load_state(instance_id: str, partition: int) -> bytes | None:
            # Partitioned stores (RocksDB) read from the current event's partition only.
            with _current_event(last_event_of_partition[partition]):
                return state_of(self.table.data.get(instance_id.encode()))

        batch = self.processor.process(records, load_state)
        producer = self.app.producer
        topics = self.settings.topics
        pending: list[Awaitable[Any]] = []
        for key, value in batch.events:
            pending.append(await producer.send(topics.events, key, value, None, None, None))
        for letter in batch.dead_letters:
            pending.append(
                await producer.send(
                    topics.facts_dlq, letter.key, letter.value, None, None, letter.headers
                )
            )
        await _delivered(pending)  # (a) outputs first: a saved state implies its outputs

        changelog_futures: list[Awaitable[Any]] = []
        stored: list[tuple[bytes, bytes]] = []
        now_ms = int(time.time() * 1000)
        for instance_id, state in batch.states.items():
            partition = batch.partitions[instance_id]
            key = instance_id.encode()
            value = stamp(state, now_ms, partition)  # for the idle sweep
            stored.append((key, value))
            changelog_futures.append(
                await producer.send(self.changelog, key, value, partition, None, None)
            )
        metadata = await _delivered(changelog_futures)  # (b) then the states
        for (key, value), meta in zip(stored, metadata, strict=True):
            self._store_write(key, value, last_event_of_partition[meta.partition], meta)
        await self._mark_changelog_ends({m.partition for m in metadata})

        self._count(len(records), batch)
        for drop in batch.warnings:
            log.warning("%s %s", drop.message, orjson.dumps(drop.as_log_fields()).decode())
        if batch.dead_letters:
            log.warning("sent %d invalid facts to %s", len(batch.dead_letters), topics.facts_dlq)

    # -- the idle sweep (streams.sweep) --------------------------------------------------

    def _wake_in(self) -> float:
        """Seconds the batch loop may wait for records before it has work of its own."""
        now = time.monotonic()
        sweep = 0.0 if self._sweep_items is not None else self._next_sweep_at - now
        retry = self.guard.next_retry_in(now)
        return max(0.0, sweep if retry is None else min(sweep, retry))

    async def _sweep_slice(self) -> None:
        """Look at the next slice of stored states, between two batches, so that a big
        table never holds a batch up for long; a new assignment abandons the sweep."""
        if self._sweep_items is None:
            now = time.monotonic()
            if now < self._next_sweep_at:
                return
            if self.app.rebalancing:
                self._next_sweep_at = now + 1.0  # try again once the assignment settled
                return
            self._next_sweep_at = now + self.settings.sweep_interval_s
            self._sweep_items = self._stored_items()
            self._sweep_generation = self.app.consumer_generation_id
            self._sweep_kept = self._sweep_deleted = 0
        if self.app.rebalancing or self.app.consumer_generation_id != self._sweep_generation:
            self._sweep_items = None
            return
        try:
            chunk = list(itertools.islice(self._sweep_items, SWEEP_SLICE))
        except Exception as exc:  # a store closed by a rebalance under the iterator
            log.info("idle sweep abandoned: %r", exc)
            self._sweep_items = None
            return
        now_ms = int(time.time() * 1000)
        # Only fully processed partitions: there, "not written for the retention" means
        # "no fact for the retention".
        caught_up = {p for p, lag in self.lag().items() if lag == 0 and p in self.positions}
        found = find_idle(chunk, now_ms - self.settings.state_retention_ms, caught_up)
        if found.idle:
            await self._delete_states(found.idle)
        if found.unstamped:
            await self._stamp_states(found.unstamped, now_ms)
        self._sweep_kept += found.kept + len(found.unstamped)
        self._sweep_deleted += len(found.idle)
        if len(chunk) < SWEEP_SLICE:
            self._sweep_items = None
            self.counts.sweeps += 1
            if self._sweep_deleted:
                log.info(
                    "idle sweep: deleted %d instance states not written for %.4g h, kept %d",
                    self._sweep_deleted,
                    self.settings.state_retention_ms / 3_600_000,
                    self._sweep_kept,
                )

    def _stored_items(self) -> Iterator[tuple[bytes, bytes, int | None]]:
        """(key, value, partition if the store knows it) of every stored state."""
        store: Any = self.table.data  # private attributes below: Faust 0.15.x stores
        if self.settings.store == "rocksdb":
            for partition, db in list(store._dbs.items()):
                for key, value in store._visible_items(db):
                    yield key, value, partition
        else:
            data, partitions = store.data, store._key_partition
            for key in list(data):  # a snapshot of the keys: batches change the dict
                value = data.get(key)
                if value is not None:
                    yield key, value, partitions.get(key)

    async def _delete_states(self, idle: list[tuple[bytes, int]]) -> None:
        """Tombstones in the changelog first (a restart must not bring the state back),
        then out of the store and the decoded-state cache."""
        producer = self.app.producer
        futures = [
            await producer.send(self.changelog, key, None, partition, None, None)
            for key, partition in idle
        ]
        metadata = await _delivered(futures)
        store: Any = self.table.data
        key_partition = getattr(store, "_key_partition", {})
        for (key, _), meta in zip(idle, metadata, strict=True):
            store.pop(key, None)
            key_partition.pop(key, None)
            self._persisted(meta)
            self.processor.forget(key.decode())
        self.counts.swept_states += len(idle)
        await self._mark_changelog_ends({partition for _, partition in idle})

    async def _stamp_states(self, unstamped: list[tuple[bytes, int]], now_ms: int) -> None:
        """States written before stamps existed get one now; they age from here."""
        store: Any = self.table.data  # private attributes below: Faust 0.15.x stores
        rocksdb = self.settings.store == "rocksdb"

        def partition_data(partition: int) -> Any:  # where the store keeps that partition
            return store._db_for_partition(partition) if rocksdb else store.data

        restamped = [
            (key, partition, stamp(value, now_ms, partition))
            for key, partition in unstamped
            if (value := partition_data(partition).get(key)) is not None
        ]
        futures = [
            await self.app.producer.send(self.changelog, key, value, partition, None, None)
            for key, partition, value in restamped
        ]
        metadata = await _delivered(futures)
        for (key, partition, value), meta in zip(restamped, metadata, strict=True):
            data = partition_data(partition)
            if rocksdb:
                data.put(key, value)
            else:
                data[key] = value
            self._persisted(meta)
        await self._mark_changelog_ends({partition for _, partition, _ in restamped})

    def _persisted(self, meta: Any) -> None:
        """Partitioned stores (RocksDB) keep the changelog offset their data reached."""
        set_persisted = getattr(self.table.data, "set_persisted_offset", None)
        if set_persisted is not None:
            set_persisted(meta.topic_partition, meta.offset)

    def _store_write(self, key: bytes, value: bytes, event: Any, meta: Any) -> None:
        with _current_event(event):
            self.table.data[key] = value
            self._persisted(meta)

    async def _mark_changelog_ends(self, partitions: Iterable[int]) -> None:
        """One single-record batch at the end of each changelog partition just written.

        Some brokers (the embedded one) answer ListOffsets with the last *batch*'s base
        offset + 1, and Faust's recovery reads the changelog up to that end: the last batch
        of states would be skipped on restart. A lone marker as the last batch makes the
        reported end exact, so every acknowledged state is recovered."""
        futures = [
            await self.app.producer.send(self.changelog, MARKER_KEY, b"m", partition, None, None)
            for partition in partitions
        ]
        await _delivered(futures)

    def _count(self, records: int, batch: Any) -> None:
        counts = self.counts
        counts.records += records
        counts.batches += 1
        counts.misrouted += batch.misrouted
        counts.corrupt_states += batch.corrupt_states
        for letter in batch.dead_letters:
            counts.count_dead_letter(letter.reason)
        now = time.monotonic()
        if now - self._last_report >= 10:
            self._last_report = now
            log.info("stream progress: %s", self._summary())

    def _summary(self) -> str:
        stats, counts = self.processor.reducer.stats, self.counts
        return (
            f"records {counts.records}, facts {sum(stats.facts.values())}, "
            f"events {sum(stats.events.values())}, "
            f"dead letters {sum(counts.dead_letters.values())}, batches {counts.batches}, "
            f"dedupe hits {stats.drops.get('dedupe_repeat', 0)}, "
            f"duplicates {stats.drops.get('duplicate_seq', 0)}, seeks {counts.seeks}"
        )

    # -- health and lag -----------------------------------------------------------------

    def lag(self) -> dict[int, int]:
        """Facts records not yet processed, per assigned partition."""
        consumer: Any = self.app.consumer
        facts = self.facts_topic.get_topic_name()
        try:
            assigned = [tp for tp in consumer.assignment() if tp.topic == facts]
        except Exception:  # not started, or shutting down: nothing to report
            return {}
        highwaters = {tp.partition: consumer.highwater(tp) for tp in assigned}
        return partition_lag(highwaters, self.positions)

    def health(self) -> tuple[bool, dict[str, Any]]:
        consumer: Any = self.app.consumer
        running = bool(self.app.started) and not self.app.should_stop
        facts = self.facts_topic.get_topic_name()
        try:
            partitions = sum(1 for tp in consumer.assignment() if tp.topic == facts)
        except Exception:
            partitions = 0
        return running, {
            "partitions": partitions,
            "records": self.counts.records,
            "lag": sum(self.lag().values()),
        }


@contextlib.contextmanager
def _current_event(event: Any) -> Iterator[None]:
    """Stores pick their partition from Faust's current event (RocksDB keeps one DB per
    partition), and in a batch there is no meaningful one: name the event the key's
    partition came from, for the duration of one store access."""
    token = faust.streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust.streams._current_event.reset(token)


async def _committed_offsets(
    consumer: Any, partitions: Iterable[Any], *, within_s: float = 5.0
) -> dict[Any, int | None]:
    """The group's committed offset of each partition, from the broker (None: never
    committed, or no answer within ``within_s``). Runs on the consumer's thread, where
    Faust keeps the aiokafka client. Bounded because aiokafka retries the lookup for as
    long as the coordinator answers with a retriable error (as it may mid-rebalance),
    and the batch loop must not wait on that: a start too early is only a re-read
    (repeats are dropped), and one too late is a hole the guard seeks back from."""
    thread = consumer._thread  # Faust 0.15.x: ThreadDelegateConsumer
    client = thread._ensure_consumer()
    wanted = list(partitions)

    async def lookup() -> dict[Any, int | None]:
        return {tp: await client.committed(tp) for tp in wanted}

    try:
        result: dict[Any, int | None] = await asyncio.wait_for(thread.call_thread(lookup), within_s)
    except TimeoutError:
        log.warning(
            "no committed offsets from the broker within %.0f s: reading from the start", within_s
        )
        return dict.fromkeys(wanted)
    return result


async def _delivered(futures: list[Awaitable[Any]]) -> list[Any]:
    """Await broker acknowledgements; any failure is fatal (see module docstring)."""
    if not futures:
        return []
    results = await asyncio.gather(*futures, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        _fatal(f"{len(failures)} of {len(futures)} records were not acknowledged: {failures[0]!r}")
    return results


def _fatal(message: str) -> None:
    log.critical(message)
    logging.shutdown()
    os._exit(EXIT_DELIVERY_FAILED)
