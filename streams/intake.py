"""The facts records on their way from the consumer's fetch to the batch loop.

The consumer hands each partition's fetched records over as one list
(:class:`~streams.faust_adapter.transport.BatchRoute`); the intake wraps each in a
:class:`FactRecord`, notes what the lag and the per-partition counters need, and puts
them in the hand-off buffer the batch loop takes its batches from. It counts what it
holds until the batch loop says each record is done with (acked, or given up to be read
again): Faust's revocation and stop wait for that count to reach zero, as they wait for
the events of its own path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from .handoff import Handoff
from .metrics import PendingTimestamps


@dataclass(slots=True)
class FactRecord:
    """One facts-topic record as the batch loop sees it."""

    tp: Hashable
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    #: The record's timestamp in epoch ms (the time it was handed over when it has none).
    timestamp_ms: int


class Intake:
    """The hand-off buffer of the facts records, and the count of those not done with."""

    def __init__(
        self,
        max_records: int,
        linger_s: float,
        fetched: dict[int, int],
        pending: PendingTimestamps,
    ) -> None:
        self._handoff: Handoff[FactRecord] = Handoff(max_records, linger_s)
        self._fetched = fetched
        self._pending = pending
        self._outstanding = 0
        self._settled = asyncio.Event()
        self._settled.set()

    def __len__(self) -> int:
        """Records buffered, not taken by the batch loop yet."""
        return len(self._handoff)

    async def deliver(self, topic: str, partition: int, tp: Hashable, records: list[Any]) -> None:
        """Take one partition's fetched records (aiokafka's ``ConsumerRecord``s, in
        offset order); waits while the buffer is full."""
        if not records:
            return
        now_ms = int(time.time() * 1000)
        batch = [
            FactRecord(
                tp,
                topic,
                partition,
                r.offset,
                r.key,
                r.value,
                r.timestamp if r.timestamp and r.timestamp > 0 else now_ms,
            )
            for r in records
        ]
        self._fetched[partition] = self._fetched.get(partition, 0) + len(batch)
        self._pending.handed(partition, [(r.offset, r.timestamp_ms) for r in batch])
        self._outstanding += len(batch)
        self._settled.clear()
        await self._handoff.put_many(batch)

    async def take(self, wait_s: float | None = None) -> list[FactRecord]:
        """The next batch (see :meth:`Handoff.take`)."""
        return await self._handoff.take(wait_s)

    def done(self, count: int) -> None:
        """``count`` records taken are done with: acked, or given up (read again later)."""
        self._outstanding = max(0, self._outstanding - count)
        if not self._outstanding:
            self._settled.set()

    def outstanding(self) -> int:
        return self._outstanding

    async def settled(self, within_s: float) -> None:
        """Wait up to ``within_s`` for every record handed over to be done with."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), within_s)
