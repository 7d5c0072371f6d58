"""Poison pills for the stream worker (issue #16, item 1): facts whose outputs cannot be
produced as they are (an instance state, a dead letter over the record limit). Each must
be dead-lettered with its reason, acked, and passed; the worker must never exit, and the
facts after it must still give their events.

The worker runs as the ``codex-analytics stream worker`` process against the embedded
broker; the facts are produced by a plain Kafka client, as any producer would.
"""

from __future__ import annotations

import orjson
from aiokafka import AIOKafkaProducer

from codex_analytics.contract import DEFAULT_MAX_RECORD_BYTES
from codex_analytics.simulator.fact_builder import FactBuilder
from tests.integration.stream_helpers import (
    Collected,
    StreamRun,
    collect,
    event_bytes,
    expected_events,
    generated_facts,
    run,
)

#: Records the tests produce may be larger than the worker's limit (that is the point).
_PRODUCER_MAX_REQUEST = 4 * 1024 * 1024
_NORMAL_FACTS = 300


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=False,
        linger_ms=5,
        max_request_size=_PRODUCER_MAX_REQUEST,
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        for future in futures:
            await future
    finally:
        await producer.stop()


def _keyed(facts: list[bytes]) -> list[tuple[bytes, bytes]]:
    return [(orjson.loads(f)["source"]["instance_id"].encode(), f) for f in facts]


def _record_bytes(collected: Collected, index: int) -> int:
    record = collected.records_raw[index]
    headers = sum(len(k.encode()) + len(v) for k, v in record.headers)
    return len(record.key or b"") + len(record.value or b"") + headers


def _by_reason(dead: Collected) -> dict[bytes, list[int]]:
    found: dict[bytes, list[int]] = {}
    for index, headers in enumerate(dead.headers):
        found.setdefault(headers["error.reason"], []).append(index)
    return found


def _run_worker_through(
    stream_run: StreamRun,
    poison: list[tuple[bytes, bytes]],
    normal: list[bytes],
    *,
    dead: int,
    extra_events: int = 0,
) -> tuple[Collected, Collected]:
    """Poison first, then normal facts; the events of the normal facts (plus
    ``extra_events`` of the poison's instances) and ``dead`` dead letters must arrive
    while the same worker process keeps running."""
    expected = expected_events(normal)
    with stream_run.worker() as worker:
        pid = worker.pid
        run(_produce(stream_run.bootstrap, stream_run.facts, poison))
        run(_produce(stream_run.bootstrap, stream_run.facts, _keyed(normal)))
        events = run(
            collect(
                stream_run.bootstrap,
                stream_run.events,
                want=len(expected) + extra_events,
                within=60,
            )
        )
        letters = run(collect(stream_run.bootstrap, stream_run.dlq, want=dead, within=30))
        assert worker.poll() is None, stream_run.log_text()  # never exited...
        assert worker.pid == pid  # ...and was never restarted
    normal_ids = {orjson.loads(f)["source"]["instance_id"] for f in normal}
    of_normal = Collected(
        records=[r for r in events.records if r["origin"]["instance_id"] in normal_ids]
    )
    assert event_bytes(of_normal) == expected, stream_run.log_text()
    assert len(events.records) == len(expected) + extra_events
    assert len(letters.raw) == dead, stream_run.log_text()
    return events, letters


def test_poison_pills_at_the_defaults(stream_run: StreamRun) -> None:
    """At the defaults (no size setting changed), each of these made the worker exit 70,
    restart, read the same record and exit again, for ever: (a) three ``initialize``
    facts of one instance with 400 KB client names (a 1.2 MB state: the changelog write
    was refused); (b) an invalid fact whose error path is its own 530 KB text (a 1.06 MB
    dead letter); (c) a facts record over the record limit (its dead letter as large)."""
    stream_run.partitions = 2
    big_names = FactBuilder("poison-a")
    connections = [
        orjson.dumps(big_names.initialize(conn, client_name=f"{conn}" + "n" * 400_000))
        for conn in (1, 2, 3)
    ]
    tag = "t" * 530_000  # an unknown SubAgentSource tag: the error path repeats it
    builder = FactBuilder("poison-b")
    unknown_tag = orjson.dumps(builder.subagent_thread_started(subagent_source={tag: "x"}))
    too_large = orjson.dumps(
        {**FactBuilder("poison-c").initialize(), "pad": "p" * (DEFAULT_MAX_RECORD_BYTES + 50_000)}
    )
    poison = [
        *((b"poison-a", fact) for fact in connections),
        (b"poison-b", unknown_tag),
        (b"poison-c", too_large),
    ]
    normal = generated_facts(_NORMAL_FACTS, instances=60, seed=31)

    _, letters = _run_worker_through(stream_run, poison, normal, dead=5)

    reasons = _by_reason(letters)
    # (a) the contract's length limit on client names now refuses each of these facts
    # at decode (without it, the record-size check refused the third one as
    # ``state_too_large``: the next test shows that check on its own).
    a = [i for i, r in enumerate(letters.records_raw) if r.key == b"poison-a"]
    assert sorted(letters.raw[i] for i in a) == sorted(connections)
    assert all(letters.headers[i]["error.stage"] == b"decode" for i in a)
    (b,) = reasons[b"unknown_enum_value"]
    (c,) = reasons[b"too_large"]
    for index in (*a, b, c):
        assert _record_bytes(letters, index) <= DEFAULT_MAX_RECORD_BYTES
    # (b) fits once its path is cut: the fact is kept whole.
    assert letters.raw[b] == unknown_tag
    assert len(letters.headers[b]["error.path"]) <= 512
    assert "dead_letter.truncated" not in letters.headers[b]
    # (c) cannot fit whole: its head is kept, and the headers say so.
    assert letters.headers[c]["dead_letter.truncated"] == b"true"
    assert int(letters.headers[c]["dead_letter.original_bytes"]) == len(too_large)
    assert too_large.startswith(letters.raw[c])


def test_a_state_over_the_limit_keeps_the_previous_state(stream_run: StreamRun) -> None:
    """(a) facts that each pass any length limit but together grow one instance's state
    over the record limit (lowered here to 4 KiB, so that 200-byte client names do it):
    the changelog write was refused and the worker exited 70 on it, for ever. Now each
    fact that would grow the state over the limit is dead-lettered as
    ``state_too_large``, the state stays as it was, and the instance goes on."""
    stream_run.partitions = 2
    stream_run.extra_env["ANALYTICS_MAX_RECORD_BYTES"] = "4096"
    builder = FactBuilder("poison-a")
    connections = [
        orjson.dumps(builder.initialize(conn, client_name=f"{conn:03d}" + "n" * 197))
        for conn in range(1, 13)
    ]
    # The instance goes on after its refused facts: a thread on its first connection.
    later = orjson.dumps(builder.thread_response(1, "thread-1"))
    normal = generated_facts(_NORMAL_FACTS, instances=60, seed=32)
    poison = [(b"poison-a", fact) for fact in [*connections, later]]

    events, letters = _run_worker_through(stream_run, poison, normal, dead=4, extra_events=1)

    reasons = _by_reason(letters)
    assert set(reasons) == {b"state_too_large"}, reasons
    # The first eight connections fit (about 450 bytes each); the next four do not.
    assert sorted(letters.raw) == sorted(connections[8:])
    for headers in letters.headers:
        assert headers["error.stage"] == b"reduce"
        assert headers["source.topic"] == stream_run.facts.encode()
    (thread,) = [r for r in events.records if r["origin"]["instance_id"] == "poison-a"]
    client = thread["event"]["event_params"]["app_server_client"]
    assert client["client_name"] == "001" + "n" * 197  # the state kept its first connection
