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
        return sum(p.lag or 0 for p in self.partitions)


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
) -> dict[int, int]:
    """The new committed offset per partition: ``to`` is ``earliest``, ``latest``,
    ``offsets`` (``offsets`` given; partitions not named keep their position) or
    ``timestamp`` (``times``: the first offset at or after the time, None = the end).
    Offsets are clamped into ``[earliest, end]``."""
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
        else:
            raise ValueError(f"unknown reset target {to!r}")
        plan[p.partition] = min(max(target, p.earliest), p.end)
    return plan


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
