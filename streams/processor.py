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
batch serializes each changed state once, at the end. Only an instance whose state or
events do not fit takes the slow path (:meth:`FactProcessor._resize`): its facts of the
batch are applied once more from its saved state, one at a time, each one sized.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

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
class _Applied:
    """One fact of the batch, applied to its instance's state, and what came of it. The
    fact itself is not kept (a batch of packs holds many): the slow path decodes it again
    from its record."""

    record: SourceRecord
    #: Its position in a pack (None: the record is the fact).
    index: int | None
    events: list[tuple[bytes, bytes]] = field(default_factory=list)
    warnings: list[Drop] = field(default_factory=list)
    #: The dead letter of a fact the reducer failed on.
    failure: DeadLetter | None = None
    #: The size of its largest event record, when that is over the limit (else 0).
    oversized_event: int = 0


@dataclass(slots=True)
class _Instance:
    """One instance's part of the batch."""

    state: InstanceState
    partition: int
    applied: list[_Applied] = field(default_factory=list)


class FactProcessor:
    """Decode, dedupe, reduce, size and route one batch of consumed records."""

    def __init__(
        self,
        reducer: Reducer | None = None,
        *,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        state_cache_size: int = 0,
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

    def clear_cache(self) -> None:
        self._cache.clear()

    def forget(self, instance_id: str) -> None:
        """Drop one instance's cached state (its saved state was deleted)."""
        self._cache.pop(instance_id, None)

    def process(self, records: Sequence[SourceRecord], load_state: StateLoader) -> ProcessedBatch:
        """``load_state(instance_id, partition)`` returns the instance's saved state (or
        None); ``partition`` is the source partition, where a partitioned store keeps it."""
        out = ProcessedBatch()
        instances: dict[str, _Instance] = {}
        for record in records:
            for item in self._decode(record):
                fact = item.fact
                if fact is None:
                    out.dead_letters.append(self._decode_letter(record, item))
                    continue
                out.facts += 1
                instance_id = fact.source.instance_id
                if record.key is not None and record.key != instance_id.encode():
                    out.misrouted += 1
                instance = instances.get(instance_id)
                if instance is None:
                    state = self._load(instance_id, record.partition, load_state, out)
                    instance = instances[instance_id] = _Instance(state, record.partition)
                    out.partitions[instance_id] = record.partition
                instance.applied.append(self._apply(instance.state, fact, record, item.index))
        for instance_id, instance in instances.items():
            self._finish(instance_id, instance, out, load_state)
        cache, limit = self._cache, self.state_cache_size
        while len(cache) > limit:
            cache.popitem(last=False)
        return out

    # -- one fact ---------------------------------------------------------------------

    def _decode(self, record: SourceRecord) -> list[RecordItem]:
        value = record.value if record.value is not None else b""
        return decode_fact_record(value, max_bytes=self.max_record_bytes)

    def _apply(
        self, state: InstanceState, fact: FactEnvelope, record: SourceRecord, index: int | None
    ) -> _Applied:
        applied = _Applied(record, index)
        try:
            reduction = self.reducer.apply(state, fact)
        except Exception as exc:  # a reducer bug must not stop the partition
            reason, detail = DecodeReason.INTERNAL.value, f"reducer failure: {exc!r}"
            applied.failure = self._letter(record, index, fact, reason, "", detail)
            return applied
        if reduction.drops:
            applied.warnings = [d for d in reduction.drops if d.reason.logged]
        if reduction.events:
            applied.events = _event_records(fact, reduction.events)
            largest = max(record_bytes(key, value) for key, value in applied.events)
            if largest > self.max_record_bytes:
                applied.oversized_event = largest
        return applied

    # -- one instance -----------------------------------------------------------------

    def _finish(
        self, instance_id: str, instance: _Instance, out: ProcessedBatch, load_state: StateLoader
    ) -> None:
        """The instance's outputs and state, when all of them fit; else the slow path."""
        state = instance.state
        state_bytes = state.to_bytes()
        fits = self._state_fits(instance_id, state_bytes) and not any(
            a.oversized_event for a in instance.applied
        )
        if fits:
            for applied in instance.applied:
                _keep(applied, out)
            out.states[instance_id] = state_bytes
        else:
            state = self._resize(instance_id, instance, out, load_state)
        if self.state_cache_size:
            self._cache[instance_id] = state
            self._cache.move_to_end(instance_id)

    def _resize(
        self, instance_id: str, instance: _Instance, out: ProcessedBatch, load_state: StateLoader
    ) -> InstanceState:
        """The slow path: the instance's facts of the batch once more, from its saved
        state, one at a time. A fact whose events or resulting state do not fit is
        dead-lettered and undone (the state goes back to its bytes before the fact);
        the others are kept. Returns the state the instance is left with.

        The reducer's counters counted these facts in the first pass: the second one
        counts into a scratch copy."""
        state = self._saved_state(instance_id, instance.partition, load_state)
        before = state.to_bytes()
        changed = False
        counters, self.reducer.stats = self.reducer.stats, ReducerStats()
        try:
            for applied, fact in self._facts_again(instance.applied):
                again = self._apply(state, fact, applied.record, applied.index)
                after = before
                if again.failure is None and not again.oversized_event:
                    after = state.to_bytes()
                    if self._state_fits(instance_id, after):
                        _keep(again, out)
                        before, changed = after, True
                        continue
                if again.failure is not None:
                    out.dead_letters.append(again.failure)
                else:
                    out.dead_letters.append(self._too_large_letter(again, fact, instance_id, after))
                state = InstanceState.from_bytes(before)  # undo the fact
        finally:
            self.reducer.stats = counters
        if changed:  # else the saved state stands: it may be over a lowered limit
            out.states[instance_id] = before
        return state

    def _facts_again(self, applied: list[_Applied]) -> Iterator[tuple[_Applied, FactEnvelope]]:
        """Each applied fact with the fact itself, decoded again from its record (one
        record's facts at a time: the entries are in record order)."""
        record: SourceRecord | None = None
        items: list[RecordItem] = []
        for entry in applied:
            if entry.record is not record:
                record, items = entry.record, self._decode(entry.record)
            item = items[0] if entry.index is None else items[entry.index]
            assert item.fact is not None  # it decoded the first time
            yield entry, item.fact

    def _state_fits(self, instance_id: str, state: bytes) -> bool:
        """Whether the changelog record of ``state`` fits: keyed by the instance id, its
        value stamped by the worker (``streams.sweep.stamp``)."""
        size = record_bytes(instance_id.encode(), None) + STAMP_SIZE + len(state)
        return size <= self.max_record_bytes

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

    def _decode_letter(self, record: SourceRecord, item: RecordItem) -> DeadLetter:
        error = item.error or DecodeError(DecodeReason.INTERNAL, "", "no fact, no error")
        raw = item.raw if item.raw is not None else (record.value or b"")
        return self._fitted(
            _dead_letter(
                record, raw, error.reason.value, "decode", item.index, error.path, error.detail
            )
        )

    def _too_large_letter(
        self, applied: _Applied, fact: FactEnvelope, instance_id: str, state: bytes
    ) -> DeadLetter:
        limit = self.max_record_bytes
        if applied.oversized_event:
            reason = OUTPUT_TOO_LARGE
            detail = (
                f"an event record of {applied.oversized_event} bytes is over the record limit "
                f"of {limit} (ANALYTICS_MAX_RECORD_BYTES); none of the fact's events was sent "
                "and the instance state is as it was before the fact"
            )
        else:
            reason = STATE_TOO_LARGE
            size = record_bytes(instance_id.encode(), None) + STAMP_SIZE + len(state)
            detail = (
                f"the instance state would be a record of {size} bytes, over the record limit "
                f"of {limit} (ANALYTICS_MAX_RECORD_BYTES); it is kept as it was before the fact"
            )
        return self._letter(applied.record, applied.index, fact, reason, "", detail)

    def _letter(
        self,
        record: SourceRecord,
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


def _keep(applied: _Applied, out: ProcessedBatch) -> None:
    out.events.extend(applied.events)
    out.warnings.extend(applied.warnings)
    if applied.failure is not None:
        out.dead_letters.append(applied.failure)


def _event_records(fact: FactEnvelope, events: Sequence[TrackEvent]) -> list[tuple[bytes, bytes]]:
    route = fact.source.auth or _NO_ROUTE
    key = route_key(route)
    instance_id, seq = fact.source.instance_id, fact.seq
    return [
        (
            key,
            encode_event_record(
                EventRecord(route=route, origin=Origin(instance_id, seq, i), event=e)
            ),
        )
        for i, e in enumerate(events)
    ]


def _dead_letter(
    record: SourceRecord,
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
