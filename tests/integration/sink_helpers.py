"""Driving sink workers (in-process or as processes) against a real broker and a real
HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from codex_analytics.contract import EventRecord, Origin, encode_event_record, route_key
from codex_analytics.contract.facts import AuthRoute
from codex_analytics.devtools.localstack import child_env
from codex_analytics.runtime.kafka import ensure_topics
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from sinks.credentials import CredentialChain
from sinks.settings import SinkSettings
from sinks.worker import SinkWorker
from streams.reducer.offline import OfflineReducer

from .stream_helpers import ROOT, cli_process, produce

TOKEN_PREFIX = "sekret-token-"


def token_for(account: str) -> str:
    return f"{TOKEN_PREFIX}{account}-Zq9"


def event_records(
    facts: int, *, instances: int = 20, accounts: int = 3, seed: int = 5
) -> list[EventRecord]:
    """Realistic events-topic records: generated facts through the offline reducer."""
    reducer = OfflineReducer()
    records: list[EventRecord] = []
    config = GeneratorConfig(instances=instances, seed=seed, accounts=accounts, duplicate_rate=0)
    from codex_analytics.contract import fact_from_json

    for obj in SessionGenerator(config).facts(facts):
        fact = fact_from_json(obj)
        route = fact.source.auth or AuthRoute()
        for index, event in enumerate(reducer.apply(fact).events):
            origin = Origin(fact.source.instance_id, fact.seq, index)
            records.append(EventRecord(route=route, origin=origin, event=event))
    return records


def with_route(records: list[EventRecord], route: AuthRoute) -> list[EventRecord]:
    return [EventRecord(route=route, origin=r.origin, event=r.event) for r in records]


def event_json(record: EventRecord) -> bytes:
    return orjson.dumps(record.event)


@dataclass
class SinkRun:
    """Topics, credentials and settings private to one test."""

    bootstrap: str
    prefix: str
    tmp: Path
    base_url: str = ""
    partitions: int = 4
    env_overrides: dict[str, str] = field(default_factory=dict)

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.events.dlq"

    @property
    def secrets_dir(self) -> Path:
        path = self.tmp / "secrets"
        path.mkdir(exist_ok=True)
        return path

    def add_account(self, account: str, *, fedramp: bool = False) -> None:
        token = token_for(account)
        content = (
            orjson.dumps({"access_token": token, "is_fedramp": True}) if fedramp else token.encode()
        )
        (self.secrets_dir / account).write_bytes(content)

    def env(self) -> dict[str, str]:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "ANALYTICS_EVENTS_TOPIC": self.events,
            "ANALYTICS_EVENTS_DLQ_TOPIC": self.dlq,
            "ANALYTICS_TOPIC_PARTITIONS": str(self.partitions),
            "ANALYTICS_SINK_GROUP": f"{self.prefix}-sink",
            "ANALYTICS_BASE_URL": self.base_url,
            "ANALYTICS_SECRETS_DIR": str(self.secrets_dir),
            "ANALYTICS_KAFKA_SESSION_TIMEOUT_MS": "4000",
            "ANALYTICS_BATCH_MAX_WAIT_MS": "200",
            "ANALYTICS_BATCH_LATENESS_MS": "100",
            "ANALYTICS_RETRY_INITIAL_MS": "50",
            "ANALYTICS_RETRY_MAX_MS": "400",
            "ANALYTICS_LOG_LEVEL": "INFO",
        }
        env.update(self.env_overrides)
        return {k: v for k, v in env.items() if v != ""}

    def settings(self) -> SinkSettings:
        return SinkSettings.from_env(self.env())

    async def create_topics(self) -> None:
        await ensure_topics(
            self.bootstrap, {self.events: self.partitions, self.dlq: self.partitions}
        )

    async def publish(self, records: list[EventRecord]) -> None:
        await produce(
            self.bootstrap,
            self.events,
            [encode_event_record(r) for r in records],
            keys=[route_key(r.route) for r in records],
        )

    @contextlib.asynccontextmanager
    async def worker(self) -> AsyncIterator[SinkWorker]:
        """An in-process sink worker, running as a task until the block ends."""
        worker = SinkWorker(
            self.settings(), self.bootstrap, credentials=CredentialChain.from_env(self.env())
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            yield worker
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    @contextlib.contextmanager
    def process(
        self, name: str = "sink", *, preexec_fn: Callable[[], None] | None = None
    ) -> Iterator[subprocess.Popen[bytes]]:
        """``codex-analytics sink worker`` as a child process (logs in ``tmp/name.log``);
        ``preexec_fn`` runs in the child before exec (a resource limit, say)."""
        env = child_env(**self.env(), PYTHONPATH=str(ROOT))
        log = self.tmp / f"{name}.log"
        with cli_process(["sink", "worker"], env, log, preexec_fn=preexec_fn) as proc:
            yield proc

    def log_text(self, name: str = "sink") -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    async def committed(self) -> dict[int, int | None]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=f"{self.prefix}-sink",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            return {
                p: await consumer.committed(TopicPartition(self.events, p))
                for p in range(self.partitions)
            }
        finally:
            await consumer.stop()


async def eventually(predicate, *, within: float, step: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(step)
    return True
