"""Lanes: one per assigned partition, delivering that partition's closed batches.

A lane holds its partition's ``PartitionBatcher`` (the open batches), its closed
batches, and the task that hands them to the delivery step: one route's batches one
after another, in the order they closed (a route lives in one partition, so its
batches keep their order), different routes' batches side by side, with at most the
lanes' shared ``max_in_flight`` requests open at once. Routes never wait behind one another: a
partition holds many accounts' routes, and one request at a time per partition would
make each route's batch wait for every other route's request (the latency bench
measured that wait as most of the sink's share of the p99 at a 100 ms linger). A batch
leaves its lane only when it has an outcome; then its offsets may be committed
(``PartitionProgress`` takes batches finished in any order). A request slot is held for
one attempt, not across a retry's backoff: routes whose endpoint keeps failing would
otherwise hold every slot while they sleep, and every healthy route of every partition
would wait behind them.

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
    """One assigned partition: its batcher, its closed batches by route, its task."""

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
        #: Closed batches without an outcome yet, by route, in the order they closed; the
        #: head of each is the one being delivered, or the next to be.
        self._by_route: dict[bytes, deque[Batch]] = {}
        #: Routes whose head batch waits to be delivered, in the order they became ready.
        self._ready: deque[bytes] = deque()
        self.queued = 0  # closed batches without an outcome yet
        self.queued_records = 0  # their records (open ones are bounded by the batcher)
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()  # set while no closed batch waits for an outcome
        self.idle.set()
        #: Some batch of the lane is being retried: the worker pauses the partition.
        self.retrying = False
        self._retrying_batches = 0
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
            route = self._by_route.get(batch.route_key)
            if route is None:
                self._by_route[batch.route_key] = deque((batch,))
                self._ready.append(batch.route_key)
            else:
                route.append(batch)
            self.queued += 1
            self.queued_records += len(batch.records)
            self.wake.set()
            self.idle.clear()

    def take_ready(self) -> Batch | None:
        """The next batch whose route has none being delivered (it stays queued until
        :meth:`done`), or None."""
        if not self._ready:
            return None
        return self._by_route[self._ready.popleft()][0]

    def done(self, batch: Batch) -> None:
        """``batch``, the head of its route, has its outcome: its offsets may be
        committed, and the route's next batch may go."""
        route = self._by_route[batch.route_key]
        route.popleft()
        if route:
            self._ready.append(batch.route_key)
            self.wake.set()
        else:
            del self._by_route[batch.route_key]
        self.queued -= 1
        self.queued_records -= len(batch.records)
        if not self.queued:
            self.idle.set()
        self.batcher.finished(batch)

    def _retry_changed(self, retrying: bool) -> None:
        """A batch of the lane started (or stopped) being retried: the worker pauses (or
        resumes) the partition while any is. A lane that was handed over has no
        partition to pause."""
        self._retrying_batches += 1 if retrying else -1
        if self.retrying != (self._retrying_batches > 0):
            self.retrying = self._retrying_batches > 0
            if self.assigned:
                self._pressure_changed()


class Sending:
    """One batch on its way: what the delivery step sees of its lane (the partition, for
    logs, a retrying flag of its own, which the lane sums up) and the request slots
    shared by every lane, one of which each attempt holds while its request is open."""

    __slots__ = ("lane", "request_slot", "retrying")

    def __init__(self, lane: Lane, request_slot: asyncio.Semaphore | None = None) -> None:
        self.lane = lane
        self.request_slot = request_slot if request_slot is not None else asyncio.Semaphore()
        self.retrying = False

    @property
    def partition(self) -> int:
        return self.lane.partition

    def mark_retrying(self, retrying: bool) -> None:
        if retrying != self.retrying:
            self.retrying = retrying
            self.lane._retry_changed(retrying)


#: The delivery step as a lane calls it: one batch to its outcome, retried until then.
DeliverBatch = Callable[[Batch, Sending], Awaitable[BatchOutcome]]


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
        max_in_flight: int = 16,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.limits = limits
        self.metrics = metrics
        self._deliver = deliver
        self._batch_done = batch_done
        self._pressure_changed = pressure_changed
        self._failed = failed
        self._lanes: dict[TopicPartition, Lane] = {}
        self._taken = asyncio.Event()  # set when a lane finished a batch
        #: Requests open at once, over every lane (one per connection); held per attempt.
        self._request_slots = asyncio.Semaphore(max_in_flight)

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
        left = sum(lane.queued for lane in lanes)
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
            async with asyncio.TaskGroup() as sending:
                while True:
                    batch = lane.take_ready()
                    if batch is None:
                        lane.wake.clear()
                        await lane.wake.wait()
                        continue
                    # One task per ready route: bounded by the lane's buffered records;
                    # the requests themselves wait for a slot (Sending.request_slot).
                    sending.create_task(self._send(lane, batch))
        except asyncio.CancelledError:
            raise
        except Exception as err:
            # A bug, not a bad record (those are dead-lettered): stop the worker loudly
            # rather than stall the partition; its records stay uncommitted.
            if isinstance(err, ExceptionGroup) and len(err.exceptions) == 1:
                err = err.exceptions[0]
            log.exception("partition %d: sink lane failed", lane.partition, exc_info=err)
            self._failed(err)

    async def _send(self, lane: Lane, batch: Batch) -> None:
        sending = Sending(lane, self._request_slots)
        try:
            self.metrics.record(await self._deliver(batch, sending))
        finally:
            sending.mark_retrying(False)
        lane.done(batch)
        self._taken.set()
        self._batch_done()


async def _cancel(lanes: Iterable[Lane]) -> None:
    lanes = list(lanes)
    for lane in lanes:
        if lane.task is not None:
            lane.task.cancel()
    for lane in lanes:
        if lane.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await lane.task
