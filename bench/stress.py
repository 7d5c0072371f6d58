"""Two-worker stream runs under CPU load: does every expected event arrive, every run?

``python -m bench stress --runs 20 --facts 40000``: N consecutive runs, each on a fresh
embedded broker: the facts (the generator's mix, one envelope per record, keyed by
instance, 8 partitions) are produced, then ``workers`` stream worker processes start
side by side while busy-loop processes (one per core minus one, at least one) burn CPU
beside them. Odd runs start the workers together (they join at once); in even runs the
second starts once the first has written events (a rebalance while the first reads).
Each run's line adds what the workers' exit lines (``stream totals``) counted:
rebalances (assignments), seeks back, stalls found, records held by the guard. Each run is
checked event by event against ``reduce`` over the same facts: every expected event
(instance, seq, index) must arrive; missing ones are counted per facts partition.

A run that misses events or exceeds its deadline is a figure ("failed: N of M events
after T s, logs in ..."), never a crash of the suite: its worker logs and broker log are
kept in ``bench-failures/<time>-stress-<run>/`` (git-ignored), with a ``missing.json``
of what did not arrive. Passing runs' logs go with their temporary folder.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

from codex_analytics.devtools.broker import EmbeddedBroker, free_port
from codex_analytics.runtime.kafka import KafkaCluster
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator

from .common import PARTITIONS, keep_failure, produce_records, spawn, stream_worker_env
from .diagnose import _get, _positions, _py_spy_dump
from .stats import Figure

EventId = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class StressConfig:
    runs: int = 20
    facts: int = 40_000
    workers: int = 2
    #: Busy-loop processes beside the workers (None: one per core minus one, at least 1).
    burners: int | None = None
    #: A run that has not delivered every expected event by then has failed.
    deadline_s: float = 240.0
    #: In even runs, the second worker starts once this many events arrived (the first
    #: is reading), or after ``stagger_s`` at most; odd runs start them together.
    stagger_events: int = 500
    stagger_s: float = 60.0


@dataclass(slots=True)
class RunResult:
    run: int
    seconds: float
    expected: int
    arrived: int  # distinct expected events that arrived
    duplicates: int
    missing_by_partition: dict[int, int] = field(default_factory=dict)
    logs: Path | None = None
    #: Summed over the workers' exit lines: rebalances, seeks, stalls, held.
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.arrived == self.expected

    @property
    def stalled(self) -> bool:
        """A worker found a partition fetched past what reached it (and read it again)."""
        return self.totals.get("stalls", 0) > 0

    def line(self) -> str:
        counted = "".join(f", {k} {v}" for k, v in self.totals.items())
        if self.ok:
            status = "ok" if not self.stalled else "ok after a stall"
            kept = f", logs in {self.logs}" if self.logs else ""
            return (
                f"run {self.run}: {status}, {self.arrived} events in {self.seconds:.1f} s "
                f"({self.duplicates} duplicates{counted}){kept}"
            )
        return (
            f"run {self.run}: failed: {self.arrived} of {self.expected} events after "
            f"{self.seconds:.0f} s, missing per facts partition {self.missing_by_partition}"
            f"{counted}, logs in {self.logs}"
        )


def _burn() -> None:  # pragma: no cover - a child process spinning until terminated
    while True:
        pass


@contextmanager
def cpu_burners(count: int) -> Iterator[None]:
    """``count`` busy-loop processes for as long as the block runs."""
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_burn, daemon=True) for _ in range(count)]
    for proc in procs:
        proc.start()
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(10)


def expected_events(facts: list[bytes]) -> set[EventId]:
    """Every event ``reduce`` makes of ``facts``, by (instance, seq, index)."""
    from codex_analytics.contract import decode_fact
    from streams.reducer.offline import OfflineReducer

    reducer = OfflineReducer()
    out: set[EventId] = set()
    for raw in facts:
        fact = decode_fact(raw)
        n = len(reducer.apply(fact).events)
        out.update((fact.source.instance_id, fact.seq, i) for i in range(n))
    return out


_PARTITIONER = DefaultPartitioner()


def facts_partition(instance_id: str) -> int:
    """The facts partition an instance's records go to (the producer's partitioner)."""
    parts = list(range(PARTITIONS))
    return int(_PARTITIONER(instance_id.encode(), parts, parts))


async def _collect(
    bootstrap: str, topic: str, want: set[EventId], deadline: float
) -> tuple[set[EventId], int]:
    """Read ``topic`` from the start until every event of ``want`` arrived or the
    deadline passed: (the distinct event ids seen, records read)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        **KafkaCluster.of(bootstrap).client_options(),
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
    )
    await consumer.start()
    seen: set[EventId] = set()
    records = 0
    try:
        await _topic_created(consumer, topic, deadline)
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        while not want <= seen and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for batch in batches.values():
                for record in batch:
                    records += 1
                    origin = orjson.loads(record.value)["origin"]
                    seen.add((origin["instance_id"], origin["seq"], origin["index"]))
    finally:
        await consumer.stop()
    return seen, records


async def _topic_created(consumer: Any, topic: str, deadline: float) -> None:
    """Until ``topic`` exists (the first worker creates it) or the deadline passes."""
    while time.monotonic() < deadline:
        if topic in await consumer.topics():
            return
        await asyncio.sleep(0.5)


def _snapshot(
    procs: list[subprocess.Popen[bytes]],
    ports: list[int],
    bootstrap: str,
    group: str,
    facts_topic: str,
    out: Path,
) -> None:
    """A failed run, before its workers stop: each worker's stack (py-spy), its
    ``/readyz`` and ``/metrics`` (the per-partition counts), and the group's committed
    offsets against the partitions' ends. Never raises: it explains a failure."""
    report: list[str] = []
    try:
        for n, (proc, port) in enumerate(zip(procs, ports, strict=True)):
            report += [f"== worker {n} (pid {proc.pid}, exit {proc.poll()})", ""]
            if proc.poll() is None:
                report.append(_py_spy_dump(proc.pid))
                for path in ("/readyz", "/metrics"):
                    report += [f"-- {path}", _get(port, path), ""]
        report += [f"== group {group} on {facts_topic}", ""]
        report.append(asyncio.run(_positions(bootstrap, group, facts_topic)))
    except Exception as err:  # a snapshot never hides the failure it explains
        report.append(f"snapshot failed: {err!r}")
    out.write_text("\n".join(report) + "\n", encoding="utf-8")


#: What the stress line sums of the workers' ``stream totals`` exit lines.
TOTALS = ("rebalances", "seeks", "stalls", "held")


def worker_totals(logs: list[Path]) -> dict[str, int]:
    """``TOTALS`` summed over the last ``stream totals`` line of each worker log (JSON
    lines); a worker that wrote none (killed, or still joining) adds nothing."""
    out = dict.fromkeys(TOTALS, 0)
    for log in logs:
        last: dict[str, Any] = {}
        for line in log.read_bytes().splitlines():
            if b'"stream totals"' in line:
                last = orjson.loads(line)
        for key in TOTALS:
            out[key] += int(last.get(key, 0))
    return out


async def _first_events(bootstrap: str, topic: str, count: int, within: float) -> None:
    """Until ``topic`` holds ``count`` records, or ``within`` seconds passed."""
    from aiokafka import AIOKafkaConsumer

    from codex_analytics.runtime.kafka import read_from_start

    deadline = time.monotonic() + within
    consumer = AIOKafkaConsumer(**KafkaCluster.of(bootstrap).client_options(), group_id=None)
    await consumer.start()
    try:  # never read a topic before the worker created it (no auto-creation)
        await _topic_created(consumer, topic, deadline)
    finally:
        await consumer.stop()
    while time.monotonic() < deadline:
        if len(await read_from_start(bootstrap, topic, want=count, within=2)) >= count:
            return
        await asyncio.sleep(0.2)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def one_run(
    run: int, config: StressConfig, facts: list[bytes], keys: list[bytes], want: set[EventId]
) -> RunResult:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-stress-{run}-"))
    try:
        with EmbeddedBroker(log_path=str(tmp / "broker.log")) as broker:
            bootstrap = broker.bootstrap_servers
            source = f"stress-facts-{uuid.uuid4().hex[:8]}"
            asyncio.run(produce_records(bootstrap, source, facts, keys))
            prefix = f"stress-{uuid.uuid4().hex[:8]}"
            env = stream_worker_env(bootstrap, source, prefix)
            command = [sys.executable, "-m", "codex_analytics.cli.main", "stream", "worker"]
            ports = [free_port("127.0.0.1") for _ in range(config.workers)]
            started = time.monotonic()
            procs: list[subprocess.Popen[bytes]] = []
            try:
                for n, port in enumerate(ports):
                    if n and run % 2 == 0:
                        asyncio.run(
                            _first_events(
                                bootstrap,
                                f"{prefix}.events",
                                config.stagger_events,
                                config.stagger_s,
                            )
                        )
                    worker_env = {**env, "ANALYTICS_STREAM_HEALTH_ADDR": f"127.0.0.1:{port}"}
                    procs.append(spawn(command, worker_env, tmp / f"worker-{n}.log"))
                seen, records = asyncio.run(
                    _collect(bootstrap, f"{prefix}.events", want, started + config.deadline_s)
                )
                if not want <= seen:
                    group = env["ANALYTICS_STREAM_APP_ID"]
                    _snapshot(procs, ports, bootstrap, group, source, tmp / "snapshot.txt")
            finally:
                _stop(procs)
            seconds = time.monotonic() - started
        missing = want - seen
        logs = [tmp / f"worker-{n}.log" for n in range(config.workers)]
        result = RunResult(
            run,
            seconds,
            expected=len(want),
            arrived=len(want & seen),
            duplicates=records - len(seen),
            missing_by_partition=dict(
                sorted(Counter(facts_partition(i) for i, _, _ in missing).items())
            ),
            totals=worker_totals([log for log in logs if log.exists()]),
        )
        if result.ok and result.stalled:  # every event, but late: keep what says why
            result.logs = keep_failure(tmp, f"stress-{run}-stalled")
        if not result.ok:
            kept = keep_failure(tmp, f"stress-{run}")
            result.logs = kept
            (kept / "missing.json").write_bytes(
                orjson.dumps(
                    {
                        "line": result.line(),
                        "missing_by_partition": result.missing_by_partition,
                        "missing": sorted(missing)[:1000],
                        "exit_codes": [p.returncode for p in procs],
                    },
                    option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                )
            )
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(config: StressConfig) -> list[Figure]:
    generator = SessionGenerator(GeneratorConfig(instances=200, seed=21))
    facts = [orjson.dumps(f) for f in generator.facts(config.facts)]
    keys = [orjson.loads(f)["source"]["instance_id"].encode() for f in facts]
    want = expected_events(facts)
    burners = config.burners
    if burners is None:
        burners = max(1, (os.cpu_count() or 2) - 1)
    results: list[RunResult] = []
    with cpu_burners(burners):
        for n in range(1, config.runs + 1):
            result = one_run(n, config, facts, keys, want)
            print(result.line(), file=sys.stderr, flush=True)
            results.append(result)
    shape = f"{config.workers} workers, {config.facts} facts, {burners} CPU burner(s)"
    failed = [r for r in results if not r.ok]
    figures = [
        Figure(f"stress, {shape}: seconds per run", "s", tuple(r.seconds for r in results)),
        Figure(
            f"stress, {shape}: runs with every event",
            f"of {len(results)}",
            (float(len(results) - len(failed)),),
        ),
        Figure(
            f"stress, {shape}: runs with a stalled partition (found and read again)",
            f"of {len(results)}",
            (float(sum(r.stalled for r in results)),),
        ),
    ]
    for r in failed:
        figures.append(
            Figure(
                f"stress run {r.run} failed: {r.arrived} of {r.expected} events after "
                f"{r.seconds:.0f} s, logs in {r.logs}",
                "events",
                (float(r.arrived),),
            )
        )
    return figures
