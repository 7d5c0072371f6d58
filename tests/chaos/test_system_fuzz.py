"""10k hostile fact records (random bytes, truncations, wrong types, deep nesting, huge
numbers, huge strings), half through the gateway and half straight onto the facts
topic: nothing crashes, each one is refused by the gateway or dead-lettered by the
stream, and every valid fact's events come out."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from functools import cache
from typing import Any
from uuid import uuid4

import httpx
import orjson
import pytest

from codex_analytics.contract import FactEnvelope, decode_fact, encode_event, fact_from_json
from codex_analytics.contract.errors import DecodeError
from codex_analytics.devtools.broker import free_port
from codex_analytics.runtime.kafka import ensure_topics
from streams.reducer.offline import OfflineReducer
from tests.integration.stream_helpers import (
    StreamRun,
    cli_process,
    collect,
    event_bytes,
    generated_facts,
    produce,
)

from .hostile import draw_records, hostile_record

HOSTILE = 10_000
VALID = 1_000  # per path
LINES_PER_REQUEST = 50


class WrongTypeAccepted(AssertionError):
    """A record a cold decoder refuses was accepted (the source-cache bug below)."""


async def test_10k_hostile_records_crash_nothing_and_every_one_is_accounted_for(
    stream_run: StreamRun,
) -> None:
    stream_run.extra_env["ANALYTICS_STREAM_DATA_DIR"] = str(stream_run.log_dir / "data")
    port = free_port("127.0.0.1")
    gateway_env = stream_run.env() | {"ANALYTICS_GATEWAY_ADDR": f"127.0.0.1:{port}"}
    gateway_log = stream_run.log_dir / "gateway.log"
    topics = (stream_run.facts, stream_run.dlq, stream_run.events)
    await ensure_topics(stream_run.bootstrap, dict.fromkeys(topics, stream_run.partitions))
    with (
        stream_run.worker("stream") as stream,
        cli_process(["gateway"], gateway_env, gateway_log) as gateway,
    ):
        # Drawn while the services start (Hypothesis takes ~1 ms a record).
        through_gateway, direct = _records()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            await _wait_ready(http, gateway)
            accepted, refused = await _post_all(http, through_gateway)
            gateway_5xx = await _server_errors(http)
        await produce(stream_run.bootstrap, stream_run.facts, direct, [_key(r) for r in direct])
        invalid_direct = [r for r in direct if not _decodes(r)]
        valid = [r for r in direct if _decodes(r)] + [r for r in accepted if _decodes(r)]
        expected = _expected_events(valid)
        out = await collect(stream_run.bootstrap, stream_run.events, want=len(expected), within=60)
        dead = await collect(
            stream_run.bootstrap, stream_run.dlq, want=len(invalid_direct), within=10
        )
        alive = {"stream": stream.poll(), "gateway": gateway.poll()}
    logs = f"logs: {stream_run.log_text('stream')[-3000:]}\n{gateway_log.read_text()[-3000:]}"
    # Nothing crashed, nothing answered 5xx, every line got its own answer.
    assert alive == {"stream": None, "gateway": None}, logs
    assert gateway_5xx == 0, logs
    assert len(accepted) + len(refused) == len(through_gateway)
    # The gateway refused every invalid line; the stream dead-lettered every invalid
    # record, unchanged, with a reason, and nothing else.
    wrongly_accepted = [line for line in accepted if not _decodes(line)]
    not_dead = Counter(invalid_direct) - Counter(dead.raw)
    if wrongly_accepted or not_dead:
        raise WrongTypeAccepted(
            f"{len(wrongly_accepted)} invalid lines accepted by the gateway, "
            f"{sum(not_dead.values())} invalid records not dead-lettered; first ones: "
            f"{[_why(r) for r in (wrongly_accepted + list(not_dead))[:3]]}"
        )
    assert Counter(dead.raw) == Counter(invalid_direct), logs
    assert all(h.get("error.reason") for h in dead.headers)
    # Every valid fact's events came out.
    assert event_bytes(out) == expected, logs
    reasons = Counter(h["error.reason"].decode() for h in dead.headers)
    print(
        f"fuzz: {len(through_gateway)} through the gateway ({len(accepted)} accepted, "
        f"{len(refused)} refused), {len(direct)} straight onto the topic "
        f"({len(invalid_direct)} dead-lettered: {dict(reasons)}); {len(expected)} events"
    )


async def test_a_wrong_type_is_refused_whatever_came_before(stream_run: StreamRun) -> None:
    good, other = (orjson.loads(f) for f in generated_facts(2, instances=2, seed=71))
    assert good["source"]["instance_id"] != other["source"]["instance_id"]

    def wrong_typed(fact: dict[str, Any]) -> bytes:
        bad = orjson.loads(orjson.dumps(fact))
        bad["seq"] += 1
        bad["source"]["auth"]["is_fedramp"] = int(bad["source"]["auth"]["is_fedramp"])
        return orjson.dumps(bad)

    stream_run.extra_env["ANALYTICS_STREAM_DATA_DIR"] = str(stream_run.log_dir / "data")
    port = free_port("127.0.0.1")
    gateway_env = stream_run.env() | {"ANALYTICS_GATEWAY_ADDR": f"127.0.0.1:{port}"}
    topics = (stream_run.facts, stream_run.dlq, stream_run.events)
    await ensure_topics(stream_run.bootstrap, dict.fromkeys(topics, stream_run.partitions))
    with (
        stream_run.worker("stream"),
        cli_process(["gateway"], gateway_env, stream_run.log_dir / "gateway.log") as gateway,
    ):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            await _wait_ready(http, gateway)
            cold = await http.post("/v1/facts", content=wrong_typed(good))
            assert cold.status_code == 400  # alone, it is refused...
            warm = await http.post(
                "/v1/facts", content=orjson.dumps(good) + b"\n" + wrong_typed(good)
            )
            answer = warm.json()
            assert answer["accepted"] == 1  # ...and after a valid twin too
            assert [(r["line"], r["status"]) for r in answer["results"]] == [(2, "rejected")]
        # Straight onto the topic: the stream decodes ``other`` and then its wrong twin.
        await produce(
            stream_run.bootstrap,
            stream_run.facts,
            [orjson.dumps(other), wrong_typed(other)],
            [other["source"]["instance_id"].encode()] * 2,
        )
        dead = await collect(stream_run.bootstrap, stream_run.dlq, want=1, within=30)
    assert dead.raw == [wrong_typed(other)]


def _records() -> tuple[list[bytes], list[bytes]]:
    """(for the gateway, for the topic): valid facts with hostile records among them.

    Hostile records are made from facts of other instances than the valid ones, so that
    one that is still a valid fact cannot take a valid fact's place (its ``seq``). The
    gateway reads newline-delimited JSON, so records with a line break (or blank ones)
    go straight to the topic. Each side has its own instances; a hostile record that is
    still a valid fact of an instance the other side also has is left out, as the order
    of the two sides' records on a partition is not defined.
    """
    sides = []
    for seed, filler in ((51, "a"), (52, "b")):
        valid = generated_facts(VALID, instances=40, seed=seed)
        material = generated_facts(VALID // 2, instances=40, seed=seed + 10)
        hostile = draw_records(hostile_record(material, filler), HOSTILE // 2)
        sides.append(list(_interleave(valid, hostile)))
    one_line = [bool(r.strip()) and b"\n" not in r and b"\r" not in r for r in sides[0]]
    gateway_side = [r for r, ok in zip(sides[0], one_line, strict=True) if ok]
    direct_side = sides[1] + [r for r, ok in zip(sides[0], one_line, strict=True) if not ok]
    shared = _instances(gateway_side) & _instances(direct_side)
    return (
        [r for r in gateway_side if _instance(r) not in shared],
        [r for r in direct_side if _instance(r) not in shared],
    )


def _expected_events(facts: list[bytes]) -> list[bytes]:
    """The offline reducer's events, each fact decoded as a cold decoder would."""
    reducer = OfflineReducer()
    out: list[bytes] = []
    for fact in facts:
        decoded = _decoded(fact)
        assert decoded is not None
        out.extend(encode_event(e) for e in reducer.apply(decoded).events)
    return sorted(out)


def _interleave(valid: list[bytes], hostile: list[bytes]) -> Iterator[bytes]:
    step = max(1, len(hostile) // len(valid))
    for index, fact in enumerate(valid):
        yield fact
        yield from hostile[index * step : (index + 1) * step]
    yield from hostile[len(valid) * step :]


async def _post_all(http: httpx.AsyncClient, lines: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """POST the lines in order, a batch at a time; (accepted, refused) by the answers."""
    accepted: list[bytes] = []
    refused: list[bytes] = []
    for start in range(0, len(lines), LINES_PER_REQUEST):
        batch = lines[start : start + LINES_PER_REQUEST]
        response = await http.post(
            "/v1/facts",
            content=b"\n".join(batch),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert response.status_code in (200, 207, 400), response.text[:500]
        answer = response.json()  # rejected lines are listed (up to 100), accepted counted
        rejected = {result["line"]: result for result in answer["results"]}
        assert answer["unlisted_rejections"] == 0, answer
        assert answer["accepted"] + len(rejected) == len(batch), answer
        for number, line in enumerate(batch, start=1):
            if number in rejected:
                assert rejected[number]["reason"], rejected[number]
                refused.append(line)
            else:
                accepted.append(line)
    return accepted, refused


async def _wait_ready(http: httpx.AsyncClient, gateway: object, within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    pytest.fail("the gateway never became ready")


async def _server_errors(http: httpx.AsyncClient) -> int:
    text = (await http.get("/metrics")).text
    return sum(
        int(float(line.split()[-1]))
        for line in text.splitlines()
        if line.startswith('codex_gateway_requests_total{status="5')
    )


def _decodes(record: bytes) -> bool:
    return _decoded(record) is not None


@cache  # the verdict does not depend on history: worth keeping, records are decoded often
def _decoded(record: bytes) -> FactEnvelope | None:
    """The fact, as a decoder that has seen no fact of its instance yet decodes it.

    The contract's decoder remembers each instance's last ``source`` block and reuses
    its verdict for an *equal* block, and in Python ``0 == False``: a wrong type can
    pass when an equal valid block came first (see ``test_a_wrong_type_is_refused_
    whatever_came_before``). The oracle must not depend on that history, so the block
    is decoded under an instance id nobody had.
    """
    try:
        obj = orjson.loads(record)
    except orjson.JSONDecodeError:
        obj = None
    source = obj.get("source") if isinstance(obj, dict) else None
    instance = source.get("instance_id") if isinstance(source, dict) else None
    if not isinstance(source, dict) or not isinstance(instance, str):
        return _decode(record)
    try:
        fact_from_json({**obj, "source": {**source, "instance_id": uuid4().hex}})
    except DecodeError:
        return None
    return _decode(record)


def _why(record: bytes) -> str:
    """Why a cold decoder refuses ``record`` (for a failure message)."""
    try:
        obj = orjson.loads(record)
        source = obj["source"]
        fact_from_json({**obj, "source": {**source, "instance_id": uuid4().hex}})
    except DecodeError as err:
        return f"{err} (in {record[:200]!r})"
    except Exception as err:
        return repr(err)
    return "decodes"


def _decode(record: bytes) -> FactEnvelope | None:
    try:
        return decode_fact(record)
    except DecodeError:
        return None


def _instance(record: bytes) -> str | None:
    fact = _decoded(record)
    return None if fact is None else fact.source.instance_id


def _instances(records: list[bytes]) -> set[str | None]:
    return {_instance(r) for r in records} - {None}


def _key(record: bytes) -> bytes:
    instance = _instance(record)
    return b"hostile" if instance is None else instance.encode()
