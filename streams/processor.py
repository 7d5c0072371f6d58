"""The stream stage's pure core: a batch of facts-topic records in, everything to write out.

No Kafka, no Faust, no clock: the worker hands in the records it consumed and a way to
read an instance's saved state; it gets back the events-topic records (in order), the
dead letters, and the instance states that changed. The worker writes those, waits for
the broker's acknowledgements, and only then lets the source offsets be committed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from codex_analytics.contract import (
    AuthRoute,
    DecodeError,
    DecodeReason,
    EventRecord,
    FactEnvelope,
    Origin,
    TrackEvent,
    decode_fact_record,
    encode_event_record,
    encode_fact,
    route_key,
)
from codex_analytics.runtime.deadletter import DeadLetter, dead_letter

from .reducer import Drop, InstanceState, Reducer

StateLoader = Callable[[str, int], bytes | None]
_NO_ROUTE = AuthRoute()


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
    #: (key, value) of every events-topic record, in emission order.
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


class FactProcessor:
    """Decode, dedupe, reduce and route one batch of consumed records."""

    def __init__(
        self,
        reducer: Reducer | None = None,
        *,
        max_record_bytes: int | None = None,
        state_cache_size: int = 0,
    ) -> None:
        self.reducer = reducer if reducer is not None else Reducer()
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
        states: dict[str, InstanceState] = {}
        for record in records:
            value = record.value if record.value is not None else b""
            items = (
                decode_fact_record(value)
                if self.max_record_bytes is None
                else decode_fact_record(value, max_bytes=self.max_record_bytes)
            )
            for item in items:
                if item.fact is None:
                    error = item.error or DecodeError(
                        DecodeReason.INTERNAL, "", "no fact, no error"
                    )
                    raw = item.raw if item.raw is not None else value
                    out.dead_letters.append(_dead_letter(record, raw, error, "decode", item.index))
                    continue
                fact = item.fact
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
                try:
                    reduction = self.reducer.apply(state, fact)
                except Exception as exc:  # a reducer bug must not stop the partition
                    error = DecodeError(DecodeReason.INTERNAL, "", f"reducer failure: {exc!r}")
                    raw = value if item.index is None else encode_fact(fact)
                    out.dead_letters.append(_dead_letter(record, raw, error, "reduce", item.index))
                    continue
                if reduction.drops:
                    out.warnings.extend(d for d in reduction.drops if d.reason.logged)
                    refused = next((d for d in reduction.drops if d.reason.dead_letters), None)
                    if refused is not None:
                        raw = value if item.index is None else encode_fact(fact)
                        out.dead_letters.append(_refusal(record, raw, refused, item.index))
                if reduction.events:
                    _route(fact, reduction.events, out)
        cache, limit = self._cache, self.state_cache_size
        for instance_id, state in states.items():
            out.states[instance_id] = state.to_bytes()
            if limit:
                cache[instance_id] = state
                cache.move_to_end(instance_id)
        while len(cache) > limit:
            cache.popitem(last=False)
        return out

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


def _route(fact: FactEnvelope, events: Sequence[TrackEvent], out: ProcessedBatch) -> None:
    route = fact.source.auth or _NO_ROUTE
    key = route_key(route)
    instance_id, seq = fact.source.instance_id, fact.seq
    for index, event in enumerate(events):
        record = EventRecord(route=route, origin=Origin(instance_id, seq, index), event=event)
        out.events.append((key, encode_event_record(record)))


def _dead_letter(
    record: SourceRecord, raw: bytes, error: DecodeError, stage: str, index: int | None
) -> DeadLetter:
    return dead_letter(
        raw,
        record.key,
        reason=error.reason.value,
        stage=stage,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        path=error.path,
        detail=error.detail,
        extra=_pack_index(index),
    )


def _refusal(record: SourceRecord, raw: bytes, drop: Drop, index: int | None) -> DeadLetter:
    """The dead letter of a fact the reducer refused (``DropReason.dead_letters``)."""
    ids = ", ".join(f"{name}={value}" for name, value in drop.ids)
    return dead_letter(
        raw,
        record.key,
        reason=drop.reason.value,
        stage="reduce",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        detail=f"{drop.message} ({ids})",
        extra=_pack_index(index),
    )


def _pack_index(index: int | None) -> list[tuple[str, bytes]]:
    return [] if index is None else [("source.pack_index", str(index).encode())]
