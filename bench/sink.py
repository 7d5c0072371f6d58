"""The sink stage against a bare aiokafka + httpx ceiling, on one fresh embedded broker.

Both read the same pre-produced events-topic records (the generator's mix through the
reducer, 10 accounts, keyed by route, 8 partitions) and POST to the same recording
receiver in this process. Both run as their own process and are timed the same way:
by the span between the first and the last request the receiver got, so start-up and
group joins are not counted. events/s = events / that span.

* ceiling: ``bench.sink_ceiling``: getmany -> join raw values by 500 -> POST;
* sink: ``codex-analytics sink worker`` (decode, route batches, gate, headers, commits);
* bare httpx loop: ``bench.sink_ceiling bodies``: the very bodies and headers the sink
  sent, POSTed one after another by one httpx client (the issue's ceiling: HTTP alone).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from codex_analytics.contract import (
    AuthRoute,
    EventRecord,
    Origin,
    encode_event_record,
    fact_from_json,
    route_key,
)
from codex_analytics.devtools.broker import EmbeddedBroker
from codex_analytics.devtools.localstack import child_env
from codex_analytics.devtools.receiver import Receiver
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from streams.reducer.offline import OfflineReducer

from .common import PARTITIONS, ROOT, produce_records, spawn
from .stats import Figure

ACCOUNTS = 10
#: Set by the client itself on every request.
_TRANSPORT_HEADERS = frozenset(
    {"host", "content-length", "connection", "accept-encoding", "user-agent", "accept"}
)


@dataclass(frozen=True, slots=True)
class SinkBenchConfig:
    facts: int = 200_000
    runs: int = 3
    #: Extra environment for the sink worker (to explore settings).
    sink_env: tuple[tuple[str, str], ...] = ()


def event_records(facts: int) -> tuple[list[bytes], list[bytes], list[str]]:
    """(values, keys, accounts) of the events the generator's facts reduce to."""
    reducer = OfflineReducer()
    values, keys = [], []
    accounts: set[str] = set()
    config = GeneratorConfig(instances=200, seed=31, accounts=ACCOUNTS)
    for obj in SessionGenerator(config).facts(facts):
        fact = fact_from_json(obj)
        route = fact.source.auth or AuthRoute()
        if route.account_id:
            accounts.add(route.account_id)
        for index, event in enumerate(reducer.apply(fact).events):
            record = EventRecord(route, Origin(fact.source.instance_id, fact.seq, index), event)
            values.append(encode_event_record(record))
            keys.append(route_key(route))
    return values, keys, sorted(accounts)


def clean_env() -> dict[str, str]:
    """This process's environment for a child: no ``ANALYTICS_*`` or ``CODEX_*``
    setting of its own, the project on ``PYTHONPATH``."""
    return child_env(PYTHONPATH=str(ROOT))


def sink_worker_env(
    bootstrap: str,
    topic: str,
    base_url: str,
    secrets: Path,
    extra_env: tuple[tuple[str, str], ...] = (),
) -> dict[str, str]:
    """A sink worker's environment: it reads ``topic`` and posts to ``base_url``."""
    return {
        **clean_env(),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ANALYTICS_EVENTS_TOPIC": topic,
        "ANALYTICS_EVENTS_DLQ_TOPIC": f"{topic}.dlq",
        "ANALYTICS_TOPIC_PARTITIONS": str(PARTITIONS),
        "ANALYTICS_SINK_GROUP": f"{topic}-sink",
        "ANALYTICS_BASE_URL": base_url,
        "ANALYTICS_SECRETS_DIR": str(secrets),
        **dict(extra_env),
    }


def write_secrets(tmp: Path, accounts: list[str]) -> Path:
    """A secrets directory in ``tmp`` with a token for each of ``accounts``."""
    secrets = tmp / "secrets"
    secrets.mkdir(exist_ok=True)
    for account in accounts:
        (secrets / account).write_text(f"bench-token-{account}")
    return secrets


def peak_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def _measure(
    command: list[str], env: dict[str, str], receiver: Receiver, events: int, log: Path
) -> tuple[float, float]:
    """Run ``command`` until the receiver holds ``events`` events: (events/s, peak RSS MB)."""
    receiver.reset()
    proc = spawn(command, env, log)
    peak = 0.0

    async def sample() -> None:  # VmHWM is the process's own high-water mark
        nonlocal peak
        while proc.poll() is None:
            peak = max(peak, peak_rss_mb(proc.pid))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    try:
        got = await receiver.wait_for_events(events, within=600)
        peak = max(peak, peak_rss_mb(proc.pid))
        sampler.cancel()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
    if len(got) < events:
        raise RuntimeError(f"sink bench: {len(got)} of {events} events arrived; see {log}")
    stamps = [r.at for r in receiver.requests]
    return events / max(max(stamps) - min(stamps), 1e-3), peak


async def _one_run(
    values: list[bytes],
    keys: list[bytes],
    accounts: list[str],
    tmp: Path,
    extra_env: tuple[tuple[str, str], ...] = (),
) -> tuple[float, float, float, float, float]:
    secrets = write_secrets(tmp, accounts)
    with EmbeddedBroker(log_path=str(tmp / "broker.log")) as broker:
        bootstrap = broker.bootstrap_servers
        topic = f"bench-events-{uuid.uuid4().hex[:8]}"
        await produce_records(bootstrap, topic, values, keys)
        async with Receiver() as receiver:
            url = receiver.base_url.rstrip("/") + "/codex/analytics-events/events"
            base_env = clean_env()
            ceiling, ceiling_rss = await _measure(
                [
                    sys.executable,
                    "-m",
                    "bench.sink_ceiling",
                    "kafka",
                    bootstrap,
                    topic,
                    url,
                    str(len(values)),
                ],
                base_env,
                receiver,
                len(values),
                tmp / "ceiling.log",
            )
            sink_env = sink_worker_env(bootstrap, topic, receiver.base_url, secrets, extra_env)
            sink, sink_rss = await _measure(
                [sys.executable, "-m", "codex_analytics.cli.main", "sink", "worker"],
                sink_env,
                receiver,
                len(values),
                tmp / "sink.log",
            )
            # The same bodies and headers the sink sent, by a bare httpx loop.
            bodies = tmp / "bodies.jsonl"
            lines = []
            for request in receiver.requests:
                headers = {k: v for k, v in request.headers.items() if k not in _TRANSPORT_HEADERS}
                lines.append(orjson.dumps([headers, request.body.decode()]) + b"\n")
            bodies.write_bytes(b"".join(lines))
            http, _ = await _measure(
                [sys.executable, "-m", "bench.sink_ceiling", "bodies", str(bodies), url],
                base_env,
                receiver,
                len(values),
                tmp / "http.log",
            )
    return ceiling, sink, ceiling_rss, sink_rss, http


def run(config: SinkBenchConfig) -> list[Figure]:
    values, keys, accounts = event_records(config.facts)
    samples: list[tuple[float, float, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(config.runs):
            samples.append(
                asyncio.run(_one_run(values, keys, accounts, Path(tmp), config.sink_env))
            )
    ceiling, sink, ceiling_rss, sink_rss, http = (tuple(s[i] for s in samples) for i in range(5))
    return [
        Figure("bare httpx loop, the sink's own bodies (500 events)", "events/s", http),
        Figure(
            "sink / bare httpx loop",
            "ratio x1000",
            tuple(s / h * 1000 for s, h in zip(sink, http, strict=True)),
        ),
        Figure(f"ceiling (aiokafka + httpx, {len(values):,} events)", "events/s", ceiling),
        Figure("sink worker, 1 process", "events/s", sink),
        Figure(
            "sink / ceiling",
            "ratio x1000",
            tuple(s / c * 1000 for s, c in zip(sink, ceiling, strict=True)),
        ),
        Figure("ceiling peak RSS", "MB", ceiling_rss),
        Figure("sink worker peak RSS", "MB", sink_rss),
    ]
