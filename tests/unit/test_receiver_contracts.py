"""The receiver's event check over both contracts: a body does not say which contract
its events follow, so an event is valid under either contract's model for its type, and
the check says which one accepted it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from codex_analytics.devtools.receiver_checks import (
    BOTH,
    Accepted,
    Refusal,
    check_request,
    event_contracts,
)

DATA = Path(__file__).resolve().parents[1] / "data"
HEADERS = {
    "authorization": "Bearer tok",
    "chatgpt-account-id": "acct-1",
    "content-type": "application/json",
}
PATH = "/backend-api/codex/analytics-events/events"


def expected_events(name: str) -> list[Any]:
    lines = (DATA / name).read_bytes().splitlines()
    return [e for line in lines if line.strip() for e in orjson.loads(line)["expected_events"]]


def test_every_worked_example_is_accepted_under_its_own_contract() -> None:
    s_events, j_events = (
        expected_events("spec_vectors.jsonl"),
        expected_events("spec_vectors_j.jsonl"),
    )
    s_seen = {event_contracts(e) for e in s_events}
    j_seen = {event_contracts(e) for e in j_events}
    assert s_seen <= {"2026-06", BOTH}
    assert "2026-06" in s_seen
    assert j_seen <= {"2026-08", BOTH}
    assert "2026-08" in j_seen


def test_a_mixed_body_is_accepted_and_each_event_named() -> None:
    s_turn = next(
        e for e in expected_events("spec_vectors.jsonl") if e["event_type"] == "codex_turn_event"
    )
    j_turn = next(
        e for e in expected_events("spec_vectors_j.jsonl") if e["event_type"] == "codex_turn_event"
    )
    body = orjson.dumps({"events": [s_turn, j_turn]})
    accepted = check_request("POST", PATH, HEADERS, body)
    assert isinstance(accepted, Accepted)
    assert accepted.contracts == ["2026-06", "2026-08"]
    assert accepted.by_contract() == {"2026-06": 1, "2026-08": 1}


def test_an_event_neither_contract_accepts_is_refused_with_both_reasons() -> None:
    j_turn = next(
        e for e in expected_events("spec_vectors_j.jsonl") if e["event_type"] == "codex_turn_event"
    )
    del j_turn["event_params"]["session_id"]  # a key of 2026-08 only, and S lacks others
    refusal = check_request("POST", PATH, HEADERS, orjson.dumps({"events": [j_turn]}))
    assert isinstance(refusal, Refusal)
    assert refusal.status == 400
    assert refusal.detail.startswith("events[0]")
    assert "as 2026-06:" in refusal.detail
    assert "as 2026-08:" in refusal.detail


def test_the_auth_forms_of_2026_08_are_accepted_and_2026_06_still_needs_its_account() -> None:
    s_turn = next(
        e for e in expected_events("spec_vectors.jsonl") if e["event_type"] == "codex_turn_event"
    )
    j_turn = next(
        e for e in expected_events("spec_vectors_j.jsonl") if e["event_type"] == "codex_turn_event"
    )
    no_account = {k: v for k, v in HEADERS.items() if k != "chatgpt-account-id"}
    assertion = HEADERS | {"authorization": "AgentAssertion eyJzaWduZWQ"}
    j_body, s_body = orjson.dumps({"events": [j_turn]}), orjson.dumps({"events": [s_turn]})
    # An agent identity's assertion; an API key's events without an account (2026-08).
    assert isinstance(check_request("POST", PATH, assertion, j_body), Accepted)
    assert isinstance(check_request("POST", PATH, no_account, j_body), Accepted)
    refused = check_request("POST", PATH, no_account, s_body)
    assert isinstance(refused, Refusal)
    assert (refused.status, refused.detail) == (401, "missing chatgpt-account-id")
    unknown_scheme = HEADERS | {"authorization": "Basic dXNlcjpwYXNz"}
    assert isinstance(check_request("POST", PATH, unknown_scheme, j_body), Refusal)
