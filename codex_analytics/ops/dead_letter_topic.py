"""Reading a dead-letter topic and sending letters back: the Kafka glue of
:mod:`codex_analytics.ops.dead_letters`.

Reads use no consumer group (nothing is committed, no live group notices) and are
bounded: each partition is read up to its end as of the first fetch (the fetch's high
watermark, not only the listed end offset, which the embedded broker lists low), within
one deadline for the whole topic. Every client takes its options from the cluster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from codex_analytics.runtime.errors import PermanentError
from codex_analytics.runtime.kafka import KafkaCluster

from .dead_letters import (
    Letter,
    MarkerState,
    RedriveMarker,
    RedrivePlan,
    markers_for,
    redrive_headers,
    rival_run,
)

#: Records acknowledged at a time while sending back (bounds the futures held).
_ACK_EVERY = 5_000


class DeadLetterToolError(PermanentError):
    """The topic cannot be read or written as asked (missing, unreachable, too slow)."""


@dataclass(slots=True)
class ReadRange:
    """What a read covered: DLQ partition -> (first offset, end offset)."""

    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    records: int = 0

    def describe(self) -> str:
        return ", ".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(self.ranges.items())) or "none"


async def read_letters(
    cluster: KafkaCluster,
    topic: str,
    read: ReadRange,
    *,
    within: float,
    since_ms: int | None = None,
    only: Mapping[int, tuple[int, int]] | None = None,
) -> AsyncGenerator[Letter, None]:
    """Every record of ``topic`` (from its start, or from the first at or after
    ``since_ms``) to each partition's end as of now, in offset order per partition;
    ``read`` is filled in as it goes. ``only``: partition -> (first, end) to read
    instead (the offsets a plan sends). Raises :class:`DeadLetterToolError` if the
    topic is missing or the read does not finish within ``within`` seconds."""
    deadline = time.monotonic() + within
    options = {k: v for k, v in cluster.consumer_options().items() if k != "enable_auto_commit"}
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **options)
    try:
        await asyncio.wait_for(consumer.start(), max(0.1, deadline - time.monotonic()))
    except (KafkaError, TimeoutError) as exc:
        await consumer.stop()
        raise DeadLetterToolError(f"cannot reach Kafka at {cluster.bootstrap}: {exc!r}") from None
    try:
        tps = await _partitions(consumer, cluster, topic)
        if only is not None:
            tps = [tp for tp in tps if tp.partition in only]
        starts = await _starts(consumer, tps, since_ms, only)
        stops = {tp: only[tp.partition][1] for tp in tps} if only is not None else {}
        async for letter in _read(consumer, topic, starts, stops, read, deadline, within):
            yield letter
    finally:
        await consumer.stop()


async def _partitions(
    consumer: AIOKafkaConsumer, cluster: KafkaCluster, topic: str
) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer.topics()  # refreshes the metadata
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise DeadLetterToolError(f"topic {topic} does not exist on {cluster.bootstrap}")
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def _starts(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    since_ms: int | None,
    only: Mapping[int, tuple[int, int]] | None,
) -> dict[TopicPartition, int | None]:
    """Where each partition's read starts; None: nothing to read there. Offset 0 is
    sought rather than the listed earliest, which the embedded broker can list too
    high; a log that starts later answers 0 as out of range, and the consumer resets to
    its earliest."""
    if only is not None:
        return {tp: only[tp.partition][0] for tp in tps}
    if since_ms is None:
        return dict.fromkeys(tps, 0)
    found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
    # No record at or after the time: some brokers say so with offset -1, the embedded
    # one with timestamp -1.
    return {
        tp: hit.offset if hit is not None and hit.offset >= 0 and hit.timestamp >= 0 else None
        for tp, hit in ((tp, found.get(tp)) for tp in tps)
    }


async def _read(
    consumer: AIOKafkaConsumer,
    topic: str,
    starts: Mapping[TopicPartition, int | None],
    stops: Mapping[TopicPartition, int],
    read: ReadRange,
    deadline: float,
    within: float,
) -> AsyncGenerator[Letter, None]:
    wanted = [tp for tp, start in starts.items() if start is not None]
    if not wanted:
        return
    consumer.assign(wanted)
    for tp in wanted:
        consumer.seek(tp, starts[tp] or 0)
    listed = await consumer.end_offsets(wanted)
    ends: dict[TopicPartition, int] = {}
    firsts: dict[TopicPartition, int] = {}
    pending = set(wanted)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadLetterToolError(
                f"read {read.records:,} records of {topic} but not to its end within "
                f"{within:g} s (partitions {sorted(tp.partition for tp in pending)} unfinished): "
                "raise --timeout"
            )
        fetched = await consumer.getmany(*pending, timeout_ms=int(min(300, left * 1000) or 1))
        for tp in sorted(pending, key=lambda tp: tp.partition):
            if tp not in ends:
                highwater = consumer.highwater(tp)
                if highwater is None and tp not in fetched:
                    continue  # no fetch response yet
                ends[tp] = stops.get(tp, max(listed[tp], highwater or 0))
            end = ends[tp]
            for record in fetched.get(tp, ()):
                if record.offset >= end:
                    break
                firsts.setdefault(tp, record.offset)
                read.records += 1
                yield _letter(tp.partition, record)
            # Offsets without records (control batches, compaction) end a range too.
            position = await consumer.position(tp)
            if position >= end:
                pending.discard(tp)
                consumer.pause(tp)
                read.ranges[tp.partition] = (firsts.get(tp, min(position, end)), end)


def _letter(partition: int, record: Any) -> Letter:
    return Letter(
        partition=partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value or b"",
        headers=tuple((name, bytes(value)) for name, value in record.headers or ()),
    )


@dataclass(frozen=True, slots=True)
class Redrive:
    """One redrive run: from ``dlq_topic`` back to ``target``."""

    cluster: KafkaCluster
    dlq_topic: str
    target: str
    max_record_bytes: int
    run: str
    at_ms: int
    within: float

    async def execute(self, plan: RedrivePlan, read_ends: Mapping[int, int]) -> int:
        """Claim the plan's letters (``started`` markers); stop, sending nothing, if
        another redrive claimed some of them since ``read_ends`` (partition -> where the
        plan's read ended) and first; else send each back with its original key and
        value and the redrive headers, wait for every acknowledgement, and mark the run
        ``done``. Returns how many were sent."""
        producer = AIOKafkaProducer(**self.cluster.producer_options(self.max_record_bytes))
        try:
            await asyncio.wait_for(producer.start(), self.within)
        except (KafkaError, TimeoutError) as exc:
            await producer.stop()
            raise DeadLetterToolError(
                f"cannot reach Kafka at {self.cluster.bootstrap}: {exc!r}"
            ) from None
        try:
            own = await self._mark(producer, plan, MarkerState.STARTED)
            rival = await self._rival(plan, own, read_ends)
            if rival is not None:
                await self._mark(producer, plan, MarkerState.CANCELLED)
                raise DeadLetterToolError(
                    f"another redrive ({rival}) claimed some of these letters at the same time; "
                    f"this run ({self.run}) sent nothing: run it again to see what is left"
                )
            sent = await self._send(producer, plan)
            await self._mark(producer, plan, MarkerState.DONE)
        finally:
            await producer.stop()
        return sent

    async def _mark(
        self, producer: AIOKafkaProducer, plan: RedrivePlan, state: MarkerState
    ) -> dict[int, int]:
        """Write the run's markers of ``state``; returns where each partition's first
        one landed."""
        markers = markers_for(self.run, state, self.at_ms, self.target, plan.send)
        written = await self._acked([await self._marker(producer, m) for m in markers])
        landed: dict[int, int] = {}
        for metadata in written:
            landed.setdefault(metadata.partition, metadata.offset)
        return landed

    async def _rival(
        self, plan: RedrivePlan, own: Mapping[int, int], read_ends: Mapping[int, int]
    ) -> str | None:
        """The run that claimed some of the plan's letters first, between the plan's
        read and this run's own markers."""
        between = {p: (read_ends.get(p, 0), offset + 1) for p, offset in own.items()}
        seen = read_letters(
            self.cluster, self.dlq_topic, ReadRange(), within=self.within, only=between
        )
        async with aclosing(seen):
            letters = [letter async for letter in seen if letter.is_marker]
        return rival_run(self.run, plan.send, own, letters)

    async def _marker(self, producer: AIOKafkaProducer, marker: RedriveMarker) -> Any:
        value, headers = marker.encode()
        return await producer.send(
            self.dlq_topic, value, key=b"redrive", headers=headers, partition=marker.partition
        )

    async def _send(self, producer: AIOKafkaProducer, plan: RedrivePlan) -> int:
        wanted = {(p, o) for p, offsets in plan.send.items() for o in offsets}
        only = {p: (offsets[0], offsets[-1] + 1) for p, offsets in plan.send.items()}
        deliveries: list[Any] = []
        sent = 0
        letters = read_letters(
            self.cluster, self.dlq_topic, ReadRange(), within=self.within, only=only
        )
        async with aclosing(letters):
            async for letter in letters:
                if (letter.partition, letter.offset) not in wanted:
                    continue
                headers = redrive_headers(
                    self.dlq_topic, letter, run=self.run, at_ms=self.at_ms, count=plan.to_send
                )
                # In offset order, one at a time: an instance's facts keep their order.
                deliveries.append(
                    await producer.send(self.target, letter.value, key=letter.key, headers=headers)
                )
                sent += 1
                if len(deliveries) >= _ACK_EVERY:
                    await self._acked(deliveries)
                    deliveries = []
        await self._acked(deliveries)
        return sent

    async def _acked(self, deliveries: list[Any]) -> list[Any]:
        """The record metadata of ``deliveries``, once the broker acknowledged each."""
        try:
            return list(await asyncio.wait_for(asyncio.gather(*deliveries), self.within))
        except (KafkaError, TimeoutError) as exc:
            raise DeadLetterToolError(
                f"the broker at {self.cluster.bootstrap} did not acknowledge: {exc!r}"
            ) from None
