"""The stream stage's pure core: a batch of facts-topic records in, everything to write out.

No Kafka, no Faust, no clock: the worker hands in the records it consumed and a way to
read an instance's saved state; it gets back the events-topic records, the dead letters,
and the instance states that changed. The worker writes those, waits for the broker's
acknowledgements, and only then lets the source offsets be committed.

Every output is sized here, before anything is sent, against the one record-size limit
(:mod:`codex_analytics.runtime.record_size`): no output may be refused by the producer,
because a refused output would stop the partition for good (the worker exits and reads
the same record again). An output that cannot be produced dead-letters its *source*
fact instead, and the fact is acked like any other:

- ``state_too_large``: applying the fact would grow its instance's state (the changelog
  record) over the limit. The state stays as it was before that fact, and the instance's
  later facts are applied to it.
- ``output_too_large``: one of the fact's events would be over the limit. None of its
  events is sent, and the state stays as it was before that fact.
- every dead letter is cut to fit (:func:`codex_analytics.runtime.deadletter.fit`).

Checking every fact's state would mean serializing the state after every fact; the
batch serializes each changed state once, at the end, and keeps no object per fact (the
garbage collector's cost showed: outputs are tagged with their instance instead). Only
an instance whose state or events do not fit takes the slow path
(:meth:`FactProcessor._resize`): its outputs are taken back, and its facts of the batch,
decoded again, are applied once more from its saved state, one at a time, each sized.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from codex_analytics.contract import (
    DEFAULT_MAX_RECORD_BYTES,
    AuthRoute,
    DecodeError,
    DecodeReason,
    EventRecord,
    FactEnvelope,
    Origin,
    RecordItem,
    TrackEvent,
    decode_fact_record,
    encode_event_record,
    encode_fact,
    route_key,
)
from codex_analytics.runtime.deadletter import DeadLetter, dead_letter, fit
from codex_analytics.runtime.record_size import record_bytes

from .reducer import Drop, InstanceState, Reducer, ReducerStats
from .sweep import STAMP_SIZE

StateLoader = Callable[[str, int], bytes | None]
_NO_ROUTE = AuthRoute()

#: Dead-letter reasons of facts whose outputs do not fit (``error.stage`` ``reduce``).
STATE_TOO_LARGE = "state_too_large"
OUTPUT_TOO_LARGE = "output_too_large"


class ConsumedRecord(Protocol):
    """One consumed facts-topic record, as the processor reads it (the worker's
    :class:`~streams.intake.FactRecord`, or a :class:`SourceRecord`)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One consumed facts-topic record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class ProcessedBatch:
    #: (key, value) of every events-topic record: each instance's in emission order.
    events: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: instance id -> serialized state, for every instance whose state changed.
    states: dict[str, bytes] = field(default_factory=dict)
    #: instance id -> the source partition its facts came from (where its state lives).
    partitions: dict[str, int] = field(default_factory=dict)
    facts: int = 0
    #: Facts whose record key was not their instance id (ordering then relies on luck).
    misrouted: int = 0
    #: Saved states that could not be read back (started afresh).
    corrupt_states: int = 0
    #: Drop warnings upstream would log (structured; duplicates and silent cases excluded).
    warnings: list[Drop] = field(default_factory=list)


@dataclass(slots=True)
class _Outputs:
    """Outputs of facts, each event and failure with the instance it came from, so that
    one instance's can be taken back (:meth:`take_back`). (Drop warnings name their
    instance themselves.)"""

    events: list[tuple[bytes, bytes]] = field(default_factory=list)
    event_owners: list[str] = field(default_factory=list)
    warnings: list[Drop] = field(default_factory=list)
    #: Dead letters of facts the reducer failed on or refused, and their instances.
    failures: list[DeadLetter] = field(default_factory=list)
    failure_owners: list[str] = field(default_factory=list)
    #: Instances with an event record over the limit.
    oversized: set[str] = field(default_factory=set)
    #: The reducer raised (on the slow path's one fact: that fact is undone).
    crashed: bool = False

    def take_back(self, instances: Container[str]) -> None:
        """Forget the outputs of ``instances``."""
        kept = [i for i, owner in enumerate(self.event_owners) if owner not in instances]
        self.events = [self.events[i] for i in kept]
        self.event_owners = [self.event_owners[i] for i in kept]
        self.warnings = [w for w in self.warnings if w.instance_id not in instances]
        kept = [i for i, owner in enumerate(self.failure_owners) if owner not in instances]
        self.failures = [self.failures[i] for i in kept]
        self.failure_owners = [self.failure_owners[i] for i in kept]

    def add(self, other: _Outputs) -> None:
        self.events += other.events
        self.event_owners += other.event_owners
        self.warnings += other.warnings
        self.failures += other.failures
        self.failure_owners += other.failure_owners


@dataclass(slots=True)
class _Resized:
    """An instance on the slow path: its state, and that state's bytes before the fact
    being tried."""

    state: InstanceState
    before: bytes
    changed: bool = False


class FactProcessor:
    """Decode, dedupe, reduce, size and route one batch of consumed records."""

    def __init__(
        self,
        reducer: Reducer | None = None,
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        state_cache_size: int = 0,
        compact_states: bool = False,
    ) -> None:
        self.reducer = reducer if reducer is not None else Reducer()
        #: The one record-size limit: facts records over it are ``too_large``, and no
        #: output (event, state, dead letter) over it is ever produced.
        self.max_record_bytes = max_record_bytes
        # Decoded states of recently seen instances, so that a busy instance is not
        # decoded from bytes on every batch. Only valid while this worker owns the
        # partitions: the worker clears it on every rebalance.
        self.state_cache_size = state_cache_size
        self._cache: OrderedDict[str, InstanceState] = OrderedDict()
        #: Write states in the packed format 6 (every format is read).
        self.compact_states = compact_states

    def clear_cache(self) -> None:
        self._cache.clear()

    def forget(self, instance_id: str) -> None:
        """Drop one instance's cached state (its saved state was deleted)."""
        self._cache.pop(instance_id, None)

    def process(self, records: Sequence[ConsumedRecord], load_state: StateLoader) -> ProcessedBatch:
        """``load_state(instance_id, partition)`` returns the instance's saved state (or
        None); ``partition`` is the source partition, where a partitioned store keeps it."""
        out = ProcessedBatch()
        outputs = _Outputs()
        states: dict[str, InstanceState] = {}
        for record, item in self._items(records):
            fact = item.fact
            if fact is None:
                out.dead_letters.append(self._decode_letter(record, item))
                continue
            out.facts += 1
            instance_id = fact.source.instance_id
            if record.key is not None and record.key != instance_id.encode():
                out.misrouted += 1
            state = states.get(instance_id)
            if state is None:
                state = states[instance_id] = self._load(
                    instance_id, record.partition, load_state, out
                )
                out.partitions[instance_id] = record.partition
            self._apply(state, fact, record, item.index, outputs)
        over: set[str] = set(outputs.oversized)
        for instance_id, state in states.items():
            state_bytes = state.to_bytes(compact=self.compact_states)
            if instance_id not in over and self._state_fits(instance_id, state_bytes):
                out.states[instance_id] = state_bytes
                self._remember(instance_id, state)
            else:
                over.add(instance_id)
        if over:
            outputs.take_back(over)
            self._resize(records, over, outputs, out, load_state)
        out.events, out.warnings = outputs.events, outputs.warnings
        out.dead_letters += outputs.failures
        cache, limit = self._cache, self.state_cache_size
        while len(cache) > limit:
            cache.popitem(last=False)
        return out

    def _remember(self, instance_id: str, state: InstanceState) -> None:
        if self.state_cache_size:
            self._cache[instance_id] = state
            self._cache.move_to_end(instance_id)

    # -- one fact ---------------------------------------------------------------------

    def _items(
        self, records: Sequence[ConsumedRecord]
    ) -> Iterator[tuple[ConsumedRecord, RecordItem]]:
        max_bytes = self.max_record_bytes
        for record in records:
            value = record.value if record.value is not None else b""
            for item in decode_fact_record(value, max_bytes=max_bytes):
                yield record, item

    def _apply(
        self,
        state: InstanceState,
        fact: FactEnvelope,
        record: ConsumedRecord,
        index: int | None,
        outputs: _Outputs,
    ) -> None:
        owner = fact.source.instance_id
        try:
            reduction = self.reducer.apply(state, fact)
        except Exception as exc:  # a reducer bug must not stop the partition
            reason, detail = DecodeReason.INTERNAL.value, f"reducer failure: {exc!r}"
            outputs.failures.append(self._letter(record, index, fact, reason, "", detail))
            outputs.failure_owners.append(owner)
            outputs.crashed = True
            return
        if reduction.drops:
            outputs.warnings.extend(d for d in reduction.drops if d.reason.logged)
            refused = next((d for d in reduction.drops if d.reason.dead_letters), None)
            if refused is not None:
                outputs.failures.append(self._refusal(record, index, fact, refused))
                outputs.failure_owners.append(owner)
        if reduction.events:
            events = _event_records(fact, reduction.events)
            limit = self.max_record_bytes
            for key, value in events:  # no headers: key and value are the record
                if len(key) + len(value) > limit:
                    outputs.oversized.add(owner)
            outputs.events += events
            outputs.event_owners += [owner] * len(events)

    # -- the slow path ----------------------------------------------------------------

    def _resize(
        self,
        records: Sequence[ConsumedRecord],
        instances: set[str],
        outputs: _Outputs,
        out: ProcessedBatch,
        load_state: StateLoader,
    ) -> None:
        """For ``instances``, whose state or events do not all fit: their facts of the
        batch once more (decoded again: the batch does not keep them), from their saved
        states, one at a time. A fact whose events or resulting state do not fit is
        dead-lettered and undone (the state goes back to its bytes before the fact); the
        others are kept, their outputs added to ``outputs``.

        The reducer's counters counted these facts in the first pass: this one counts
        into a scratch copy."""
        resized: dict[str, _Resized] = {}
        counters, self.reducer.stats = self.reducer.stats, ReducerStats()
        try:
            for record, item in self._items(records):
                fact = item.fact
                if fact is None or fact.source.instance_id not in instances:
                    continue
                instance_id = fact.source.instance_id
                tried = resized.get(instance_id)
                if tried is None:
                    state = self._saved_state(instance_id, record.partition, load_state)
                    tried = resized[instance_id] = _Resized(
                        state, state.to_bytes(compact=self.compact_states)
                    )
                self._try(tried, instance_id, fact, record, item.index, outputs, out)
        finally:
            self.reducer.stats = counters
        for instance_id, tried in resized.items():
            if tried.changed:  # else the saved state stands: it may be over a lowered limit
                out.states[instance_id] = tried.before
            self._remember(instance_id, tried.state)

    def _try(
        self,
        tried: _Resized,
        instance_id: str,
        fact: FactEnvelope,
        record: ConsumedRecord,
        index: int | None,
        outputs: _Outputs,
        out: ProcessedBatch,
    ) -> None:
        """One fact of the slow path: kept if all its outputs fit, else undone."""
        again = _Outputs()
        self._apply(tried.state, fact, record, index, again)
        if again.crashed:
            out.dead_letters += again.failures
        elif again.oversized:
            largest = max(len(key) + len(value) for key, value in again.events)
            what = f"an event record of {largest} bytes (none of the fact's events was sent)"
            out.dead_letters.append(self._too_large(record, index, fact, OUTPUT_TOO_LARGE, what))
        else:
            after = tried.state.to_bytes(compact=self.compact_states)
            if self._state_fits(instance_id, after):
                outputs.add(again)
                tried.before, tried.changed = after, True
                return
            size = _state_record_bytes(instance_id, after)
            what = f"the instance state would be a record of {size} bytes"
            out.dead_letters.append(self._too_large(record, index, fact, STATE_TOO_LARGE, what))
        tried.state = InstanceState.from_bytes(tried.before)  # undo the fact

    def _state_fits(self, instance_id: str, state: bytes) -> bool:
        return _state_record_bytes(instance_id, state) <= self.max_record_bytes

    def _load(
        self, instance_id: str, partition: int, load_state: StateLoader, out: ProcessedBatch
    ) -> InstanceState:
        cached = self._cache.get(instance_id)
        if cached is not None:
            return cached
        saved = load_state(instance_id, partition)
        if saved is None:
            return InstanceState()
        try:
            return InstanceState.from_bytes(saved)
        except ValueError:
            out.corrupt_states += 1
            return InstanceState()

    def _saved_state(
        self, instance_id: str, partition: int, load_state: StateLoader
    ) -> InstanceState:
        """The state as the store has it (the cached one was changed by the batch)."""
        saved = load_state(instance_id, partition)
        try:
            return InstanceState() if saved is None else InstanceState.from_bytes(saved)
        except ValueError:  # counted in the first pass
            return InstanceState()

    # -- dead letters -----------------------------------------------------------------

    def _decode_letter(self, record: ConsumedRecord, item: RecordItem) -> DeadLetter:
        error = item.error or DecodeError(DecodeReason.INTERNAL, "", "no fact, no error")
        raw = item.raw if item.raw is not None else (record.value or b"")
        return self._fitted(
            _dead_letter(
                record, raw, error.reason.value, "decode", item.index, error.path, error.detail
            )
        )

    def _too_large(
        self, record: ConsumedRecord, index: int | None, fact: FactEnvelope, reason: str, what: str
    ) -> DeadLetter:
        """The dead letter of a fact whose output (``what``) does not fit."""
        detail = (
            f"{what}, over the record limit of {self.max_record_bytes} "
            "(ANALYTICS_MAX_RECORD_BYTES); the instance state is kept as it was before the fact"
        )
        return self._letter(record, index, fact, reason, "", detail)

    def _refusal(
        self, record: ConsumedRecord, index: int | None, fact: FactEnvelope, drop: Drop
    ) -> DeadLetter:
        """The dead letter of a fact the reducer refused (``DropReason.dead_letters``)."""
        ids = ", ".join(f"{name}={value}" for name, value in drop.ids)
        return self._letter(record, index, fact, drop.reason.value, "", f"{drop.message} ({ids})")

    def _letter(
        self,
        record: ConsumedRecord,
        index: int | None,
        fact: FactEnvelope,
        reason: str,
        path: str,
        detail: str,
    ) -> DeadLetter:
        """The dead letter of a fact that decoded: the record, or the fact of a pack."""
        raw = (record.value or b"") if index is None else encode_fact(fact)
        return self._fitted(_dead_letter(record, raw, reason, "reduce", index, path, detail))

    def _fitted(self, letter: DeadLetter) -> DeadLetter:
        return fit(letter, self.max_record_bytes)


def _state_record_bytes(instance_id: str, state: bytes) -> int:
    """The size of the changelog record of ``state``: keyed by the instance id, its value
    stamped by the worker (``streams.sweep.stamp``)."""
    return record_bytes(instance_id.encode(), None) + STAMP_SIZE + len(state)


def _event_records(fact: FactEnvelope, events: Sequence[TrackEvent]) -> list[tuple[bytes, bytes]]:
    route = fact.source.auth or _NO_ROUTE
    key = route_key(route)
    instance_id, seq = fact.source.instance_id, fact.seq
    contract = fact.source.contract  # None (2026-06) keeps a Profile S record as it was
    return [
        (
            key,
            encode_event_record(
                EventRecord(route=route, origin=Origin(instance_id, seq, i, contract), event=e)
            ),
        )
        for i, e in enumerate(events)
    ]


def _dead_letter(
    record: ConsumedRecord,
    raw: bytes,
    reason: str,
    stage: str,
    index: int | None,
    path: str,
    detail: str,
) -> DeadLetter:
    return dead_letter(
        raw,
        record.key,
        reason=reason,
        stage=stage,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        path=path,
        detail=detail,
        extra=() if index is None else [("source.pack_index", str(index).encode())],
    )
