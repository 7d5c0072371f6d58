"""Contract selection per fact (profile-j.md §1): ``source.contract`` picks the rules."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from codex_analytics.contract import (
    DecodeError,
    EventRecord,
    Origin,
    decode_event_record,
    encode_event_record,
    encode_fact,
    fact_from_json,
)
from codex_analytics.contract.facts import AuthRoute
from codex_analytics.contract.versions import CONTRACT_J, CONTRACT_S
from streams.reducer import DropReason, InstanceState, Reducer
from tests.factories import Instance


def with_contract(fact: dict[str, Any], contract: Any) -> dict[str, Any]:
    fact["source"]["contract"] = contract
    return fact


def test_a_fact_without_contract_speaks_2026_06_and_reencodes_without_the_key() -> None:
    fact = Instance().hook_run()
    decoded = fact_from_json(fact)
    assert decoded.contract == CONTRACT_S
    assert b'"contract"' not in encode_fact(decoded)


def test_null_contract_is_2026_06() -> None:
    assert fact_from_json(with_contract(Instance().hook_run(), None)).contract == CONTRACT_S


@pytest.mark.parametrize("value", ["2026-07", "2026-08-01", 2026, ""])
def test_an_unknown_contract_is_refused_not_guessed(value: Any) -> None:
    with pytest.raises(DecodeError) as caught:
        fact_from_json(with_contract(Instance().hook_run(), value))
    assert caught.value.path == "source.contract"


def test_an_instance_that_changes_contract_is_dead_lettered_and_keeps_its_state() -> None:
    inst = Instance()
    reducer, state = Reducer(), InstanceState()
    reducer.apply(state, fact_from_json(inst.initialize()))
    before = state.to_bytes()
    switched = fact_from_json(with_contract(inst.initialize(conn=8), CONTRACT_J))
    reduction = reducer.apply(state, switched)
    (drop,) = reduction.drops
    assert drop.reason is DropReason.CONTRACT_CHANGED
    assert drop.reason.dead_letters
    assert drop.reason.logged
    assert dict(drop.ids) == {"instance_contract": CONTRACT_S, "fact_contract": CONTRACT_J}
    assert state.to_bytes() == before  # not even its seq was taken


def test_a_profile_s_state_keeps_format_3_bytes_and_a_profile_j_state_names_its_contract() -> None:
    reducer = Reducer()
    s_state, j_state = InstanceState(), InstanceState()
    reducer.apply(s_state, fact_from_json(Instance("inst-s").initialize()))
    reducer.apply(
        j_state, fact_from_json(with_contract(Instance("inst-j").initialize(), CONTRACT_J))
    )
    s_raw, j_raw = orjson.loads(s_state.to_bytes()), orjson.loads(j_state.to_bytes())
    assert (s_raw["v"], "contract" in s_raw, "j" in s_raw) == (3, False, False)
    assert (j_raw["v"], j_raw["contract"], "j" in j_raw) == (4, CONTRACT_J, True)
    for state in (s_state, j_state):
        restored = InstanceState.from_bytes(state.to_bytes())
        assert restored == state
        assert restored.contract == state.contract
    assert InstanceState.from_bytes(s_state.to_bytes()).j is None


def test_events_records_name_the_contract_only_for_2026_08() -> None:
    route = AuthRoute(kind="chatgpt", account_id="acct", is_fedramp=False)
    hook = {
        "event_type": "codex_hook_run",
        "event_params": {
            "thread_id": "t",
            "turn_id": "u",
            "model_slug": "m",
            "hook_name": "Stop",
            "hook_source": "user",
            "status": "completed",
        },
    }
    s_record = decode_event_record(
        orjson.dumps(
            {"route": route, "origin": {"instance_id": "i", "seq": 1, "index": 0}, "event": hook}
        )
    )
    assert s_record.origin.contract_id == CONTRACT_S
    data = encode_event_record(s_record)
    assert b'"contract"' not in data
    j_record = EventRecord(route, Origin("i", 1, 0, CONTRACT_J), s_record.event)
    assert orjson.loads(encode_event_record(j_record))["origin"]["contract"] == CONTRACT_J
