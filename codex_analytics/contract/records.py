"""The record on ``analytics.events`` (design.md §7): one record per emitted event.

``{"route": {...}, "origin": {"instance_id", "seq", "index"}, "event": {...}}`` keyed by
the route, so that every event of one account (and FedRAMP flag) lands in one partition
and the sink can batch per route.
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import TrackEvent
from .facts import AuthRoute
from .schema import U64, absent_ok
from .versions import DEFAULT_CONTRACT, ContractId


@dataclass(slots=True)
class Origin:
    """Which fact produced the event: ``index`` is its position in that fact's output.

    ``(instance_id, seq, index)`` identifies an event across replays and redeliveries,
    which is what the sink's ``Idempotency-Key`` is derived from.
    """

    instance_id: str
    seq: U64
    index: U64
    #: The contract of the fact (and so the shape of the event and the auth gate the
    #: sink applies to it) when it is not ``2026-06``: a Profile S record has no such
    #: key, as before Profile J.
    contract: ContractId | None = absent_ok(None)

    @property
    def contract_id(self) -> ContractId:
        return DEFAULT_CONTRACT if self.contract is None else self.contract


@dataclass(slots=True)
class EventRecord:
    route: AuthRoute
    origin: Origin
    event: TrackEvent
