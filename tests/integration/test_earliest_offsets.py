"""Readers that start where no offset was committed do not trust ListOffsets(earliest).

The embedded broker (Tansu 0.6, memory storage) sometimes answers ListOffsets(earliest)
too high when several producers' first writes to a partition race: measured, 1 run in
40 to 150 of ten producers writing two records each to a fresh partition reported
earliest 2, while offsets 0 and 1 were still served to a fetch from 0. A consumer that
resets to that earliest skips them without a trace. The race itself cannot be triggered
on demand, so these tests make the in-process aiokafka clients hear the same answer
(``earliest_reported_as``) from a real broker that holds every record from offset 0.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.fetcher import Fetcher, OffsetResetStrategy

from codex_analytics.devtools.receiver import Receiver
from codex_analytics.runtime.kafka import ensure_topics, first_offsets, read_from_start

from .sink_helpers import SinkRun, event_records, with_route
from .stream_helpers import produce

pytestmark = pytest.mark.integration

EarliestLie = Callable[[str, int, int], None]


@pytest.fixture
def earliest_reported_as(monkeypatch: pytest.MonkeyPatch) -> EarliestLie:
    """``lie(topic, partition, offset)``: in-process consumers hear ``offset`` as the
    partition's earliest (ListOffsets -2, which their resets use too), as the embedded
    broker answers after the race."""
    lies: dict[TopicPartition, int] = {}
    request = Fetcher._proc_offset_request  # both resets and beginning_offsets go through it

    async def lying(
        self: Fetcher, node_id: int, topic_data: dict[str, list[tuple[int, int]]]
    ) -> dict[TopicPartition, tuple[int, int]]:
        answers: dict[TopicPartition, tuple[int, int]] = await request(self, node_id, topic_data)
        for topic, asked in topic_data.items():
            for partition, timestamp in asked:
                tp = TopicPartition(topic, partition)
                if timestamp == OffsetResetStrategy.EARLIEST and tp in lies and tp in answers:
                    answers[tp] = (lies[tp], answers[tp][1])
        return answers

    monkeypatch.setattr(Fetcher, "_proc_offset_request", lying)

    def lie(topic: str, partition: int, offset: int) -> None:
        lies[TopicPartition(topic, partition)] = offset

    return lie


async def _earliest(bootstrap: str, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return int((await consumer.beginning_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def test_first_offsets_and_read_from_start_serve_what_lies_below_a_too_high_earliest(
    kafka_bootstrap: str, unique_name: Callable[[str], str], earliest_reported_as: EarliestLie
) -> None:
    topic = unique_name("earliest")
    await ensure_topics(kafka_bootstrap, {topic: 2})
    await produce(kafka_bootstrap, topic, [b"r%d" % i for i in range(5)], keys=[b"k"] * 5)
    records = await read_from_start(kafka_bootstrap, topic, want=5, within=15)
    (partition,) = {r.partition for r in records}
    tp, empty = TopicPartition(topic, partition), TopicPartition(topic, 1 - partition)
    earliest_reported_as(topic, partition, 2)
    assert await _earliest(kafka_bootstrap, tp) == 2, "the lie is heard"

    assert await first_offsets(kafka_bootstrap, [tp, empty]) == {tp: 0, empty: 0}
    again = await read_from_start(kafka_bootstrap, topic, want=5, within=15)
    assert sorted(r.value for r in again) == [b"r%d" % i for i in range(5)]


async def test_a_fresh_sink_group_delivers_the_events_below_a_too_high_earliest(
    kafka_bootstrap: str,
    new_sink_run: Callable[[str], SinkRun],
    receiver: Receiver,
    earliest_reported_as: EarliestLie,
) -> None:
    from codex_analytics.contract.facts import AuthRoute

    run = new_sink_run(kafka_bootstrap)
    run.partitions = 1
    run.add_account("acct-1")
    records = with_route(event_records(60)[:6], AuthRoute("chatgpt", "acct-1", False))
    await run.create_topics()
    await run.publish(records)
    earliest_reported_as(run.events, 0, 2)

    async with run.worker():
        events = await receiver.wait_for_events(len(records), within=30)

    assert len(events) == len(records), "the events at offsets 0 and 1 were skipped"
    assert await run.committed() == {0: len(records)}
