"""Cost per fact: CPU-seconds per million facts of each service at a fixed rate, and
4 partitions x 2 stream workers against 1 worker.

Every phase runs on a fresh embedded broker with private topics of 4 partitions and the
real services as processes: ``codex-analytics gateway``, ``workers`` x ``codex-analytics
stream worker`` and ``codex-analytics sink worker`` in capture mode (a JSON-lines file;
``ANALYTICS_CAPTURE_IGNORES_AUTH`` so that every event is written). The facts are the
generator's (200 instances), posted to the gateway as JSON-lines bodies of ``body``
facts.

A phase: ``warmup`` facts go in at once and the phase waits until all their events are
in the capture file (start-up, group joins; not measured). Then each service's CPU time
is read (``utime + stime`` from ``/proc/<pid>/stat``, its child processes included;
the broker's process too), ``facts`` are posted paced at ``rate`` facts/s by one poster
(body ``i`` is due at ``start + i * body / rate``, absolute deadlines; each body after
the last one's answer, so an instance's facts stay in order), and the window ends when
every event of all facts so far is in the capture file; the CPU times are read again.
CPU per million facts = (CPU delta) / facts x 10^6. Throughput: the paced facts over
the window (at a fixed rate it shows whether the pipeline kept up), and, after the
window, ``burst`` facts posted as fast as the gateway answers (4 concurrent posters, each
owning a quarter of the instances, so that no instance's facts are reordered),
over the time from the first post to the last of their events in the capture file.

Correctness: the capture file must hold every event ``reduce`` makes of the facts
(a multiset: an event delivered twice counts as a repeat, shown; one missing fails the
phase). A failed phase is a figure of failure (a row ``phase failed``), its folder of
logs (gateway, workers, sink, broker, the capture file) kept by :func:`keep_failure`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from codex_analytics.devtools.broker import EmbeddedBroker, free_port, terminate
from codex_analytics.devtools.localstack import child_env, create_topics, private_topics, topics_env
from codex_analytics.devtools.verify import captured_events, reference_events
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator

from .common import ROOT, keep_failure, spawn
from .stats import Figure

CLI = [sys.executable, "-m", "codex_analytics.cli.main"]
SERVICES = ("gateway", "stream", "sink", "broker")
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CostBenchConfig:
    #: Facts of the paced (measured) window.
    facts: int = 40_000
    #: The fixed rate of the paced window, facts/s.
    rate: float = 2_000.0
    #: Facts posted flat out after the window (throughput); 0 leaves it out.
    burst: int = 20_000
    warmup: int = 500
    runs: int = 1
    #: Stream workers of each phase (4 partitions).
    workers: tuple[int, ...] = (1, 2)
    partitions: int = 4
    body: int = 100
    timeout_s: float = 120.0
    seed: int = 61

    def __post_init__(self) -> None:
        if min(self.facts, self.warmup, self.runs, self.body, self.partitions) < 1:
            raise ValueError("facts, warmup, runs, body and partitions must be at least 1")
        if self.rate <= 0 or not self.workers or min(self.workers) < 1:
            raise ValueError("rate must be positive and workers at least 1 each")


#: The smoke (about 15 s, mostly start-up and the group join): one worker, 1,000 facts.
QUICK = CostBenchConfig(facts=1_000, rate=1_000.0, burst=0, warmup=100, workers=(1,))


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants, in seconds (0 once gone)."""
    total = 0
    for p in (pid, *_descendants(pid)):
        try:
            with open(f"/proc/{p}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After "pid (comm)": field 3 is state, so utime (14) and stime (15) are [11], [12].
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@dataclass(slots=True)
class PhaseResult:
    workers: int
    ok: bool = False
    #: CPU-seconds per million facts by service ("stream": all workers together).
    cpu_per_million: dict[str, float] = field(default_factory=dict)
    paced_rate: float = 0.0
    burst_rate: float = 0.0
    repeats: int = 0
    error: str = ""


class _PhaseFailed(RuntimeError):
    pass


def _facts(config: CostBenchConfig) -> list[bytes]:
    generator = SessionGenerator(GeneratorConfig(instances=200, seed=config.seed, duplicate_rate=0))
    return [orjson.dumps(f) for f in generator.facts(config.warmup + config.facts + config.burst)]


def _bodies(lines: list[bytes], size: int) -> list[bytes]:
    return [b"\n".join(lines[i : i + size]) for i in range(0, len(lines), size)]


async def _post(http: httpx.AsyncClient, body: bytes) -> None:
    answer = await http.post("/v1/facts", content=body)
    if answer.status_code != 200:
        raise _PhaseFailed(f"cost bench: the gateway answered {answer.status_code}")


async def _await_capture(
    capture: Path,
    expected: list[bytes],
    procs: dict[str, list[subprocess.Popen[bytes]]],
    within: float,
    what: str,
) -> int:
    """Until the capture file holds every event of ``expected``; the repeats."""
    want = Counter(expected)
    deadline = time.monotonic() + within
    while True:
        got = Counter(captured_events(capture))
        missing = want - got
        if not missing:
            return sum((got - want).values())
        for name, group in procs.items():
            for proc in group:
                if proc.poll() is not None:
                    raise _PhaseFailed(f"cost bench: the {name} exited ({proc.returncode}) {what}")
        if time.monotonic() > deadline:
            raise _PhaseFailed(
                f"cost bench: {sum(missing.values()):,} of {len(expected):,} events missing "
                f"{within:.0f} s after {what}"
            )
        await asyncio.sleep(0.2)


async def _one_phase(
    config: CostBenchConfig, lines: list[bytes], workers: int, tmp: Path
) -> PhaseResult:
    result = PhaseResult(workers)
    warmup = lines[: config.warmup]
    paced = lines[config.warmup : config.warmup + config.facts]
    burst = lines[config.warmup + config.facts :]
    prefix = f"cost-{uuid.uuid4().hex[:8]}"
    topics = private_topics(prefix, config.partitions)
    capture = tmp / "capture.jsonl"
    with EmbeddedBroker(log_path=str(tmp / "broker.log")) as broker:
        bootstrap = broker.bootstrap_servers
        await create_topics(bootstrap, topics)
        env = child_env()
        env.update(
            PYTHONPATH=str(ROOT),
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            ANALYTICS_LOG_LEVEL="INFO",
            **topics_env(topics),
        )
        gateway_port = free_port("127.0.0.1")
        procs: dict[str, list[subprocess.Popen[bytes]]] = {"gateway": [], "stream": [], "sink": []}
        try:
            procs["gateway"].append(
                spawn(
                    [*CLI, "gateway"],
                    {**env, "ANALYTICS_GATEWAY_ADDR": f"127.0.0.1:{gateway_port}"},
                    tmp / "gateway.log",
                )
            )
            for n in range(workers):
                stream_env = {
                    **env,
                    "ANALYTICS_STREAM_APP_ID": f"{prefix}-stream",
                    "ANALYTICS_STREAM_DATA_DIR": str(tmp / f"stream-data-{n}"),
                    "ANALYTICS_STREAM_HEALTH_ADDR": f"127.0.0.1:{free_port('127.0.0.1')}",
                }
                procs["stream"].append(
                    spawn([*CLI, "stream", "worker"], stream_env, tmp / f"stream-{n}.log")
                )
            sink_env = {
                **env,
                "ANALYTICS_SINK_GROUP": f"{prefix}-sink",
                "ANALYTICS_SINK_HEALTH_ADDR": f"127.0.0.1:{free_port('127.0.0.1')}",
                "CODEX_ANALYTICS_EVENTS_CAPTURE_FILE": str(capture),
                "ANALYTICS_CAPTURE_IGNORES_AUTH": "true",
            }
            procs["sink"].append(spawn([*CLI, "sink", "worker"], sink_env, tmp / "sink.log"))

            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{gateway_port}", timeout=60
            ) as http:
                await _ready(http, procs["gateway"][0], config.timeout_s)
                for body in _bodies(warmup, config.body):
                    await _post(http, body)
                expected = reference_events(warmup)
                await _await_capture(capture, expected, procs, config.timeout_s, "the warm-up")

                pids = {
                    "gateway": [p.pid for p in procs["gateway"]],
                    "stream": [p.pid for p in procs["stream"]],
                    "sink": [p.pid for p in procs["sink"]],
                    "broker": [broker.pid] if broker.pid is not None else [],
                }
                before = {name: sum(cpu_seconds(p) for p in group) for name, group in pids.items()}
                started = time.monotonic()
                # One poster, each body after the last one's answer: an instance's facts
                # reach the facts topic in their order (a late body goes at once).
                for i, body in enumerate(_bodies(paced, config.body)):
                    due = started + i * config.body / config.rate
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    await _post(http, body)
                expected = reference_events(warmup + paced)
                result.repeats = await _await_capture(
                    capture, expected, procs, config.timeout_s, "the paced window"
                )
                window = time.monotonic() - started
                after = {name: sum(cpu_seconds(p) for p in group) for name, group in pids.items()}
                result.paced_rate = len(paced) / window
                result.cpu_per_million = {
                    name: (after[name] - before[name]) / len(paced) * 1e6 for name in pids
                }

                if burst:
                    started = time.monotonic()
                    await asyncio.gather(
                        *(
                            post_in_order(http, share, config.body * 5)
                            for share in _shares(burst, 4)
                        )
                    )
                    expected = reference_events(warmup + paced + burst)
                    result.repeats = await _await_capture(
                        capture, expected, procs, config.timeout_s, "the burst"
                    )
                    result.burst_rate = len(burst) / (time.monotonic() - started)
            result.ok = True
        finally:
            for group in procs.values():
                for proc in group:
                    await asyncio.to_thread(terminate, proc, 30.0)
    return result


def _shares(lines: list[bytes], count: int) -> list[list[bytes]]:
    """``lines`` split by instance into ``count`` shares, each in its order: concurrent
    posters must not reorder an instance's facts (reordered, they reduce to other events:
    a first run with 4 posters sharing one queue found 615 of 15,388 events missing and
    46 different)."""
    shares: list[list[bytes]] = [[] for _ in range(count)]
    owner: dict[str, int] = {}
    for line in lines:
        instance = orjson.loads(line)["source"]["instance_id"]
        shares[owner.setdefault(instance, len(owner) % count)].append(line)
    return shares


async def post_in_order(http: httpx.AsyncClient, lines: list[bytes], size: int) -> None:
    for body in _bodies(lines, size):
        await _post(http, body)


async def _ready(http: httpx.AsyncClient, proc: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise _PhaseFailed("cost bench: the gateway did not start")
        await asyncio.sleep(0.1)


#: Printed under the table: how to read the figures.
NOTE = """\
How to read it: CPU-seconds (``utime + stime`` from ``/proc/<pid>/stat``, children
included) each service spent per million facts while ``--facts`` facts went through at
the fixed rate, from the first paced post until every event of them was in the sink's
capture file (so it includes idle polling: a service's figure at a fixed rate is its
cost of being up as well as its cost per fact). "stream" sums all workers. The flat-out
row is facts over first post -> last event captured; a 2-worker figure on this 2-core
machine shares the cores with the gateway, the sink and the broker. Every phase is
checked against ``reduce``: a phase that misses an event is a "phase failed" row, its
logs kept in ``bench-failures/``.
"""


def run(config: CostBenchConfig) -> tuple[list[Figure], str]:
    lines = _facts(config)
    results: list[PhaseResult] = []
    for _ in range(config.runs):
        for workers in config.workers:
            tmp = Path(tempfile.mkdtemp(prefix="bench-cost-"))
            try:
                results.append(asyncio.run(_one_phase(config, lines, workers, tmp)))
            except Exception as failure:  # a failed phase is a row, its logs kept
                kept = keep_failure(tmp, f"cost-{workers}w")
                (kept / "error.txt").write_text(f"{type(failure).__name__}: {failure}\n")
                print(f"cost bench: phase failed ({failure}); logs kept in {kept}", file=sys.stderr)
                results.append(PhaseResult(workers, error=f"{failure} (logs: {kept})"))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return figures(config, results), NOTE


def figures(config: CostBenchConfig, results: list[PhaseResult]) -> list[Figure]:
    out: list[Figure] = []
    at = f"{config.rate:,.0f} facts/s, {config.partitions} partitions"
    for workers in config.workers:
        mine = [r for r in results if r.workers == workers]
        good = [r for r in mine if r.ok]
        head = f"{workers} stream worker(s)"
        failed = len(mine) - len(good)
        if failed:
            out.append(
                Figure(
                    f"{head}: phase failed (logs kept in bench-failures/)", "runs", (float(failed),)
                )
            )
        if not good:
            continue
        for name in SERVICES:
            out.append(
                Figure(
                    f"{head}: {name} CPU per million facts ({at})",
                    "CPU-s/10^6 facts",
                    tuple(r.cpu_per_million[name] for r in good),
                )
            )
        out.append(
            Figure(
                f"{head}: all services CPU per million facts ({at})",
                "CPU-s/10^6 facts",
                tuple(sum(r.cpu_per_million.values()) for r in good),
            )
        )
        out.append(
            Figure(
                f"{head}: paced facts / (first post -> last event captured)",
                "facts/s",
                tuple(r.paced_rate for r in good),
            )
        )
        if config.burst:
            out.append(
                Figure(
                    f"{head}: {config.burst:,} facts flat out -> capture file",
                    "facts/s",
                    tuple(r.burst_rate for r in good),
                )
            )
        out.append(
            Figure(
                f"{head}: events delivered twice", "events", tuple(float(r.repeats) for r in good)
            )
        )
    one = [r for r in results if r.ok and r.workers == 1]
    two = [r for r in results if r.ok and r.workers == 2]
    if one and two:
        pairs = list(zip(one, two, strict=False))
        out.append(
            Figure(
                "2 workers / 1 worker: stream CPU per million facts",
                "ratio x1000",
                tuple(
                    1000 * b.cpu_per_million["stream"] / a.cpu_per_million["stream"]
                    for a, b in pairs
                ),
            )
        )
        if config.burst:
            out.append(
                Figure(
                    "2 workers / 1 worker: flat-out throughput",
                    "ratio x1000",
                    tuple(1000 * b.burst_rate / a.burst_rate for a, b in pairs if a.burst_rate),
                )
            )
    return out
