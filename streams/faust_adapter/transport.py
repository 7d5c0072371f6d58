"""Faust's aiokafka transport with our consumer: each override fixes a measured fault or
cost of faust-streaming 0.15.x, and each is a method of a class of ours.

Faust builds its consumer from the transport named by the broker URL's scheme. The
``faust.transports`` entry point group (pyproject.toml) registers :class:`Transport`
under :data:`SCHEME`, and :mod:`.app` builds the app with ``codex-kafka://host:port``:
nothing is replaced process-wide. The overrides are covered by the stream worker's
integration tests (kill -9, rebalance, replay) and measured by ``python -m bench
stream``; ``tests/unit/test_stream_faust_hooks.py`` checks that what they override is
still there, with the signature they expect.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import types
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, cast

import aiokafka
import faust
from faust.transport.consumer import RecordMap
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.services import WaitArgT, WaitResults
from mode.utils.times import Seconds

from codex_analytics.runtime.kafka import KafkaCluster

#: The broker URL scheme of :class:`Transport` (an entry point name in pyproject.toml).
SCHEME = "codex-kafka"
#: Faust hard-codes 1500 ms, and brokers hold a fetch open for most of it.
FETCH_MAX_WAIT_MS = 100
#: How often a fetcher held back by full stream buffers looks again.
BACKPRESSURE_POLL_S = 0.01

#: How often a revocation waiting for the batch route to drain says so.
DRAIN_NOTICE_S = 10.0
#: How long a seek may wait for the consumer's thread (it may be in a fetch, up to its
#: wait): past it, the seek is left to whoever asked for it to ask again.
SEEK_TIMEOUT_S = 10.0

log = logging.getLogger("codex_analytics.stream")

#: Set while the consumer's fetcher task is inside ``_wait_next_records``.
_IN_FETCH_WAIT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "codex_in_fetch_wait", default=False
)


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """The thread that owns Faust's aiokafka consumer."""

    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        """100 ms instead of 1500: a p99 near 250 ms instead of seconds end to end."""
        consumer = super()._create_worker_consumer(transport)
        # Faust passes fetch_max_wait_ms=1500 to the constructor; the consumer hands the
        # value to its fetcher only in start(), which comes later.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _NeverRead(dict[TP, int | None]):
    """Faust's consumer drops every record below the highest offset it has *handed on*,
    and hands records on (or abandons them during a rebalance) concurrently with its own
    seeks: records get skipped. Reading every offset as unknown turns that filter, and
    the "gap" bookkeeping that goes with it, off; the worker's ``OffsetGuard`` decides
    instead what is new, what is a repeat and where to re-read."""

    def __getitem__(self, key: TP) -> None:
        return None


class BatchRoute(Protocol):
    """Where the records of one topic go instead of Faust's per-message path: each
    partition's fetched records, as one list, straight from the fetch.

    Faust delivers a record through its conductor callback, its stream's queue and
    iteration, an event object and a per-event ack: about 100 µs a record, most of a
    stream worker's time with one fact per record. A batch route takes them in bulk and
    acks in bulk (:meth:`Consumer.ack_offsets`); Faust still owns the group, the
    assignment, the seeks, the commits, the changelog and its recovery."""

    @property
    def topic(self) -> str: ...

    async def deliver(self, tp: TP, records: list[Any]) -> None:
        """Take ``records`` (aiokafka's, in offset order); may wait while full
        (backpressure: the fetcher waits with it)."""

    def outstanding(self) -> int:
        """Records delivered and neither acked nor given up yet."""

    async def settled(self, within_s: float) -> None:
        """Wait up to ``within_s`` for :meth:`outstanding` to fall to zero."""


class ClusterApp(faust.App):
    """Faust's app with the cluster it runs against, for :class:`Producer` (Faust's
    settings have no idempotence of their own), and the topic its consumer hands on in
    bulk (:class:`BatchRoute`)."""

    kafka_cluster: KafkaCluster | None = None
    batch_route: BatchRoute | None = None


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer without its read-offset filter, without four tasks per
    delivered record, without one-second pauses under backpressure, and with the app's
    batch route (:class:`BatchRoute`) taking its topic's records in bulk."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = _NeverRead()

    def _batch_route(self) -> BatchRoute | None:
        route: BatchRoute | None = getattr(self.app, "batch_route", None)
        return route

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def wait_first(self, *coros: WaitArgT, timeout: Seconds | None = None) -> WaitResults:  # noqa: ASYNC109 (the signature Faust calls)
        """Faust hands every consumed record to its streams through
        ``wait_first(callback(message), suspend_flow.wait())``: four tasks and an
        ``asyncio.wait`` per record, so that a delivery blocked on a full stream buffer
        cannot hold up a rebalance. The profile of the worker put 20% of its time there.

        The callback almost never blocks (it puts the event into a buffer with room). So
        run it inline first; only if it does block, finish it in a task raced against the
        flow suspension exactly as before. The consumer calls ``wait_first`` nowhere
        else; any other call shape goes to Faust's."""
        delivery, suspended = coros if len(coros) == 2 else (None, None)
        if (
            timeout is not None
            or not isinstance(delivery, types.CoroutineType)
            or not isinstance(suspended, types.CoroutineType)
            or self.suspend_flow.is_set()
            or self.should_stop
        ):
            # mode's own default is None, which its annotation leaves out.
            return await super().wait_first(*coros, timeout=cast(Seconds, timeout))
        suspended.close()  # never awaited on the fast path
        try:
            blocked_on = delivery.send(None)
        except StopIteration as done:
            return WaitResults([delivery], [done.value], False)
        # It blocked: let a task finish it, raced against suspension as Faust does.
        rest = asyncio.ensure_future(_resume(delivery, blocked_on))
        return await super().wait_first(rest, self.suspend_flow.wait())

    async def perform_seek(self) -> None:
        """Faust seeks the stream partitions to their committed offsets at the end of
        every recovery, then resumes the app's flow control, which *clears every stream
        buffer*. But the consumer's own flow is already running by then (a recovery
        that reads changelogs resumes it early), so records fetched after the seek and
        delivered before the resume are dropped while the fetch position has passed
        them: nothing fetches them again, and with no later record to reveal the hole
        the worker idles with a positive lag for ever (the chaos suite's scale-out
        stall; the worker's report showed the position at the highwater and the
        records never delivered). Stopping the consumer's flow before the seek closes
        that window: Faust resumes it right after the buffers are cleared (every
        caller of ``perform_seek`` does, or runs with the flow already stopped), and
        a fetch that returns while the flow is stopped is discarded and sought back by
        Faust itself."""
        self.stop_flow()
        await super().perform_seek()

    async def _seek(self, partition: TP, offset: int) -> None:
        """Seek on the consumer's own thread. Faust's ``seek`` calls aiokafka's from the
        app's thread, and aiokafka's seek drops the partition's fetched records while
        the consumer's thread may be going through them (``Fetcher.fetched_records``):
        the fetcher crashed with a ``KeyError`` and the worker exited, after the offset
        guard's seek back, in the latency bench. Faust's own seeks (``seek_wait``, the
        seek to the committed offsets) already run there. ``TimeoutError`` after
        ``SEEK_TIMEOUT_S``."""
        thread = self._thread

        async def seek() -> None:  # on the thread's loop, between two of its steps
            thread.seek(partition, offset)

        # Straight onto the thread's loop, not through its method queue: the queue's
        # workers can be held in a fetch that waits for a rebalance, and the rebalance
        # for the batch loop, which waits for this seek.
        done = asyncio.run_coroutine_threadsafe(seek(), thread.thread_loop)
        try:
            async with asyncio.timeout(SEEK_TIMEOUT_S):
                await asyncio.wrap_future(done)
        finally:
            done.cancel()

    async def _wait_next_records(
        self,
        timeout: float,  # noqa: ASYNC109 (the signature Faust calls)
    ) -> tuple[RecordMap | None, set[TP] | None]:
        """When every assigned partition's stream buffer is full, Faust's fetcher sleeps
        a whole second before it looks again, however soon the buffers drain. Under load
        that happens every couple of seconds: the profile showed the batch loop idle
        ~0.9 s at a time, a third of the run, and the same pauses as latency spikes.
        Look again every 10 ms instead; only that sleep, in that task, changes (a context
        variable marks it: see :meth:`sleep`)."""
        if self._buffered_partitions:
            # Some partitions are held back: a fetch of the others alone must not wait a
            # whole second for them while the held ones drain.
            timeout = min(timeout, BACKPRESSURE_POLL_S)
        token = _IN_FETCH_WAIT.set(True)
        try:
            records, active = await super()._wait_next_records(timeout)
        finally:
            _IN_FETCH_WAIT.reset(token)
        route = self._batch_route()
        if records and route is not None and self.flow_active:
            routed = {tp: fetched for tp, fetched in records.items() if tp.topic == route.topic}
            if routed:
                records = {tp: fetched for tp, fetched in records.items() if tp not in routed}
                await self._hand_to_route(route, routed, active)
        return records, active

    async def _hand_to_route(
        self, route: BatchRoute, routed: RecordMap, active: set[TP] | None
    ) -> None:
        """Hand each partition of ``routed`` (the route's topic's part of a fetch) to the
        route as one list; Faust's ``getmany`` yields the rest one by one, as before.

        Under the checks Faust's ``getmany`` makes per record: nothing is handed on while
        the flow is stopped or once the generation changed (a rebalance began: those
        records are read again after Faust's seek to the committed offsets), nor for a
        partition that is not active (paused, e.g. while its table recovers)."""
        generation = self.app.consumer_generation_id
        for tp, fetched in routed.items():
            if self.should_stop or not self.flow_active:
                continue
            if self.app.consumer_generation_id != generation:
                continue
            if active is not None and tp not in active:
                continue
            await route.deliver(tp, fetched)

    def ack_offsets(self, tp: TP, offsets: Iterable[int]) -> int:
        """Ack the records of ``tp`` at ``offsets`` at once, as Faust's ``ack`` does one
        event at a time: the periodic commit then passes them (it commits each
        partition's first run of acked offsets above the committed one). Offsets below
        the committed offset, acked already, or repeated in ``offsets`` (two copies of a
        record read again after two seeks back) are left out: Faust's commit breaks its
        run of offsets at a repeat, and would pass one offset per commit. The number
        acked."""
        committed = self._committed_offset[tp]
        index = self._acked_index[tp]
        fresh = sorted(
            {offset for offset in offsets if committed is None or offset >= committed} - index
        )
        if fresh:
            index.update(fresh)
            self._acked[tp].extend(fresh)
            self._n_acked += len(fresh)
        return len(fresh)

    async def wait_empty(self) -> None:
        """Faust waits here, before a revocation and at stop, until every event it
        delivered is acked; records handed to the batch route are not Faust events, so
        wait for the route too. Faust's own wait has no deadline but the stop; this one
        says every ``DRAIN_NOTICE_S`` what it waits for."""
        route = self._batch_route()
        if route is not None:
            started = time.monotonic()
            while route.outstanding() and not self.should_stop:
                await route.settled(DRAIN_NOTICE_S)
                if route.outstanding() and not self.should_stop:
                    log.warning(
                        "waiting %.0f s for %d records handed to the batch loop",
                        time.monotonic() - started,
                        route.outstanding(),
                    )
        await super().wait_empty()

    async def sleep(self, n: Seconds) -> None:
        if _IN_FETCH_WAIT.get() and self._buffered_partitions:
            n = BACKPRESSURE_POLL_S
        await super().sleep(n)


class Producer(faust_aiokafka.Producer):
    """Faust's aiokafka producer, idempotent when the cluster says so
    (``KAFKA_PRODUCER_IDEMPOTENCE``): Faust enables idempotence only inside its
    transactions, which the pipeline does not use."""

    def _settings_extra(self) -> Mapping[str, Any]:
        extra = dict(super()._settings_extra())
        cluster = getattr(self.app, "kafka_cluster", None)
        if cluster is not None and cluster.idempotence:
            extra["enable_idempotence"] = True
        return extra


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport, building :class:`Consumer` and :class:`Producer`."""

    Consumer = Consumer
    Producer = Producer


async def _resume(coro: Any, blocked_on: Any) -> Any:
    """Drive a coroutine that was started by hand and is suspended on ``blocked_on``
    (what its first ``send`` yielded) to its end, as a task would."""
    while True:
        try:
            if blocked_on is None:  # a bare yield (``sleep(0)``)
                await asyncio.sleep(0)
            else:
                # As a task does on taking a future over: without this, awaiting it
                # again raises "await wasn't used with future".
                blocked_on._asyncio_future_blocking = False
                await blocked_on
        except BaseException as exc:  # cancelled, or the awaited future failed
            try:
                blocked_on = coro.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            blocked_on = coro.send(None)
        except StopIteration as done:
            return done.value
