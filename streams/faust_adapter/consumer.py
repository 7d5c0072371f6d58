"""The app's Kafka consumer as the batch loop uses it: where partitions start, seeks
back, the assignment and its highwaters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Hashable
from typing import Any

log = logging.getLogger("codex_analytics.stream")

#: The longest the batch loop waits for the broker's committed offsets.
COMMITTED_LOOKUP_S = 5.0


class GroupConsumer:
    """Faust's consumer of the app (built when first used, as Faust does)."""

    def __init__(self, app: Any) -> None:
        self._app = app

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
        committed offset (the next to read), or at the earliest offset of a partition
        never committed. Faust's copy of the committed offsets is filled in only once
        its seek to them has finished, and the first records can be delivered before
        that: what it lacks is asked of the broker."""
        consumer = self._app.consumer
        known = consumer._committed_offset
        committed: dict[Hashable, int | None] = {tp: known.get(tp) for tp in partitions}
        lacking = [tp for tp, offset in committed.items() if offset is None]
        if lacking:
            committed.update(await self.committed_offsets(lacking))
        missing = [tp for tp in partitions if committed.get(tp) is None]
        earliest = await consumer.earliest_offsets(*missing) if missing else {}
        starts: dict[Hashable, int] = {}
        for tp in partitions:
            start = committed.get(tp)
            starts[tp] = start if start is not None else earliest.get(tp, 0)
        return starts

    async def committed_offsets(
        self, partitions: Collection[Hashable], *, within_s: float = COMMITTED_LOOKUP_S
    ) -> dict[Hashable, int | None]:
        """The group's committed offset of each partition, from the broker (None: never
        committed, or no answer within ``within_s``). Runs on the consumer's thread,
        where Faust keeps the aiokafka client. Bounded because aiokafka retries the
        lookup for as long as the coordinator answers with a retriable error (as it may
        mid-rebalance), and the batch loop must not wait on that: a start too early is
        only a re-read (repeats are dropped), and one too late is a hole the guard seeks
        back from."""
        thread = self._app.consumer._thread
        client = thread._ensure_consumer()
        wanted = list(partitions)

        async def lookup() -> dict[Hashable, int | None]:
            return {tp: await client.committed(tp) for tp in wanted}

        try:
            result: dict[Hashable, int | None] = await asyncio.wait_for(
                thread.call_thread(lookup), within_s
            )
        except TimeoutError:
            log.warning(
                "no committed offsets from the broker within %.0f s: reading from the start",
                within_s,
            )
            return dict.fromkeys(wanted)
        return result

    async def seek_back(self, tp: Hashable, offset: int) -> None:
        """Read ``tp`` again from ``offset``. Faust records jumps it saw itself as acked
        "gaps", which a commit may pass: forget them for this partition, the records are
        about to be read again."""
        consumer = self._app.consumer
        consumer._gap.pop(tp, None)
        await consumer.seek(tp, offset)

    def assigned(self, topic: str) -> list[Any]:
        """The partitions of ``topic`` assigned to this worker (none while the consumer
        is not started, or shutting down)."""
        try:
            return [tp for tp in self._app.consumer.assignment() if tp.topic == topic]
        except Exception:
            return []

    def highwater(self, tp: Any) -> int:
        """The offset after the last record of ``tp`` the consumer has seen."""
        highwater: int = self._app.consumer.highwater(tp)
        return highwater
