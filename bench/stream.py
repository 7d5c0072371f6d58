"""The stream stage against the bare aiokafka ceiling, on one fresh embedded broker.

Both sides read the same pre-produced facts (the generator's mix, one envelope per
record, keyed by instance, 8 partitions) and are timed the same way: by the span of the
create-timestamps of the records they produce, so start-up and group joins are not
counted. facts/s = facts read / that span.

* ceiling: one aiokafka consumer -> orjson decode -> orjson encode -> aiokafka producer
  (``getmany`` batches, one output record per input record);
* stream: ``codex-analytics stream worker`` processes (1, then 2), fresh topics and group.

A stream run whose events do not all arrive is a row of its own ("failed: N of M events
after T s, logs in ..."), with the worker logs and the broker log of its broker copied
to ``bench-failures/<time>-stream/`` (git-ignored); the other runs go on.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from codex_analytics.contract import join_fact_pack
from codex_analytics.devtools.broker import EmbeddedBroker
from codex_analytics.runtime.kafka import (
    consumer_options,
    ensure_topics,
    read_from_start,
)
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator

from .common import (
    PARTITIONS,
    ceiling_producer_options,
    keep_failure,
    produce_records,
    stream_worker_env,
)
from .stats import Figure

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class StreamBenchConfig:
    facts: int = 50_000
    runs: int = 3
    workers: tuple[int, ...] = (1, 2)
    #: Record shapes: facts per record at most (1 = one envelope per record; more = packs
    #: of one instance's consecutive facts, as a client flushing its queue produces).
    packs: tuple[int, ...] = (1, 32)


def packed(facts: list[bytes], keys: list[bytes], size: int) -> tuple[list[bytes], list[bytes]]:
    """Group each instance's facts, in order, into records of up to ``size`` facts."""
    if size == 1:
        return facts, keys
    pending: dict[bytes, list[bytes]] = {}
    values, record_keys = [], []
    for fact, key in zip(facts, keys, strict=True):
        group = pending.setdefault(key, [])
        group.append(fact)
        if len(group) == size:
            values.append(join_fact_pack(group))
            record_keys.append(key)
            del pending[key]
    for key, group in pending.items():
        values.append(join_fact_pack(group))
        record_keys.append(key)
    return values, record_keys


async def _span(bootstrap: str, topic: str, want: int, within: float) -> tuple[int, float]:
    """(records, seconds between the first and last create-timestamp) of ``topic``."""
    records = await read_from_start(bootstrap, topic, want=want, within=within)
    if not records:
        return 0, 0.0
    stamps = [r.timestamp for r in records]
    return len(records), max(max(stamps) - min(stamps), 1) / 1000


async def _ceiling(bootstrap: str, source: str, sink: str, total: int, facts: int) -> float:
    await ensure_topics(bootstrap, {sink: PARTITIONS})
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"ceiling-{uuid.uuid4().hex}",
        **consumer_options(),
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **ceiling_producer_options())
    await consumer.start()
    await producer.start()
    seen = 0
    try:
        while seen < total:
            for batch in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for record in batch:
                    seen += 1
                    await producer.send(
                        sink, orjson.dumps(orjson.loads(record.value)), key=record.key
                    )
        await producer.flush()
    finally:
        await producer.stop()
        await consumer.stop()
    _, seconds = await _span(bootstrap, sink, total, within=60)
    return facts / seconds


class StreamRunFailed(Exception):
    """Not every expected event arrived (the message says how many, and when)."""


def _stream(
    bootstrap: str, source: str, total: int, expected_events: int, workers: int, log_dir: Path
) -> float:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    env = stream_worker_env(bootstrap, source, prefix)
    procs = []
    for n in range(workers):
        with open(log_dir / f"{prefix}-{n}.log", "wb") as log:  # the child keeps its own fd
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "codex_analytics.cli.main", "stream", "worker"],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    started = time.monotonic()
    try:
        count, seconds = asyncio.run(
            _span(bootstrap, f"{prefix}.events", expected_events, within=300)
        )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
    if count < expected_events:
        exits = [proc.returncode for proc in procs]
        raise StreamRunFailed(
            f"{count} of {expected_events} events after {time.monotonic() - started:.0f} s "
            f"({workers} worker(s) {prefix}, exit codes {exits})"
        )
    return total / seconds


def run(config: StreamBenchConfig) -> list[Figure]:
    from codex_analytics.contract import decode_fact
    from streams.reducer.offline import OfflineReducer

    generator = SessionGenerator(GeneratorConfig(instances=200, seed=21))
    facts = [orjson.dumps(f) for f in generator.facts(config.facts)]
    keys = [orjson.loads(f)["source"]["instance_id"].encode() for f in facts]
    reducer = OfflineReducer()
    expected_events = sum(len(reducer.apply(decode_fact(f)).events) for f in facts)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        for size in config.packs:
            values, record_keys = packed(facts, keys, size)
            shape = "1 fact/record" if size == 1 else f"packs of <= {size} facts"
            ceilings: list[float] = []
            #: Per worker count: (facts/s, the same run's ceiling) of the runs that passed.
            streams: dict[int, list[tuple[float, float]]] = {n: [] for n in config.workers}
            failures: list[str] = []
            for run_no in range(config.runs):
                # A fresh broker per run: its cost grows with what it holds.
                run_dir = log_dir / f"run-{size}-{run_no}"
                run_dir.mkdir()
                with EmbeddedBroker(log_path=str(run_dir / "broker.log")) as broker:
                    bootstrap = broker.bootstrap_servers
                    source = f"bench-facts-{uuid.uuid4().hex[:8]}"
                    asyncio.run(produce_records(bootstrap, source, values, record_keys))
                    ceilings.append(
                        asyncio.run(
                            _ceiling(
                                bootstrap, source, f"{source}.ceiling", len(values), len(facts)
                            )
                        )
                    )
                    failed = False
                    for workers in config.workers:
                        try:
                            rate = _stream(
                                bootstrap, source, len(facts), expected_events, workers, run_dir
                            )
                        except StreamRunFailed as exc:
                            failures.append(f"{workers} worker(s), {shape}: failed: {exc}")
                            failed = True
                        else:
                            streams[workers].append((rate, ceilings[-1]))
                if failed:  # the broker stopped: its log is complete
                    kept = keep_failure(run_dir, "stream")
                    failures[-1] += f", logs in {kept.relative_to(ROOT)}"
            figures.append(Figure(f"ceiling, {shape}", "facts/s", tuple(ceilings)))
            for workers, pairs in streams.items():
                if not pairs:
                    continue
                samples = tuple(rate for rate, _ in pairs)
                ratios = tuple(rate / ceiling * 1000 for rate, ceiling in pairs)
                figures.append(Figure(f"stream, {workers} worker(s), {shape}", "facts/s", samples))
                figures.append(
                    Figure(f"stream / ceiling, {workers} worker(s), {shape}", "ratio x1000", ratios)
                )
            figures += [Figure(f"stream run {line}", "failed", (0.0,)) for line in failures]
    return figures
