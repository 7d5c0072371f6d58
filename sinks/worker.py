"""The sink worker: the thin async glue around the pure core.

::

    events topic ──getmany──▶ decode ──▶ PartitionBatcher (per partition, per route)
                                              │ closed batches, in order
                                              ▼
                           Lane (one per partition, one batch at a time)
                 gate ─skip─▶ done         deliver ─2xx─▶ done
                                 retry (paused partition) ◀─429/5xx/transport/file error
                                 4xx, too large, undecodable ─▶ events DLQ ─▶ done
                                              │
                           committer: commit each partition's commit point

A lane delivers its partition's batches one after another, so one route's batches
keep their order (a route lives in one partition). While a lane retries, or while a
partition holds more than ``max_buffered_records`` undelivered records, its
consumption is paused: the backlog stays in Kafka, not in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from codex_analytics.runtime.kafka import consumer_options, ensure_topics
from codex_analytics.runtime.metrics import partition_lag

from .batching import Batch, PartitionBatcher
from .credentials import CredentialChain, CredentialProvider
from .deadletters import DeadLetterQueue
from .decoding import to_sink_record
from .delivery import BatchDelivery
from .destinations import Destination, destination_for
from .metrics import SinkMetrics
from .settings import SinkSettings

log = logging.getLogger("codex_analytics.sink")


class Lane:
    """One assigned partition: its batcher and the queue of its closed batches."""

    def __init__(
        self, tp: TopicPartition, batcher: PartitionBatcher, pressure_changed: Callable[[], None]
    ) -> None:
        self.tp = tp
        self.partition: int = tp.partition
        self.batcher = batcher
        self.queue: deque[Batch] = deque()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()  # set while the queue is empty
        self.idle.set()
        self.retrying = False
        self.paused = False
        self.assigned = True  # until the partition is handed over
        self.task: asyncio.Task[None] | None = None
        self._pressure_changed = pressure_changed

    def mark_retrying(self, retrying: bool) -> None:
        """The head batch is retried (or no longer): the worker pauses (or resumes) the
        partition. A lane that was handed over has no partition to pause."""
        self.retrying = retrying
        if self.assigned:
            self._pressure_changed()

    def enqueue(self, batches: Iterable[Batch]) -> None:
        for batch in batches:
            self.queue.append(batch)
            self.wake.set()
            self.idle.clear()

    @property
    def queued_records(self) -> int:
        """Records in closed batches waiting for delivery (open ones are bounded by the
        batcher's ``max_open_records``)."""
        return sum(len(b.records) for b in self.queue)


class SinkWorker:
    def __init__(
        self,
        settings: SinkSettings,
        bootstrap: str,
        *,
        destination: Destination | None = None,
        credentials: CredentialProvider | None = None,
        metrics: SinkMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.metrics = metrics or SinkMetrics()
        self.metrics.watch_lag(self.lag)
        self.credentials = credentials or CredentialChain.from_env({})
        self.destination: Destination = destination or destination_for(settings)
        self.dead_letters = DeadLetterQueue(bootstrap, settings.topics)
        self.delivery = BatchDelivery(
            settings, self.destination, self.credentials, self.metrics, self.dead_letters
        )
        self.lanes: dict[TopicPartition, Lane] = {}
        self.started = False
        self._consumer: AIOKafkaConsumer | None = None
        self._commit_wanted = asyncio.Event()
        self._committed: dict[TopicPartition, int] = {}
        self._stop: asyncio.Event | None = None
        #: Set when a lane failed unexpectedly; ``run`` then ends and the process exits 70.
        self.failure: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then flush, deliver, commit and return."""
        self._stop = stop
        topics = self.settings.topics
        await ensure_topics(
            self.bootstrap, {topics.events: topics.partitions, topics.events_dlq: topics.partitions}
        )
        self.destination.prepare()  # logs a failure itself; batches are retried meanwhile
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.settings.group_id,
            **{
                **consumer_options(session_timeout_ms=self.settings.session_timeout_ms),
                # Fetches ahead of a paused or busy lane sit in memory: keep them small.
                "max_partition_fetch_bytes": 1024 * 1024,
                # The embedded broker holds a fetch for most of this wait even when data is
                # there, and a batch's time cut waits for the next fetch: 100 ms (the
                # default here) left the loop waiting on Kafka 19% of the time, 20 ms ~4%.
                "fetch_max_wait_ms": 20,
            },
        )
        await self.dead_letters.start()
        try:
            self._consumer.subscribe([topics.events], listener=_Rebalance(self))
            await self._consumer.start()
            self.started = True
            committer = asyncio.create_task(self._committer(), name="sink-committer")
            try:
                await self._consume(stop)
                await self._drain(flush=True, within=self.settings.shutdown_timeout_s)
            finally:
                committer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await committer
                await self._cancel_lanes(self.lanes.values())
                await self._commit()  # what the lanes finished, before they are forgotten
                self.lanes.clear()
                await self._consumer.stop()
        finally:
            self.started = False
            await self.dead_letters.stop()
            await self.destination.aclose()

    async def _consume(self, stop: asyncio.Event) -> None:
        consumer = self._consumer
        assert consumer is not None
        stopping = asyncio.ensure_future(stop.wait())
        validate = self.settings.validate_events
        try:
            while not stop.is_set():
                busy = any(lane.batcher.buffered for lane in self.lanes.values())
                timeout_ms = 50 if busy else 200
                fetch = asyncio.ensure_future(
                    consumer.getmany(timeout_ms=timeout_ms, max_records=1000)
                )
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    fetch.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fetch
                    break
                for tp, records in fetch.result().items():
                    lane = self.lanes.get(tp) or self._open_lane(tp)
                    for index, rec in enumerate(records, 1):
                        ts = rec.timestamp if rec.timestamp and rec.timestamp > 0 else _now_ms()
                        sink_record = to_sink_record(
                            rec.offset, ts, rec.key, rec.value, validate_events=validate
                        )
                        self._enqueue(lane, lane.batcher.add(sink_record))
                        if index % 256 == 0:
                            # Decoding is CPU work: let the lanes send what is closed.
                            await asyncio.sleep(0)
                now = _now_ms()
                for tp, lane in self.lanes.items():
                    highwater = consumer.highwater(tp)
                    next_offset = lane.batcher.progress.next_offset
                    caught_up = highwater is None or (
                        next_offset is not None and next_offset >= highwater
                    )
                    self._enqueue(lane, lane.batcher.expire(now, caught_up=caught_up))
                self._apply_backpressure()
        finally:
            stopping.cancel()

    async def _drain(
        self, *, flush: bool, within: float, tps: Iterable[TopicPartition] | None = None
    ) -> None:
        """Deliver what the lanes hold (and, with ``flush``, their open batches) within
        ``within`` seconds; whatever is still undelivered then is left uncommitted."""
        lanes = [
            self.lanes[tp]
            for tp in (tps if tps is not None else list(self.lanes))
            if tp in self.lanes
        ]
        if flush:
            for lane in lanes:
                self._enqueue(lane, lane.batcher.flush())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await asyncio.gather(*(lane.idle.wait() for lane in lanes))
        left = sum(len(lane.queue) for lane in lanes)
        if left:
            log.warning(
                "shutdown: %d batches not delivered within %.1f s; left uncommitted", left, within
            )

    # -- lanes -------------------------------------------------------------------------

    def _open_lane(self, tp: TopicPartition) -> Lane:
        lane = Lane(
            tp, PartitionBatcher(tp.partition, self.settings.limits), self._apply_backpressure
        )
        lane.task = asyncio.create_task(self._run_lane(lane), name=f"sink-lane-{tp.partition}")
        self.lanes[tp] = lane
        return lane

    async def _stop_lanes(self, tps: Iterable[TopicPartition]) -> None:
        lanes = [self.lanes.pop(tp) for tp in list(tps) if tp in self.lanes]
        for lane in lanes:
            lane.assigned = False
        await self._cancel_lanes(lanes)
        self._update_paused_gauge()

    async def _cancel_lanes(self, lanes: Iterable[Lane]) -> None:
        lanes = list(lanes)
        for lane in lanes:
            if lane.task is not None:
                lane.task.cancel()
        for lane in lanes:
            if lane.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await lane.task

    def _enqueue(self, lane: Lane, batches: list[Batch]) -> None:
        for batch in batches:
            if batch.closed_by is not None:
                self.metrics.batches_closed.labels(batch.closed_by.value).inc()
        lane.enqueue(batches)

    async def _run_lane(self, lane: Lane) -> None:
        try:
            await self._lane_loop(lane)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            # A bug, not a bad record (those are dead-lettered): stop the worker loudly
            # rather than stall the partition; its records stay uncommitted.
            log.exception("partition %d: sink lane failed", lane.tp.partition)
            self.failure = err
            if self._stop is not None:
                self._stop.set()

    async def _lane_loop(self, lane: Lane) -> None:
        while True:
            while not lane.queue:
                lane.wake.clear()
                await lane.wake.wait()
            batch = lane.queue[0]
            self.metrics.record(await self.delivery(batch, lane))
            lane.queue.popleft()
            if not lane.queue:
                lane.idle.set()
            lane.batcher.finished(batch)
            self._commit_wanted.set()

    def _apply_backpressure(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        limit = self.settings.max_buffered_records
        for tp, lane in self.lanes.items():
            want_paused = lane.retrying or lane.queued_records >= limit
            if want_paused and not lane.paused:
                consumer.pause(tp)
                lane.paused = True
            elif lane.paused and not want_paused:
                consumer.resume(tp)
                lane.paused = False
        self._update_paused_gauge()

    def _update_paused_gauge(self) -> None:
        self.metrics.paused_partitions.set(sum(1 for lane in self.lanes.values() if lane.paused))

    # -- commits -----------------------------------------------------------------------

    async def _committer(self) -> None:
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self._commit()
            await asyncio.sleep(0.05)  # coalesce the commits of a burst of batches

    async def _commit(
        self, *, final: bool = False, tps: Iterable[TopicPartition] | None = None
    ) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        offsets: dict[TopicPartition, int] = {}
        for tp in tps if tps is not None else list(self.lanes):
            lane = self.lanes.get(tp)
            point = lane.batcher.commit_point() if lane is not None else None
            if point is not None and point > self._committed.get(tp, -1):
                offsets[tp] = point
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as err:
            # A rebalance took the partitions; their records will be delivered again
            # by the next owner (at-least-once), with the same batches and keys.
            log.warning("commit failed (%s); the next owner re-delivers from the last commit", err)
            return
        self._committed.update(offsets)

    # -- health and lag ----------------------------------------------------------------

    def lag(self) -> dict[int, int]:
        """Records past the last commit (or, before one, past the consumed position)."""
        consumer = self._consumer
        if consumer is None or not self.started:
            return {}
        highwaters: dict[int, int | None] = {}
        positions: dict[int, int | None] = {}
        for tp, lane in list(self.lanes.items()):
            highwaters[tp.partition] = consumer.highwater(tp)
            committed = self._committed.get(tp)
            positions[tp.partition] = (
                committed if committed is not None else lane.batcher.progress.next_offset
            )
        return partition_lag(highwaters, positions)

    def health(self) -> tuple[bool, dict[str, Any]]:
        retrying = sum(1 for lane in self.lanes.values() if lane.retrying)
        details = {
            "mode": self.destination.name,
            "consuming": self.started,
            "partitions": len(self.lanes),
            "paused_partitions": sum(1 for lane in self.lanes.values() if lane.paused),
            "retrying_partitions": retrying,
            "capture_failing": self.destination.failing,
        }
        return self.started and not self.destination.failing, details


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: SinkWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        worker = self.worker
        mine = [tp for tp in revoked if tp in worker.lanes]
        if not mine:
            return
        # Deliver what is already closed (briefly), commit, and let the next owner
        # re-form the open batches from the committed offset.
        await worker._drain(
            flush=False, within=min(5.0, worker.settings.shutdown_timeout_s), tps=mine
        )
        await worker._commit(tps=mine)
        await worker._stop_lanes(mine)
        for tp in mine:
            worker._committed.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            if tp not in self.worker.lanes:
                self.worker._open_lane(tp)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
