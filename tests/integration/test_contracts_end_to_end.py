"""A fact of either contract, through each way in (the client library, the gateway and
``produce``), reaches the sink's capture file in its contract's shape (issue #18)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import orjson
import pytest

from codex_analytics.contract import decode_event
from codex_analytics.contract.versions import CONTRACT_J, CONTRACT_S
from codex_analytics.devtools.localstack import LocalStack, create_topics, private_topics
from codex_analytics.devtools.verify import captured_events, compare, reference_events
from codex_analytics.runtime.kafka import read_from_start
from codex_analytics.simulator.fact_builder import FactBuilder
from codex_analytics.simulator.fact_builder_j import FactBuilderJ
from producers import AnalyticsClient, ClientSettings, ProducerIdentity
from tests.cli import run_cli_on

from .gateway_helpers import gateway_process

pytestmark = pytest.mark.integration

CONTRACTS = (CONTRACT_S, CONTRACT_J)


def door_facts(door: str) -> list[bytes]:
    """One hook run per contract, from an instance of this door, on a thread naming both."""
    s = FactBuilder(f"inst-{door}-s")
    j = FactBuilderJ(f"inst-{door}-j", product_client_id=f"client-{door}")
    return [
        orjson.dumps(s.hook_run(thread_id=f"thread-{door}-{CONTRACT_S}")),
        orjson.dumps(j.hook_run(thread_id=f"thread-{door}-{CONTRACT_J}", event_name="SessionEnd")),
    ]


async def publish_with_the_client(bootstrap: str, topic: str) -> None:
    for contract in CONTRACTS:
        identity = ProducerIdentity(instance_id=f"inst-client-{contract}")
        settings = ClientSettings(kafka=bootstrap, topic=topic)
        async with AnalyticsClient(settings, identity=identity, contract=contract) as client:
            tracking = {
                "model_slug": "gpt-5",
                "thread_id": f"thread-client-{contract}",
                "turn_id": "turn-1",
            }
            if contract == CONTRACT_J:
                tracking["product_client_id"] = "client-client"
            hook = {"event_name": "Stop", "hook_source": "user", "status": "completed"}
            assert client.track_hook_run(tracking, hook)
            assert await client.flush(timeout=20)


def test_a_fact_of_either_contract_reaches_the_capture_file_through_every_door(
    fresh_broker: str, tmp_path: Path
) -> None:
    topics = private_topics("e2e", partitions=1)
    asyncio.run(create_topics(fresh_broker, topics))
    capture = tmp_path / "capture.jsonl"
    stack = LocalStack(fresh_broker, tmp_path, topics, run_id="e2e", capture_path=capture)
    stack.start()
    try:
        stack.wait_ready(60)
        # 1. The client library (a 2026-06 and a 2026-08 client).
        asyncio.run(publish_with_the_client(fresh_broker, topics.facts))
        # 2. The gateway.
        with gateway_process(fresh_broker, topics.facts, tmp_path) as gateway:
            answer = httpx.post(
                f"{gateway.base}/v1/facts", content=b"\n".join(door_facts("gateway")), timeout=30
            )
            assert answer.status_code == 200, answer.text
        # 3. `produce`.
        produced = tmp_path / "produce.jsonl"
        produced.write_bytes(b"\n".join(door_facts("produce")) + b"\n")
        result = run_cli_on(fresh_broker, topics.facts, "produce", str(produced))
        assert result.returncode == 0, result.stderr
        on_topic = asyncio.run(
            read_from_start(fresh_broker, topics.facts, want=6, within=20, settle=0.5)
        )
        expected = reference_events(r.value for r in on_topic)
        deadline = time.monotonic() + 60
        while len(captured_events(capture)) < len(expected) and time.monotonic() < deadline:
            stack.check_alive()
            time.sleep(0.2)
        time.sleep(0.5)  # a duplicate would arrive now
    finally:
        codes = stack.stop()
    assert all(code == 0 for code in codes.values()), codes
    delivered = captured_events(capture)
    verdict = compare(delivered, expected)
    assert verdict.passed, verdict.detail
    # Each door's two facts came out in their own contract's shape.
    by_thread = {orjson.loads(e)["event_params"]["thread_id"]: e for e in delivered}
    for door in ("client", "gateway", "produce"):
        for contract in CONTRACTS:
            event = by_thread[f"thread-{door}-{contract}"]
            params = orjson.loads(event)["event_params"]
            assert ("product_client_id" in params) == (contract == CONTRACT_J)
            decode_event(event, contract=contract)  # valid under its own contract's model
