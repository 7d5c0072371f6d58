"""The app's Kafka consumer as the batch loop uses it: where partitions start, seeks
back, the assignment and its highwaters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Hashable, Iterable
from typing import Any, Protocol

from aiokafka.errors import IllegalStateError

from codex_analytics.runtime.errors import RetryableError
from codex_analytics.runtime.kafka import KafkaTarget, first_offsets

log = logging.getLogger("codex_analytics.stream")

#: ``first_offsets(partitions)``: where a partition never committed starts (see
#: :func:`codex_analytics.runtime.kafka.first_offsets`); partitions left out get the
#: broker's earliest offset.
FirstOffsets = Callable[[Collection[Hashable]], Awaitable[dict[Hashable, int]]]

#: The longest the batch loop waits for the first offsets of partitions never committed.
COMMITTED_LOOKUP_S = 5.0
#: The longest the batch loop holds an assignment's partitions waiting for the broker's
#: committed offsets; then the worker exits (a restart asks again).
COMMITTED_DEADLINE_S = 60.0
#: While it waits, it looks this often whether Faust's copy came in or a rebalance began,
COMMITTED_TICK_S = 0.5
#: and says so this often.
COMMITTED_NOTICE_S = 5.0
#: Pause before asking again after a lookup failed.
COMMITTED_RETRY_S = 1.0


class _Positioned(Protocol):
    @property
    def tp(self) -> Hashable: ...
    @property
    def offset(self) -> int: ...


class AssignmentChanged(Exception):
    """A rebalance began while the batch loop waited for committed offsets: the events
    it holds belong to the old assignment (the new one reads them again)."""


class OffsetLookupError(RetryableError):
    """The broker did not tell the group's committed offsets in time. Never read as "no
    committed offset": that would restart the partitions from their first record."""


class GroupConsumer:
    """Faust's consumer of the app (built when first used, as Faust does)."""

    def __init__(
        self, app: Any, cluster: KafkaTarget, *, first: FirstOffsets | None = None
    ) -> None:
        self._app = app

        async def probe(partitions: Collection[Hashable]) -> dict[Hashable, int]:
            return await first_offsets(cluster, partitions, within=COMMITTED_LOOKUP_S)

        self._first_offsets = first or probe

    @property
    def generation(self) -> int:
        """The consumer group generation: it changes with every assignment."""
        generation: int = self._app.consumer_generation_id
        return generation

    @property
    def rebalancing(self) -> bool:
        return bool(self._app.rebalancing)

    async def start_offsets(self, partitions: Collection[Hashable]) -> dict[Hashable, int]:
        """Where the stream of each partition starts after an assignment: at the group's
        committed offset (the next to read), or, for a partition never committed, at the
        first offset a fetch from 0 is served at. Faust's copy of the committed offsets
        is filled in only once its seek to them has finished, and the first records can
        be delivered before that: what it lacks is asked of the broker.

        Not the broker's ListOffsets(earliest), which the consumer's own reset uses:
        the embedded broker sometimes answers it too high, and a guard starting there
        would take the records below it for repeats and ack them unreduced. From the
        right start, the records the consumer skipped are a hole: the guard seeks back."""
        consumer = self._app.consumer
        known = consumer._committed_offset
        committed: dict[Hashable, int | None] = {tp: known.get(tp) for tp in partitions}
        lacking = [tp for tp, offset in committed.items() if offset is None]
        if lacking:
            committed.update(await self.committed_offsets(lacking))
        missing = [tp for tp in partitions if committed.get(tp) is None]
        first = await self._first_offsets(missing) if missing else {}
        unanswered = [tp for tp in missing if tp not in first]
        earliest = await consumer.earliest_offsets(*unanswered) if unanswered else {}
        starts: dict[Hashable, int] = {}
        for tp in partitions:
            start = committed.get(tp)
            if start is None:
                start = first[tp] if tp in first else earliest.get(tp, 0)
            starts[tp] = start
        return starts

    async def committed_offsets(
        self, partitions: Collection[Hashable], *, within_s: float = COMMITTED_DEADLINE_S
    ) -> dict[Hashable, int | None]:
        """The group's committed offset of each partition (None: never committed).

        A missing answer is never taken for "never committed": that would restart the
        partition from its first record, re-reducing all it retains, and the instances
        the idle sweep removed since would emit their old events again. So the lookup is
        waited for, and asked again if it fails, for up to ``within_s``; meanwhile the
        partitions are held (the batch loop waits here), and Faust's own copy is looked
        at every few seconds (its seek to the committed offsets asks the broker too). No
        answer by then raises :class:`OffsetLookupError`."""
        wanted = list(partitions)
        deadline = time.monotonic() + within_s
        generation = self.generation
        failure: Exception | None = None  # the last failed lookup, named if time runs out
        while True:
            lookup = asyncio.ensure_future(self._ask_broker(wanted))
            try:
                return await self._answer(lookup, wanted, deadline, generation)
            except OffsetLookupError as exc:
                if failure is None:
                    raise
                raise OffsetLookupError(f"{exc}; it last failed: {type(failure).__name__}") from exc
            except AssignmentChanged:
                raise
            except Exception as exc:  # the lookup failed: ask again, within the deadline
                failure = exc
                if time.monotonic() + COMMITTED_RETRY_S >= deadline:
                    raise OffsetLookupError(
                        f"committed offsets of {len(wanted)} partitions: {type(exc).__name__}"
                    ) from exc
                log.warning("committed offsets lookup failed (%r): asking again", exc)
                await asyncio.sleep(COMMITTED_RETRY_S)
            finally:
                lookup.cancel()

    async def _answer(
        self,
        lookup: asyncio.Future[dict[Hashable, int | None]],
        wanted: list[Hashable],
        deadline: float,
        generation: int,
    ) -> dict[Hashable, int | None]:
        """The lookup's answer, or Faust's copy if it has them all first. A rebalance
        meanwhile ends the wait (:class:`AssignmentChanged`): Faust's revocation waits
        for the events the batch loop holds while it waits here."""
        started = time.monotonic()
        notice_at = started + COMMITTED_NOTICE_S
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise OffsetLookupError(
                    f"no committed offsets of {len(wanted)} partitions from the broker "
                    f"within {now - started:.0f} s"
                )
            await asyncio.wait({lookup}, timeout=min(COMMITTED_TICK_S, deadline - now))
            if lookup.done():
                return lookup.result()
            if self.rebalancing or self.generation != generation:
                raise AssignmentChanged
            faust_knows = self._faust_committed(wanted)
            if faust_knows is not None:
                return faust_knows
            if time.monotonic() >= notice_at:
                notice_at += COMMITTED_NOTICE_S
                log.warning(
                    "no committed offsets of %d partitions from the broker for %.0f s: "
                    "holding them (not reading them from the start)",
                    len(wanted),
                    time.monotonic() - started,
                )

    async def _ask_broker(self, partitions: list[Hashable]) -> dict[Hashable, int | None]:
        """One lookup, on the consumer's thread (where Faust keeps the aiokafka client);
        aiokafka itself retries it while the coordinator answers with retriable errors."""
        thread = self._app.consumer._thread
        client = thread._ensure_consumer()

        async def lookup() -> dict[Hashable, int | None]:
            offsets = await asyncio.gather(*(client.committed(tp) for tp in partitions))
            return dict(zip(partitions, offsets, strict=True))

        result: dict[Hashable, int | None] = await thread.call_thread(lookup)
        return result

    def _faust_committed(self, partitions: list[Hashable]) -> dict[Hashable, int | None] | None:
        """Faust's copy of the committed offsets, if it has them all by now (it holds
        only partitions that were committed)."""
        known = self._app.consumer._committed_offset
        found = {tp: known.get(tp) for tp in partitions}
        return None if any(offset is None for offset in found.values()) else found

    async def seek_back(self, tp: Hashable, offset: int) -> bool:
        """Read ``tp`` again from ``offset``; False when ``tp`` is not assigned to this
        worker any more (revoked by a rebalance: its new owner starts from the committed
        offset). Faust records jumps it saw itself as acked "gaps", which a commit may
        pass: forget them for this partition, the records are about to be read again.
        A seek the consumer's thread did not take in time is asked again by the
        offset guard, like one that brought nothing back."""
        consumer = self._app.consumer
        if tp not in self._assignment():
            return False
        consumer._gap.pop(tp, None)
        try:
            await consumer.seek(tp, offset)
        except IllegalStateError:  # revoked between the check and the seek
            return False
        except TimeoutError:
            log.warning("seek of %s to offset %d timed out; it will be asked again", tp, offset)
        return True

    def ack(self, records: Iterable[_Positioned]) -> None:
        """Ack ``records`` at once (Faust's commit then passes each partition's first
        run of acked offsets). Records held back behind an offset hole are never acked
        in this assignment: the commit stays below the hole, and they are read again."""
        by_tp: dict[Hashable, list[int]] = {}
        for record in records:
            by_tp.setdefault(record.tp, []).append(record.offset)
        consumer = self._app.consumer
        for tp, offsets in by_tp.items():
            consumer.ack_offsets(tp, offsets)

    def _assignment(self) -> set[Any]:
        try:
            return set(self._app.consumer.assignment())
        except Exception:  # not started, or shutting down
            return set()

    def assigned(self, topic: str) -> list[Any]:
        """The partitions of ``topic`` assigned to this worker (none while the consumer
        is not started, or shutting down)."""
        return [tp for tp in self._assignment() if tp.topic == topic]

    def positions(self, topic: str) -> dict[Any, int]:
        """The next offset the consumer fetches, per assigned partition of ``topic``
        whose position is known. Read from the main thread without a lock (the consumer
        runs on its own thread): a moment's view, good for noticing a partition that
        stopped, never for deciding what to commit."""
        states = self._fetch_states(topic)
        return {tp: state._position for tp, state in states.items() if state._position is not None}

    def partition_report(self, topic: str) -> dict[int, dict[str, Any]]:
        """Where each assigned partition of ``topic`` stands in Faust and in aiokafka,
        for the worker's periodic report: the fetch position, the committed offset,
        whether Faust fetches it (active), has paused it or holds it as buffered, and
        whether aiokafka holds fetched records the worker has not taken (``prefetched``:
        aiokafka fetches a partition again only once they are taken). A snapshot for
        logs, read as :meth:`positions` is."""
        faust = self._app.consumer
        active = faust._active_partitions or set()
        states = self._fetch_states(topic)
        try:
            fetched = faust._thread._ensure_consumer()._fetcher._records
        except Exception:  # not started, or shutting down
            fetched = {}
        report: dict[int, dict[str, Any]] = {}
        for tp in self.assigned(topic):
            row: dict[str, Any] = {
                "hw": faust.highwater(tp),
                "committed": faust._committed_offset.get(tp),
                "active": tp in active,
                "paused": tp in faust._paused_partitions,
                "buffer_full": tp in faust._buffered_partitions,
                "prefetched": tp in fetched,
            }
            state = states.get(tp)
            if state is not None:
                row["position"] = state._position
                row["kafka_paused"] = state.paused
            report[tp.partition] = row
        return report

    def _fetch_states(self, topic: str) -> dict[Any, Any]:
        """aiokafka's fetch state (position, paused) of each assigned partition of
        ``topic``; none while the consumer is not started or between assignments."""
        try:
            client = self._app.consumer._thread._ensure_consumer()
            assignment = client._subscription.subscription.assignment
            if assignment is None:
                return {}
            return {tp: assignment.state_value(tp) for tp in self.assigned(topic)}
        except Exception:  # not started, between assignments, or reassigned meanwhile
            return {}

    def committed(self, tp: Any) -> int | None:
        """Faust's copy of the group's committed offset of ``tp`` (the next to read);
        ``None`` until it has one (see :meth:`start_offsets`)."""
        offset: int | None = self._app.consumer._committed_offset.get(tp)
        return offset

    def highwater(self, tp: Any) -> int:
        """The offset after the last record of ``tp`` the consumer has seen."""
        highwater: int = self._app.consumer.highwater(tp)
        return highwater
