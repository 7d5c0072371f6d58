"""The wire contract: vectors, round trips, every decode error, and properties."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codex_analytics.contract import (
    EVENT_MODELS,
    FACT_KINDS,
    AuthRoute,
    DecodeError,
    DecodeReason,
    EventRecord,
    Origin,
    decode_event,
    decode_event_record,
    decode_fact,
    encode_batch,
    encode_event,
    encode_event_record,
    encode_fact,
    event_from_json,
    fact_from_json,
    fact_to_json,
    join_batch,
    route_key,
    split_event_record,
)
from tests.factories import Instance
from tests.spec_vectors import assert_vendored_copy_is_current, load_vectors
from tests.strategies import fact_json

VECTORS = load_vectors("spec_vectors.jsonl")


def test_spec_vectors_are_present_and_current() -> None:
    assert len(VECTORS) >= 12
    assert_vendored_copy_is_current("spec_vectors.jsonl", "vectors.jsonl")


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_facts_decode_and_reencode_identically(vector: dict[str, Any]) -> None:
    for fact in vector["facts"]:
        decoded = decode_fact(orjson.dumps(fact))
        assert fact_to_json(decoded) == fact
        assert encode_fact(decoded) == orjson.dumps(fact)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_events_reencode_to_identical_bytes(vector: dict[str, Any]) -> None:
    for event in vector["expected_events"]:
        expected = orjson.dumps(event)
        assert encode_event(decode_event(expected)) == expected
    for batch in vector["expected_batches"]:
        events = [decode_event(orjson.dumps(e)) for e in batch["events"]]
        assert encode_batch(events) == orjson.dumps(batch)
        assert join_batch([encode_event(e) for e in events]) == orjson.dumps(batch)


def test_every_event_type_is_covered_by_models() -> None:
    assert len(EVENT_MODELS) == 14
    assert len(FACT_KINDS) == 16


def test_event_record_round_trip_and_key() -> None:
    event_json = VECTORS[0]["expected_events"][0]
    record = EventRecord(
        route=AuthRoute(kind="chatgpt", account_id="acct-1", is_fedramp=True),
        origin=Origin(instance_id="inst-1", seq=3, index=0),
        event=event_from_json(copy.deepcopy(event_json)),
    )
    data = encode_event_record(record)
    assert orjson.loads(data) == {
        "route": {"kind": "chatgpt", "account_id": "acct-1", "is_fedramp": True},
        "origin": {"instance_id": "inst-1", "seq": 3, "index": 0},
        "event": event_json,
    }
    assert decode_event_record(data) == record
    assert route_key(record.route) == b'["acct-1",true]'


@pytest.mark.parametrize("validate", [False, True])
def test_split_event_record_gives_the_exact_event_bytes(validate: bool) -> None:
    route = AuthRoute(kind="chatgpt", account_id="acct-1")
    for vector in VECTORS:
        for index, event_json in enumerate(vector["expected_events"]):
            event = event_from_json(copy.deepcopy(event_json))
            data = encode_event_record(EventRecord(route, Origin("inst", 9, index), event))
            parts = split_event_record(data, validate_event=validate)
            assert parts.event_json == encode_event(event) == orjson.dumps(event_json)
            assert (parts.route, parts.origin, parts.event_type) == (
                route,
                Origin("inst", 9, index),
                event_json["event_type"],
            )


def test_split_event_record_slices_the_stream_layout_exactly_as_the_full_parse() -> None:
    # The fast path (bytes in the stream's layout) against the full parse (any other
    # input type takes it), on strings built to look like the record's own members.
    tricky = ',"origin":{"x":1},"event":{"event_type":"codex_turn_event"}}'
    event = event_from_json(copy.deepcopy(VECTORS[0]["expected_events"][0]))
    records = [
        EventRecord(AuthRoute(kind="chatgpt", account_id=tricky), Origin(tricky, 1, 0), event),
        EventRecord(AuthRoute(), Origin("i", 2, 1), event),
    ]
    for vector in VECTORS:
        for index, event_json in enumerate(vector["expected_events"]):
            event_json = copy.deepcopy(event_json)
            if isinstance(event_json.get("event_params"), dict):
                event_json["event_params"]["thread_id"] = tricky
            records.append(
                EventRecord(
                    AuthRoute(account_id="a"), Origin("i", 3, index), event_from_json(event_json)
                )
            )
    for record in records:
        data = encode_event_record(record)
        fast = split_event_record(data)
        assert fast == split_event_record(bytearray(data))
        assert (fast.route, fast.origin) == (record.route, record.origin)
        assert fast.event_json == encode_event(record.event)
    # Any other layout decodes the same through the full parse.
    data = encode_event_record(records[0])
    spaced = orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2)
    assert split_event_record(spaced) == split_event_record(data)
    reordered = orjson.loads(data)
    reordered = {
        "event": reordered["event"],
        "origin": reordered["origin"],
        "route": reordered["route"],
    }
    assert split_event_record(orjson.dumps(reordered)) == split_event_record(data)


def test_split_event_record_errors_name_the_field() -> None:
    good = orjson.loads(
        encode_event_record(
            EventRecord(
                AuthRoute(),
                Origin("i", 1, 0),
                event_from_json(copy.deepcopy(VECTORS[0]["expected_events"][0])),
            )
        )
    )
    unknown = copy.deepcopy(good)
    unknown["event"]["event_type"] = "codex_future_event"
    with pytest.raises(DecodeError) as caught:
        split_event_record(orjson.dumps(unknown))
    assert (caught.value.reason, caught.value.path) == (
        DecodeReason.UNKNOWN_KIND,
        "event.event_type",
    )
    bad_origin = copy.deepcopy(good)
    bad_origin["origin"]["seq"] = -1
    with pytest.raises(DecodeError) as caught:
        split_event_record(orjson.dumps(bad_origin))
    assert caught.value.path == "origin.seq"
    # A field only the full decode checks:
    broken = copy.deepcopy(good)
    broken["event"]["event_params"] = "not an object"
    assert split_event_record(orjson.dumps(broken)).event_type == good["event"]["event_type"]
    with pytest.raises(DecodeError) as caught:
        split_event_record(orjson.dumps(broken), validate_event=True)
    assert caught.value.path.startswith("event.")


def test_protocol_payloads_tolerate_and_keep_unknown_keys() -> None:
    inst = Instance()
    fact = inst.turn_start_request(7, 1, "thread-1", images=1)
    fact["payload"]["params"]["futureField"] = {"nested": [1, 2]}
    fact["payload"]["params"]["input"][0]["newKey"] = True
    decoded = fact_from_json(copy.deepcopy(fact))
    assert decoded.payload.turn_start.thread_id == "thread-1"  # type: ignore[union-attr]
    assert fact_to_json(decoded) == fact


def test_contract_package_imports_no_kafka_faust_or_http() -> None:
    code = (
        "import sys, codex_analytics.contract, codex_analytics.contract.codec\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'faust', 'aiokafka', 'httpx', 'mode', 'kafka'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2]
    )


# -- every decode error, with its path --------------------------------------------------------------


def _valid() -> dict[str, Any]:
    return Instance().skill_invoked(
        {
            "skill_name": "doc",
            "skill_scope": "user",
            "skill_path": "/p/SKILL.md",
            "invocation_type": "explicit",
            "resolved": {
                "canonical_skill_path": "/p/SKILL.md",
                "repo_root": None,
                "repo_url": None,
            },
        }
    )


def _mutated(path: list[Any], value: Any = ..., delete: bool = False) -> bytes:
    fact = _valid()
    target = fact
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return orjson.dumps(fact)


@pytest.mark.parametrize(
    ("data", "reason", "path"),
    [
        (b"{not json", DecodeReason.NOT_JSON, ""),
        (b"", DecodeReason.NOT_JSON, ""),
        (b'{"a":1', DecodeReason.NOT_JSON, ""),
        (b'"\xff\xfe"', DecodeReason.NOT_UTF8, ""),
        (b"[1, 2]", DecodeReason.WRONG_TYPE, ""),
        (_mutated(["envelope_version"], 2), DecodeReason.BAD_ENVELOPE_VERSION, "envelope_version"),
        (
            _mutated(["envelope_version"], "1"),
            DecodeReason.BAD_ENVELOPE_VERSION,
            "envelope_version",
        ),
        (_mutated(["envelope_version"], delete=True), DecodeReason.MISSING_KEY, "envelope_version"),
        (_mutated(["kind"], "turn_exploded"), DecodeReason.UNKNOWN_KIND, "kind"),
        (_mutated(["kind"], 5), DecodeReason.WRONG_TYPE, "kind"),
        (_mutated(["seq"], -1), DecodeReason.INVALID_VALUE, "seq"),
        (_mutated(["seq"], "1"), DecodeReason.WRONG_TYPE, "seq"),
        (_mutated(["seq"], True), DecodeReason.WRONG_TYPE, "seq"),
        (_mutated(["seq"], 1.5), DecodeReason.WRONG_TYPE, "seq"),
        (_mutated(["fact_id"], delete=True), DecodeReason.MISSING_KEY, "fact_id"),
        (_mutated(["source", "instance_id"], ""), DecodeReason.INVALID_VALUE, "source.instance_id"),
        (
            _mutated(["source", "runtime", "runtime_os"], None),
            DecodeReason.WRONG_TYPE,
            "source.runtime.runtime_os",
        ),
        (
            _mutated(["source", "auth"], {"kind": "password"}),
            DecodeReason.UNKNOWN_ENUM_VALUE,
            "source.auth.kind",
        ),
        (_mutated(["connection_id"], 3), DecodeReason.INVALID_VALUE, "connection_id"),
        (_mutated(["payload"], delete=True), DecodeReason.MISSING_KEY, "payload"),
        (
            _mutated(["payload", "tracking", "model_slug"], delete=True),
            DecodeReason.MISSING_KEY,
            "payload.tracking.model_slug",
        ),
        (
            _mutated(["payload", "invocations", 0, "skill_scope"], "global"),
            DecodeReason.UNKNOWN_ENUM_VALUE,
            "payload.invocations[0].skill_scope",
        ),
        (
            _mutated(["payload", "invocations", 0, "resolved", "repo_url"], 7),
            DecodeReason.WRONG_TYPE,
            "payload.invocations[0].resolved.repo_url",
        ),
        (_mutated(["payload", "invocations"], {}), DecodeReason.WRONG_TYPE, "payload.invocations"),
    ],
)
def test_decode_errors_name_reason_and_path(data: bytes, reason: DecodeReason, path: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_fact(data)
    assert caught.value.reason is reason
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path or '<record>'}: {reason.value}: ")


def test_oversize_record_is_rejected_before_parsing() -> None:
    data = _valid()
    data["payload"]["tracking"]["model_slug"] = "x" * 2000
    with pytest.raises(DecodeError) as caught:
        decode_fact(orjson.dumps(data), max_bytes=1000)
    assert caught.value.reason is DecodeReason.TOO_LARGE


@pytest.mark.parametrize(
    ("build", "path", "reason"),
    [
        (
            lambda i: i.request(7, 1, "turn/start", {"input": []}),
            "payload.params.threadId",
            DecodeReason.MISSING_KEY,
        ),
        (
            lambda i: i.request(7, 1, "turn/steer", {"threadId": "t", "input": []}),
            "payload.params.expectedTurnId",
            DecodeReason.MISSING_KEY,
        ),
        (
            lambda i: i.request(7, 1.5, "turn/start", {"threadId": "t", "input": []}),
            "payload.request_id",
            DecodeReason.WRONG_TYPE,
        ),
        (
            lambda i: i.request(7, True, "turn/start", {"threadId": "t", "input": []}),
            "payload.request_id",
            DecodeReason.WRONG_TYPE,
        ),
        (
            lambda i: i.response(7, 1, "turn/start", {"turn": {}}),
            "payload.result.turn.id",
            DecodeReason.MISSING_KEY,
        ),
        (
            lambda i: i.thread_response(
                7, source={"subAgent": {"thread_spawn": {"parent_thread_id": "nope"}}}
            ),
            "payload.result.thread.source.subAgent.thread_spawn.parent_thread_id",
            DecodeReason.INVALID_VALUE,
        ),
        (
            lambda i: i.thread_response(7, source={"subAgent": "weird"}),
            "payload.result.thread.source.subAgent",
            DecodeReason.UNKNOWN_ENUM_VALUE,
        ),
        (
            lambda i: i.turn_completed(status="exploded"),
            "payload.params.turn.status",
            DecodeReason.UNKNOWN_ENUM_VALUE,
        ),
        (
            lambda i: i.error_response(7, 1, {"turn_steer": "bored"}),
            "payload.error_type.turn_steer",
            DecodeReason.UNKNOWN_ENUM_VALUE,
        ),
        (
            lambda i: i.error_response(7, 1, {"mystery": "x"}),
            "payload.error_type",
            DecodeReason.UNKNOWN_ENUM_VALUE,
        ),
        (
            lambda i: i.plugin_state("enabled", "no-at-sign"),
            "payload.plugin.plugin_id",
            DecodeReason.INVALID_VALUE,
        ),
        (
            lambda i: i.plugin_state("enabled", "@market"),
            "payload.plugin.plugin_id",
            DecodeReason.INVALID_VALUE,
        ),
        (lambda i: i.plugin_state("exploded"), "payload.state", DecodeReason.UNKNOWN_ENUM_VALUE),
        (lambda i: i.hook_run("sleeping"), "payload.hook.status", DecodeReason.UNKNOWN_ENUM_VALUE),
        (
            lambda i: i.resolved_config(sandbox_policy={"type": "yolo"}),
            "payload.sandbox_policy.type",
            DecodeReason.UNKNOWN_ENUM_VALUE,
        ),
        (
            lambda i: i.subagent_thread_started(subagent_source={"thread_spawn": {}}),
            "payload.subagent_source.thread_spawn.parent_thread_id",
            DecodeReason.MISSING_KEY,
        ),
        (
            lambda i: i.fact(
                "initialize",
                {"params": {}, "product_client_id": "p", "runtime": {}, "rpc_transport": "stdio"},
            ),
            "connection_id",
            DecodeReason.WRONG_TYPE,
        ),
    ],
)
def test_payload_errors_name_the_field(build: Any, path: str, reason: DecodeReason) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_fact(orjson.dumps(build(Instance())))
    assert (caught.value.path, caught.value.reason) == (path, reason)


def test_unknown_event_type_is_rejected() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_event(b'{"event_type":"codex_mystery","event_params":{}}')
    assert caught.value.reason is DecodeReason.UNKNOWN_KIND


def test_decode_error_pickles() -> None:
    import pickle

    err = DecodeError(DecodeReason.MISSING_KEY, "a.b", "required key is missing")
    again = pickle.loads(pickle.dumps(err))
    assert (again.reason, again.path, str(again)) == (err.reason, err.path, str(err))


# -- properties -----------------------------------------------------------------------------------


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(fact_json())
def test_any_valid_fact_survives_encode_decode(fact: dict[str, Any]) -> None:
    decoded = decode_fact(orjson.dumps(fact))
    again = decode_fact(encode_fact(decoded))
    assert again == decoded
    assert encode_fact(again) == encode_fact(decoded)


@pytest.mark.parametrize("kind", FACT_KINDS)
@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_kind_generates_and_round_trips(kind: str, data: st.DataObject) -> None:
    fact = data.draw(fact_json(kind))
    decoded = decode_fact(orjson.dumps(fact))
    assert decoded.kind == kind
    assert decode_fact(encode_fact(decoded)) == decoded


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_decode_errors(data: bytes) -> None:
    try:
        decode_fact(data)
    except DecodeError as err:
        assert err.reason is not DecodeReason.INTERNAL


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(fact_json(), st.data())
def test_corrupting_any_field_gives_a_decode_error_or_a_valid_fact(
    fact: dict[str, Any], data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(_paths(fact)[1:]))
    replacement = data.draw(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)  # the range JSON numbers decode to
        | st.floats(allow_nan=False)
        | st.text(max_size=5)
        | st.just([])
        | st.just({})
    )
    target = fact
    for key in path[:-1]:
        target = target[key]
    if data.draw(st.booleans()) and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = replacement
    try:
        decoded = decode_fact(orjson.dumps(fact))
    except DecodeError as err:
        assert err.reason is not DecodeReason.INTERNAL, err
        # The path names a real place in the record (or the record itself).
        assert (
            err.path == ""
            or err.path.split(".")[0].split("[")[0] in fact
            or err.path.startswith(str(path[0]))
        )
    else:
        assert decode_fact(encode_fact(decoded)) == decoded


# -- facts-topic records: single envelopes and packs ----------------------------------------------


def test_single_envelope_record_decodes_to_one_item() -> None:
    from codex_analytics.contract import decode_fact_record

    fact = Instance().hook_run()
    (item,) = decode_fact_record(orjson.dumps(fact))
    assert item.index is None
    assert item.error is None
    assert item.fact == fact_from_json(fact)


def test_pack_round_trip_and_per_fact_errors() -> None:
    from codex_analytics.contract import decode_fact_record, encode_fact_pack

    inst = Instance()
    good = [fact_from_json(inst.hook_run()), fact_from_json(inst.app_used())]
    assert [i.fact for i in decode_fact_record(encode_fact_pack(good))] == good
    bad_element = {"envelope_version": 1, "kind": "nope"}
    other_instance = Instance("inst-2").hook_run()
    record = orjson.dumps([inst.hook_run(), bad_element, other_instance, inst.hook_run()])
    items = decode_fact_record(record)
    assert [i.index for i in items] == [0, 1, 2, 3]
    assert items[0].fact is not None
    assert items[3].fact is not None
    assert items[1].error is not None
    assert (items[1].error.reason, items[1].error.path) == (DecodeReason.UNKNOWN_KIND, "[1].kind")
    assert items[1].raw == orjson.dumps(bad_element)  # the element itself goes to the DLQ
    assert items[2].error is not None
    assert items[2].error.path == "[2].source.instance_id"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (b"[]", DecodeReason.INVALID_VALUE),
        (b"[1,", DecodeReason.NOT_JSON),
        (b"\xff", DecodeReason.NOT_UTF8),
        (b'"a string"', DecodeReason.WRONG_TYPE),
    ],
)
def test_unreadable_records_keep_their_original_bytes(record: bytes, reason: DecodeReason) -> None:
    from codex_analytics.contract import decode_fact_record

    (item,) = decode_fact_record(record)
    assert item.error is not None
    assert item.error.reason is reason
    assert item.raw == record


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_decode_fact_record_never_raises(data: bytes) -> None:
    from codex_analytics.contract import decode_fact_record

    for item in decode_fact_record(data):
        assert (item.fact is None) != (item.error is None)
        if item.error is not None:
            assert item.error.reason is not DecodeReason.INTERNAL


@pytest.mark.parametrize(("fedramp", "wrong"), [(False, 0), (True, 1), (True, 1.0)])
def test_a_wrong_typed_source_is_refused_after_its_valid_twin(fedramp: bool, wrong: Any) -> None:
    # The decoder reuses an instance's last decoded source block when the raw block is
    # the same JSON; Python's ``0 == False`` must not make a wrong type "the same".
    valid = _valid()
    valid["source"]["auth"] = {"kind": "chatgpt", "account_id": "acct", "is_fedramp": fedramp}
    decode_fact(orjson.dumps(valid))
    twin = copy.deepcopy(valid)
    twin["source"]["auth"]["is_fedramp"] = wrong
    with pytest.raises(DecodeError) as caught:
        decode_fact(orjson.dumps(twin))
    assert caught.value.path == "source.auth.is_fedramp"
