"""The sink worker: consumption, backpressure and commits around the sink's parts.

::

    events topic ──getmany──▶ decode ──▶ PartitionBatcher (per partition, per route)
                                              │ closed batches, in order
                                              ▼
                   Lane (sinks/lanes.py: one per partition, one batch per route at a time)
                                              │
                   BatchDelivery (sinks/delivery.py): gate, deliver, retry, DLQ
                                              │ outcome ─▶ SinkMetrics.record
                                              ▼
                           committer: commit each partition's commit point

A lane delivers each route's batches one after another, so one route's batches keep
their order (a route lives in one partition); different routes go side by side. While
a partition holds ``max_buffered_records`` undelivered records, it is left out of
``getmany`` (what aiokafka prefetched for it waits there, and nothing more is fetched
for it); while a batch of its lane is retried, it is paused. The backlog stays in
Kafka, not in memory (``sinks.memory`` gives the bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from codex_analytics.runtime.health import (
    CONNECTING,
    JOINING,
    READY,
    STARTING,
    STOPPING,
    UNAVAILABLE,
    BrokerWatch,
    Readiness,
    not_ready,
)
from codex_analytics.runtime.kafka import KafkaCluster, KafkaTarget, first_offsets
from codex_analytics.runtime.kafka_start import prepare_topics
from codex_analytics.runtime.metrics import Backlog, backlogs
from codex_analytics.runtime.shutdown import unless_stopped
from codex_analytics.runtime.topic_plan import TopicPlan

from .credentials import CredentialChain, CredentialProvider
from .deadletters import DeadLetterQueue
from .decoding import to_sink_record
from .delivery import BatchDelivery
from .destinations import Destination, destination_for
from .lanes import Lanes
from .memory import FETCH_MAX_BYTES, GETMANY_MAX_RECORDS
from .metrics import SinkMetrics
from .settings import SinkSettings

log = logging.getLogger("codex_analytics.sink")

#: The longest a new assignment waits for the committed offsets and the first offsets
#: of its partitions; past it, the consumer starts where aiokafka would.
START_LOOKUP_S = 5.0

#: Each step of closing down after the lanes drained (the final commit, leaving the
#: group, flushing the dead-letter producer) gets this long at most: with the broker
#: gone, aiokafka retries them for ever. ``ANALYTICS_SHUTDOWN_TIMEOUT_S`` bounds the
#: drain; these steps add at most three times this.
CLOSE_STEP_S = 1.0

#: A revocation delivers the closed batches for this long at most (capped by the
#: shutdown timeout), then commits for this long at most: the group waits meanwhile.
HAND_OVER_S = 5.0


#: The sink's consumer settings over the cluster's (``bench.sink`` reads with them too).
CONSUMER_TUNING: dict[str, Any] = {
    # What aiokafka prefetched for a partition sits in memory until its lane
    # takes it: at most one record set per partition, and one response.
    "max_partition_fetch_bytes": FETCH_MAX_BYTES,
    "fetch_max_bytes": FETCH_MAX_BYTES,
    # The embedded broker holds a fetch for most of this wait even when data is
    # there, and a batch's time cut waits for the next fetch: 100 ms (the
    # default here) left the loop waiting on Kafka 19% of the time, 20 ms ~4%.
    "fetch_max_wait_ms": 20,
    # aiokafka's CRC32C of every fetched batch is a byte-at-a-time loop:
    # 0.65 of the 2.8 µs a record costs to consume (bench: 2.15 µs without).
    # Safe to leave out here: a Kafka broker checks the CRC when the stream
    # produces, TLS (where configured) guards the wire, and the sink checks
    # that every event is one JSON object of its type before it joins a body
    # (a torn record is dead-lettered, not sent). librdkafka, too, checks no
    # CRC unless asked (``check.crcs`` defaults to false).
    "check_crcs": False,
}


class SinkWorker:
    def __init__(
        self,
        settings: SinkSettings,
        cluster: KafkaTarget,
        *,
        destination: Destination | None = None,
        credentials: CredentialProvider | None = None,
        metrics: SinkMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.cluster = KafkaCluster.of(cluster)
        self.metrics = metrics or SinkMetrics()
        self.metrics.watch_lag("Events records", self.backlog)
        self.credentials = credentials or CredentialChain.from_env({})
        self.destination: Destination = destination or destination_for(settings)
        self.dead_letters = DeadLetterQueue(self.cluster, settings.topics)
        self.delivery = BatchDelivery(
            settings, self.destination, self.credentials, self.metrics, self.dead_letters
        )
        self._commit_wanted = asyncio.Event()
        self.lanes = Lanes(
            settings.limits,
            self.metrics,
            self.delivery,
            batch_done=self._commit_wanted.set,
            pressure_changed=self._apply_backpressure,
            failed=self._lane_failed,
            max_in_flight=settings.http_max_connections,
        )
        self.started = False
        #: Before ``started``: what the start is doing (a readiness status).
        self.phase = STARTING
        #: The group assigned partitions at least once, and no rebalance is under way.
        self._assigned = False
        #: The broker answers metadata requests (readiness), probed while consuming.
        self.broker = BrokerWatch(lambda: self.dead_letters.probe(settings.topics.events))
        self._consumer: AIOKafkaConsumer | None = None
        self._committed: dict[TopicPartition, int] = {}
        self._stop: asyncio.Event | None = None
        #: Set when a lane failed unexpectedly; ``run`` then ends and the process exits 70.
        self.failure: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then flush, deliver, commit and return.

        ``stop`` also ends the start (topics, group join) at once, and every step of
        closing down has a deadline, so that the process ends in time however the
        broker behaves."""
        self._stop = stop
        try:
            started, _ = await unless_stopped(stop, self._start(), cancel_within=CLOSE_STEP_S)
            if not started:
                return
            self.started = True
            committer = asyncio.create_task(self._committer(), name="sink-committer")
            watch = asyncio.create_task(self.broker.run(), name="sink-broker-watch")
            try:
                await self._consume(stop)
                await self.lanes.drain(flush=True, within=self.settings.shutdown_timeout_s)
            finally:
                for task in (committer, watch):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            self.started = False
            self.delivery.flush_logs()
            await self._close()

    async def _start(self) -> None:
        topics = self.settings.topics
        # First: readiness reports a capture file that cannot be written while the broker
        # is still being reached. A failure is logged there; batches are retried.
        self.destination.prepare()
        self.phase = CONNECTING
        # Waits for an unreachable cluster (ANALYTICS_KAFKA_WAIT_S), then creates what
        # is missing; a KafkaStartError ends the process (status 1).
        plan = TopicPlan.pipeline(topics).only("events", "events_dlq")
        await prepare_topics(self.cluster, plan, within=self.cluster.start_wait_s)
        self._consumer = AIOKafkaConsumer(
            group_id=self.settings.group_id,
            **{
                **self.cluster.consumer_options(
                    session_timeout_ms=self.settings.session_timeout_ms
                ),
                **CONSUMER_TUNING,
            },
        )
        await self.dead_letters.start()
        self.phase = JOINING
        self._consumer.subscribe([topics.events], listener=_Rebalance(self))
        await self._consumer.start()  # joins the group: assigned partitions get lanes

    async def _close(self) -> None:
        """Commit what the lanes finished, leave the group, close; each step bounded."""
        await self.lanes.cancel()
        # What the lanes finished, before they are forgotten.
        await _bounded("shutdown: the final commit", self._commit())
        self.lanes.clear()
        if self._consumer is not None:
            await _bounded("shutdown: leaving the group", self._consumer.stop())
        await _bounded("shutdown: closing the dead-letter producer", self.dead_letters.stop())
        await self.destination.aclose()

    async def _consume(self, stop: asyncio.Event) -> None:
        consumer = self._consumer
        assert consumer is not None
        stopping = asyncio.ensure_future(stop.wait())
        validate = self.settings.validate_events
        lanes = self.lanes
        try:
            while not stop.is_set():
                timeout_ms = lanes.fetch_wait_ms(_now_ms(), idle_ms=200, buffering_ms=50)
                wanted = self._wanted_partitions()
                if wanted is None:
                    # Every lane is full: their records wait in Kafka and in aiokafka's
                    # prefetch until a batch is delivered (one request's time at most:
                    # a lane that retries is paused, and paused ones are polled).
                    await lanes.wait_taken(within=timeout_ms / 1000)
                    continue
                fetch = asyncio.ensure_future(
                    consumer.getmany(
                        *wanted, timeout_ms=timeout_ms, max_records=GETMANY_MAX_RECORDS
                    )
                )
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    fetch.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fetch
                    break
                for tp, records in fetch.result().items():
                    lane = lanes.get(tp)
                    add = lane.batcher.add if lane is not None else None
                    for index, rec in enumerate(records):
                        if lane is None or add is None:
                            # Handed over since the fetch: not this lane's records.
                            self._set_aside(tp, rec.offset)
                            break
                        ts = rec.timestamp if rec.timestamp and rec.timestamp > 0 else _now_ms()
                        closed = add(
                            to_sink_record(
                                rec.offset, ts, rec.key, rec.value, validate_events=validate
                            )
                        )
                        if closed:
                            lane.enqueue(closed)
                        if index % 256 == 255:
                            # Decoding is CPU work: let the lanes send what is closed. A
                            # rebalance may run meanwhile: the lane is looked up again.
                            await asyncio.sleep(0)
                            if lanes.get(tp) is not lane:
                                lane = add = None
                now = _now_ms()
                assignment = consumer.assignment()
                for tp, lane in lanes.items():
                    if tp not in assignment:
                        continue  # being handed over
                    highwater = consumer.highwater(tp)
                    next_offset = lane.batcher.progress.next_offset
                    caught_up = highwater is None or (
                        next_offset is not None and next_offset >= highwater
                    )
                    lane.enqueue(lane.batcher.expire(now, caught_up=caught_up))
                self._apply_backpressure()
        finally:
            stopping.cancel()

    def _set_aside(self, tp: TopicPartition, offset: int) -> None:
        """Records from ``offset`` on were fetched for ``tp`` but their lane is gone: the
        partition was handed over while they waited. They are dropped, never given a
        new lane (that would bring back a revoked partition: its highwater and pause
        fail, and its offsets make every commit fail). Whoever owns the partition next,
        this worker included, reads them again from the committed offset; while the
        partition is still nominally assigned, the consumer is also moved back to them.
        """
        consumer = self._consumer
        if consumer is not None and tp not in self.lanes and tp in consumer.assignment():
            consumer.seek(tp, offset)

    def _lane_failed(self, error: BaseException) -> None:
        self.failure = error
        if self._stop is not None:
            self._stop.set()

    # -- rebalances --------------------------------------------------------------------

    async def hand_over(self, revoked: Iterable[TopicPartition]) -> None:
        """Partitions were revoked: deliver what is already closed (briefly), commit, and
        let the next owner re-form the open batches from the committed offset."""
        self._assigned = False  # a rebalance: joining again until the assignment comes
        mine = [tp for tp in revoked if tp in self.lanes]
        if not mine:
            return
        await self.lanes.drain(
            flush=False, within=min(HAND_OVER_S, self.settings.shutdown_timeout_s), tps=mine
        )
        await _bounded(
            "rebalance: the hand-over commit", self._commit(tps=mine), within=HAND_OVER_S
        )
        await self.lanes.stop(mine)
        for tp in mine:
            self._committed.pop(tp, None)

    async def take_over(self, assigned: Iterable[TopicPartition]) -> None:
        """Partitions were assigned: a lane for each that has none yet, and those never
        committed start at their first offset."""
        self._assigned = True  # an empty assignment too: more sinks than partitions
        assigned = set(assigned)
        # Lanes of partitions not assigned any more (a hand-over that failed half-way)
        # would deliver and commit what is no longer ours.
        await self.lanes.stop([tp for tp in self.lanes if tp not in assigned])
        new = [tp for tp in assigned if tp not in self.lanes]
        for tp in new:
            self.lanes.open(tp)
        consumer = self._consumer
        if consumer is None or not new:
            return
        # Paused while we look (before any await): records fetched from where aiokafka
        # would start must not reach the lanes first, to come again after the seek.
        consumer.pause(*new)
        try:
            await self._start_never_committed(new)
        finally:
            assignment = consumer.assignment()
            consumer.resume(*(tp for tp in new if tp in assignment))

    async def _start_never_committed(self, tps: list[TopicPartition]) -> None:
        """Seek each partition the group never committed to the first offset a fetch from
        0 is served at (:func:`codex_analytics.runtime.kafka.first_offsets`), instead of
        aiokafka's reset to ListOffsets(earliest): the embedded broker sometimes answers
        that too high, and the records below it were skipped without a trace (the
        latency bench's warm-up then waited for events forever)."""
        consumer = self._consumer
        if consumer is None or not tps:
            return
        try:
            async with asyncio.timeout(START_LOOKUP_S):
                committed = {tp: await consumer.committed(tp) for tp in tps}
                fresh = [tp for tp, offset in committed.items() if offset is None]
                starts = await first_offsets(self.cluster, fresh, within=START_LOOKUP_S)
        except (TimeoutError, KafkaError) as err:
            log.warning(
                "no start offsets for %d new partitions (%r): starting where the consumer "
                "resets to",
                len(tps),
                err,
            )
            return
        assignment = consumer.assignment()
        for tp, offset in starts.items():
            if tp in assignment:
                consumer.seek(tp, offset)

    # -- backpressure ------------------------------------------------------------------

    def _wanted_partitions(self) -> tuple[TopicPartition, ...] | None:
        """The assigned partitions whose lanes take records now, for ``getmany``; None
        when every assigned partition's lane is full, and () when none is assigned
        (``getmany()`` then polls them all: the consumer must poll at least every
        ``max_poll_interval_ms``, or it leaves the group for good).

        A full lane's partition is left out of ``getmany``: the one record set aiokafka
        prefetched for it stays there, and no more is fetched for it until its lane
        takes that. (Pausing the partition instead made aiokafka drop that record set,
        fetch it again on resume, and leave the dropped one in a reference cycle until
        the garbage collector came: the sink's memory grew with the backlog it
        drained.) Paused partitions (their lanes retry), full or not, stay in:
        ``getmany`` returns nothing for them but keeps the consumer polling through an
        endpoint outage of any length."""
        consumer = self._consumer
        assert consumer is not None
        limit = self.settings.max_buffered_records
        assignment = consumer.assignment()
        wanted, full = [], 0
        for tp, lane in self.lanes.items():
            lane.full = lane.queued_records >= limit
            if tp in assignment:
                if lane.full and not lane.paused:
                    full += 1
                else:
                    wanted.append(tp)
        self.lanes.report_paused()
        return None if full and not wanted else tuple(wanted)

    def _apply_backpressure(self) -> None:
        """Pause the partition of a lane that retries (its records then wait in Kafka,
        however long the endpoint is down); resume it when the lane delivered."""
        consumer = self._consumer
        assert consumer is not None
        assignment = consumer.assignment()
        for tp, lane in self.lanes.items():
            if tp not in assignment:
                continue  # being handed over: nothing to pause
            want_paused = lane.retrying
            if want_paused and not lane.paused:
                consumer.pause(tp)
                lane.paused = True
            elif lane.paused and not want_paused:
                consumer.resume(tp)
                lane.paused = False
        self.lanes.report_paused()

    # -- commits -----------------------------------------------------------------------

    async def _committer(self) -> None:
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self._commit()
            await asyncio.sleep(0.05)  # coalesce the commits of a burst of batches

    async def _commit(self, *, tps: Iterable[TopicPartition] | None = None) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        offsets: dict[TopicPartition, int] = {}
        assignment = consumer.assignment()
        for tp in tps if tps is not None else list(self.lanes):
            if tp not in assignment:
                continue  # committing a partition we lost would fail the whole commit
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

    def backlog(self) -> dict[int, Backlog | None]:
        """Per assigned partition: records past the last commit (or, before one, past the
        first record not delivered yet), and the timestamp of the oldest record not
        delivered yet."""
        consumer = self._consumer
        if consumer is None or not self.started:
            return {}
        highwaters: dict[int, int | None] = {}
        positions: dict[int, int | None] = {}
        oldest: dict[int, int | None] = {}
        assignment = consumer.assignment()
        for tp, lane in list(self.lanes.items()):
            if tp not in assignment:
                continue
            highwaters[tp.partition] = consumer.highwater(tp)
            committed = self._committed.get(tp)
            progress = lane.batcher.progress
            # Before the first commit, what a commit would keep: the first record not
            # delivered yet (the consumed position would hide a batch being retried).
            positions[tp.partition] = (
                committed if committed is not None else progress.commit_point()
            )
            oldest[tp.partition] = progress.oldest_timestamp_ms()
        return backlogs(highwaters, positions, oldest.get)

    def readiness(self) -> Readiness:
        """Ready while consuming its assignment (an empty one too), with the broker
        answering and, in capture mode, the capture file writable.

        A failing endpoint does not make the sink not ready: its batches are retried
        with their partitions paused and the backlog waits in Kafka; restarting or
        replacing the pod cannot mend the endpoint (``retrying_partitions`` and the
        delivery metrics say it fails)."""
        self.destination.recheck()
        details: dict[str, Any] = {
            "mode": self.destination.name,
            "consuming": self.started,
            "partitions": len(self.lanes),
            "paused_partitions": self.lanes.paused,
            "retrying_partitions": self.lanes.retrying,
            "capture_failing": self.destination.failing,
            "broker_reachable": self.broker.reachable,
        }
        if self._stop is not None and self._stop.is_set():
            return not_ready(STOPPING, **details)
        if not self.started:
            return not_ready(self.phase, **details)
        if not self._assigned:
            return not_ready(JOINING, **details)
        if self.destination.failing:
            return not_ready(UNAVAILABLE, "the capture file cannot be written", **details)
        if self.broker.reachable is False:
            return not_ready(
                UNAVAILABLE, f"the broker does not answer: {self.broker.error}", **details
            )
        return Readiness(READY, details)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance callbacks, handed to the worker's public methods."""

    def __init__(self, worker: SinkWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.worker.hand_over(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.worker.take_over(assigned)


async def _bounded(what: str, step: Awaitable[None], *, within: float = CLOSE_STEP_S) -> None:
    """Await one step of closing down (or handing over) for at most ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            await step
    except TimeoutError:
        log.warning("%s did not finish within %.1f s; going on", what, within)
    except KafkaError as err:
        log.warning("%s failed (%s); going on", what, type(err).__name__)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # this task is being cancelled: let it end
        # A task inside the step was cancelled and its CancelledError leaked out (aiokafka
        # 0.14's Fetcher.close awaits the fetch tasks it cancelled): the step is over.
        log.warning("%s ended cancelled; going on", what)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
