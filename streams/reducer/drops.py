"""Structured drop warnings and the reducer's counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class DropReason(StrEnum):
    """Why a fact produced no event where it might have (reducer.md §7).

    ``message`` gives upstream's warning text; upstream drops some cases silently, and
    ``logged`` says whether upstream warns (we count every case either way).
    """

    DUPLICATE_SEQ = "duplicate_seq"
    DEDUPE_REPEAT = "dedupe_repeat"
    THREAD_RESPONSE_UNKNOWN_CONNECTION = "thread_response_unknown_connection"
    RESPONSE_WITHOUT_PENDING_REQUEST = "response_without_pending_request"
    ERROR_WITHOUT_PENDING_REQUEST = "error_without_pending_request"
    STEER_UNKNOWN_CONNECTION = "steer_unknown_connection"
    STEER_MISSING_THREAD_METADATA = "steer_missing_thread_metadata"
    TURN_MISSING_CONNECTION_METADATA = "turn_missing_connection_metadata"
    TURN_MISSING_THREAD_METADATA = "turn_missing_thread_metadata"
    GUARDIAN_MISSING_THREAD_CONNECTION = "guardian_missing_thread_connection"
    GUARDIAN_MISSING_CONNECTION = "guardian_missing_connection"
    COMPACTION_MISSING_THREAD_CONNECTION = "compaction_missing_thread_connection"
    COMPACTION_MISSING_CONNECTION = "compaction_missing_connection"
    COMPACTION_MISSING_THREAD_METADATA = "compaction_missing_thread_metadata"
    #: Ours (PROPOSAL): the fact needs a new entry in a table of the instance's state that
    #: is at its limit (``StateLimits``). The fact changes nothing and is dead-lettered.
    INSTANCE_STATE_FULL = "instance_state_full"
    #: Ours (profile-j.md §1): the fact speaks another contract than its instance's first
    #: fact. It changes nothing and is dead-lettered.
    CONTRACT_CHANGED = "contract_changed"
    # -- Profile J (profile-j.md §5.7) --
    #: A J event needing thread context found none; ``site`` and ``missing_context``
    #: (``thread_connection``, ``connection`` or ``thread_metadata``) say which.
    MISSING_CONTEXT = "missing_analytics_context"
    TOOL_COUNT_MISSING_TURN = "tool_count_missing_turn"
    SUBAGENT_COUNT_MISSING_TURN = "subagent_count_missing_turn"
    TOOL_ITEM_MISSING_STARTED = "tool_item_missing_started"

    @property
    def message(self) -> str:
        return _MESSAGES[self]

    @property
    def dead_letters(self) -> bool:
        """Whether the fact itself goes to the dead-letter topic: it was refused, not
        merely without an event (the upstream drops are by design and only counted)."""
        return self in _DEAD_LETTERS

    @property
    def logged(self) -> bool:
        """Whether a warning is logged: upstream's warnings, and ours (the rest are silent
        upstream)."""
        return self in _LOGGED


_MESSAGES = {
    DropReason.DUPLICATE_SEQ: "ignoring analytics fact: seq already applied for this instance",
    DropReason.DEDUPE_REPEAT: "ignoring repeated app/plugin use: already emitted for this turn within the dedupe window",
    DropReason.THREAD_RESPONSE_UNKNOWN_CONNECTION: "ignoring thread lifecycle response: unknown connection",
    DropReason.RESPONSE_WITHOUT_PENDING_REQUEST: "ignoring turn response: no matching pending request",
    DropReason.ERROR_WITHOUT_PENDING_REQUEST: "ignoring error response: no pending request",
    DropReason.STEER_UNKNOWN_CONNECTION: "ignoring turn steer: unknown connection",
    DropReason.STEER_MISSING_THREAD_METADATA: "dropping turn steer analytics event: missing thread lifecycle metadata",
    DropReason.TURN_MISSING_CONNECTION_METADATA: "dropping turn analytics event: missing connection metadata",
    DropReason.TURN_MISSING_THREAD_METADATA: "dropping turn analytics event: missing thread lifecycle metadata",
    DropReason.GUARDIAN_MISSING_THREAD_CONNECTION: "dropping guardian analytics event: missing thread connection metadata",
    DropReason.GUARDIAN_MISSING_CONNECTION: "dropping guardian analytics event: missing connection metadata",
    DropReason.COMPACTION_MISSING_THREAD_CONNECTION: "dropping compaction analytics event: missing thread connection metadata",
    DropReason.COMPACTION_MISSING_CONNECTION: "dropping compaction analytics event: missing connection metadata",
    DropReason.COMPACTION_MISSING_THREAD_METADATA: "dropping compaction analytics event: missing thread lifecycle metadata",
    DropReason.INSTANCE_STATE_FULL: "dropping analytics fact: a table of the instance's state is full",
    DropReason.CONTRACT_CHANGED: "dropping analytics fact: its contract differs from its instance's",
    DropReason.MISSING_CONTEXT: "dropping {site} analytics event: missing analytics context",
    DropReason.TOOL_COUNT_MISSING_TURN: "dropping turn tool count update: missing turn state",
    DropReason.SUBAGENT_COUNT_MISSING_TURN: "dropping sub-agent activity tool count update: missing turn state",
    DropReason.TOOL_ITEM_MISSING_STARTED: "dropping tool item analytics event: missing item started notification",
}
_DEAD_LETTERS = frozenset({DropReason.INSTANCE_STATE_FULL, DropReason.CONTRACT_CHANGED})
_LOGGED = frozenset(
    {
        DropReason.STEER_MISSING_THREAD_METADATA,
        DropReason.TURN_MISSING_CONNECTION_METADATA,
        DropReason.TURN_MISSING_THREAD_METADATA,
        DropReason.GUARDIAN_MISSING_THREAD_CONNECTION,
        DropReason.GUARDIAN_MISSING_CONNECTION,
        DropReason.COMPACTION_MISSING_THREAD_CONNECTION,
        DropReason.COMPACTION_MISSING_CONNECTION,
        DropReason.COMPACTION_MISSING_THREAD_METADATA,
        DropReason.INSTANCE_STATE_FULL,
        DropReason.CONTRACT_CHANGED,
        DropReason.MISSING_CONTEXT,
        DropReason.TOOL_COUNT_MISSING_TURN,
        DropReason.SUBAGENT_COUNT_MISSING_TURN,
        DropReason.TOOL_ITEM_MISSING_STARTED,
    }
)


@dataclass(slots=True, frozen=True)
class Drop:
    """One structured drop warning: what, where (instance, seq, kind) and the ids involved."""

    reason: DropReason
    instance_id: str
    seq: int
    kind: str
    ids: tuple[tuple[str, str | int | None], ...] = ()

    @property
    def message(self) -> str:
        if self.reason is DropReason.MISSING_CONTEXT:
            return self.reason.message.format(site=dict(self.ids).get("site"))
        return self.reason.message

    def fields(self) -> dict[str, object]:
        """What the warning names, as a log line's fields (its message apart)."""
        return {
            "reason": self.reason.value,
            "instance_id": self.instance_id,
            "seq": self.seq,
            "kind": self.kind,
            **dict(self.ids),
        }

    def as_log_fields(self) -> dict[str, object]:
        return {"message": self.message, **self.fields()}


def _count(counter: dict[str, int], key: str, n: int = 1) -> None:
    counter[key] = counter.get(key, 0) + n


@dataclass(slots=True)
class ReducerStats:
    """Counters of one reducer: facts per kind, events per type, drops per reason, expiries."""

    facts: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    expired: dict[str, int] = field(default_factory=dict)

    def count_fact(self, kind: str) -> None:
        _count(self.facts, kind)

    def count_event(self, event_type: str) -> None:
        _count(self.events, event_type)

    def count_drop(self, reason: DropReason) -> None:
        _count(self.drops, reason.value)

    def count_expired(self, what: str, n: int) -> None:
        if n:
            _count(self.expired, what, n)

    def merge(self, other: ReducerStats) -> None:
        for mine, theirs in (
            (self.facts, other.facts),
            (self.events, other.events),
            (self.drops, other.drops),
            (self.expired, other.expired),
        ):
            for key, n in theirs.items():
                _count(mine, key, n)
