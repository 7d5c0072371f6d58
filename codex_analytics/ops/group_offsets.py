"""Consumer group positions: read them, plan a reset (pure), commit the plan.

A reset only applies to a group with no live members: Kafka refuses commits from
outside an active group's generation, and a worker would overwrite them anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from codex_analytics.runtime.kafka import KafkaCluster, KafkaTarget


@dataclass(frozen=True, slots=True)
class PartitionPosition:
    partition: int
    earliest: int
    end: int
    committed: int | None

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(0, self.end - self.committed)


@dataclass(frozen=True, slots=True)
class GroupPositions:
    group: str
    topic: str
    members: int
    state: str
    partitions: list[PartitionPosition]

    @property
    def total_lag(self) -> int:
        """The lag of the partitions with a committed offset (the others have none)."""
        return sum(p.lag or 0 for p in self.partitions)

    @property
    def uncommitted(self) -> list[int]:
        """Partitions with no committed offset: the group starts them at its reset
        policy (earliest, for the pipeline's workers)."""
        return [p.partition for p in self.partitions if p.committed is None]


class GroupOffsetsError(RuntimeError):
    """The positions cannot be read or the reset cannot be applied."""


async def read_positions(cluster: KafkaTarget, group: str, topic: str) -> GroupPositions:
    admin = AIOKafkaAdminClient(**KafkaCluster.of(cluster).client_options())
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            # Checked first: a consumer stopped without partitions fails in aiokafka.
            raise GroupOffsetsError(
                f"topic {topic} does not exist on {KafkaCluster.of(cluster).bootstrap}"
            )
        consumer = AIOKafkaConsumer(**KafkaCluster.of(cluster).client_options(), group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            earliest = await consumer.beginning_offsets(tps)
            ends = await _ends(consumer, tps)
            members, state = await _membership(admin, group)
        finally:
            await consumer.stop()
    finally:
        await admin.close()
    positions = []
    for tp in tps:
        meta = committed.get(tp)
        offset = meta.offset if meta is not None and meta.offset >= 0 else None
        end = max(ends[tp], offset or 0)
        positions.append(PartitionPosition(tp.partition, earliest[tp], end, offset))
    return GroupPositions(group, topic, members, state, positions)


async def _ends(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """End offsets, checked against a fetch's high watermark: some brokers (the embedded
    one) list the last batch's base offset + 1 as the end."""
    listed = await consumer.end_offsets(tps)
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, max(0, listed[tp] - 1))
    await consumer.getmany(timeout_ms=500)
    return {tp: max(listed[tp], consumer.highwater(tp) or 0) for tp in tps}


async def _membership(admin: AIOKafkaAdminClient, group: str) -> tuple[int, str]:
    described: Any = await admin.describe_consumer_groups([group])
    for response in described:
        for entry in getattr(response, "groups", []):
            # (error_code, group_id, state, protocol_type, protocol, members, ...)
            if entry[1] == group:
                return len(entry[5]), str(entry[2] or "Empty")
    return 0, "Unknown"


def plan_reset(
    positions: GroupPositions,
    *,
    to: str,
    offsets: Mapping[int, int] | None = None,
    times: Mapping[int, int | None] | None = None,
    shift: int = 0,
) -> dict[int, int]:
    """The new committed offset per partition: ``to`` is ``earliest``, ``latest``,
    ``offsets`` (``offsets`` given; partitions not named keep their position; a
    partition the topic does not have is an error naming it), ``timestamp`` (``times``:
    the first offset at or after the time, None = the end) or ``shift`` (the committed
    offset plus ``shift``, which may be negative; from the earliest where nothing is
    committed, where the workers would start). Offsets are clamped into
    ``[earliest, end]``."""
    if to == "offsets":
        check_partitions(positions, offsets or {})
    plan: dict[int, int] = {}
    for p in positions.partitions:
        if to == "earliest":
            target = p.earliest
        elif to == "latest":
            target = p.end
        elif to == "offsets":
            if offsets is None or p.partition not in offsets:
                continue
            target = offsets[p.partition]
        elif to == "timestamp":
            found = (times or {}).get(p.partition)
            target = p.end if found is None else found
        elif to == "shift":
            target = (p.earliest if p.committed is None else p.committed) + shift
        else:
            raise ValueError(f"unknown reset target {to!r}")
        plan[p.partition] = min(max(target, p.earliest), p.end)
    return plan


def check_partitions(positions: GroupPositions, offsets: Mapping[int, int]) -> None:
    """A ``ValueError`` naming the partitions of ``offsets`` the topic does not have."""
    known = {p.partition for p in positions.partitions}
    unknown = sorted(set(offsets) - known)
    if unknown:
        listed = ", ".join(str(p) for p in unknown)
        raise ValueError(
            f"topic {positions.topic} has no partition {listed} (it has "
            f"{len(known)}: 0-{max(known, default=0)}); nothing was changed"
        )


#: The header of an exported plan: kafka-consumer-groups' ``--export`` columns.
EXPORT_HEADER = "topic,partition,offset"


def export_csv(topic: str, offsets: Mapping[int, int]) -> str:
    """``offsets`` as ``kafka-consumer-groups --export`` writes them (one
    ``topic,partition,offset`` line per partition), under a header line."""
    lines = [EXPORT_HEADER, *(f"{topic},{p},{o}" for p, o in sorted(offsets.items()))]
    return "\n".join(lines) + "\n"


def import_csv(text: str, topic: str, *, source: str = "the file") -> dict[int, int]:
    """The offsets of an exported plan (:func:`export_csv`, or kafka-consumer-groups'
    own export, which has no header) for ``topic``. A line that is not
    ``topic,partition,offset``, a line for another topic, or a partition given twice is
    a ``ValueError`` naming the line."""
    offsets: dict[int, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.replace(" ", "") == EXPORT_HEADER:
            continue
        fields = [field.strip() for field in line.split(",")]  # topic names hold no comma
        if len(fields) != 3 or not (fields[0] and fields[1].isdigit() and fields[2].isdigit()):
            raise ValueError(f"{source} line {number}: expected topic,partition,offset: {raw!r}")
        row_topic, partition, offset = fields
        if row_topic != topic:
            raise ValueError(
                f"{source} line {number}: topic {row_topic!r}, but the reset is of {topic}"
            )
        if int(partition) in offsets:
            raise ValueError(f"{source} line {number}: partition {int(partition)} given twice")
        offsets[int(partition)] = int(offset)
    if not offsets:
        raise ValueError(f"{source} holds no topic,partition,offset line")
    return offsets


async def offsets_for_time(
    cluster: KafkaTarget, topic: str, timestamp_ms: int
) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(**KafkaCluster.of(cluster).client_options(), group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        found = await consumer.offsets_for_times(dict.fromkeys(tps, timestamp_ms))
    finally:
        await consumer.stop()
    return {
        tp.partition: hit.offset
        if hit is not None and hit.offset >= 0 and hit.timestamp >= 0
        else None
        for tp, hit in found.items()
    }


async def commit_plan(
    cluster: KafkaTarget, group: str, topic: str, plan: Mapping[int, int]
) -> None:
    """Commit ``plan`` for ``group``; refuses while the group has live members."""
    admin = AIOKafkaAdminClient(**KafkaCluster.of(cluster).client_options())
    await admin.start()
    try:
        members, state = await _membership(admin, group)
    finally:
        await admin.close()
    if members:
        raise GroupOffsetsError(
            f"group {group} has {members} live member(s) (state {state}): stop its workers "
            "first, or they would overwrite the reset with their own commits"
        )
    consumer = AIOKafkaConsumer(
        **KafkaCluster.of(cluster).client_options(), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = {TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in plan.items()}
        consumer.assign(list(tps))
        await consumer.commit(tps)
    finally:
        await consumer.stop()
