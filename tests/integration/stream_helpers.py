"""Driving stream workers as separate processes against a real broker."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from codex_analytics.contract import decode_fact, encode_event
from codex_analytics.devtools.localstack import child_env
from codex_analytics.runtime.kafka import read_from_start
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from streams.reducer.offline import OfflineReducer

ROOT = Path(__file__).resolve().parents[2]
FAST_GROUP = {"session_timeout_ms": 4000, "heartbeat_interval_ms": 500}
#: The workers' session timeout in tests (ANALYTICS_KAFKA_SESSION_TIMEOUT_MS).
FAST_SESSION_TIMEOUT_MS = "4000"


@dataclass
class StreamRun:
    """Topic names and worker environment private to one test."""

    bootstrap: str
    prefix: str
    log_dir: Path
    partitions: int = 8
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def facts(self) -> str:
        return f"{self.prefix}.facts"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.facts.dlq"

    def env(self) -> dict[str, str]:
        env = child_env()
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            ANALYTICS_FACTS_TOPIC=self.facts,
            ANALYTICS_EVENTS_TOPIC=self.events,
            ANALYTICS_FACTS_DLQ_TOPIC=self.dlq,
            ANALYTICS_TOPIC_PARTITIONS=str(self.partitions),
            ANALYTICS_STREAM_APP_ID=f"{self.prefix}-stream",
            ANALYTICS_LOG_LEVEL="INFO",
            # Joining takes half the session timeout on the embedded broker (the default
            # 10 s: 5 s per worker start), and a killed worker's partitions move after it.
            ANALYTICS_KAFKA_SESSION_TIMEOUT_MS=FAST_SESSION_TIMEOUT_MS,
            PYTHONPATH=str(ROOT),
        )
        env.update(self.extra_env)
        return env

    @contextmanager
    def worker(self, name: str = "w1") -> Iterator[subprocess.Popen[bytes]]:
        with cli_process(["stream", "worker"], self.env(), self.log_dir / f"{name}.log") as proc:
            yield proc

    def log_text(self, name: str = "w1") -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")


@contextmanager
def cli_process(
    args: list[str],
    env: dict[str, str],
    log_path: Path,
    *,
    module: str = "codex_analytics.cli.main",
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``codex-analytics ARGS`` (or ``python -m MODULE ARGS``) as a child process, output
    appended to ``log_path``; SIGTERM (then SIGKILL after 30 s) when the block ends,
    unless it already exited. ``preexec_fn`` runs in the child before exec (to drop
    privileges, say)."""
    log = open(log_path, "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        preexec_fn=preexec_fn,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def generated_facts(
    total: int, *, instances: int = 200, seed: int = 11, j_share: float = 0.0
) -> list[bytes]:
    """Generated facts; ``j_share`` of the instances speak contract 2026-08."""
    config = GeneratorConfig(instances=instances, seed=seed, j_share=j_share)
    return [orjson.dumps(f) for f in SessionGenerator(config).facts(total)]


def expected_events(facts: list[bytes]) -> list[bytes]:
    reducer = OfflineReducer()
    return sorted(encode_event(e) for f in facts for e in reducer.apply(decode_fact(f)).events)


async def produce(
    bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None] | None = None
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=False,
        linger_ms=10,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        for index, value in enumerate(values):
            if keys is not None:
                key = keys[index]
            else:
                try:
                    key = orjson.loads(value)["source"]["instance_id"].encode()
                except Exception:
                    key = None
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


@dataclass
class Collected:
    records: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    headers: list[dict[str, bytes]] = field(default_factory=list)
    #: The aiokafka records themselves (keys, tombstones).
    records_raw: list[Any] = field(default_factory=list)


async def collect(
    bootstrap: str, topic: str, *, want: int, within: float, settle: float = 2.0
) -> Collected:
    """Read ``topic`` from the start until ``want`` records arrived (then ``settle`` more
    seconds, to catch extra ones) or ``within`` seconds passed."""
    out = Collected()
    for record in await read_from_start(bootstrap, topic, want=want, within=within, settle=settle):
        out.raw.append(record.value)
        out.headers.append(dict(record.headers))
        out.records_raw.append(record)
        try:
            out.records.append(orjson.loads(record.value))
        except (orjson.JSONDecodeError, TypeError):  # not JSON, or a tombstone
            out.records.append({})
    return out


def event_bytes(collected: Collected) -> list[bytes]:
    return sorted(orjson.dumps(r["event"]) for r in collected.records)


def distinct_by_origin(collected: Collected) -> tuple[list[bytes], int]:
    """Events with exact repeats (same origin and bytes) folded; asserts that any two
    records with the same origin are byte-identical. Returns (events, repeats)."""
    seen: dict[tuple[str, int, int], bytes] = {}
    repeats = 0
    for raw, record in zip(collected.raw, collected.records, strict=True):
        origin = record["origin"]
        key = (origin["instance_id"], origin["seq"], origin["index"])
        if key in seen:
            assert seen[key] == raw, f"a repeat of {key} differs from the first record"
            repeats += 1
        else:
            seen[key] = raw
    return sorted(orjson.dumps(orjson.loads(v)["event"]) for v in seen.values()), repeats


def run(coro: Any) -> Any:
    return asyncio.run(coro)
