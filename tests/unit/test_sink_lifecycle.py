"""The sink's lifecycle pieces without a broker: the capture file's whole lines, the
event check of the decode fast path, the repeat limit on client logs, and the decode
loop when a rebalance hands its partition over mid-fetch (a fake consumer)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from codex_analytics.contract import encode_event_record
from codex_analytics.runtime.log_repeats import RepeatLimit
from sinks.capture import CaptureDestination
from sinks.decoding import to_sink_record
from sinks.errors import CaptureWriteError
from sinks.lanes import Sending
from sinks.settings import SinkSettings
from sinks.worker import SinkWorker
from tests.integration.sink_helpers import event_records

# -- capture: whole lines only -------------------------------------------------------------


async def test_an_append_failing_half_way_is_cut_back_and_the_retry_is_a_whole_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    capture = CaptureDestination(str(path))
    capture.prepare()
    await capture.deliver(b'{"events":[1]}', {})
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        if len(data) > 4:  # the first call writes part of the line...
            return real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(CaptureWriteError):
        await capture.deliver(b'{"events":[2,3,4,5,6,7]}', {})
    assert capture.failing
    assert path.read_bytes() == b'{"events":[1]}\n'  # cut back to the last whole line
    monkeypatch.setattr(os, "write", real_write)
    await capture.deliver(b'{"events":[2,3,4,5,6,7]}', {})
    assert path.read_bytes() == b'{"events":[1]}\n{"events":[2,3,4,5,6,7]}\n'
    assert not capture.failing


async def test_a_torn_tail_left_by_another_process_is_cut_before_the_next_append(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"events":[1]}\n{"events":[2,')  # e.g. killed mid-write
    await CaptureDestination(str(path)).deliver(b'{"events":[3]}', {})
    assert path.read_bytes() == b'{"events":[1]}\n{"events":[3]}\n'
    path.write_bytes(b'{"events":[')  # no whole line at all
    await CaptureDestination(str(path)).deliver(b'{"events":[4]}', {})
    assert path.read_bytes() == b'{"events":[4]}\n'


# -- decoding: the fast path checks the event is JSON ---------------------------------------


def test_a_compact_record_whose_event_is_not_json_is_rejected_alone() -> None:
    record = event_records(40, accounts=1)[0]
    good = encode_event_record(record)
    at = good.index(b',"event":') + len(b',"event":')
    event = good[at:-1]
    type_end = event.index(b'"', len(b'{"event_type":"'))
    bad = good[:at] + event[: type_end + 1] + b",oops}}"
    assert to_sink_record(1, 0, None, good).error is None
    rejected = to_sink_record(2, 0, None, bad)
    assert rejected.error is not None
    assert rejected.error.reason.value == "not_json"
    assert rejected.event_json == b""  # it never joins a body


def test_a_route_has_one_batch_key_whichever_path_decoded_its_records() -> None:
    # The compact path looks a route's key up by the shared route object, the full
    # parse (any other layout) by the route's fields: both must agree, route by route.
    values = [encode_event_record(r) for r in event_records(60, accounts=3)]
    spaced = [orjson.dumps(orjson.loads(v), option=orjson.OPT_INDENT_2) for v in values]
    compact = [to_sink_record(i, 0, None, v) for i, v in enumerate(values)]
    parsed = [to_sink_record(i, 0, None, v) for i, v in enumerate(spaced)]
    for fast, slow in zip(compact, parsed, strict=True):
        assert fast.error is None
        assert slow.error is None
        assert fast.route == slow.route
        assert fast.route_key == slow.route_key == orjson.dumps(fast.route)
        assert fast.event_json == slow.event_json
    routes = {(r.route.kind, r.route.account_id, r.route.is_fedramp) for r in compact if r.route}
    assert len(routes) > 1
    assert len({r.route_key for r in compact}) == len(routes)


# -- repeated client errors are rate-limited ------------------------------------------------


def _record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeats_of_a_client_error_pass_once_per_interval_with_a_count() -> None:
    now = [0.0]
    limit = RepeatLimit(["aiokafka"], interval_s=10, clock=lambda: now[0])
    template = "Unable connect to node with id %s: %s"
    passed = [limit.filter(_record("aiokafka", template, 1, "refused")) for _ in range(40)]
    assert passed.count(True) == 1
    assert limit.filter(_record("aiokafka.conn", template, 1, "refused"))  # another logger
    assert limit.filter(_record("codex_analytics.sink", template, 1, "x"))  # ours: never
    assert limit.filter(_record("aiokafka", "Joined group %s", 1, level=logging.INFO))
    assert limit.filter(_record("aiokafka", "Joined group %s", 2, level=logging.INFO))
    now[0] = 11.0
    record = _record("aiokafka", template, 1, "refused")
    assert limit.filter(record)
    # The count is a field of the line; the message stays the client's own.
    assert record.getMessage() == "Unable connect to node with id 1: refused"
    assert getattr(record, "repeated", None) == 39


def test_one_record_is_decided_once_for_every_handler() -> None:
    limit = RepeatLimit(["aiokafka"], interval_s=10)
    record = _record("aiokafka", "boom")
    assert limit.filter(record)
    assert limit.filter(record)


# -- a rebalance while fetched records wait in the decode loop -------------------------------


@dataclass
class _Rec:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes


class _Consumer:
    """Just what the decode loop uses of aiokafka's consumer, with its checks: a
    partition that is not assigned has no highwater and cannot be paused or committed."""

    def __init__(self, fetched: dict[TopicPartition, list[_Rec]], on_fetch: Any) -> None:
        self.assigned = set(fetched)
        self.fetches = [fetched]
        self.on_fetch = on_fetch
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.commits: list[dict[TopicPartition, int]] = []
        self.asked: list[set[TopicPartition]] = []  # the partitions of each getmany
        self.paused: set[TopicPartition] = set()

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, Any]:
        self.asked.append(set(partitions))
        if not self.fetches:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        self.on_fetch()
        fetched = self.fetches.pop(0)
        return {tp: records for tp, records in fetched.items() if tp in partitions}

    async def committed(self, tp: TopicPartition) -> int:
        return 0

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def highwater(self, tp: TopicPartition) -> int:
        assert tp in self.assigned, "Partition is not assigned"
        return 10**6

    def _check(self, tp: TopicPartition) -> None:
        if tp not in self.assigned:
            raise AssertionError(f"No current assignment for partition {tp}")

    def pause(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self._check(tp)
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self._check(tp)
        self.paused.difference_update(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._check(tp)
        self.seeks.append((tp, offset))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for tp in offsets:
            self._check(tp)
        self.commits.append(offsets)


def _capture_settings(tmp_path: Path, *, max_events: int, max_buffered: int) -> SinkSettings:
    return SinkSettings.from_env(
        {
            "CODEX_ANALYTICS_EVENTS_CAPTURE_FILE": str(tmp_path / "c.jsonl"),
            "ANALYTICS_BATCH_MAX_EVENTS": str(max_events),
            "ANALYTICS_SINK_MAX_BUFFERED": str(max_buffered),
        }
    )


@pytest.mark.parametrize("still_assigned", [False, True])
async def test_records_fetched_before_a_hand_over_never_reopen_its_lane(
    tmp_path: Path, still_assigned: bool
) -> None:
    settings = _capture_settings(tmp_path, max_events=100_000, max_buffered=100_000)
    worker = SinkWorker(settings, "127.0.0.1:1")
    tps = [TopicPartition(settings.topics.events, p) for p in (0, 1)]
    values = [encode_event_record(r) for r in event_records(300, accounts=1)]
    records = [_Rec(i, 1_000 + i, None, values[i % len(values)]) for i in range(2000)]
    stop = asyncio.Event()
    handed_over: list[asyncio.Task[None]] = []

    async def rebalance() -> None:
        # The revocation runs in aiokafka's coordinator task, here while the worker is
        # between two chunks of the fetch it decodes; the partitions then go elsewhere.
        await worker.hand_over(tps)
        if not still_assigned:
            consumer.assigned.clear()

    def on_fetch() -> None:
        handed_over.append(asyncio.get_running_loop().create_task(rebalance()))

    consumer = _Consumer(dict.fromkeys(tps, records), on_fetch)
    worker._consumer = consumer  # type: ignore[assignment]
    await worker.take_over(tps)
    consuming = asyncio.create_task(worker._consume(stop))
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(consuming, 5)  # raised AssertionError before the fix
    await handed_over[0]
    assert len(worker.lanes) == 0  # no revoked partition came back
    if still_assigned:  # what was set aside is fetched again, from where it was left
        assert (tps[1], 0) in consumer.seeks
    await worker._commit()
    await worker.lanes.cancel()


# -- backpressure: a full lane is not fetched, a retrying one is paused ----------------------


async def test_a_full_lane_is_left_out_of_getmany_and_a_retrying_one_is_paused(
    tmp_path: Path,
) -> None:
    # Pausing a full lane's partition made aiokafka drop what it had prefetched for it
    # (fetched again on resume, and left in a reference cycle meanwhile): the sink's
    # memory grew with the backlog. A full lane's records now wait where they are.
    settings = _capture_settings(tmp_path, max_events=10, max_buffered=20)
    worker = SinkWorker(settings, "127.0.0.1:1")
    full, retrying, free = (TopicPartition(settings.topics.events, p) for p in (0, 1, 2))
    consumer = _Consumer({full: [], retrying: [], free: []}, on_fetch=lambda: None)
    consumer.fetches.clear()
    worker._consumer = consumer  # type: ignore[assignment]
    for tp in (full, retrying, free):
        worker.lanes.open(tp)
    await worker.lanes.cancel()  # nothing is delivered: the queues stay as set here
    full_lane, retrying_lane = worker.lanes.get(full), worker.lanes.get(retrying)
    assert full_lane is not None
    assert retrying_lane is not None
    values = [encode_event_record(r) for r in event_records(100, accounts=1)]
    for lane in (full_lane, retrying_lane):
        for offset in range(20):
            record = to_sink_record(offset, 1_000 + offset, None, values[offset % len(values)])
            lane.enqueue(lane.batcher.add(record))
        lane.enqueue(lane.batcher.flush())
        assert lane.queued_records == 20
    # Full too, but paused: it stays in getmany, which then returns nothing for it but
    # keeps the consumer in its group however long the endpoint is down.
    Sending(retrying_lane).mark_retrying(True)

    await _consume_for(worker, 0.1)
    assert consumer.asked
    assert all(asked == {retrying, free} for asked in consumer.asked)
    assert consumer.paused == {retrying}  # only the retrying lane's partition
    assert worker.lanes.paused == 2  # both count as not consumed
    worker.lanes.clear()


async def test_a_fetch_waits_no_longer_than_until_the_next_batch_is_due(
    tmp_path: Path,
) -> None:
    # The wall-clock close runs after each fetch: a fetch that waited its whole timeout
    # past a batch's due time would add that much to the batch's oldest event.
    settings = SinkSettings.from_env(
        {
            "CODEX_ANALYTICS_EVENTS_CAPTURE_FILE": str(tmp_path / "c.jsonl"),
            "ANALYTICS_BATCH_MAX_WAIT_MS": "100",
        }
    )
    lanes = SinkWorker(settings, "127.0.0.1:1").lanes
    lane = lanes.open(TopicPartition(settings.topics.events, 0))
    await lanes.cancel()
    assert lanes.fetch_wait_ms(0, idle_ms=200, buffering_ms=50) == 200  # nothing open
    value = encode_event_record(event_records(20, accounts=1)[0])
    lane.enqueue(lane.batcher.add(to_sink_record(0, 1_000, None, value)))  # due at 1,100
    assert lanes.fetch_wait_ms(1_000, idle_ms=200, buffering_ms=50) == 50
    assert lanes.fetch_wait_ms(1_080, idle_ms=200, buffering_ms=50) == 20
    # Past due: the partition was not read to its end yet, and its records decide.
    assert lanes.fetch_wait_ms(1_100, idle_ms=200, buffering_ms=50) == 50
    lanes.clear()


async def test_a_worker_without_partitions_keeps_polling(tmp_path: Path) -> None:
    # aiokafka leaves the group for good when getmany is not called for
    # max_poll_interval_ms: a worker with no partition (more workers than partitions)
    # must keep calling it, to be given partitions when another worker goes.
    worker = SinkWorker(_capture_settings(tmp_path, max_events=10, max_buffered=20), "127.0.0.1:1")
    consumer = _Consumer({}, on_fetch=lambda: None)
    worker._consumer = consumer  # type: ignore[assignment]
    await _consume_for(worker, 0.3)
    assert consumer.asked
    assert all(asked == set() for asked in consumer.asked)  # getmany(): every partition


async def _consume_for(worker: SinkWorker, seconds: float) -> None:
    """Run the worker's consume loop for ``seconds``, then stop it."""
    stop = asyncio.Event()
    consuming = asyncio.create_task(worker._consume(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(consuming, 2)


# -- the start gives way to a stop ------------------------------------------------------------


async def test_a_start_that_waits_for_ever_ends_when_stop_is_set() -> None:
    from codex_analytics.runtime.shutdown import unless_stopped

    stop = asyncio.Event()
    cancelled = asyncio.Event()

    async def join_for_ever() -> None:  # a group join with the broker gone
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert await asyncio.wait_for(unless_stopped(stop, join_for_ever()), 2) == (False, None)
    assert cancelled.is_set()

    async def quick() -> int:
        return 7

    assert await unless_stopped(asyncio.Event(), quick()) == (True, 7)
