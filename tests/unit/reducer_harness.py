"""One instance under test: wire-form facts through the codec and one reducer, events
back as JSON; shared by the reducer rule tests of both contracts."""

from __future__ import annotations

from typing import Any

import orjson

from codex_analytics.contract import encode_event, fact_from_json
from codex_analytics.contract.facts import FactEnvelope
from streams.reducer import DropReason, InstanceState, Reducer, Reduction
from streams.reducer.profile_j.state import JTables


class ReducerHarness:
    """A reducer (built with ``options``), one instance's state, and every reduction."""

    def __init__(self, **options: Any) -> None:
        self.reducer = Reducer(**options)
        self.state = InstanceState()
        self.reductions: list[Reduction] = []

    def feed(self, *facts: dict[str, Any] | FactEnvelope) -> list[dict[str, Any]]:
        """Apply the facts (JSON objects are decoded first) in order; their events as JSON."""
        events: list[dict[str, Any]] = []
        for fact in facts:
            envelope = fact if isinstance(fact, FactEnvelope) else fact_from_json(fact)
            reduction = self.reducer.apply(self.state, envelope)
            self.reductions.append(reduction)
            events.extend(orjson.loads(encode_event(event)) for event in reduction.events)
        return events

    def drops(self) -> list[tuple[DropReason, dict[str, Any]]]:
        """Every drop so far: its reason and ids."""
        return [(d.reason, dict(d.ids)) for r in self.reductions for d in r.drops]

    def drop_reasons(self) -> list[DropReason]:
        return [d.reason for r in self.reductions for d in r.drops]

    @property
    def j(self) -> JTables:
        """The instance's Profile J tables (after its first 2026-08 fact)."""
        assert self.state.j is not None
        return self.state.j
