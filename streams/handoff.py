"""The hand-off between Faust's stream and the worker's batch loop.

Faust's ``take``/``noack_take`` stop filling the next batch while the current one is
being processed, then wait up to ``within`` for it to fill: delivery and processing
take turns, and the worker idles through every broker round trip of a batch. Here the
stream keeps filling the next batch while the current one is processed and its writes
are acknowledged; the batch loop takes whatever has arrived as soon as it is free.
Batches grow with the load by themselves (like a producer's linger of zero), and a
bounded buffer pushes back on the stream when the batch loop falls behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    """A bounded buffer of items, put one at a time and taken as a batch."""

    def __init__(self, max_items: int, linger_s: float = 0.0) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        #: How long an idle batch loop waits for a partial batch to fill (0: not at all).
        self.linger_s = linger_s
        self._items: list[T] = []
        self._first_at = 0.0
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        """Add ``item``; wait while the buffer holds ``max_items`` (backpressure)."""
        while not self._room.is_set():
            await self._room.wait()
        self._add([item])

    async def put_many(self, items: list[T]) -> None:
        """Add ``items`` at once (a fetch's records of one partition), then wait while
        the buffer holds ``max_items`` or more: it may hold one list past its bound, so
        that a fetch is never split (:meth:`take` still returns ``max_items`` at most)."""
        if not items:
            return
        self._add(items)
        while not self._room.is_set():
            await self._room.wait()

    def _add(self, items: list[T]) -> None:
        if not self._items:
            self._first_at = time.monotonic()
        self._items.extend(items)
        self._arrived.set()
        if len(self._items) >= self.max_items:
            self._full.set()
            self._room.clear()

    async def take(self, wait_s: float | None = None) -> list[T]:
        """Everything buffered (at most ``max_items``), once there is something; with a
        linger, a partial batch waits until it is that old or full. With ``wait_s``, an
        empty list once that many seconds passed with nothing buffered."""
        if not self._items:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), wait_s)
            except TimeoutError:
                return []
        if self.linger_s > 0 and not self._full.is_set():
            left = self._first_at + self.linger_s - time.monotonic()
            if left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), left)
        if len(self._items) > self.max_items:
            batch, self._items = self._items[: self.max_items], self._items[self.max_items :]
            self._first_at = time.monotonic()
        else:
            batch, self._items = self._items, []
        if len(self._items) < self.max_items:
            self._full.clear()
            self._room.set()
        return batch
