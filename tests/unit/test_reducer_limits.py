"""Bounded instance state (StateLimits, docs/contract.md): a fact that needs one more
entry in a full table is dropped as ``instance_state_full``, changes nothing, and the
stream dead-letters it; entries already there keep working."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from codex_analytics.contract import fact_from_json
from streams.processor import FactProcessor, SourceRecord
from streams.reducer import DropReason, InstanceState, Reducer, StateLimits
from tests.factories import Instance

Fact = dict[str, Any]
TWO = StateLimits(connections=2, requests=2, threads=2, turns=2, dedupe_keys=2)


def apply(reducer: Reducer, state: InstanceState, fact: Fact) -> list[DropReason]:
    return [d.reason for d in reducer.apply(state, fact_from_json(fact)).drops]


def with_connection(i: Instance) -> list[Fact]:
    return [i.initialize(7), i.thread_response(7, "thread-0")]


# table -> (facts that set it up, the n-th new entry's fact)
TABLES: dict[str, tuple[Callable[[Instance], list[Fact]], Callable[[Instance, int], Fact]]] = {
    "connections": (lambda i: [], lambda i, n: i.initialize(10 + n)),
    "requests": (
        with_connection,
        lambda i, n: i.turn_start_request(7, n, "thread-0"),
    ),
    "threads": (lambda i: [i.initialize(7)], lambda i, n: i.thread_response(7, f"thread-{n}")),
    "turns": (lambda i: [], lambda i, n: i.token_usage(f"turn-{n}", "thread-0")),
    "dedupe_keys": (lambda i: [], lambda i, n: i.app_used(f"app-{n}")),
}


@pytest.mark.parametrize("table", TABLES)
def test_a_fact_that_needs_one_more_entry_in_a_full_table_is_dropped(table: str) -> None:
    setup, new_entry = TABLES[table]
    reducer, state, i = Reducer(limits=TWO), InstanceState(), Instance()
    for fact in setup(i):
        assert apply(reducer, state, fact) == []
    for n in range(2):
        assert apply(reducer, state, new_entry(i, n)) == []
    before = orjson.loads(state.to_bytes())
    third = new_entry(i, 2)
    reduction = reducer.apply(state, fact_from_json(third))
    assert [d.reason for d in reduction.drops] == [DropReason.INSTANCE_STATE_FULL]
    assert reduction.events == []
    (drop,) = reduction.drops
    assert dict(drop.ids) == {"table": table, "limit": 2}
    assert drop.reason.logged
    assert drop.reason.dead_letters
    after = orjson.loads(state.to_bytes())
    for moved in ("last_seq", "watermark_ms", "last_sweep_ms"):
        before.pop(moved), after.pop(moved)
    assert after == before  # the dropped fact changed nothing
    # An entry already there still works: a repeat of the first is not refused.
    assert DropReason.INSTANCE_STATE_FULL not in apply(reducer, state, new_entry(i, 0))
    assert reducer.stats.drops["instance_state_full"] == 1


def test_a_turn_start_response_for_a_new_turn_keeps_its_pending_request_when_full() -> None:
    reducer, state, i = Reducer(limits=TWO), InstanceState(), Instance()
    for fact in with_connection(i):
        apply(reducer, state, fact)
    apply(reducer, state, i.token_usage("turn-a", "thread-0"))
    apply(reducer, state, i.token_usage("turn-b", "thread-0"))
    apply(reducer, state, i.turn_start_request(7, 1, "thread-0"))
    drops = apply(reducer, state, i.turn_start_response(7, 1, "turn-c"))
    assert drops == [DropReason.INSTANCE_STATE_FULL]
    assert (7, 1) in state.requests
    assert "turn-c" not in state.turns


def test_expiry_makes_room_again() -> None:
    reducer = Reducer(limits=TWO, horizon_ms=10_000)
    state, i = InstanceState(), Instance(step_ms=1000)
    for n in range(2):
        apply(reducer, state, i.token_usage(f"turn-{n}", "thread-0"))
    assert apply(reducer, state, i.token_usage("turn-2", "thread-0")) == [
        DropReason.INSTANCE_STATE_FULL
    ]
    i.now_ms += 60_000  # an hour of event time later the old turns have expired
    assert apply(reducer, state, i.token_usage("turn-3", "thread-0")) == []


def test_the_default_limits_hold_an_ordinary_instance() -> None:
    limits = StateLimits()
    assert (limits.connections, limits.requests, limits.threads) == (1024, 1024, 4096)
    assert (limits.turns, limits.dedupe_keys) == (1024, 8192)


def test_the_stream_dead_letters_a_refused_fact_and_keeps_its_neighbours() -> None:
    i = Instance()
    facts = [i.token_usage(f"turn-{n}", "thread-0") for n in range(3)] + [i.hook_run()]
    processor = FactProcessor(Reducer(limits=TWO))
    records = [
        SourceRecord("analytics.facts", 0, offset, b"inst-1", orjson.dumps(fact))
        for offset, fact in enumerate(facts)
    ]
    batch = processor.process(records, lambda _i, _p: None)
    (letter,) = batch.dead_letters
    headers = dict(letter.headers)
    assert headers["error.reason"] == b"instance_state_full"
    assert headers["error.stage"] == b"reduce"
    assert headers["source.offset"] == b"2"
    assert b"table=turns, limit=2" in headers["error.detail"]
    assert letter.value == records[2].value
    assert len(batch.events) == 1  # the hook run after it
    assert [w.reason for w in batch.warnings] == [DropReason.INSTANCE_STATE_FULL]
