"""Issue #16, contract limits: an over-long id or name is refused at every door, with a
clear error, and never published: the client library, ``codex-analytics produce`` and
the gateway process, each against a real broker. An error quoting a caller's 500 KB tag
stays short."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from codex_analytics.contract import MAX_ID_CHARS, MAX_NAME_CHARS
from codex_analytics.runtime.kafka import read_from_start
from codex_analytics.simulator.fact_builder import FactBuilder
from producers import AnalyticsClient, ClientSettings, DeliveryFailure, ProducerIdentity
from tests.cli import run_cli_on
from tests.integration.gateway_helpers import gateway_process
from tests.integration.kafka_helpers import create_topic

Fact = dict[str, Any]


def long_instance_id() -> Fact:
    fact = FactBuilder("i" * (MAX_ID_CHARS + 1)).token_usage()
    fact["fact_id"] = "f-1"
    return fact


def long_client_name() -> Fact:
    return FactBuilder("inst-long-name").initialize(client_name="n" * 400_000)


def huge_subagent_tag() -> Fact:
    return FactBuilder("inst-tag").subagent_thread_started(subagent_source={"t" * 500_000: {}})


async def published(bootstrap: str, topic: str, want: int) -> list[Fact]:
    records = await read_from_start(bootstrap, topic, want=want, within=10, settle=1.0)
    return [orjson.loads(r.value) for r in records]


async def test_the_client_library_refuses_an_over_long_identity_and_fact(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    with pytest.raises(ValueError, match="too_long") as refused:
        ProducerIdentity(instance_id="i" * 600_000)
    assert len(str(refused.value)) < 200
    topic = unique_name("facts")
    await create_topic(kafka_bootstrap, topic)
    failures: list[DeliveryFailure] = []
    client = AnalyticsClient(
        ClientSettings(kafka=kafka_bootstrap, topic=topic, contract="2026-06"),
        on_delivery_error=failures.append,
    )
    async with client:
        long_name = long_client_name()["payload"]
        assert client.track_initialize(7, long_name["params"], "codex-tui")
        assert client.track_turn_token_usage(FactBuilder().token_usage()["payload"])
        await client.flush(timeout=10)
    assert [f.reason for f in failures] == ["over_limit"]
    assert failures[0].error.startswith("payload.params.clientInfo.name: too_long: 400000")
    facts = await published(kafka_bootstrap, topic, want=1)
    assert [f["kind"] for f in facts] == ["turn_token_usage"]


async def test_produce_refuses_over_long_lines_and_publishes_the_rest(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = unique_name("facts")
    await create_topic(kafka_bootstrap, topic)
    good = FactBuilder("inst-good").token_usage()
    lines = [long_instance_id(), good, long_client_name(), huge_subagent_tag()]
    path = tmp_path / "facts.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(f) for f in lines) + b"\n")
    done = await asyncio.to_thread(run_cli_on, kafka_bootstrap, topic, "produce", str(path))
    assert done.returncode == 1, done.stderr
    assert f"line 1: too_long at source.instance_id: {MAX_ID_CHARS + 1} characters" in done.stderr
    assert (
        f"line 3: too_long at payload.params.clientInfo.name: 400000 characters exceeds the "
        f"limit of {MAX_NAME_CHARS}" in done.stderr
    )
    assert "line 4: unknown_enum_value at payload.subagent_source: 'ttt" in done.stderr
    assert len(done.stderr) < 2000  # no line of it quotes the caller's 500 KB tag
    facts = await published(kafka_bootstrap, topic, want=1)
    assert [f["source"]["instance_id"] for f in facts] == ["inst-good"]


@pytest.fixture
def gateway(
    kafka_bootstrap: str, tmp_path: Path, unique_name: Callable[[str], str]
) -> Iterator[tuple[str, str]]:
    """``codex-analytics gateway`` on a free port: (base URL, facts topic)."""
    topic = unique_name("facts")
    with gateway_process(kafka_bootstrap, topic, tmp_path) as running:
        yield running.base, topic


async def test_the_gateway_refuses_over_long_lines_with_short_answers(
    kafka_bootstrap: str, gateway: tuple[str, str]
) -> None:
    base, topic = gateway
    good = FactBuilder("inst-good").token_usage()
    lines = [long_instance_id(), long_client_name(), huge_subagent_tag(), good]
    body = b"\n".join(orjson.dumps(f) for f in lines)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        answer = await http.post("/v1/facts", content=body)
    assert answer.status_code == 207, answer.text[:2000]
    assert len(answer.content) < 2000  # the 900 KB of refused lines are not echoed
    answered = answer.json()
    assert answered["accepted"] == 1  # the answer lists rejected lines only
    results = answered["results"]
    assert [(r["line"], r["status"], r["reason"], r["path"]) for r in results] == [
        (1, "rejected", "too_long", "source.instance_id"),
        (2, "rejected", "too_long", "payload.params.clientInfo.name"),
        (3, "rejected", "unknown_enum_value", "payload.subagent_source"),
    ]
    assert results[1]["detail"] == f"400000 characters exceeds the limit of {MAX_NAME_CHARS}"
    facts = await published(kafka_bootstrap, topic, want=1)
    assert [f["source"]["instance_id"] for f in facts] == ["inst-good"]
