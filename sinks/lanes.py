"""Lanes: one per assigned partition, delivering that partition's closed batches in order.

A lane holds its partition's ``PartitionBatcher`` (the open batches), the queue of its
closed batches, and the task that hands them to the delivery step one after another,
so one route's batches keep their order (a route lives in one partition). A batch
leaves the queue only when it has an outcome; then its offsets may be committed.

The worker feeds the lanes, pauses the partition of a lane that retries or holds too
much (``Lane.paused``), and commits; ``Lanes`` opens, drains and stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, ItemsView, Iterable, Iterator, ValuesView

from aiokafka import TopicPartition

from .batching import Batch, BatchLimits, PartitionBatcher
from .metrics import SinkMetrics
from .outcomes import BatchOutcome

log = logging.getLogger("codex_analytics.sink")


class Lane:
    """One assigned partition: its batcher, the queue of its closed batches, its task."""

    def __init__(
        self,
        tp: TopicPartition,
        batcher: PartitionBatcher,
        metrics: SinkMetrics,
        pressure_changed: Callable[[], None],
    ) -> None:
        self.tp = tp
        self.partition: int = tp.partition
        self.batcher = batcher
        self.queue: deque[Batch] = deque()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()  # set while the queue is empty
        self.idle.set()
        self.retrying = False
        self.paused = False  # the worker paused the partition's consumption
        #: Its closed batches hold ``max_buffered_records``: the worker fetches nothing
        #: for it until a batch is delivered.
        self.full = False
        self.assigned = True  # until the partition is handed over
        self.task: asyncio.Task[None] | None = None
        self._batches_closed = metrics.batches_closed
        self._pressure_changed = pressure_changed

    def enqueue(self, batches: Iterable[Batch]) -> None:
        """Queue closed batches for delivery, counting what closed them. Called for every
        record, with no batch most of the time."""
        for batch in batches:
            if batch.closed_by is not None:
                self._batches_closed.labels(batch.closed_by.value).inc()
            self.queue.append(batch)
            self.wake.set()
            self.idle.clear()

    @property
    def queued_records(self) -> int:
        """Records in closed batches waiting for delivery (open ones are bounded by the
        batcher's ``max_open_records``)."""
        return sum(len(b.records) for b in self.queue)

    def mark_retrying(self, retrying: bool) -> None:
        """The head batch is retried (or no longer): the worker pauses (or resumes) the
        partition. A lane that was handed over has no partition to pause."""
        self.retrying = retrying
        if self.assigned:
            self._pressure_changed()

    async def next_batch(self) -> Batch:
        """The head of the queue, once there is one; it stays queued until :meth:`done`."""
        while not self.queue:
            self.wake.clear()
            await self.wake.wait()
        return self.queue[0]

    def done(self, batch: Batch) -> None:
        """``batch``, the head, has its outcome: its offsets may be committed."""
        self.queue.popleft()
        if not self.queue:
            self.idle.set()
        self.batcher.finished(batch)


#: The delivery step as a lane calls it: one batch to its outcome, retried until then.
DeliverBatch = Callable[[Batch, Lane], Awaitable[BatchOutcome]]


class Lanes:
    """The lanes of the assigned partitions, by partition.

    ``batch_done`` is called after each batch's outcome (the worker commits soon after),
    ``pressure_changed`` when a lane starts or stops retrying (the worker re-applies
    backpressure), and ``failed`` when a lane's task raised (the worker stops).
    """

    def __init__(
        self,
        limits: BatchLimits,
        metrics: SinkMetrics,
        deliver: DeliverBatch,
        *,
        batch_done: Callable[[], None],
        pressure_changed: Callable[[], None],
        failed: Callable[[BaseException], None],
    ) -> None:
        self.limits = limits
        self.metrics = metrics
        self._deliver = deliver
        self._batch_done = batch_done
        self._pressure_changed = pressure_changed
        self._failed = failed
        self._lanes: dict[TopicPartition, Lane] = {}
        self._taken = asyncio.Event()  # set when a lane finished a batch

    def __len__(self) -> int:
        return len(self._lanes)

    def __contains__(self, tp: object) -> bool:
        return tp in self._lanes

    def __iter__(self) -> Iterator[TopicPartition]:
        return iter(self._lanes)

    def get(self, tp: TopicPartition) -> Lane | None:
        return self._lanes.get(tp)

    def items(self) -> ItemsView[TopicPartition, Lane]:
        return self._lanes.items()

    def values(self) -> ValuesView[Lane]:
        return self._lanes.values()

    def fetch_wait_ms(self, now_ms: int, *, idle_ms: int, buffering_ms: int) -> int:
        """How long the next fetch may wait for records: ``idle_ms`` when no lane holds
        an open batch; else ``buffering_ms``, shortened to wake when the next batch is
        due by the wall clock (the check runs after each fetch). A deadline already
        past waits for the partition to be read, so it shortens nothing."""
        deadlines = [
            deadline
            for lane in self._lanes.values()
            if (deadline := lane.batcher.next_deadline_ms()) is not None
        ]
        if not deadlines:
            return idle_ms
        ahead = [d - now_ms for d in deadlines if d > now_ms]
        return min([buffering_ms, *ahead])

    @property
    def paused(self) -> int:
        """Lanes whose partition is not consumed now: paused (retrying) or full."""
        return sum(1 for lane in self._lanes.values() if lane.paused or lane.full)

    async def wait_taken(self, *, within: float) -> None:
        """Wait until a lane delivered a batch (room to fetch again), ``within`` at most."""
        self._taken.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._taken.wait()

    @property
    def retrying(self) -> int:
        return sum(1 for lane in self._lanes.values() if lane.retrying)

    def report_paused(self) -> None:
        self.metrics.paused_partitions.set(self.paused)

    def open(self, tp: TopicPartition) -> Lane:
        """A new lane for ``tp``, its task started."""
        lane = Lane(
            tp, PartitionBatcher(tp.partition, self.limits), self.metrics, self._pressure_changed
        )
        lane.task = asyncio.create_task(self._run(lane), name=f"sink-lane-{tp.partition}")
        self._lanes[tp] = lane
        return lane

    async def drain(
        self, *, flush: bool, within: float, tps: Iterable[TopicPartition] | None = None
    ) -> None:
        """Deliver what the lanes hold (and, with ``flush``, their open batches) within
        ``within`` seconds; whatever is still undelivered then is left uncommitted."""
        lanes = [
            self._lanes[tp]
            for tp in (tps if tps is not None else list(self._lanes))
            if tp in self._lanes
        ]
        if flush:
            for lane in lanes:
                lane.enqueue(lane.batcher.flush())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await asyncio.gather(*(lane.idle.wait() for lane in lanes))
        left = sum(len(lane.queue) for lane in lanes)
        if left:
            log.warning(
                "shutdown: %d batches not delivered within %.1f s; left uncommitted", left, within
            )

    async def stop(self, tps: Iterable[TopicPartition]) -> None:
        """Forget the lanes of ``tps`` (handed over), cancelling their tasks."""
        lanes = [self._lanes.pop(tp) for tp in list(tps) if tp in self._lanes]
        for lane in lanes:
            lane.assigned = False
        await _cancel(lanes)
        self.report_paused()

    async def cancel(self) -> None:
        """Cancel every lane's task and keep the lanes (shutdown: their commit points are
        committed before :meth:`clear`)."""
        await _cancel(self._lanes.values())

    def clear(self) -> None:
        for lane in self._lanes.values():
            lane.assigned = False
        self._lanes.clear()

    async def _run(self, lane: Lane) -> None:
        try:
            while True:
                batch = await lane.next_batch()
                self.metrics.record(await self._deliver(batch, lane))
                lane.done(batch)
                self._taken.set()
                self._batch_done()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            # A bug, not a bad record (those are dead-lettered): stop the worker loudly
            # rather than stall the partition; its records stay uncommitted.
            log.exception("partition %d: sink lane failed", lane.partition)
            self._failed(err)


async def _cancel(lanes: Iterable[Lane]) -> None:
    lanes = list(lanes)
    for lane in lanes:
        if lane.task is not None:
            lane.task.cancel()
    for lane in lanes:
        if lane.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await lane.task
