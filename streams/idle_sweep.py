"""The idle sweep as the worker runs it: slices of the store between two batches.

What is idle, and why processing time, is :mod:`streams.sweep` (the pure part). Here:
when a sweep starts, how it walks the store without holding a batch up, and how its
deletions and re-stamps reach the changelog and the store (through the batch commit's
state writes: tombstones in the changelog first, so a restart does not bring a deleted
state back).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Set
from typing import Protocol

from .commit import BatchCommit, StateChange
from .metrics import StreamCounts
from .sweep import find_idle, stamp, unstamped, written_before

log = logging.getLogger("codex_analytics.stream")

#: Stored states the idle sweep looks at between two batches.
SWEEP_SLICE = 20_000


class StoredStates(Protocol):
    def get(self, key: bytes, partition: int) -> bytes | None: ...
    def items(self) -> Iterator[tuple[bytes, bytes, int | None]]: ...


class Assignment(Protocol):
    @property
    def generation(self) -> int: ...
    @property
    def rebalancing(self) -> bool: ...


class IdleSweep:
    """Deletes the states nobody wrote for ``retention_ms``, every ``interval_s``."""

    def __init__(
        self,
        *,
        interval_s: float,
        retention_ms: int,
        store: StoredStates,
        commit: BatchCommit,
        assignment: Assignment,
        caught_up: Callable[[], Set[int]],
        forget: Callable[[str], None],
        counts: StreamCounts,
    ) -> None:
        self.interval_s = interval_s
        self.retention_ms = retention_ms
        self._store = store
        self._commit = commit
        self._assignment = assignment
        #: Partitions fully processed: only there "not written for the retention" means
        #: "no fact for the retention".
        self._caught_up = caught_up
        #: Drops a deleted instance from the worker's decoded-state cache.
        self._forget = forget
        self._counts = counts
        # The sweep in progress: stored items still to look at, the assignment it
        # started under, and what it found so far.
        self._items: Iterator[tuple[bytes, bytes, int | None]] | None = None
        self._generation: int | None = None
        self._kept = self._deleted = 0
        self._next_at = time.monotonic() + interval_s

    def due_in(self, now: float) -> float:
        """Seconds until the sweep has work (0 while one is in progress)."""
        return 0.0 if self._items is not None else self._next_at - now

    async def step(self) -> None:
        """Look at the next slice of stored states, between two batches, so that a big
        table never holds a batch up for long; a new assignment abandons the sweep."""
        assignment = self._assignment
        if self._items is None:
            now = time.monotonic()
            if now < self._next_at:
                return
            if assignment.rebalancing:
                self._next_at = now + 1.0  # try again once the assignment settled
                return
            self._next_at = now + self.interval_s
            self._items = self._store.items()
            self._generation = assignment.generation
            self._kept = self._deleted = 0
        if assignment.rebalancing or assignment.generation != self._generation:
            self._items = None
            return
        try:
            chunk = list(itertools.islice(self._items, SWEEP_SLICE))
        except Exception as exc:  # a store closed by a rebalance under the iterator
            log.info("idle sweep abandoned: %r", exc)
            self._items = None
            return
        now_ms = int(time.time() * 1000)
        cutoff_ms = now_ms - self.retention_ms
        found = find_idle(chunk, cutoff_ms, self._caught_up())
        if found.idle:
            await self._delete(found.idle, cutoff_ms)
        if found.unstamped:
            await self._stamp(found.unstamped, now_ms)
        self._kept += found.kept + len(found.unstamped)
        if len(chunk) < SWEEP_SLICE:
            self._items = None
            self._counts.sweeps += 1
            if self._deleted:
                log.info(
                    "idle sweep: deleted %d instance states not written for %.4g h, kept %d",
                    self._deleted,
                    self.retention_ms / 3_600_000,
                    self._kept,
                )

    async def _delete(self, idle: list[tuple[bytes, int]], cutoff_ms: int) -> None:
        """Tombstones, then out of the store and the decoded-state cache. What the walk
        found idle may be a snapshot's (RocksDB): only states whose live value is still
        idle go; one a batch rewrote since the walk started stays."""
        store = self._store
        still_idle = [
            (key, partition)
            for key, partition in idle
            if written_before(store.get(key, partition), cutoff_ms)
        ]
        self._kept += len(idle) - len(still_idle)
        if not still_idle:
            return
        await self._commit.write_states(
            [StateChange(key, None, partition) for key, partition in still_idle]
        )
        for key, _ in still_idle:
            self._forget(key.decode())
        self._counts.swept_states += len(still_idle)
        self._deleted += len(still_idle)

    async def _stamp(self, found: list[tuple[bytes, int]], now_ms: int) -> None:
        """States written before stamps existed get one now; they age from here. A
        batch may have stamped one since the walk's snapshot: that one is left alone."""
        stamped = [
            StateChange(key, stamp(value, now_ms, partition), partition)
            for key, partition in found
            if unstamped(value := self._store.get(key, partition)) and value is not None
        ]
        if stamped:
            await self._commit.write_states(stamped)
