"""The sink stage against a bare aiokafka + httpx ceiling, on one fresh embedded broker.

Both read the same pre-produced events-topic records (the generator's mix through the
reducer, 10 accounts, keyed by route, 8 partitions) and POST to the same recording
receiver in this process. Both run as their own process and are timed the same way:
by the span between the first and the last request the receiver got, so start-up and
group joins are not counted. events/s = events / that span.

* ceiling: ``bench.sink_ceiling``: getmany -> join raw values by 500 -> POST;
* sink: ``codex-analytics sink worker`` (decode, route batches, gate, headers, commits),
  once with each HTTP client (``ANALYTICS_HTTP_CLIENT``: aiohttp, the default, and httpx);
* bare loops: ``bench.sink_ceiling bodies``: the very bodies and headers the sink sent,
  POSTed one after another by one client, httpx (the issue's ceiling: HTTP alone) and
  aiohttp;
* the parts no sink can skip while each event is a Kafka record of its own, in this
  process: a bare consumer with the sink's settings reading the topic (getmany only),
  and the sink's decoding of each record (``to_sink_record``), CPU per record.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

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
from codex_analytics.runtime.kafka import consumer_options
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from sinks.decoding import to_sink_record
from sinks.memory import GETMANY_MAX_RECORDS
from sinks.worker import CONSUMER_TUNING
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


@dataclass(slots=True)
class RunFigures:
    """One run's figures (events/s; RSS in MB)."""

    ceiling: Measured | None = None
    sink: dict[str, Measured] = field(default_factory=dict)  # by HTTP client
    bare: dict[str, Measured] = field(default_factory=dict)  # by HTTP client
    #: CPU µs per record of consuming alone, and of the sink's decoding alone.
    consume_us: float = math.nan
    decode_us: float = math.nan


#: The sink's HTTP clients, the default first.
CLIENTS = ("aiohttp", "httpx")


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


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process used so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Measured:
    rate: float  # events/s between the first and the last request the receiver got
    peak_rss_mb: float
    #: CPU time the process spent per event from its first request to its last (start-up
    #: left out): what a loaded machine changes least.
    cpu_us_per_event: float


async def _measure(
    command: list[str], env: dict[str, str], receiver: Receiver, events: int, log: Path
) -> Measured:
    """Run ``command`` until the receiver holds ``events`` events."""
    receiver.reset()
    proc = spawn(command, env, log)
    peak = 0.0
    cpu_at_first: float | None = None

    async def sample() -> None:  # VmHWM is the process's own high-water mark
        nonlocal peak, cpu_at_first
        while proc.poll() is None:
            peak = max(peak, peak_rss_mb(proc.pid))
            if cpu_at_first is None and receiver.requests:
                cpu_at_first = cpu_seconds(proc.pid)
            await asyncio.sleep(0.1 if cpu_at_first is not None else 0.005)

    sampler = asyncio.create_task(sample())
    try:
        got = await receiver.wait_for_events(events, within=600)
        cpu_at_end = cpu_seconds(proc.pid)
        peak = max(peak, peak_rss_mb(proc.pid))
        sampler.cancel()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
    if len(got) < events:
        raise RuntimeError(f"sink bench: {len(got)} of {events} events arrived; see {log}")
    stamps = [r.at for r in receiver.requests]
    cpu = cpu_at_end - (cpu_at_first if cpu_at_first is not None else cpu_at_end)
    return Measured(events / max(max(stamps) - min(stamps), 1e-3), peak, cpu / events * 1e6)


async def consume_cpu_us(bootstrap: str, topic: str, total: int, *, within: float = 300) -> float:
    """CPU µs per record of a bare consumer with the sink's settings reading ``total``
    records of ``topic`` (``getmany``, nothing else), from its join to its last record:
    Kafka's share of a sink, measured in this process."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"consume-{uuid.uuid4().hex}",
        **{**consumer_options(), **CONSUMER_TUNING},
    )
    await consumer.start()
    try:
        seen = 0
        started = time.process_time()
        async with asyncio.timeout(within):
            while seen < total:
                batches = await consumer.getmany(timeout_ms=200, max_records=GETMANY_MAX_RECORDS)
                seen += sum(len(records) for records in batches.values())
        return (time.process_time() - started) / seen * 1e6
    finally:
        await consumer.stop()


def decode_cpu_us(values: list[bytes], *, passes: int = 3) -> float:
    """CPU µs per record of the sink's decoding alone (``to_sink_record``: the route
    looked up, the origin decoded, the event checked to be JSON), the best of a few
    passes over ``values``."""
    best = math.inf
    for _ in range(passes):
        started = time.process_time()
        for offset, value in enumerate(values):
            to_sink_record(offset, 0, None, value)
        best = min(best, time.process_time() - started)
    return best / len(values) * 1e6


async def _one_run(
    values: list[bytes],
    keys: list[bytes],
    accounts: list[str],
    tmp: Path,
    extra_env: tuple[tuple[str, str], ...] = (),
) -> RunFigures:
    secrets = write_secrets(tmp, accounts)
    figures = RunFigures()
    with EmbeddedBroker(log_path=str(tmp / "broker.log")) as broker:
        bootstrap = broker.bootstrap_servers
        topic = f"bench-events-{uuid.uuid4().hex[:8]}"
        await produce_records(bootstrap, topic, values, keys)
        figures.consume_us = await consume_cpu_us(bootstrap, topic, len(values))
        figures.decode_us = decode_cpu_us(values)
        async with Receiver() as receiver:
            url = receiver.base_url.rstrip("/") + "/codex/analytics-events/events"
            base_env = clean_env()
            figures.ceiling = await _measure(
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
            bodies = tmp / "bodies.jsonl"
            for client in CLIENTS:
                # A group of its own per client: each reads the topic from the start.
                sink_env = sink_worker_env(
                    bootstrap,
                    f"{topic}",
                    receiver.base_url,
                    secrets,
                    (
                        ("ANALYTICS_HTTP_CLIENT", client),
                        ("ANALYTICS_SINK_GROUP", f"{topic}-sink-{client}"),
                        *extra_env,
                    ),
                )
                figures.sink[client] = await _measure(
                    [sys.executable, "-m", "codex_analytics.cli.main", "sink", "worker"],
                    sink_env,
                    receiver,
                    len(values),
                    tmp / f"sink-{client}.log",
                )
                if client == CLIENTS[0]:
                    # The same bodies and headers the sink sent, for the bare loops.
                    lines = []
                    for request in receiver.requests:
                        headers = {
                            k: v for k, v in request.headers.items() if k not in _TRANSPORT_HEADERS
                        }
                        lines.append(orjson.dumps([headers, request.body.decode()]) + b"\n")
                    bodies.write_bytes(b"".join(lines))
            for client in ("httpx", "aiohttp"):
                figures.bare[client] = await _measure(
                    [
                        sys.executable,
                        "-m",
                        "bench.sink_ceiling",
                        "bodies",
                        str(bodies),
                        url,
                        client,
                    ],
                    base_env,
                    receiver,
                    len(values),
                    tmp / f"bare-{client}.log",
                )
    return figures


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def budget(samples: list[RunFigures]) -> str:
    """What the CPU per event says, in words: the medians of this run's figures."""
    sink = _median([s.sink[CLIENTS[0]].cpu_us_per_event for s in samples])
    bare = _median([s.bare["httpx"].cpu_us_per_event for s in samples])
    bare_aiohttp = _median([s.bare["aiohttp"].cpu_us_per_event for s in samples])
    ceiling = _median([s.ceiling.cpu_us_per_event for s in samples if s.ceiling])
    consume = _median([s.consume_us for s in samples])
    decode = _median([s.decode_us for s in samples])
    if bare <= 0:  # a run too short for the CPU clock's ticks (--quick)
        return "The runs were too short to measure CPU per event."
    target = bare / 0.8
    floor = consume + decode + bare_aiohttp
    return (
        "What the CPU per event says (medians; CPU time from each process's first "
        "request to its last, which a loaded machine changes least): the bare httpx "
        f"loop spends {bare:.1f} µs per event, the aiokafka + httpx ceiling "
        f"{ceiling:.1f} µs, the sink ({CLIENTS[0]}) {sink:.1f} µs. Where the processes "
        "share two cores with the broker and the receiver, events/s follow CPU per "
        f"event: a sink at 0.8x the bare httpx loop would have to spend about {target:.1f} "
        "µs per event. While each event is a Kafka record of its own, three parts are "
        f"paid per event whatever the sink does: consuming the record ({consume:.1f} µs, "
        "a bare consumer with the sink's settings), decoding it "
        f"({decode:.1f} µs: the route looked up, the origin decoded, the event parsed "
        f"once to prove it is JSON) and posting it ({bare_aiohttp:.1f} µs, the bare "
        f"aiohttp loop): {floor:.1f} µs together, {floor / target:.2f}x that budget. The "
        f"sink's remaining {sink - floor:.1f} µs are batching by route, the gate, "
        "idempotency keys, the lanes and commits."
    )


def run(config: SinkBenchConfig) -> tuple[list[Figure], str]:
    values, keys, accounts = event_records(config.facts)
    samples: list[RunFigures] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(config.runs):
            samples.append(
                asyncio.run(_one_run(values, keys, accounts, Path(tmp), config.sink_env))
            )
    ceilings = [s.ceiling for s in samples if s.ceiling is not None]
    default = CLIENTS[0]

    def rates(by_client: str, of: str) -> tuple[float, ...]:
        return tuple(getattr(s, of)[by_client].rate for s in samples)

    def cpu(by_client: str, of: str) -> tuple[float, ...]:
        return tuple(getattr(s, of)[by_client].cpu_us_per_event for s in samples)

    figures = [
        Figure(
            "bare httpx loop, the sink's own bodies (500 events)",
            "events/s",
            rates("httpx", "bare"),
        ),
        Figure("bare aiohttp loop, the same bodies", "events/s", rates("aiohttp", "bare")),
    ]
    for client in CLIENTS:
        figures.append(
            Figure(
                f"sink ({client}) / bare httpx loop",
                "ratio x1000",
                tuple(s.sink[client].rate / s.bare["httpx"].rate * 1000 for s in samples),
            )
        )
    figures.append(
        Figure(
            f"ceiling (aiokafka + httpx, {len(values):,} events)",
            "events/s",
            tuple(c.rate for c in ceilings),
        )
    )
    for client in CLIENTS:
        label = f"sink worker, 1 process, {client}" + (
            " (the default)" if client == default else ""
        )
        figures.append(Figure(label, "events/s", rates(client, "sink")))
    figures.append(
        Figure(
            f"sink ({default}) / ceiling",
            "ratio x1000",
            tuple(s.sink[default].rate / s.ceiling.rate * 1000 for s in samples if s.ceiling),
        )
    )
    for client in CLIENTS:
        figures.append(Figure(f"sink worker CPU per event, {client}", "µs", cpu(client, "sink")))
    for client in ("httpx", "aiohttp"):
        figures.append(Figure(f"bare {client} loop CPU per event", "µs", cpu(client, "bare")))
    figures += [
        Figure("ceiling CPU per event", "µs", tuple(c.cpu_us_per_event for c in ceilings)),
        Figure(
            "Kafka alone: a bare consumer, the sink's settings, CPU per record",
            "µs",
            tuple(s.consume_us for s in samples),
        ),
        Figure(
            "decoding alone: to_sink_record, CPU per record",
            "µs",
            tuple(s.decode_us for s in samples),
        ),
        Figure("ceiling peak RSS", "MB", tuple(c.peak_rss_mb for c in ceilings)),
        Figure(
            f"sink worker peak RSS ({default})",
            "MB",
            tuple(s.sink[default].peak_rss_mb for s in samples),
        ),
    ]
    return figures, budget(samples)
