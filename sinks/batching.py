"""Batching of events-topic records into request bodies: the sink's pure core.

One ``PartitionBatcher`` per assigned partition groups records by route and closes a
batch when it reaches ``max_events``, when the next event would push the body past
``max_bytes``, or by time: ``max_wait_ms`` (the linger) bounds how long an event waits
in the sink, counted from its Kafka record timestamp (set when the stream produced it).

Why event time: a batch's ``Idempotency-Key`` is derived from its events, so a batch
must come out the same when it is formed again after a crash or a rebalance (the
sink commits only delivered batches; the next owner re-reads from the committed
offset). Count and byte limits are deterministic; a wall-clock linger is not. So the
time cut is a function of the record sequence: a batch takes the records of its route
stamped within its *window* after its first record, and closes when the partition
shows a record stamped past the window. The window is the linger less a share kept for
records still on their way (``lateness``: at most ``lateness_ms``, and at most half
the linger): when the partition is idle (fully fetched), a wall-clock check closes the
batch once its first record is ``max_wait_ms`` old, i.e. ``lateness`` after its
window ended. That is the only cut a replay can disagree with, and only for a record
that reached the partition more than ``lateness`` after its timestamp. So the linger
is what the oldest event of a batch waits at most (once the partition is read), not
a wait that starts when the sink first sees it, with the lateness on top.

A partition's open batches together hold at most ``max_open_records``; past it the
batch that started first closes. That cut bounds memory however many routes share the
partition, and it also depends on the sequence only: a re-read misses only batches
that started before its first offset, and those are the oldest, so the original run
closed them first and the other batches saw the same cuts.

``PartitionProgress`` gives the offset to commit: the first offset of any unfinished
batch, moved back to the start of any finished batch that straddles it, so that a
re-read starts on batch boundaries and re-forms the same batches (design.md §8).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from codex_analytics.contract import BATCH_BODY_OVERHEAD, ISOLATED_EVENT_TYPES, join_batch
from codex_analytics.contract.errors import DecodeError
from codex_analytics.contract.facts import AuthRoute
from codex_analytics.contract.records import Origin

from .auth import filters_with_api_key, may_send_with_api_key

#: ``{"events":[`` + ``]}`` (the contract owns the body's byte format)
BODY_OVERHEAD = BATCH_BODY_OVERHEAD


class CloseReason(StrEnum):
    COUNT = "count"  # reached max_events
    BYTES = "bytes"  # the next event would not fit in max_bytes
    TIME = "time"  # the partition moved past the batch's window (or the idle check fired)
    ISOLATED = "isolated"  # an event that travels alone, or the batch before it
    PRESSURE = "pressure"  # the partition's open batches hold max_open_records: oldest goes
    FLUSH = "flush"  # shutdown or revocation
    TOO_LARGE = "too_large"  # one event larger than max_bytes: dead-lettered, not sent
    UNDECODABLE = "undecodable"  # not an events-topic record: dead-lettered


@dataclass(slots=True)
class SinkRecord:
    """One events-topic record, decoded. ``raw`` and ``key`` are kept for dead letters."""

    offset: int
    timestamp_ms: int
    raw: bytes
    key: bytes | None
    route: AuthRoute | None = None
    route_key: bytes = b""  # the batch key: the whole route, serialized
    origin: Origin | None = None
    event_type: str = ""
    event_json: bytes = b""
    error: DecodeError | None = None


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_events: int = 500
    max_bytes: int = 1024 * 1024
    max_wait_ms: int = 1000
    lateness_ms: int = 200
    #: Records held in one partition's open batches at most; past it, the open batch
    #: that started first closes. A function of the record sequence, like every cut.
    max_open_records: int = 4000

    @property
    def lateness(self) -> int:
        """The share of the linger kept for records still on their way to the partition:
        ``lateness_ms``, but at most half the linger (a window of at least half)."""
        return min(self.lateness_ms, self.max_wait_ms // 2)

    @property
    def window_ms(self) -> int:
        """A batch takes its route's records stamped at most this long after its first."""
        return self.max_wait_ms - self.lateness

    def __post_init__(self) -> None:
        if self.max_wait_ms < 0 or self.lateness_ms < 0:
            raise ValueError("max_wait_ms and lateness_ms must not be negative")
        if self.max_open_records < 1:
            raise ValueError("max_open_records must be at least 1")
        if self.max_events < 1:
            raise ValueError("max_events must be at least 1")
        if self.max_bytes < BODY_OVERHEAD + 2:
            raise ValueError(f"max_bytes must be at least {BODY_OVERHEAD + 2}")


@dataclass(slots=True, eq=False)
class Batch:
    """Records of one route, in offset order, that travel in one request."""

    partition: int
    route_key: bytes
    records: list[SinkRecord] = field(default_factory=list)
    first_timestamp_ms: int = 0
    body_size: int = BODY_OVERHEAD
    closed_by: CloseReason | None = None

    @property
    def route(self) -> AuthRoute | None:
        return self.records[0].route

    @property
    def first_offset(self) -> int:
        return self.records[0].offset

    @property
    def last_offset(self) -> int:
        return self.records[-1].offset

    @property
    def sendable(self) -> bool:
        return self.closed_by not in (CloseReason.TOO_LARGE, CloseReason.UNDECODABLE)

    def body(self) -> bytes:
        """The request body / capture line: ``{"events":[...]}`` from the encoded events."""
        return join_batch([r.event_json for r in self.records])

    def idempotency_key(self) -> str:
        """A digest of the batch's origins: the same events in the same batch give the
        same key, in any process, after any restart."""
        return idempotency_key(self.records)

    def _append(self, record: SinkRecord) -> None:
        if not self.records:
            self.first_timestamp_ms = record.timestamp_ms
            self.body_size = BODY_OVERHEAD + len(record.event_json)
        else:
            self.body_size += 1 + len(record.event_json)
        self.records.append(record)


def idempotency_key(records: Sequence[SinkRecord]) -> str:
    """A digest of the records' origins: the key of a request that carries them (all of
    a batch, or what the auth gate let through of it)."""
    digest = hashlib.blake2b(digest_size=16)
    for record in records:
        origin = record.origin
        if origin is None:  # undecodable records never reach a request
            digest.update(b"offset:%d\n" % record.offset)
        else:
            digest.update(b"%s\0%d\0%d\n" % (origin.instance_id.encode(), origin.seq, origin.index))
    return digest.hexdigest()


class PartitionBatcher:
    """Open batches of one partition, keyed by route. Feed records in offset order."""

    def __init__(self, partition: int, limits: BatchLimits) -> None:
        self.partition = partition
        self.limits = limits
        self._open: dict[bytes, Batch] = {}
        # Earliest first-timestamp among open batches: skip the time scan until a
        # record is past it (most records are not).
        self._earliest_ms: int | None = None
        self.buffered = 0  # records in open batches
        self.progress = PartitionProgress()

    def add(self, record: SinkRecord) -> list[Batch]:
        """Add one record; returns the batches this closed, in the order they closed."""
        closed: list[Batch] = []
        limits = self.limits
        self.progress.seen(record.offset)
        window = limits.window_ms
        if self._earliest_ms is not None and record.timestamp_ms > self._earliest_ms + window:
            self._close_where(
                lambda b: record.timestamp_ms > b.first_timestamp_ms + window,
                CloseReason.TIME,
                closed,
            )
        if record.error is not None:
            closed.append(self._single(record, CloseReason.UNDECODABLE))
            return closed
        if BODY_OVERHEAD + len(record.event_json) > limits.max_bytes:
            closed.append(self._single(record, CloseReason.TOO_LARGE))
            return closed
        route_key = record.route_key
        batch = self._open.get(route_key)
        if record.event_type in ISOLATED_EVENT_TYPES and not _filtered_out(record):
            if batch is not None:
                self._close(batch, CloseReason.ISOLATED, closed)
            closed.append(self._single(record, CloseReason.ISOLATED))
            return closed
        if batch is not None and batch.body_size + 1 + len(record.event_json) > limits.max_bytes:
            self._close(batch, CloseReason.BYTES, closed)
            batch = None
        if batch is None:
            batch = Batch(self.partition, route_key)
            self._open[route_key] = batch
            self.progress.started(batch)
            if self._earliest_ms is None or record.timestamp_ms < self._earliest_ms:
                self._earliest_ms = record.timestamp_ms
        batch._append(record)
        self.buffered += 1
        if len(batch.records) >= limits.max_events:
            self._close(batch, CloseReason.COUNT, closed)
        elif self.buffered > limits.max_open_records:
            oldest = min(self._open.values(), key=lambda b: b.first_offset)
            self._close(oldest, CloseReason.PRESSURE, closed)
        return closed

    def expire(self, now_ms: int, *, caught_up: bool) -> list[Batch]:
        """Close batches whose first record is ``max_wait_ms`` old by the wall clock.
        Only once the partition is fully fetched: while records are still coming, their
        timestamps decide."""
        closed: list[Batch] = []
        if caught_up and self._earliest_ms is not None:
            linger = self.limits.max_wait_ms
            self._close_where(
                lambda b: now_ms >= b.first_timestamp_ms + linger, CloseReason.TIME, closed
            )
        return closed

    def flush(self) -> list[Batch]:
        """Close every open batch (shutdown, revocation)."""
        closed: list[Batch] = []
        self._close_where(lambda b: True, CloseReason.FLUSH, closed)
        return closed

    def next_deadline_ms(self) -> int | None:
        """When :meth:`expire` next has something to close (wall clock, ms)."""
        if self._earliest_ms is None:
            return None
        return self._earliest_ms + self.limits.max_wait_ms

    def finished(self, batch: Batch) -> None:
        """``batch`` was delivered, dead-lettered, skipped or captured."""
        self.progress.finished(batch)

    def commit_point(self) -> int | None:
        return self.progress.commit_point()

    @property
    def open_batches(self) -> list[Batch]:
        return list(self._open.values())

    def _single(self, record: SinkRecord, reason: CloseReason) -> Batch:
        batch = Batch(self.partition, record.route_key)
        batch._append(record)
        batch.closed_by = reason
        self.progress.started(batch)
        return batch

    def _close(self, batch: Batch, reason: CloseReason, closed: list[Batch]) -> None:
        batch.closed_by = reason
        del self._open[batch.route_key]
        self.buffered -= len(batch.records)
        closed.append(batch)
        self._earliest_ms = min((b.first_timestamp_ms for b in self._open.values()), default=None)

    def _close_where(
        self, predicate: Callable[[Batch], bool], reason: CloseReason, closed: list[Batch]
    ) -> None:
        for batch in [b for b in self._open.values() if predicate(b)]:
            self._close(batch, reason, closed)


def _filtered_out(record: SinkRecord) -> bool:
    """Whether the auth gate filters this event out whatever the credential: an event
    that travels alone upstream (accepted lines) of a Profile J route whose kind is
    ``api_key``. Upstream filters before it isolates, so such an event cuts no batch.
    (For a route that names no kind the credential decides, at delivery: the cut is
    made all the same, so that batches stay a function of the records.)"""
    origin, route = record.origin, record.route
    return (
        origin is not None
        and route is not None
        and filters_with_api_key(origin.contract_id, route)
        and not may_send_with_api_key(record.event_type, record.event_json)
    )


class PartitionProgress:
    """Which offset of one partition is safe to commit.

    Every record belongs to exactly one batch; the batcher reports when a batch starts
    and the sink when it finishes (delivered, dead-lettered, skipped or captured).
    """

    def __init__(self) -> None:
        self._unfinished: dict[int, Batch] = {}
        self._finished: list[tuple[int, int]] = []  # (first, last) of finished batches
        self.next_offset: int | None = None  # one past the last offset seen

    def seen(self, offset: int) -> None:
        self.next_offset = offset + 1

    def started(self, batch: Batch) -> None:
        self._unfinished[id(batch)] = batch

    def finished(self, batch: Batch) -> None:
        self._unfinished.pop(id(batch), None)
        self._finished.append((batch.first_offset, batch.last_offset))

    @property
    def unfinished(self) -> int:
        return len(self._unfinished)

    def oldest_timestamp_ms(self) -> int | None:
        """The timestamp of the oldest record not delivered yet (the first of the batch
        that started first), or ``None`` when every batch is finished."""
        return min((b.first_timestamp_ms for b in self._unfinished.values()), default=None)

    def commit_point(self) -> int | None:
        """The offset to commit, or ``None`` before the first record."""
        if self.next_offset is None:
            return None
        point = min((b.first_offset for b in self._unfinished.values()), default=self.next_offset)
        # Finished batches are kept only while they reach past the point; move the
        # point back over any that straddles it, until none does.
        moved = True
        while moved:
            moved = False
            for first, last in self._finished:
                if first < point <= last:
                    point = first
                    moved = True
        self._finished = [span for span in self._finished if span[1] >= point]
        return point
