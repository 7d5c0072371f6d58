"""The ingest gateway under a real HTTP client, against a real broker."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import httpx
import orjson
import pytest

from codex_analytics.contract import decode_fact
from codex_analytics.devtools.broker import EmbeddedBroker, free_port
from codex_analytics.runtime.kafka import read_from_start
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from producers.gateway.service import Gateway, GatewaySettings
from producers.publishing.transport import KafkaFactTransport
from tests.integration.gateway_helpers import gateway_process
from tests.producer_j_calls import vector_facts


def facts(count: int, seed: int = 1) -> list[bytes]:
    config = GeneratorConfig(instances=5, seed=seed, duplicate_rate=0)
    return [orjson.dumps(f) for f in SessionGenerator(config).facts(count)]


async def start_gateway(bootstrap: str, topic: str, **overrides: object) -> Gateway:
    settings = replace(
        GatewaySettings(addr="127.0.0.1:0", facts_topic=topic, partitions=4, publish_timeout_s=2.0),
        **overrides,
    )
    gateway = Gateway(settings, KafkaFactTransport(bootstrap, topic))
    await gateway.start()
    return gateway


@pytest.fixture
async def gateway(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> AsyncIterator[Gateway]:
    gw = await start_gateway(kafka_bootstrap, unique_name("facts"))
    try:
        yield gw
    finally:
        await gw.stop()


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=30) as client:
        yield client


async def topic_values(bootstrap: str, topic: str, want: int) -> list[bytes]:
    records = await read_from_start(bootstrap, topic, want=want, within=15, settle=0.5)
    return [r.value for r in records]


async def wait_ready(http: httpx.AsyncClient, ready: bool = True, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (await http.get("/readyz")).status_code == (200 if ready else 503):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"/readyz never became {'ready' if ready else 'not ready'}")


def with_contract(fact: dict[str, object], contract: str) -> bytes:
    return orjson.dumps({**fact, "source": {**fact["source"], "contract": contract}})  # type: ignore[dict-item]


async def test_both_contracts_are_published_and_an_unknown_one_is_refused(
    gateway: Gateway, http: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    await wait_ready(http)
    j_facts = [orjson.dumps(f) for f in vector_facts()[:3]]  # 2026-08
    s_facts = facts(2)  # 2026-06, no contract key
    unknown = with_contract(orjson.loads(j_facts[0]), "2026-09")
    body = b"\n".join([*j_facts, unknown, *s_facts])
    response = await http.post("/v1/facts", content=body)
    assert response.status_code == 207
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (5, 1)
    (refused,) = answer["results"]
    assert (refused["line"], refused["reason"], refused["path"]) == (
        4,
        "unknown_enum_value",
        "source.contract",
    )
    assert "'2026-06', '2026-08'" in refused["detail"]
    only_unknown = await http.post("/v1/facts", content=unknown)
    assert only_unknown.status_code == 400
    values = await topic_values(kafka_bootstrap, gateway.settings.facts_topic, want=5)
    assert sorted(values) == sorted([*j_facts, *s_facts])
    assert sorted(decode_fact(v).contract for v in values) == ["2026-06"] * 2 + ["2026-08"] * 3


async def test_valid_batches_land_on_the_topic_after_the_answer(
    gateway: Gateway, http: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    await wait_ready(http)
    lines = facts(60)
    body = b"\n".join(lines[:50]) + b"\n\n"  # a trailing blank line is fine
    response = await http.post(
        "/v1/facts", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["accepted"] == 50
    assert answer["rejected"] == 0
    assert answer["results"] == []  # the rejected lines only
    assert answer["unlisted_rejections"] == 0
    one = await http.post(
        "/v1/facts", content=lines[50], headers={"Content-Type": "application/json"}
    )
    assert one.status_code == 200
    array = b"[" + b",".join(lines[51:60]) + b"]"
    many = await http.post("/v1/facts", content=array, headers={"Content-Type": "application/json"})
    assert many.json()["accepted"] == 9
    records = await read_from_start(
        kafka_bootstrap, gateway.settings.facts_topic, want=60, within=15, settle=0.5
    )
    assert sorted(orjson.loads(r.value)["fact_id"] for r in records) == sorted(
        orjson.loads(line)["fact_id"] for line in lines
    )
    for record in records:  # keyed by instance id, each instance in one partition, in order
        assert record.key == orjson.loads(record.value)["source"]["instance_id"].encode()
    by_instance: dict[bytes, list[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_instance.setdefault(record.key, []).append(orjson.loads(record.value)["seq"])
    assert all(seqs == sorted(seqs) for seqs in by_instance.values())


async def test_each_bad_line_gets_its_precise_error_and_nothing_of_it_lands(
    gateway: Gateway, http: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    await wait_ready(http)
    good = facts(3, seed=9)
    base = orjson.loads(good[0])
    wrong_type = dict(base, seq="seventeen")
    unknown_kind = dict(base, kind="coffee_brewed")
    missing = {k: v for k, v in base.items() if k != "source"}
    bad_enum = orjson.loads(good[0])
    bad_enum["source"]["auth"] = {"kind": "password", "account_id": "a", "is_fedramp": False}
    huge = dict(base, payload={"blob": "x" * (1024 * 1024)})
    body = b"\n".join(
        [
            good[0],
            b"{not json",
            orjson.dumps(wrong_type),
            orjson.dumps(unknown_kind),
            good[1],
            orjson.dumps(missing),
            b"\xff\xfe",
            orjson.dumps(bad_enum),
            orjson.dumps(huge),
            good[2],
        ]
    )
    response = await http.post("/v1/facts", content=body)
    assert response.status_code == 207
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (3, 7)
    rejected = {
        r["line"]: (r["reason"], r["path"]) for r in answer["results"] if r["status"] == "rejected"
    }
    assert rejected == {
        2: ("not_json", ""),
        3: ("wrong_type", "seq"),
        4: ("unknown_kind", "kind"),
        6: ("missing_key", "source"),
        7: ("not_utf8", ""),
        8: ("unknown_enum_value", "source.auth.kind"),
        9: ("too_large", ""),
    }
    assert all(r["detail"] for r in answer["results"] if r["status"] == "rejected")

    all_bad = await http.post("/v1/facts", content=b"[1]\n{}")
    assert all_bad.status_code == 400
    assert all_bad.json()["accepted"] == 0
    empty = await http.post("/v1/facts", content=b"\n\n")
    assert empty.status_code == 400
    assert empty.json()["error"] == "empty"
    values = await topic_values(kafka_bootstrap, gateway.settings.facts_topic, want=4)
    assert sorted(values) == sorted(good)  # exactly the good lines, nothing else
    metrics = (await http.get("/metrics")).text
    assert 'codex_gateway_rejected_facts_total{reason="not_json"} 1.0' in metrics
    assert 'codex_gateway_requests_total{status="207"} 1.0' in metrics


async def test_body_limit_and_bearer_auth(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("facts")
    gateway = await start_gateway(kafka_bootstrap, topic, max_body_bytes=4096, token="s3cret-token")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}") as http:
            await wait_ready(http)
            auth = {"Authorization": "Bearer s3cret-token"}
            line = facts(1)[0]
            assert (await http.post("/v1/facts", content=line)).status_code == 401
            wrong = await http.post(
                "/v1/facts", content=line, headers={"Authorization": "Bearer nope"}
            )
            assert wrong.status_code == 401
            assert "s3cret" not in wrong.text
            big = b"\n".join([line] * 20)
            too_large = await http.post("/v1/facts", content=big, headers=auth)
            assert too_large.status_code == 413
            assert too_large.json()["error"] == "too_large"

            async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: limit while reading
                for _ in range(20):
                    yield line + b"\n"

            streamed = await http.post("/v1/facts", content=chunked(), headers=auth)
            assert streamed.status_code == 413
            ok = await http.post("/v1/facts", content=line, headers=auth)
            assert ok.status_code == 200
            assert (await http.get("/livez")).status_code == 200  # probes need no token
            assert (await http.get("/readyz")).status_code == 200
        values = await topic_values(kafka_bootstrap, topic, want=1)
        assert values == [line]
        assert "s3cret" not in repr(gateway.settings)
    finally:
        await gateway.stop()


async def test_broker_down_means_503_then_accepts_again(
    tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    port = free_port("127.0.0.1")
    topic = unique_name("facts")
    broker = EmbeddedBroker(port=port, log_path=str(tmp_path / "broker-1.log"))
    bootstrap = broker.start()
    gateway = await start_gateway(bootstrap, topic, publish_timeout_s=1.5, retry_after_s=3)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gateway.port}", timeout=30
        ) as http:
            await wait_ready(http)
            before = facts(20, seed=2)
            assert (
                await http.post("/v1/facts", content=b"\n".join(before[:10]))
            ).status_code == 200
            assert sorted(await topic_values(bootstrap, topic, want=10)) == sorted(before[:10])

            broker.stop()
            await wait_ready(http, ready=False)
            down = await http.post("/v1/facts", content=b"\n".join(before[10:]))
            assert down.status_code == 503
            assert down.headers["Retry-After"] == "3"
            assert down.json()["error"] == "unavailable"

            broker = EmbeddedBroker(port=port, log_path=str(tmp_path / "broker-2.log"))
            broker.start()  # memory only: a new, empty broker on the same address
            await wait_ready(http, within=40)
            again = await http.post("/v1/facts", content=b"\n".join(before[10:]))
            assert again.status_code == 200
            # Every fact answered 2xx since the restart is on the topic (a fact of the
            # 503 attempt may be there twice: the stream drops repeats by seq).
            assert set(await topic_values(bootstrap, topic, want=10)) == set(before[10:])
            metrics = (await http.get("/metrics")).text
            assert "codex_gateway_publish_failures_total 1.0" in metrics
    finally:
        await gateway.stop()
        broker.stop()


def test_gateway_command_serves_on_its_address(
    kafka_bootstrap: str, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("facts")
    with gateway_process(
        kafka_bootstrap, topic, tmp_path, ANALYTICS_GATEWAY_TOKEN="tok-do-not-log"
    ) as gateway:
        line = facts(1, seed=5)[0]
        answer = httpx.post(
            f"{gateway.base}/v1/facts",
            content=line,
            headers={"Authorization": "Bearer tok-do-not-log"},
        )
        assert answer.status_code == 200
        assert "codex_gateway_facts_total" in httpx.get(f"{gateway.base}/metrics").text
        gateway.proc.send_signal(signal.SIGTERM)
        assert gateway.proc.wait(timeout=15) == 0
    values = asyncio.run(topic_values(kafka_bootstrap, topic, want=1))
    assert values == [line]
    assert "tok-do-not-log" not in gateway.log.read_text()
