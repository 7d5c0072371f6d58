"""Replay: re-run the stream stage over a range of the facts topic, outside any consumer
group, into a capture file or a fresh events topic.

Determinism is the point: partitions are read one after another, each from its start
point to the end it had when the replay began, through the same pure
:class:`~streams.processor.FactProcessor` as the worker, with fresh state. The same
input therefore gives the same output, byte for byte, however the broker batches its
fetches. Capture lines are request bodies batched per route within a partition (up to
``max_events`` events / ``max_bytes`` bytes, routes in the order they first appear),
the format of the sink's capture file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from codex_analytics.contract import (
    BATCH_BODY_OVERHEAD,
    ISOLATED_EVENT_TYPES,
    join_batch,
    split_event_record,
)
from codex_analytics.runtime.kafka import KafkaCluster, KafkaTarget, first_offsets
from streams.processor import FactProcessor, SourceRecord
from streams.reducer import Reducer
from streams.settings import StreamSettings

from .moments import MOMENT_FORMS, is_duration, parse_moment

EARLIEST = "earliest"


@dataclass(frozen=True, slots=True)
class StartPoint:
    """``earliest``; ``P:O,...`` (an offset per partition; unnamed partitions start at
    their earliest); or a time (ISO 8601, epoch milliseconds, or a duration ago such as
    ``2h``) resolved per partition to the first record at or after it."""

    offsets: Mapping[int, int] = field(default_factory=dict)
    timestamp_ms: int | None = None

    @classmethod
    def parse(cls, text: str, *, flag: str = "--from", now_ms: int | None = None) -> StartPoint:
        """``text`` as ``flag`` gave it; a duration (``2h``) counts back from ``now_ms``
        (default: now)."""
        text = text.strip()
        if text == EARLIEST:
            return cls()
        if re.fullmatch(r"\d+:\d+(,\d+:\d+)*", text):
            pairs = (item.split(":") for item in text.split(","))
            return cls(offsets={int(p): int(o) for p, o in pairs})
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if not re.match(r"\d{4}-", text):  # not an attempt at an ISO time
            text_forms = f"'earliest', PARTITION:OFFSET[,...], or {MOMENT_FORMS}"
            if not (re.fullmatch(r"\d{10,}", text) or is_duration(text)):
                raise ValueError(f"{flag} {text!r}: expected {text_forms}")
        try:
            return cls(timestamp_ms=parse_moment(text, now_ms=now))
        except ValueError as exc:
            raise ValueError(f"{flag} {exc}") from None

    def describe(self) -> str:
        if self.timestamp_ms is not None:
            return f"time {self.timestamp_ms} ms"
        if self.offsets:
            return "offsets " + ",".join(f"{p}:{o}" for p, o in sorted(self.offsets.items()))
        return EARLIEST


class CaptureBatcher:
    """Deterministic request bodies per route: a body closes when the next event would
    pass ``max_events`` or ``max_bytes``; :meth:`flush` closes the rest in the order
    their routes first appeared."""

    def __init__(self, max_events: int = 500, max_bytes: int = 1024 * 1024) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._open: dict[bytes, tuple[list[bytes], int]] = {}

    def add(self, route_key: bytes, event_json: bytes, event_type: str = "") -> list[bytes]:
        closed: list[bytes] = []
        if event_type in ISOLATED_EVENT_TYPES:  # alone in a body, as the sink sends it
            events, _ = self._open.pop(route_key, ([], 0))
            if events:
                closed.append(join_batch(events))
            closed.append(join_batch([event_json]))
            return closed
        events, size = self._open.get(route_key, ([], BATCH_BODY_OVERHEAD))
        cost = len(event_json) + (1 if events else 0)
        if events and (len(events) >= self.max_events or size + cost > self.max_bytes):
            closed.append(join_batch(events))
            events, size, cost = [], BATCH_BODY_OVERHEAD, len(event_json)
        events.append(event_json)
        self._open[route_key] = (events, size + cost)
        return closed

    def flush(self) -> list[bytes]:
        bodies = [join_batch(events) for events, _ in self._open.values() if events]
        self._open.clear()
        return bodies


@dataclass(slots=True)
class ReplayStats:
    records: int = 0
    facts: int = 0
    events: int = 0
    outputs: int = 0  # capture lines or topic records written
    dead_letters: dict[str, int] = field(default_factory=dict)
    #: partition -> (start offset, end offset) replayed
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)


class ReplayOutput(Protocol):
    async def partition_events(self, events: list[tuple[bytes, bytes]]) -> int: ...

    async def partition_done(self) -> int: ...


class CaptureOutput:
    """Bodies into a new file (0600), renamed over ``path`` only when the replay ends."""

    def __init__(self, path: str, *, max_events: int = 500, max_bytes: int = 1024 * 1024) -> None:
        self.path = path
        self.tmp_path = f"{path}.replay-tmp"
        self.batcher = CaptureBatcher(max_events, max_bytes)
        fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._file = os.fdopen(fd, "wb")

    async def partition_events(self, events: list[tuple[bytes, bytes]]) -> int:
        bodies: list[bytes] = []
        for key, value in events:
            parts = split_event_record(value)
            bodies.extend(self.batcher.add(key, parts.event_json, parts.event_type))
        return self._write(bodies)

    async def partition_done(self) -> int:
        return self._write(self.batcher.flush())

    def _write(self, bodies: list[bytes]) -> int:
        if bodies:
            self._file.write(b"".join(body + b"\n" for body in bodies))
        return len(bodies)

    def commit(self) -> None:
        self._file.close()
        os.replace(self.tmp_path, self.path)

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp_path)


class TopicOutput:
    """Event records, as the worker would produce them, into a fresh events topic; each
    partition's records are acknowledged before the next partition is read."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._pending: list[Any] = []

    async def partition_events(self, events: list[tuple[bytes, bytes]]) -> int:
        for key, value in events:
            self._pending.append(await self.producer.send(self.topic, value, key=key))
        return len(events)

    async def partition_done(self) -> int:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
        return 0


class Replayer:
    """The pure part: records, partition by partition in offset order, through fresh
    state (an instance's facts are all in one partition, so one state map serves)."""

    def __init__(self, processor: FactProcessor) -> None:
        self.processor = processor
        self._states: dict[str, bytes] = {}

    def feed(self, records: list[SourceRecord], stats: ReplayStats) -> list[tuple[bytes, bytes]]:
        batch = self.processor.process(
            records, lambda instance_id, _p: self._states.get(instance_id)
        )
        self._states.update(batch.states)
        stats.records += len(records)
        stats.facts += batch.facts
        stats.events += len(batch.events)
        for letter in batch.dead_letters:
            stats.dead_letters[letter.reason] = stats.dead_letters.get(letter.reason, 0) + 1
        return batch.events


ProgressCallback = Callable[[ReplayStats, int], None]


async def replay(
    cluster: KafkaTarget,
    topic: str,
    start: StartPoint,
    output: ReplayOutput,
    settings: StreamSettings,
    *,
    on_progress: ProgressCallback | None = None,
) -> ReplayStats:
    """Replay ``topic`` from ``start`` to its end offsets as of now into ``output``.

    No consumer group: nothing is committed, no live group notices. ``on_progress`` is
    called with the stats and the total of records to replay."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    kafka = KafkaCluster.of(cluster)
    options = {k: v for k, v in kafka.consumer_options().items() if k != "enable_auto_commit"}
    consumer = AIOKafkaConsumer(group_id=None, **options)
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise ReplayError(f"cannot reach Kafka at {kafka.bootstrap}: {exc}") from None
    stats = ReplayStats()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await (
                consumer.topics()
            )  # refreshes the metadata (the consumer has no force_metadata_update)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ReplayError(f"topic {topic} does not exist on {kafka.bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps)
        listed = await consumer.beginning_offsets(tps)
        # The embedded broker can list a partition's earliest too high (see first_offsets).
        served = await first_offsets(kafka, tps)
        earliest = {tp: served.get(tp, listed[tp]) for tp in tps}
        starts: dict[Any, int | None] = {
            tp: max(earliest[tp], start.offsets.get(tp.partition, earliest[tp])) for tp in tps
        }
        if start.timestamp_ms is not None:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, start.timestamp_ms))
            # None: no record at or after that time in the partition (some brokers say
            # so with offset -1, the embedded one with timestamp -1).
            starts = {
                tp: hit.offset
                if hit is not None and hit.offset >= 0 and hit.timestamp >= 0
                else None
                for tp, hit in ((tp, found.get(tp)) for tp in tps)
            }
        total = sum(max(0, ends[tp] - (starts[tp] or ends[tp])) for tp in tps)
        replayer = Replayer(
            FactProcessor(
                Reducer(
                    horizon_ms=settings.state_horizon_ms,
                    dedupe_horizon_ms=settings.dedupe_horizon_ms,
                ),
                max_record_bytes=settings.max_record_bytes,
            )
        )
        for tp in tps:
            first = starts[tp]
            if first is None:
                continue
            end = await _replay_partition(
                consumer,
                tp,
                first,
                ends[tp],
                replayer,
                output,
                stats,
                total,
                on_progress,
                from_ms=start.timestamp_ms,
            )
            stats.ranges[tp.partition] = (min(first, end), end)
            stats.outputs += await output.partition_done()
    finally:
        await consumer.stop()
    if on_progress is not None:
        on_progress(stats, total)
    return stats


async def _replay_partition(
    consumer: Any,
    tp: Any,
    first: int,
    listed_end: int,
    replayer: Replayer,
    output: ReplayOutput,
    stats: ReplayStats,
    total: int,
    on_progress: ProgressCallback | None,
    *,
    from_ms: int | None = None,
) -> int:
    """Replay one partition from ``first`` to its end as of the first fetch; returns
    that end. The end is the high watermark of the first fetch response, not only the
    listed end offset: some brokers (the embedded one) list the last batch's base
    offset + 1 and would cut the partition short.

    With ``from_ms``, records before the first one stamped at or after it are skipped:
    a broker's time index may point at the batch, not the record."""
    consumer.assign([tp])
    consumer.seek(tp, first)
    end: int | None = None
    position = first
    while True:
        fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=2000)
        if end is None:
            highwater = consumer.highwater(tp)
            if highwater is None and not fetched:
                continue  # no fetch response yet
            end = max(listed_end, highwater or 0)
            if first >= end:
                return end
        topic = tp.topic
        fetched_records = [r for r in fetched.get(tp, []) if first <= r.offset < end]
        if from_ms is not None:
            at = next((i for i, r in enumerate(fetched_records) if r.timestamp >= from_ms), None)
            if at is None:
                position = fetched_records[-1].offset + 1 if fetched_records else position
                fetched_records = []
            else:
                fetched_records, from_ms = fetched_records[at:], None
        records = [
            SourceRecord(topic, tp.partition, r.offset, r.key, r.value) for r in fetched_records
        ]
        if records:
            position = records[-1].offset + 1
            stats.outputs += await output.partition_events(replayer.feed(records, stats))
            if on_progress is not None:
                on_progress(stats, total)
        # Offsets without records (control batches, compaction) end a range too.
        if position >= end or (not records and await consumer.position(tp) >= end):
            return end


class ReplayError(RuntimeError):
    """The replay cannot start (no such topic...)."""
