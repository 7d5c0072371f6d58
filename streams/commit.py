"""The batch commit protocol: the one order in which a batch's writes reach the broker.

1. Outputs (event records, dead letters) are produced and every delivery is awaited.
2. Then the changed states: to the changelog with an explicit partition (the source
   partition), every delivery awaited; then to the local store with the changelog
   offset each reached.
3. Then one end marker per changelog partition just written (see
   :meth:`BatchCommit.mark_changelog_ends`).
4. Only then are the batch's records acked, so the commit that follows can
   never pass a fact whose outputs or state are not on the broker.

A crash anywhere repeats work, never loses it: a state in the changelog implies its
outputs were delivered, and facts already in a state are skipped by their ``seq``.
Anything that would break that (a delivery not acknowledged) ends the process at once
(:data:`EXIT_DELIVERY_FAILED`) instead of raising into Faust, which would ack the batch
and let it be committed. A record the broker can never take would make that a loop, so
nothing reaches this module unsized: ``streams.processor`` measures every output
against the one record-size limit first, and the producer's ``max_request_size`` is
derived from that limit. The idle sweep's tombstones and re-stamps are state writes
too, and go through steps 2 and 3.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol, TypeVar

log = logging.getLogger("codex_analytics.stream")

#: Changelog key of the end markers; never an instance id (those are non-empty text).
MARKER_KEY = b"\x00end-marker"
#: Exit status when delivery fails: a supervisor restarts the worker from its last commit.
EXIT_DELIVERY_FAILED = 70

Headers = list[tuple[str, bytes]]
#: A consumed record the batch acks.
R = TypeVar("R")


class Delivered(Protocol):
    """The broker's acknowledgement of one record."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class Send(Protocol):
    """Hands one record to the producer; the awaitable it returns resolves once the
    broker acknowledged the record (or fails)."""

    def __call__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> Awaitable[Awaitable[Delivered]]: ...


class StateWrites(Protocol):
    """The local store, written only with states the changelog acknowledged."""

    def put(self, key: bytes, value: bytes, partition: int, offset: int) -> None: ...
    def delete(self, key: bytes, partition: int, offset: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Output:
    """A record for an output topic (events, dead letters)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers | None = None


@dataclass(frozen=True, slots=True)
class StateChange:
    """A state to write in the changelog ``partition`` (its source partition), then in
    the store; ``value`` None deletes it (a tombstone)."""

    key: bytes
    value: bytes | None
    partition: int


class BatchCommit:
    """Writes batches in the order of the module docstring."""

    def __init__(self, send: Send, store: StateWrites, changelog: str) -> None:
        self._send = send
        self._store = store
        self.changelog = changelog

    async def commit(
        self,
        outputs: Iterable[Output],
        states: Sequence[StateChange],
        records: list[R],
        ack: Callable[[list[R]], Awaitable[None]],
    ) -> None:
        """All four steps for one batch; ``records`` (in order) are acked with one call
        of ``ack`` (the commit passes only each partition's first run of acked offsets)."""
        await self.send_outputs(outputs)
        await self.write_states(states)
        if records:
            await ack(records)

    async def send_outputs(self, outputs: Iterable[Output]) -> None:
        """Step 1: a saved state implies its outputs."""
        await delivered(
            [await self._send(o.topic, o.key, o.value, None, o.headers) for o in outputs]
        )

    async def write_states(self, states: Sequence[StateChange]) -> None:
        """Steps 2 and 3: changelog first (a restart must find what the store had, and
        must not bring a deleted state back), then the store, then the end markers."""
        if not states:
            return
        acks = await delivered(
            [await self._send(self.changelog, s.key, s.value, s.partition) for s in states]
        )
        store = self._store
        for state, ack in zip(states, acks, strict=True):
            if state.value is None:
                store.delete(state.key, ack.partition, ack.offset)
            else:
                store.put(state.key, state.value, ack.partition, ack.offset)
        await self.mark_changelog_ends({ack.partition for ack in acks})

    async def mark_changelog_ends(self, partitions: Iterable[int]) -> None:
        """One single-record batch at the end of each changelog partition just written.

        Some brokers (the embedded one) answer ListOffsets with the last *batch*'s base
        offset + 1, and Faust's recovery reads the changelog up to that end: the last
        batch of states would be skipped on restart. A lone marker as the last batch
        makes the reported end exact, so every acknowledged state is recovered."""
        await delivered(
            [
                await self._send(self.changelog, MARKER_KEY, b"m", partition)
                for partition in partitions
            ]
        )


async def delivered(futures: list[Awaitable[Delivered]]) -> list[Delivered]:
    """Await broker acknowledgements; any failure is fatal (see module docstring)."""
    if not futures:
        return []
    results = await asyncio.gather(*futures, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        fatal(f"{len(failures)} of {len(futures)} records were not acknowledged: {failures[0]!r}")
    return [r for r in results if not isinstance(r, BaseException)]


def fatal(message: str) -> NoReturn:
    """Log ``message`` and end the process now, without unwinding into Faust."""
    log.critical(message)
    logging.shutdown()
    os._exit(EXIT_DELIVERY_FAILED)
