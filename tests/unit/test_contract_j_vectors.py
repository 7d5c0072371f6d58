"""Profile J (contract ``2026-08``): the spec's worked examples, byte for byte.

Each vector's facts decode and re-encode unchanged, its events and request bodies
re-encode unchanged through the 2026-08 models, and the reducer (in process, and one
``codex-analytics reduce`` run per output form) gives exactly its events and bodies.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from codex_analytics.contract import (
    decode_event,
    decode_fact,
    encode_batch,
    encode_event,
    encode_fact,
    fact_to_json,
    profile_j,
    split_request_bodies,
)
from codex_analytics.contract.versions import CONTRACT_J
from streams.reducer.offline import OfflineReducer
from tests.spec_vectors import assert_vendored_copy_is_current, load_vectors

VECTORS_J = load_vectors("spec_vectors_j.jsonl")
IDS = [v["name"] for v in VECTORS_J]


def test_vectors_are_present_and_current() -> None:
    assert len(VECTORS_J) >= 18
    assert_vendored_copy_is_current("spec_vectors_j.jsonl", "vectors-j.jsonl")


def test_profile_j_has_every_kind_and_event_type() -> None:
    assert len(profile_j.FACT_KINDS) == 31
    assert len(profile_j.EVENT_TYPES) == 29


@pytest.mark.parametrize("vector", VECTORS_J, ids=IDS)
def test_facts_decode_as_2026_08_and_reencode_identically(vector: dict[str, Any]) -> None:
    for fact in vector["facts"]:
        decoded = decode_fact(orjson.dumps(fact))
        assert decoded.contract == CONTRACT_J
        assert fact_to_json(decoded) == fact
        assert encode_fact(decoded) == orjson.dumps(fact)


@pytest.mark.parametrize("vector", VECTORS_J, ids=IDS)
def test_events_reencode_identically_through_the_2026_08_models(vector: dict[str, Any]) -> None:
    for event in vector["expected_events"]:
        expected = orjson.dumps(event)
        assert encode_event(decode_event(expected, contract=CONTRACT_J)) == expected
    for batch in vector["expected_batches"]:
        events = [decode_event(orjson.dumps(e), contract=CONTRACT_J) for e in batch["events"]]
        assert encode_batch(events) == orjson.dumps(batch)


@pytest.mark.parametrize("vector", VECTORS_J, ids=IDS)
def test_reducer_gives_the_vectors_events_and_request_bodies(vector: dict[str, Any]) -> None:
    reducer = OfflineReducer()
    events: list[bytes] = []
    bodies: list[bytes] = []
    for fact in vector["facts"]:
        reduction = reducer.apply(decode_fact(orjson.dumps(fact)))
        events += [encode_event(e) for e in reduction.events]
        bodies += [encode_batch(body) for body in split_request_bodies(reduction.events)]
    assert events == [orjson.dumps(e) for e in vector["expected_events"]]
    assert bodies == [orjson.dumps(b) for b in vector["expected_batches"]]
