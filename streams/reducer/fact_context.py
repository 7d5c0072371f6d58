"""What a reducer rule works with: the fact, its instance's state, where its events and
drops go, and the reducer's settings. Shared by the Profile S rules (``core``) and the
Profile J rules (``profile_j``), so that neither imports the other's rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from codex_analytics.contract.events import TrackEvent
from codex_analytics.contract.facts import FactEnvelope

from .drops import Drop, DropReason
from .state import InstanceState, StateLimits

if TYPE_CHECKING:
    from .core import Reducer


class StateRecord(Protocol):
    """A record of a state table: it expires ``touched_ms`` after its last use."""

    touched_ms: int


K = TypeVar("K")
R = TypeVar("R", bound=StateRecord)


@dataclass(slots=True)
class Reduction:
    """What one fact did: its events (one upstream batch) and its drop warnings."""

    events: list[TrackEvent] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    duplicate: bool = False


class FactContext:
    """Per-fact scratch: the fact, the state, the reducer and where events and drops go."""

    __slots__ = ("fact", "now_ms", "out", "reducer", "state")

    def __init__(
        self, reducer: Reducer, state: InstanceState, fact: FactEnvelope, out: Reduction
    ) -> None:
        self.reducer = reducer
        self.state = state
        self.fact = fact
        self.out = out
        #: The instance's event-time clock (its watermark, this fact included).
        self.now_ms = state.watermark_ms

    @property
    def limits(self) -> StateLimits:
        return self.reducer.limits

    def emit(self, event: Any) -> None:
        self.out.events.append(event)

    def drop(self, reason: DropReason, **ids: str | int | None) -> None:
        fact = self.fact
        self.out.drops.append(
            Drop(reason, fact.source.instance_id, fact.seq, fact.kind, tuple(ids.items()))
        )

    def has_room(self, table_name: str, table: Mapping[Any, Any], key: Any, limit: int) -> bool:
        """True when ``key`` is in ``table`` or one more entry fits; else the fact is
        dropped as ``instance_state_full`` (naming the table and its limit)."""
        if key in table or len(table) < limit:
            return True
        self.drop(DropReason.INSTANCE_STATE_FULL, table=table_name, limit=limit)
        return False

    def entry(
        self,
        table_name: str,
        table: MutableMapping[K, R],
        key: K,
        limit: int,
        new: Callable[[int], R],
    ) -> R | None:
        """``table[key]`` touched, or created with ``new(now_ms)`` when absent (upstream's
        ``entry().or_default()``); None, the fact dropped as ``instance_state_full``, when
        there is no room for it."""
        record = table.get(key)
        if record is None:
            if not self.has_room(table_name, table, key, limit):
                return None
            record = table[key] = new(self.now_ms)
        else:
            record.touched_ms = self.now_ms
        return record
