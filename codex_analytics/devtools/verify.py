"""The verdict of the demo, smoke and replay jobs: do the delivered events equal the
offline reducer's (``codex-analytics reduce``) over the same facts?

Pure functions over bytes. Events are compared as a multiset of their exact JSON (key
order included): batching may differ between runs and routes, the events may not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from codex_analytics.contract import decode_fact, encode_event
from codex_analytics.contract.versions import ContractId


def events_of_bodies(bodies: Iterable[bytes]) -> list[bytes]:
    """Every event of ``{"events":[...]}`` bodies (capture lines, uploads), in order."""
    out: list[bytes] = []
    for body in bodies:
        if body.strip():
            out.extend(orjson.dumps(event) for event in orjson.loads(body)["events"])
    return out


def captured_events(path: Path) -> list[bytes]:
    """The events of a capture file (one body per line); none if it does not exist."""
    try:
        return events_of_bodies(path.read_bytes().splitlines())
    except FileNotFoundError:
        return []


def received_events(path: Path) -> list[bytes]:
    """The events of a receiver store (one accepted upload per line)."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    return [
        orjson.dumps(event)
        for line in lines
        if line.strip()
        for event in orjson.loads(line)["events"]
    ]


def reference_events(fact_lines: Iterable[bytes]) -> list[bytes]:
    """What ``codex-analytics reduce`` emits for these facts, one JSON per event."""
    return reference_by_contract(fact_lines).events


@dataclass(frozen=True, slots=True)
class Reference:
    """``reduce`` over a run's facts: every event in order, and the events of each
    contract's instances (an event is in its fact's contract)."""

    events: list[bytes]
    by_contract: dict[ContractId, list[bytes]]

    def types(self, contract: ContractId) -> set[str]:
        return {event_type(e) for e in self.by_contract.get(contract, [])}


def reference_by_contract(fact_lines: Iterable[bytes]) -> Reference:
    """What ``codex-analytics reduce`` emits for these facts, also split by contract."""
    from streams.reducer.offline import OfflineReducer

    reducer = OfflineReducer()
    events: list[bytes] = []
    by_contract: dict[ContractId, list[bytes]] = {}
    for line in fact_lines:
        fact = decode_fact(line)
        emitted = [encode_event(event) for event in reducer.apply(fact).events]
        events.extend(emitted)
        if emitted:
            by_contract.setdefault(fact.source.contract_id, []).extend(emitted)
    return Reference(events, by_contract)


def event_type(event_json: bytes) -> str:
    return str(orjson.loads(event_json).get("event_type", "?"))


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    delivered: int
    expected: int
    #: One line saying what differs (empty on a pass).
    detail: str = ""

    @property
    def summary(self) -> str:
        if self.passed:
            return f"PASS: the {self.delivered:,} delivered events equal reduce over the same facts"
        return f"FAIL: {self.detail}"


def compare(delivered: list[bytes], expected: list[bytes]) -> Verdict:
    got, want = Counter(delivered), Counter(expected)
    if got == want:
        return Verdict(True, len(delivered), len(expected))
    missing = want - got
    extra = got - want
    parts = [f"{len(delivered):,} delivered vs {len(expected):,} expected events"]
    if missing:
        parts.append(f"{sum(missing.values()):,} missing ({_by_type(missing)})")
    if extra:
        parts.append(f"{sum(extra.values()):,} unexpected ({_by_type(extra)})")
    return Verdict(False, len(delivered), len(expected), "; ".join(parts))


def _by_type(events: Counter[bytes]) -> str:
    types: Counter[str] = Counter()
    for event, n in events.items():
        types[event_type(event)] += n
    return ", ".join(f"{name} {n}" for name, n in types.most_common(4))
