"""The stream stage's pure core: records in, events / dead letters / states out."""

from __future__ import annotations

from typing import Any

import orjson

from codex_analytics.contract import decode_event_record, encode_batch, fact_from_json
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from streams.processor import FactProcessor, SourceRecord
from streams.reducer import InstanceState, state_packing
from streams.reducer.offline import OfflineReducer
from tests.factories import Instance


def rec(
    value: bytes, offset: int = 0, key: bytes | None = b"inst-1", partition: int = 0
) -> SourceRecord:
    return SourceRecord("analytics.facts", partition, offset, key, value)


def j(fact: dict[str, Any]) -> bytes:
    return orjson.dumps(fact)


def test_events_carry_route_origin_and_exact_event() -> None:
    inst = Instance()
    inst.auth = {"kind": "chatgpt", "account_id": "acct-9", "is_fedramp": True}
    fact = inst.app_mentioned(
        {"connector_id": "a", "app_name": "A", "invocation_type": None},
        {"connector_id": "b", "app_name": None, "invocation_type": "explicit"},
    )
    batch = FactProcessor().process([rec(j(fact))], lambda _i, _p: None)
    assert len(batch.events) == 2
    for index, (key, value) in enumerate(batch.events):
        assert key == b'["acct-9",true]'
        record = decode_event_record(value)
        assert (record.origin.instance_id, record.origin.seq, record.origin.index) == (
            "inst-1",
            fact["seq"],
            index,
        )
        assert record.route.account_id == "acct-9"
        assert record.route.kind == "chatgpt"
    first = orjson.loads(batch.events[0][1])["event"]
    assert first["event_params"]["connector_id"] == "a"


def test_missing_auth_gives_the_unknown_route() -> None:
    batch = FactProcessor().process([rec(j(Instance().hook_run()))], lambda _i, _p: None)
    ((key, value),) = batch.events
    assert key == b"[null,false]"
    assert orjson.loads(value)["route"] == {"kind": None, "account_id": None, "is_fedramp": False}


def test_bad_records_become_dead_letters_with_reason_and_source() -> None:
    inst = Instance()
    good = j(inst.hook_run())
    records = [rec(b"{nope", 10), rec(good, 11), rec(j({"envelope_version": 3}), 12), rec(None, 13)]  # type: ignore[arg-type]
    batch = FactProcessor().process(records, lambda _i, _p: None)
    assert len(batch.events) == 1
    letters = batch.dead_letters
    assert [dl.value for dl in letters] == [b"{nope", orjson.dumps({"envelope_version": 3}), b""]
    headers = dict(letters[0].headers)
    assert headers["error.reason"] == b"not_json"
    assert headers["error.stage"] == b"decode"
    assert (headers["source.topic"], headers["source.partition"], headers["source.offset"]) == (
        b"analytics.facts",
        b"0",
        b"10",
    )
    assert dict(letters[1].headers)["error.reason"] == b"bad_envelope_version"
    assert dict(letters[1].headers)["error.path"] == b"envelope_version"


def test_state_round_trips_through_the_loader_across_batches() -> None:
    inst = Instance()
    store: dict[str, bytes] = {}
    processor = FactProcessor()
    first = processor.process(
        [rec(j(inst.initialize(7))), rec(j(inst.thread_response(7)))], store.get
    )
    store.update(first.states)
    assert first.partitions == {"inst-1": 0}
    second = processor.process(
        [rec(j(inst.compaction("thread-1")))], lambda iid, _p: store.get(iid)
    )
    assert [orjson.loads(v)["event"]["event_type"] for _, v in second.events] == [
        "codex_compaction_event"
    ]
    # Replaying the first batch against the saved state emits nothing new.
    again = processor.process([rec(j(inst.initialize(7)), 0)], lambda iid, _p: store.get(iid))
    assert again.events == []


def test_corrupt_saved_state_starts_afresh_and_is_counted() -> None:
    batch = FactProcessor().process([rec(j(Instance().hook_run()))], lambda _i, _p: b"garbage")
    assert batch.corrupt_states == 1
    assert len(batch.events) == 1


def test_misrouted_keys_are_counted_not_dropped() -> None:
    batch = FactProcessor().process(
        [rec(j(Instance().hook_run()), key=b"other")], lambda _i, _p: None
    )
    assert batch.misrouted == 1
    assert len(batch.events) == 1


def test_batches_of_a_generated_stream_equal_the_offline_reducer() -> None:
    facts = [j(f) for f in SessionGenerator(GeneratorConfig(instances=30, seed=5)).facts(6000)]
    offline = OfflineReducer()
    expected = sorted(
        encode_batch(r.events)
        for r in (offline.apply(fact_from_json(orjson.loads(f))) for f in facts)
        if r.events
    )
    store: dict[str, bytes] = {}
    processor = FactProcessor()
    produced: list[bytes] = []
    for start in range(0, len(facts), 257):  # arbitrary batch boundaries
        batch = processor.process(
            [rec(f, i) for i, f in enumerate(facts[start : start + 257], start)], store.get
        )
        store.update(batch.states)
        produced += [v for _, v in batch.events]
    # Group the event records back into per-fact bodies, as the sink would.
    bodies: dict[tuple[str, int], list[Any]] = {}
    for value in produced:
        record = orjson.loads(value)
        bodies.setdefault((record["origin"]["instance_id"], record["origin"]["seq"]), []).append(
            record["event"]
        )
    assert sorted(orjson.dumps({"events": events}) for events in bodies.values()) == expected


def test_state_cache_gives_the_same_output_and_is_cleared_on_demand() -> None:
    facts = [j(f) for f in SessionGenerator(GeneratorConfig(instances=10, seed=8)).facts(1500)]

    def run_all(processor: FactProcessor, clear_every: int = 0) -> list[bytes]:
        store: dict[str, bytes] = {}
        out: list[bytes] = []
        for n, start in enumerate(range(0, len(facts), 100)):
            if clear_every and n % clear_every == 0:
                processor.clear_cache()
            batch = processor.process(
                [rec(f, i) for i, f in enumerate(facts[start : start + 100], start)],
                lambda iid, _p: store.get(iid),
            )
            store.update(batch.states)
            out += [v for _, v in batch.events]
        return out

    plain = run_all(FactProcessor())
    assert run_all(FactProcessor(state_cache_size=5)) == plain
    assert run_all(FactProcessor(state_cache_size=1000), clear_every=3) == plain


def test_compact_states_give_the_same_output_across_an_upgrade_and_back() -> None:
    facts = [j(f) for f in SessionGenerator(GeneratorConfig(instances=10, seed=9)).facts(1500)]

    def run_all(compact_from: int, compact_until: int) -> tuple[list[bytes], dict[str, bytes]]:
        # A worker writing format 3, then (from batch ``compact_from``) format 6, then
        # 3 again: each reads what the other wrote, as in a deployment and a rollback.
        store: dict[str, bytes] = {}
        out: list[bytes] = []
        for n, start in enumerate(range(0, len(facts), 100)):
            processor = FactProcessor(compact_states=compact_from <= n < compact_until)
            batch = processor.process(
                [rec(f, i) for i, f in enumerate(facts[start : start + 100], start)],
                lambda iid, _p: store.get(iid),
            )
            store.update(batch.states)
            out += [v for _, v in batch.events]
        return out, store

    plain, plain_store = run_all(99, 99)
    compact, compact_store = run_all(0, 99)
    assert compact == plain
    assert run_all(5, 10)[0] == plain
    assert {v[:1] for v in plain_store.values()} == {b"{"}
    assert {v[:1] for v in compact_store.values()} == {b"\x06"}  # format 6: packed
    for iid, saved in compact_store.items():
        assert len(saved) < len(plain_store[iid]) / 2
        # Inside it, format 5 (a JSON array), which this release also reads on its own.
        compact = state_packing.unpack(saved)
        assert compact[:1] == b"["
        assert InstanceState.from_bytes(compact).to_bytes() == plain_store[iid]
