"""Every output of the stream is sized before it is sent (issue #16): a fact whose state
or events would be over the record limit is dead-lettered and undone; dead letters are
cut to fit."""

from __future__ import annotations

import orjson

from codex_analytics.contract import join_fact_pack
from codex_analytics.runtime.deadletter import ORIGINAL_BYTES, TRUNCATED
from codex_analytics.runtime.record_size import record_bytes
from streams.processor import (
    OUTPUT_TOO_LARGE,
    STATE_TOO_LARGE,
    FactProcessor,
    ProcessedBatch,
    SourceRecord,
)
from streams.reducer import InstanceState
from streams.sweep import STAMP_SIZE
from tests.factories import Instance

LIMIT = 4096
NAME = 200  # bytes of each client name: a connection is ~450 bytes of state


def rec(fact: dict[str, object] | bytes, offset: int) -> SourceRecord:
    value = fact if isinstance(fact, bytes) else orjson.dumps(fact)
    return SourceRecord("analytics.facts", 0, offset, b"inst-1", value)


def connections(inst: Instance, count: int) -> list[dict[str, object]]:
    return [
        inst.initialize(conn, client_name=f"{conn:03d}" + "n" * (NAME - 3))
        for conn in range(1, count + 1)
    ]


def reasons(batch: ProcessedBatch) -> list[str]:
    return [letter.reason for letter in batch.dead_letters]


def assert_every_output_fits(batch: ProcessedBatch, limit: int) -> None:
    for key, value in batch.events:
        assert record_bytes(key, value) <= limit
    for instance, state in batch.states.items():
        assert record_bytes(instance.encode(), state) + STAMP_SIZE <= limit
    for letter in batch.dead_letters:
        assert letter.size <= limit


def test_a_fact_that_would_grow_the_state_over_the_limit_is_dead_lettered_and_undone() -> None:
    inst = Instance()
    facts = [*connections(inst, 12), inst.thread_response(1, "thread-1")]
    processor = FactProcessor(max_record_bytes=LIMIT)

    batch = processor.process([rec(f, i) for i, f in enumerate(facts)], lambda _i, _p: None)

    assert reasons(batch) == [STATE_TOO_LARGE] * 4
    assert [letter.value for letter in batch.dead_letters] == [orjson.dumps(f) for f in facts[8:12]]
    headers = dict(batch.dead_letters[0].headers)
    assert headers["error.stage"] == b"reduce"
    assert headers["source.offset"] == b"8"
    assert b"ANALYTICS_MAX_RECORD_BYTES" in headers["error.detail"]
    state = InstanceState.from_bytes(batch.states["inst-1"])
    assert sorted(state.connections) == list(range(1, 9))
    # The instance goes on: its later fact is applied to the state it kept.
    ((_, event),) = batch.events
    client = orjson.loads(event)["event"]["event_params"]["app_server_client"]
    assert client["client_name"] == "001" + "n" * (NAME - 3)
    assert_every_output_fits(batch, LIMIT)


def test_a_cached_state_is_undone_too_and_later_batches_start_from_the_kept_state() -> None:
    inst = Instance()
    store: dict[str, bytes] = {}
    processor = FactProcessor(max_record_bytes=LIMIT, state_cache_size=10)

    def load(instance: str, _partition: int) -> bytes | None:
        return store.get(instance)

    first = processor.process([rec(f, i) for i, f in enumerate(connections(inst, 8))], load)
    assert first.dead_letters == []
    store.update(first.states)
    second = processor.process([rec(inst.initialize(9, client_name="x" * NAME), 8)], load)
    assert reasons(second) == [STATE_TOO_LARGE]
    assert second.states == {}  # nothing changed: nothing to write
    third = processor.process([rec(inst.thread_response(2, "thread-2"), 9)], load)
    assert third.dead_letters == []
    assert sorted(InstanceState.from_bytes(third.states["inst-1"]).connections) == list(range(1, 9))


def test_a_saved_state_over_a_lowered_limit_is_not_written_again() -> None:
    inst = Instance()
    big = FactProcessor().process(
        [rec(f, i) for i, f in enumerate(connections(inst, 12))], lambda _i, _p: None
    )
    saved = big.states["inst-1"]
    batch = FactProcessor(max_record_bytes=LIMIT).process(
        [rec(inst.thread_response(1, "thread-1"), 12)], lambda _i, _p: saved
    )
    assert reasons(batch) == [STATE_TOO_LARGE]
    assert batch.states == {}
    assert batch.events == []


def test_a_fact_whose_event_is_over_the_limit_is_dead_lettered_and_undone() -> None:
    # A 1000-byte client name: the state (about 1.5 KB) fits in 1600 bytes, the
    # thread's event record (about 1.6 KB, it repeats the client) does not.
    inst = Instance()
    facts = [inst.initialize(7, client_name="n" * 1000), inst.thread_response(7, "thread-1")]
    batch = FactProcessor(max_record_bytes=1600).process(
        [rec(f, i) for i, f in enumerate(facts)], lambda _i, _p: None
    )
    assert reasons(batch) == [OUTPUT_TOO_LARGE]
    assert batch.dead_letters[0].value == orjson.dumps(facts[1])
    assert batch.events == []
    state = InstanceState.from_bytes(batch.states["inst-1"])
    assert list(state.connections) == [7]
    assert state.threads == {}  # the thread's fact was undone
    assert_every_output_fits(batch, 1600)


def test_fitting_instances_are_untouched_by_an_oversized_neighbour() -> None:
    big, small = Instance("big"), Instance("small")
    records = [
        SourceRecord("analytics.facts", 0, i, b"big", orjson.dumps(f))
        for i, f in enumerate(connections(big, 12))
    ]
    records.append(SourceRecord("analytics.facts", 0, 12, b"small", orjson.dumps(small.hook_run())))
    batch = FactProcessor(max_record_bytes=LIMIT).process(records, lambda _i, _p: None)
    assert reasons(batch) == [STATE_TOO_LARGE] * 4
    assert set(batch.states) == {"big", "small"}
    assert len(batch.events) == 1


def test_every_dead_letter_fits_and_a_cut_one_says_so() -> None:
    over = orjson.dumps({"pad": "p" * 10_000})
    unknown_tag = Instance().subagent_thread_started(subagent_source={"t" * 2500: "x"})
    batch = FactProcessor(max_record_bytes=LIMIT).process(
        [rec(over, 0), rec(unknown_tag, 1)], lambda _i, _p: None
    )
    too_large, bad_tag = batch.dead_letters
    assert too_large.reason == "too_large"
    headers = dict(too_large.headers)
    assert headers[TRUNCATED] == b"true"
    assert int(headers[ORIGINAL_BYTES]) == len(over)
    assert over.startswith(too_large.value)
    # The error path repeats the sender's tag: it is cut, and the fact is kept whole.
    assert bad_tag.reason == "unknown_enum_value"
    assert len(dict(bad_tag.headers)["error.path"]) <= 512
    assert bad_tag.value == orjson.dumps(unknown_tag)
    assert TRUNCATED not in dict(bad_tag.headers)
    assert_every_output_fits(batch, LIMIT)


def test_a_fact_of_a_pack_is_dead_lettered_alone_with_its_pack_index() -> None:
    inst = Instance()
    processor = FactProcessor(max_record_bytes=LIMIT)
    first = processor.process(
        [rec(f, i) for i, f in enumerate(connections(inst, 8))], lambda _i, _p: None
    )
    saved = first.states["inst-1"]
    refused = inst.initialize(9, client_name="x" * NAME)
    pack = join_fact_pack([orjson.dumps(refused), orjson.dumps(inst.thread_response(1))])
    batch = processor.process([rec(pack, 8)], lambda _i, _p: saved)
    (letter,) = batch.dead_letters
    assert letter.reason == STATE_TOO_LARGE
    assert letter.value == orjson.dumps(refused)  # the fact, not the whole pack
    assert dict(letter.headers)["source.pack_index"] == b"0"
    assert len(batch.events) == 1  # the pack's other fact went through
    assert_every_output_fits(batch, LIMIT)
