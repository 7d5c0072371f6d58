"""``dlq show`` and ``dlq redrive`` as operators run them: processes against a real broker,
dead letters written by the real stream worker and the real sink delivery step."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from codex_analytics.cli.main import main
from codex_analytics.runtime.deadletter import DeadLetter, dead_letter
from codex_analytics.runtime.http import serve
from codex_analytics.runtime.kafka import ensure_topics
from sinks.batching import BatchLimits, PartitionBatcher
from sinks.credentials import CredentialChain
from sinks.decoding import to_sink_record
from sinks.http import HttpDestination
from streams.processor import FactProcessor, SourceRecord
from tests.cli import run_cli
from tests.unit.test_sink_outcomes import FakeLane, delivery

from .stream_helpers import StreamRun, collect, event_bytes, expected_events, generated_facts, run

pytestmark = pytest.mark.integration

#: With this record limit, the 9th fact of this instance makes an event record of 1,504
#: bytes: the stream dead-letters it as output_too_large (its dead letter, 883 bytes,
#: fits whole). The default limit lets it through.
LOW_LIMIT = "1500"
FACTS = generated_facts(9, instances=1, seed=3)


def dlq(run_: StreamRun, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = run_cli("dlq", *args, env={**_topics(run_), **(env or {})}, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout + result.stderr


def _topics(run_: StreamRun) -> dict[str, str]:
    return {
        key: value
        for key, value in run_.env().items()
        if key.startswith("KAFKA_") or key.endswith("_TOPIC")
    }


def test_a_fixed_fact_is_redriven_once_and_its_events_come_out(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    stream = StreamRun(bootstrap=kafka_bootstrap, prefix=unique_name("dlq"), log_dir=tmp_path)
    stream.extra_env["ANALYTICS_MAX_RECORD_BYTES"] = LOW_LIMIT
    before_fix = expected_events(FACTS[:8])
    with stream.worker("low-limit") as worker:
        run(_produce(kafka_bootstrap, stream.facts, FACTS))
        out = run(
            collect(kafka_bootstrap, stream.events, want=len(before_fix), within=40, settle=0)
        )
        dead = run(collect(kafka_bootstrap, stream.dlq, want=1, within=20, settle=0))
        assert worker.poll() is None, stream.log_text("low-limit")
    assert event_bytes(out) == before_fix
    assert [h["error.reason"] for h in dead.headers] == [b"output_too_large"]

    # The fix: the default record limit. The new worker starts while we look.
    del stream.extra_env["ANALYTICS_MAX_RECORD_BYTES"]
    with stream.worker("fixed") as worker:
        status, shown = dlq(stream, "show", "--topic", "facts")
        assert status == 0, shown
        assert "1 dead letter(s)" in shown
        assert "output_too_large" in shown
        assert f"source {stream.facts}:" in shown  # a sample, with its source position
        status, shown = dlq(stream, "show", "--topic", "facts", "--format", "json")
        report = json.loads(shown)
        assert report["reasons"]["output_too_large"]["count"] == 1
        assert report["redrives"] == []
        status, shown = dlq(stream, "show", "--topic", "facts", "--reason", "not_json")
        assert "0 dead letter(s)" in shown

        status, dry = dlq(stream, "redrive", "--topic", "facts")
        assert status == 0, dry
        assert "would send 1 of 1 letter(s): output_too_large 1" in dry
        assert "nothing sent" in dry
        status, sent = dlq(stream, "redrive", "--topic", "facts", "--execute")
        assert status == 0, sent
        assert "sent 1 record(s)" in sent

        want = len(expected_events(FACTS))
        out = run(collect(kafka_bootstrap, stream.events, want=want, within=40, settle=0))
        assert worker.poll() is None, stream.log_text("fixed")
    assert event_bytes(out) == expected_events(FACTS)  # the fixed fact's events came out

    status, again = dlq(stream, "redrive", "--topic", "facts", "--execute")
    assert status == 0, again
    assert "sending 0 of 1" in again
    assert "already_redriven 1" in again
    facts = run(collect(kafka_bootstrap, stream.facts, want=len(FACTS) + 1, within=10, settle=0.3))
    assert len(facts.raw) == len(FACTS) + 1  # the dry run and the second run sent nothing
    resent, headers = facts.records_raw[-1], facts.headers[-1]
    assert (resent.key, resent.value) == (dead.records_raw[0].key, FACTS[8])  # the original
    assert headers["redrive.from"] == f"{stream.dlq}:{dead.records_raw[0].partition}:0".encode()
    assert headers["redrive.count"] == b"1"
    status, shown = dlq(stream, "show", "--topic", "facts", "--format", "json")
    (redrive,) = json.loads(shown)["redrives"]
    assert (redrive["claimed"], redrive["done"], redrive["target"]) == (1, True, stream.facts)
    assert json.loads(shown)["total"] == 1  # markers are not letters


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    await ensure_topics(bootstrap, {topic: 4})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send(
                topic, value, key=json.loads(value)["source"]["instance_id"].encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


async def _sink_dead_letters(
    token: str, events_topic: str
) -> tuple[list[DeadLetter], list[tuple[bytes, bytes]]]:
    """Dead letters as the sink's delivery step writes them: batches of real event
    records POSTed to a real HTTP server on 127.0.0.1 that refuses them with a 400 whose
    body echoes the request's Authorization header, and one record that is not an event
    record. Returns the letters and the refused records."""
    records = []
    processor = FactProcessor()
    states: dict[str, bytes] = {}
    for offset, value in enumerate(generated_facts(40, instances=1, seed=5)):
        batch = processor.process(
            [SourceRecord("facts", 0, offset, b"k", value)], lambda i, _p: states.get(i)
        )
        states.update(batch.states)
        records += batch.events
    assert len(records) >= 3
    batcher = PartitionBatcher(0, BatchLimits())
    sink_records = [to_sink_record(i, 0, k, v) for i, (k, v) in enumerate(records)]
    sink_records.append(to_sink_record(len(records), 0, b"k", b"{not an event"))
    batches = [b for r in sink_records for b in batcher.add(r)] + batcher.flush()
    account = records[0][0].decode().split('"')[1]  # the route key: [account, fedramp]
    credentials = CredentialChain.from_env(
        {"ANALYTICS_BEARER_TOKEN": token, "ANALYTICS_ACCOUNT_ID": account}
    )

    async def refuse(request: web.Request) -> web.Response:
        echo = {"error": "bad request", "echo": request.headers.get("Authorization")}
        return web.json_response(echo, status=400)

    app = web.Application()
    app.router.add_post("/{tail:.*}", refuse)
    served = await serve(app, "127.0.0.1:0")
    destination = HttpDestination(f"http://127.0.0.1:{served.port}")
    try:
        step, _, dead_letters = delivery(destination, credentials=credentials)  # type: ignore[arg-type]
        dead_letters.source_topic = events_topic
        for batch in batches:
            await step(batch, FakeLane())
    finally:
        await destination.aclose()
        await served.close()
    return dead_letters.produced, records


async def test_events_letters_are_shown_without_secrets_and_redriven_unchanged(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    token = "tok-secret-1"
    stream = StreamRun(bootstrap=kafka_bootstrap, prefix=unique_name("dlq"), log_dir=tmp_path)
    env = {
        "ANALYTICS_EVENTS_TOPIC": f"{stream.prefix}.events",
        "ANALYTICS_EVENTS_DLQ_TOPIC": f"{stream.prefix}.events.dlq",
    }
    letters, refused = await _sink_dead_letters(token, env["ANALYTICS_EVENTS_TOPIC"])
    assert {letter.reason for letter in letters} == {"http_400", "not_json"}
    assert b"[redacted]" in b"".join(v for dl in letters for _, v in dl.headers)  # echoed
    for letter in letters:  # ...but the sink never writes the credential into a dead letter
        assert token.encode() not in letter.value + (letter.key or b"")
        assert all(token.encode() not in value for _, value in letter.headers)
    await ensure_topics(kafka_bootstrap, {env["ANALYTICS_EVENTS_DLQ_TOPIC"]: 2})
    await ensure_topics(kafka_bootstrap, {env["ANALYTICS_EVENTS_TOPIC"]: 2})
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for letter in letters:
            dlq_topic = env["ANALYTICS_EVENTS_DLQ_TOPIC"]
            await producer.send(dlq_topic, letter.value, key=letter.key, headers=letter.headers)
        await producer.flush()
    finally:
        await producer.stop()

    status, shown = dlq(stream, "show", "--topic", "events", "--samples", "9", env=env)
    assert status == 0, shown
    assert f"{len(letters)} dead letter(s)" in shown
    assert "http_400" in shown
    assert "not_json" in shown
    assert "http.body=" in shown
    assert token not in shown

    since = dlq(stream, "show", "--topic", "events", "--since", "1h", "--format", "json", env=env)
    assert json.loads(since[1])["total"] == len(letters)
    until = dlq(stream, "show", "--topic", "events", "--until", "1h", "--format", "json", env=env)
    assert json.loads(until[1])["total"] == 0

    status, sent = dlq(stream, "redrive", "--topic", "events", "--execute", env=env)
    assert status == 0, sent
    assert f"sent {len(refused)} record(s)" in sent
    assert "skip still_invalid 1 (not_json 1)" in sent
    out = await collect(
        kafka_bootstrap, env["ANALYTICS_EVENTS_TOPIC"], want=len(refused), within=10, settle=0.5
    )
    assert sorted((r.key, r.value) for r in out.records_raw) == sorted(refused)
    assert all(h["redrive.count"] == str(len(refused)).encode() for h in out.headers)


def test_bad_arguments_a_missing_topic_and_no_broker_are_one_line(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process (the command's run(), as the console script calls it): each mistake
    is one line on stderr with the status, never a traceback."""
    dlq_topic = unique_name("missing.dlq")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("ANALYTICS_FACTS_DLQ_TOPIC", dlq_topic)
    cases = [
        (["show", "--topic", "facts", "--since", "yesterday"], 2, "'yesterday' is not a time"),
        (["show", "--topic", "facts", "--since", "1h", "--until", "2h"], 2, "is after --until"),
        (["redrive", "--topic", "facts"], 1, f"topic {dlq_topic} does not exist"),
    ]
    for args, status, message in cases:
        assert main(["dlq", *args]) == status
        err = capsys.readouterr().err
        assert message in err
        assert len(err.strip().splitlines()) == 1, err
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("ANALYTICS_KAFKA_WAIT_S", "0")  # no start-up wait (test_startup.py)
    started = time.monotonic()
    assert main(["dlq", "show", "--topic", "facts", "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert "Kafka at 127.0.0.1:1 not reachable within 0 s" in err
    assert err.endswith("127.0.0.1:1: unreachable (connection refused)\n")
    assert time.monotonic() - started < 10
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS")
    assert main(["dlq", "show", "--topic", "facts"]) == 2
    assert "KAFKA_BOOTSTRAP_SERVERS is not set" in capsys.readouterr().err


async def test_a_redrive_racing_another_on_the_same_letters_stops_and_sends_nothing(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    """Two redrives planned from the same read: the one whose claim lands second sees
    the other's and cancels, sending nothing; the next plan shows who sent what."""
    from codex_analytics.ops.dead_letter_topic import (
        DeadLetterToolError,
        ReadRange,
        Redrive,
        read_letters,
    )
    from codex_analytics.ops.dead_letters import (
        FactsCheck,
        Judge,
        LetterFilter,
        RedriveLedger,
        RedrivePlan,
        RedrivePlanner,
        Skip,
    )
    from codex_analytics.runtime.kafka import KafkaCluster

    dlq_topic, target = unique_name("race.facts.dlq"), unique_name("race.facts")
    await ensure_topics(kafka_bootstrap, {dlq_topic: 1, target: 1})
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i, fact in enumerate(FACTS[:3]):
            letter = dead_letter(
                fact, b"k", reason="output_too_large", stage="reduce", topic=target,
                partition=0, offset=i,
            )  # fmt: skip
            await producer.send(dlq_topic, letter.value, key=letter.key, headers=letter.headers)
        await producer.flush()
    finally:
        await producer.stop()
    cluster = KafkaCluster(kafka_bootstrap)

    async def planned() -> tuple[RedrivePlan, dict[int, int]]:
        judge = Judge(FactsCheck(1_000_000), RedriveLedger(), dlq_topic, target, 1_000_000)
        planner, read = RedrivePlanner(judge, LetterFilter()), ReadRange()
        async for letter in read_letters(cluster, dlq_topic, read, within=20):
            planner.feed(letter)
        return planner.plan(), {p: end for p, (_, end) in read.ranges.items()}

    (plan, ends), (same_plan, same_ends) = await planned(), await planned()
    assert plan.to_send == same_plan.to_send == 3

    def redrive(run: str) -> Redrive:
        return Redrive(cluster, dlq_topic, target, 1_000_000, run, int(time.time() * 1000), 20)

    assert await redrive("first").execute(plan, ends) == 3
    with pytest.raises(DeadLetterToolError, match=r"another redrive \(first\) claimed"):
        await redrive("second").execute(same_plan, same_ends)
    sent = await collect(kafka_bootstrap, target, want=3, within=10, settle=0.3)
    assert len(sent.raw) == 3  # the second run sent nothing
    after, _ = await planned()
    assert after.skipped == {(Skip.ALREADY_SENT, "first"): 3}
