"""The producers against a bare aiokafka ceiling, on one fresh embedded broker per run.

Everything publishes the generator's facts (200 instances) to an 8-partition topic of
its own, and is timed from its first fact to the broker's last acknowledgement:

* ceiling: aiokafka alone: pre-encoded envelopes, ``send`` each, await every ack;
* client: ``track_*`` calls (``codex_analytics.simulator.drive.track_fact``) into one
  ``AnalyticsClient``, which stamps, encodes and publishes them, one envelope per record
  and packed (256 per record). The driving loop hands the loop to the sender whenever
  the queue is 3/4 full, so this is the sender's throughput with no drop; the caller's
  own cost per call is timed separately (the call never waits for the network);
* gateway: ``codex-analytics gateway`` as its own process; 4 concurrent httpx clients
  POST JSON-lines bodies of 500 facts; a fact counts once its answer (sent after the
  broker's acks) is back.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from codex_analytics.devtools.broker import EmbeddedBroker, free_port
from codex_analytics.devtools.localstack import child_env
from codex_analytics.runtime.kafka import ensure_topics
from codex_analytics.simulator.drive import track_fact
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from producers import AnalyticsClient, ClientSettings, ProducerIdentity

from .common import PARTITIONS, ROOT, ceiling_producer_options, spawn
from .stats import Figure

GATEWAY_BATCH = 500
GATEWAY_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class ProducersBenchConfig:
    facts: int = 100_000
    runs: int = 3


def _facts(count: int) -> list[dict[str, Any]]:
    config = GeneratorConfig(instances=200, seed=41, duplicate_rate=0)
    return list(SessionGenerator(config).facts(count))


async def _topic(bootstrap: str) -> str:
    topic = f"bench-facts-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: PARTITIONS})
    return topic


async def _ceiling(bootstrap: str, lines: list[bytes], keys: list[bytes]) -> float:
    topic = await _topic(bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **ceiling_producer_options())
    await producer.start()
    try:
        started = time.perf_counter()
        pending = [await producer.send(topic, v, key=k) for v, k in zip(lines, keys, strict=True)]
        await asyncio.gather(*pending)
        return len(lines) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def _client(bootstrap: str, facts: list[dict[str, Any]], pack: int) -> tuple[float, float]:
    """(facts/s published, caller-side calls/s)."""
    topic = await _topic(bootstrap)
    settings = ClientSettings(
        kafka=bootstrap, topic=topic, max_facts_per_record=pack, contract="2026-06"
    )
    client = AnalyticsClient(settings, identity=ProducerIdentity(instance_id="bench"))
    await client.start()
    await client.flush()
    high_water = settings.queue_capacity * 3 // 4
    tracker = client._tracker
    calls = 0.0
    started = time.perf_counter()
    for fact in facts:
        t0 = time.perf_counter()
        track_fact(client, fact)
        calls += time.perf_counter() - t0
        if tracker.pending() >= high_water:
            while tracker.pending() >= high_water:  # noqa: ASYNC110 (hand the loop to the sender)
                await asyncio.sleep(0)
    await client.flush(timeout=300)
    elapsed = time.perf_counter() - started
    stats = client.stats
    await client.close()
    if stats.dropped_queue_full or stats.failed:
        raise RuntimeError(f"producers bench: client dropped or failed facts: {stats}")
    return stats.published / elapsed, stats.queued / calls


async def _gateway(bootstrap: str, lines: list[bytes], log: Path) -> float:
    topic = await _topic(bootstrap)
    port = free_port("127.0.0.1")
    env = child_env()
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        ANALYTICS_FACTS_TOPIC=topic,
        ANALYTICS_GATEWAY_ADDR=f"127.0.0.1:{port}",
        PYTHONPATH=str(ROOT),
    )
    proc = spawn([sys.executable, "-m", "codex_analytics.cli.main", "gateway"], env, log)
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"producers bench: the gateway did not start; see {log}")
                await asyncio.sleep(0.1)
            bodies = [
                b"\n".join(lines[i : i + GATEWAY_BATCH])
                for i in range(0, len(lines), GATEWAY_BATCH)
            ]
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            for body in bodies:
                queue.put_nowait(body)
            accepted = 0

            async def post_all() -> None:
                nonlocal accepted
                while not queue.empty():
                    body = queue.get_nowait()
                    answer = await http.post("/v1/facts", content=body)
                    if answer.status_code != 200:
                        raise RuntimeError(
                            f"producers bench: gateway answered {answer.status_code}"
                        )
                    accepted += answer.json()["accepted"]

            started = time.perf_counter()
            await asyncio.gather(*(post_all() for _ in range(GATEWAY_CONCURRENCY)))
            elapsed = time.perf_counter() - started
        if accepted != len(lines):
            raise RuntimeError(f"producers bench: {accepted} of {len(lines)} accepted")
        return accepted / elapsed
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)


async def _one_run(facts: list[dict[str, Any]], tmp: Path) -> tuple[float, ...]:
    lines = [orjson.dumps(f) for f in facts]
    keys = [f["source"]["instance_id"].encode() for f in facts]
    with EmbeddedBroker(log_path=str(tmp / "broker.log")) as broker:
        bootstrap = broker.bootstrap_servers
        ceiling = await _ceiling(bootstrap, lines, keys)
        client, calls = await _client(bootstrap, facts, 1)
        packed, _ = await _client(bootstrap, facts, 256)
        gateway = await _gateway(bootstrap, lines, tmp / "gateway.log")
    return ceiling, client, packed, calls, gateway


def run(config: ProducersBenchConfig) -> list[Figure]:
    facts = _facts(config.facts)
    with tempfile.TemporaryDirectory() as tmp:
        samples = [asyncio.run(_one_run(facts, Path(tmp))) for _ in range(config.runs)]
    ceiling, client, packed, calls, gateway = (tuple(s[i] for s in samples) for i in range(5))

    def ratio(values: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(v / c * 1000 for v, c in zip(values, ceiling, strict=True))

    return [
        Figure(f"ceiling (aiokafka send + acks, {len(facts):,} facts)", "facts/s", ceiling),
        Figure("client track_* -> broker, 1 envelope per record", "facts/s", client),
        Figure("client / ceiling", "ratio x1000", ratio(client)),
        Figure("client track_* -> broker, packs of up to 256", "facts/s", packed),
        Figure("client (packs) / ceiling", "ratio x1000", ratio(packed)),
        Figure("client track_* call, caller side (never waits on the network)", "calls/s", calls),
        Figure(
            f"gateway over HTTP ({GATEWAY_CONCURRENCY} clients, {GATEWAY_BATCH}-line bodies)",
            "facts/s",
            gateway,
        ),
        Figure("gateway / ceiling", "ratio x1000", ratio(gateway)),
    ]
