"""End-to-end latency: from a client's ``track_*`` call to the event's arrival at the
receiver, at a steady share (50%) of the capacity measured on the same pipeline, per
sink linger. The target (``p99 <= linger + 250 ms``) is shown, not asserted.

Every (run, linger) gets the same fresh pipeline: a new embedded broker (its cost grows
with what it holds, so phases never share one), private topics and groups, and the real
services as processes: ``codex-analytics stream worker`` and ``codex-analytics sink
worker`` (``ANALYTICS_BATCH_MAX_WAIT_MS`` = the linger; every other setting at its
default, including the 200 ms ``ANALYTICS_BATCH_LATENESS_MS``), the sink posting to a
recording :class:`Receiver` in this process. The facts are the generator's sessions of
``instances`` simulated Codex processes, the same ones for every phase, each process
driven through an :class:`AnalyticsClient` of its own in this process (its instance id
and account, so its own events route) with ``codex_analytics.simulator.drive.track_fact``. The clients
keep their defaults: no linger of their own (the sender wakes on every call and
publishes whatever is queued, one envelope per record), so the sink's is the only one.

A phase: the services start, ``warmup`` facts go in at once and the phase waits until
all their events have arrived (this absorbs start-up and the group joins). Capacity:
``burst`` facts as fast as a client with the default queue takes them without a drop
(the driver hands the loop to the senders while a queue holds 3/4 of the default
capacity), divided by the time from the first call
to the last of their events on the events topic (its record timestamp). The sink's part
is left out on purpose: it adds the linger once, a latency rather than a rate, which
would make the capacity (and so the load) depend on the linger; the figure through the
receiver is shown too. Then ``facts`` calls paced at ``load`` x capacity: call ``i`` is
due at ``start + i / rate`` (absolute deadlines, no drift; a late call goes at once).
Each step ends when every event of its facts has arrived (how many: the generator's
facts through the client's gates, then the offline reducer), or fails after
``timeout_s``, naming the services' logs.

Matching: the receiver stamps each request with ``time.monotonic()`` on arrival, the
driver stamps each call with the same clock just before it, and a client numbers its
queued facts 1, 2, ... (``seq``), so ``(instance, seq)`` names the call. After the
phase the events topic is read back: each record carries its event and the ``origin``
``(instance_id, seq, index)`` that made it. A request's body is a run of one route's
consecutive records in one partition: it is found by its events' bytes (the sink
forwards them as the stream wrote them) and, should identical events make that
ambiguous, by its ``Idempotency-Key`` (a digest of the batch's origins). Latency =
arrival - call of the fact whose event it is, for every event of the paced facts; a
repeated delivery counts once, at its first arrival. The stream's part is call -> the
event's record timestamp (the stream's producer clock: wall time, same machine).

Where the p99 goes, hop by hop, from the record timestamps (wall time, same machine;
the facts topic is read back too): the client's (call -> its fact's facts-topic record),
the stream worker's (that record -> the event's events-topic record) and the sink's
(that record -> the receiver's wall clock); each hop's p99 and, for the slowest 1% of
events, each hop's median (the p99 is a sum, not a sum of p99s). And per request, how
long the sink kept its batch's oldest event (record timestamp -> receiver) beyond the
linger: the linger's own promise.

The receiver serves from an event loop of its own thread (it stands for a remote
endpoint): on the clients' loop, a request was stamped when that loop got to it, 40-90
ms late at the p99 on a loaded machine. It still shares the interpreter: a request may
wait a switch interval (5 ms) for it.

Logs: the services log at INFO (``extra_env`` may say otherwise) to a ``bench-latency-*``
temp directory, removed after a phase that succeeds. A phase that fails keeps it, moved
to ``$BENCH_KEEP_DIR`` (default ``<tempdir>/bench-failed``) under a name with the time
and the linger, and says where. When a step's events do not all arrive, the bench first
looks where they stopped while everything still runs (:mod:`bench.diagnose`: facts not
produced, not reduced, or not delivered; both groups' offsets; the services' ``/metrics``
and a ``py-spy dump`` of each) and adds that to the logs and the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

import orjson

from codex_analytics.contract import AuthRoute, fact_from_json
from codex_analytics.contract.records import Origin
from codex_analytics.devtools.broker import EmbeddedBroker, free_port, terminate
from codex_analytics.devtools.localstack import child_env, create_topics, private_topics, topics_env
from codex_analytics.devtools.receiver import ReceivedRequest, Receiver
from codex_analytics.runtime.kafka import read_from_start
from codex_analytics.simulator.drive import track_fact
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from producers import AnalyticsClient, ClientSettings, ProducerIdentity
from producers.client.settings import DEFAULT_QUEUE_CAPACITY
from sinks.batching import Batch, SinkRecord
from streams.reducer.offline import OfflineReducer

from .common import PARTITIONS, ROOT, spawn
from .diagnose import ServiceProbe, diagnose
from .stats import Figure

#: The issue's target: p99 <= linger + this.
TARGET_MARGIN_MS = 250
CLI = [sys.executable, "-m", "codex_analytics.cli.main"]
#: Where a failed phase's directory (logs, diagnosis) is kept; default under the temp dir.
KEEP_DIR_ENV = "BENCH_KEEP_DIR"
#: The longest the receiver's thread may take to start, stop or end.
RECEIVER_STEP_S = 10.0
#: The services' log level unless ``extra_env`` names another: their logs are only read
#: when a phase fails, and then every line counts.
SERVICE_LOG_LEVEL = "INFO"


@dataclass(frozen=True, slots=True)
class LatencyBenchConfig:
    #: Facts sent in the steady-rate phase per linger setting.
    facts: int = 20_000
    runs: int = 3
    #: Sink batch lingers (``ANALYTICS_BATCH_MAX_WAIT_MS``), each on a fresh pipeline.
    lingers_ms: tuple[int, ...] = (1000, 100)
    #: Facts of the capacity burst (per linger, before its steady phase).
    burst: int = 20_000
    #: The steady rate as a share of the measured capacity.
    load: float = 0.5
    #: Clients (simulated Codex processes), each with its own account.
    instances: int = 10
    #: Facts sent first and waited for (start-up, group joins); not measured.
    warmup: int = 60
    #: Longest wait for a step's events (the warm-up's includes the services' start-up).
    timeout_s: float = 90.0
    seed: int = 53
    #: Extra environment for the stream and sink workers (to explore settings).
    extra_env: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.lingers_ms:
            raise ValueError("lingers_ms must name at least one linger")
        if min(self.facts, self.burst, self.warmup, self.runs, self.instances) < 1:
            raise ValueError("facts, burst, warmup, runs and instances must be at least 1")
        if not 0 < self.load <= 1:
            raise ValueError("load must be within (0, 1]")


#: The CI smoke: one run of both lingers, about 30 s on a 2-core machine.
#: The smoke (CI): both lingers end to end on a few seconds of load each, the services'
#: group joins shortened as in the tests (a join takes half the session timeout on the
#: embedded broker: 5 s per service at the default 10 s).
QUICK = LatencyBenchConfig(
    facts=1_500,
    runs=1,
    burst=1_500,
    warmup=40,
    extra_env=(("ANALYTICS_KAFKA_SESSION_TIMEOUT_MS", "4000"),),
)


# -- the plan: the facts, their clients, what the gates and the reducer make of them ----


@dataclass(frozen=True, slots=True)
class _Call:
    client: int
    fact: dict[str, Any]
    #: Events the stream makes of it (0 when a gate of the client keeps it out).
    events: int
    queued: bool


@dataclass(frozen=True, slots=True)
class _Plan:
    #: Instance ids and delivery routes of the clients, by client index.
    instances: tuple[str, ...]
    routes: tuple[AuthRoute, ...]
    warmup: tuple[_Call, ...]
    burst: tuple[_Call, ...]
    steady: tuple[_Call, ...]

    @property
    def accounts(self) -> list[str]:
        return sorted({r.account_id for r in self.routes if r.account_id})


def _plan(config: LatencyBenchConfig) -> _Plan:
    """The generator's facts in call order, with what the client's gates and the reducer
    make of each (both deterministic: the same for every phase)."""
    generator = SessionGenerator(
        GeneratorConfig(
            instances=config.instances,
            seed=config.seed,
            duplicate_rate=0,  # a redelivery through a client is a new fact (new seq)
            accounts=config.instances,
        )
    )
    total = config.warmup + config.burst + config.facts
    facts = list(generator.facts(total))
    index: dict[str, int] = {}
    routes: dict[str, AuthRoute] = {}
    for fact in facts:
        source = fact["source"]
        index.setdefault(source["instance_id"], len(index))
        auth = source.get("auth") or {}
        routes.setdefault(
            source["instance_id"],
            AuthRoute(auth.get("kind"), auth.get("account_id"), bool(auth.get("is_fedramp"))),
        )
    # The client's gates (a repeated app or plugin use in a turn, irrelevant methods)
    # keep some facts out: a client that is never started answers as the real one will.
    gates = [
        AnalyticsClient(
            ClientSettings(queue_capacity=total + 1, contract="2026-06"),
            identity=ProducerIdentity(instance_id=instance),
        )
        for instance in index
    ]
    reducer = OfflineReducer()
    calls = []
    for fact in facts:
        client = index[fact["source"]["instance_id"]]
        queued = track_fact(gates[client], fact)
        events = len(reducer.apply(fact_from_json(fact)).events) if queued else 0
        calls.append(_Call(client, fact, events, queued))
    burst_end = config.warmup + config.burst
    if not _events(calls[burst_end:]) or not _events(calls[: config.warmup]):
        raise ValueError("latency bench: too few facts: the warm-up or steady phase makes no event")
    return _Plan(
        instances=tuple(index),
        routes=tuple(routes[i] for i in index),
        warmup=tuple(calls[: config.warmup]),
        burst=tuple(calls[config.warmup : burst_end]),
        steady=tuple(calls[burst_end:]),
    )


def _events(calls: Sequence[_Call]) -> int:
    return sum(c.events for c in calls)


def _fresh(calls: Sequence[_Call]) -> list[_Call]:
    """Copies of the facts: a client owns what it is given (its sender completes skill
    invocations in place), and every phase must send the same facts."""
    return [dataclasses.replace(c, fact=orjson.loads(orjson.dumps(c.fact))) for c in calls]


# -- the driver ------------------------------------------------------------------------


@dataclass(slots=True)
class _Driver:
    """The clients, and the ``time.monotonic()`` of every queued call by (client, seq)."""

    clients: list[AnalyticsClient]
    #: stamps[client][seq - 1], steps[client][seq - 1]: when, and in which step;
    #: events[client][seq - 1]: how many events the plan makes of it.
    stamps: list[list[float]] = field(default_factory=list)
    steps: list[list[str]] = field(default_factory=list)
    events: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stamps = [[] for _ in self.clients]
        self.steps = [[] for _ in self.clients]
        self.events = [[] for _ in self.clients]

    def call(self, call: _Call, step: str) -> None:
        at = time.monotonic()
        queued = track_fact(self.clients[call.client], call.fact)
        if queued != call.queued:
            raise RuntimeError(
                f"latency bench: a client {'queued' if queued else 'kept out'} a fact the "
                "plan says it would not (a full queue, or gates that changed)"
            )
        if queued:
            self.stamps[call.client].append(at)
            self.steps[call.client].append(step)
            self.events[call.client].append(call.events)

    @property
    def queued(self) -> int:
        """Facts queued so far, by every client."""
        return sum(len(stamps) for stamps in self.stamps)

    def expected(self) -> dict[tuple[str, int], int]:
        """Every queued fact so far, ``(instance_id, seq)``, with its events."""
        return {
            (client.instance_id, seq): events
            for client, counts in zip(self.clients, self.events, strict=True)
            for seq, events in enumerate(counts, 1)
        }

    def at_once(self, calls: Sequence[_Call], step: str) -> None:
        for call in calls:
            self.call(call, step)

    async def flat_out(self, calls: Sequence[_Call], step: str) -> float:
        """As fast as clients with the default queue take them without a drop; returns the
        wall-clock time (``time.time()``) of the first call."""
        high_water = DEFAULT_QUEUE_CAPACITY * 3 // 4
        trackers = [c._tracker for c in self.clients]
        started = time.time()
        for call in calls:
            tracker = trackers[call.client]
            while tracker.pending() >= high_water:  # noqa: ASYNC110
                await asyncio.sleep(0)  # hand the loop to the senders
            self.call(call, step)
        return started

    async def paced(self, calls: Sequence[_Call], rate: float, step: str) -> float:
        """Call ``i`` at ``start + i / rate``; returns the rate achieved."""
        started = time.monotonic()
        done = 0
        while done < len(calls):
            due = min(len(calls), int((time.monotonic() - started) * rate) + 1)
            while done < due:
                self.call(calls[done], step)
                done += 1
            if done < len(calls):
                await asyncio.sleep(max(0.0, started + done / rate - time.monotonic()))
        elapsed = time.monotonic() - started
        return (len(calls) - 1) / elapsed if elapsed > 0 and len(calls) > 1 else rate

    def check_no_drops(self) -> None:
        for client in self.clients:
            stats = client.stats
            if stats.dropped_queue_full or stats.failed:
                raise RuntimeError(f"latency bench: a client dropped or failed facts: {stats}")


# -- one phase: one linger on a fresh pipeline -------------------------------------------


@dataclass(frozen=True, slots=True)
class _Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    health_port: int | None = None


class _StepTimeout(RuntimeError):
    """A step's events did not all arrive in time (the services still run)."""


async def _await_events(
    receiver: Receiver, count: int, services: Sequence[_Service], within: float, what: str
) -> None:
    """Until the receiver holds ``count`` events (unique keys); RuntimeError, naming the
    logs, when a service exits or ``within`` seconds pass first."""
    deadline = time.monotonic() + within
    while receiver.unique_event_count < count:
        for service in services:
            code = service.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"latency bench: the {service.name} exited with status {code} during "
                    f"the {what}; see {service.log}"
                )
        if time.monotonic() > deadline:
            logs = ", ".join(str(s.log) for s in services)
            raise _StepTimeout(
                f"latency bench: {receiver.unique_event_count} of {count} events arrived "
                f"within {within:.0f} s of the {what}; see {logs}"
            )
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _receiver_in_thread() -> AsyncIterator[Receiver]:
    """A :class:`Receiver` serving from an event loop of its own thread. It stands for a
    remote endpoint: on this process's loop its handler waited for the clients' and the
    pacing loop's turns (measured: that loop lags 40-90 ms at the p99 under load, up to
    seconds), and each request was stamped that much late. Its own thread waits at most
    for the interpreter's switch interval (5 ms)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-receiver", daemon=True)
    thread.start()
    receiver = Receiver()

    async def on_its_loop(step: Coroutine[Any, Any, Any]) -> None:
        async with asyncio.timeout(RECEIVER_STEP_S):
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(step, loop))

    try:
        await on_its_loop(receiver.start())
        yield receiver
    finally:
        try:
            await on_its_loop(receiver.stop())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(thread.join, RECEIVER_STEP_S)
            if not thread.is_alive():
                loop.close()


async def _stop(service: _Service) -> None:
    """SIGTERM, wait (SIGKILL after 30 s)."""
    await asyncio.to_thread(terminate, service.process, 30.0)


@dataclass(frozen=True, slots=True)
class _PhaseResult:
    #: Burst facts / (first call -> its last event on the events topic).
    capacity: float
    #: Burst facts / (first call -> its last event at the receiver).
    capacity_received: float
    #: The steady phase's rate, as achieved.
    rate: float
    #: Every event of the steady phase's facts: call -> receiver, in ms.
    latencies_ms: list[float]
    #: The same events: call -> their events-topic record, in ms.
    stream_ms: list[float]
    #: The same events, hop by hop (aligned with ``latencies_ms``), in ms: call -> its
    #: fact's facts-topic record (the client's part), that record -> the event's
    #: events-topic record (the stream worker's), that record -> the receiver (the sink's).
    client_hop_ms: list[float]
    stream_hop_ms: list[float]
    sink_hop_ms: list[float]
    #: Each request of the steady phase: its oldest event's events-topic record ->
    #: the receiver, in ms (how long the sink kept the batch's first event).
    batch_age_ms: list[float]
    repeats: int


async def _one_phase(
    config: LatencyBenchConfig, plan: _Plan, linger_ms: int, tmp: Path
) -> _PhaseResult:
    prefix = f"latency-{linger_ms}-{uuid.uuid4().hex[:8]}"
    topics = private_topics(prefix, PARTITIONS)
    secrets = tmp / "secrets"
    secrets.mkdir(exist_ok=True)
    for account in plan.accounts:
        (secrets / account).write_text(f"bench-token-{account}")
    warmup, burst, steady = _fresh(plan.warmup), _fresh(plan.burst), _fresh(plan.steady)
    env = child_env()
    env["ANALYTICS_LOG_LEVEL"] = SERVICE_LOG_LEVEL
    with EmbeddedBroker(log_path=str(tmp / "broker.log")) as broker:
        bootstrap = broker.bootstrap_servers
        await create_topics(bootstrap, topics)
        env.update(PYTHONPATH=str(ROOT), KAFKA_BOOTSTRAP_SERVERS=bootstrap, **topics_env(topics))
        env.update(dict(config.extra_env))
        async with _receiver_in_thread() as receiver:
            # Room for every fact: a call the pipeline holds up waits in its client's
            # queue and counts in its latency; with the default bound (256) a sender held
            # up for half a second at the steady rate dropped facts and failed the phase.
            settings = ClientSettings(
                kafka=bootstrap,
                topic=topics.facts,
                contract="2026-06",
                queue_capacity=len(plan.warmup) + len(plan.burst) + len(plan.steady) + 1,
            )
            driver = _Driver(
                [
                    AnalyticsClient(
                        settings, identity=ProducerIdentity(instance_id=instance, auth=route)
                    )
                    for instance, route in zip(plan.instances, plan.routes, strict=True)
                ]
            )
            services: list[_Service] = []
            try:
                for client in driver.clients:
                    await client.start()
                # Health ports, for the diagnosis of a step that waits in vain.
                ports = {"stream": free_port("127.0.0.1"), "sink": free_port("127.0.0.1")}
                stream_env = {
                    "ANALYTICS_STREAM_APP_ID": f"{prefix}-stream",
                    "ANALYTICS_STREAM_DATA_DIR": str(tmp / "stream-data"),
                    "ANALYTICS_STREAM_HEALTH_ADDR": f"127.0.0.1:{ports['stream']}",
                }
                sink_env = {
                    "ANALYTICS_SINK_GROUP": f"{prefix}-sink",
                    "ANALYTICS_SINK_HEALTH_ADDR": f"127.0.0.1:{ports['sink']}",
                    "ANALYTICS_BASE_URL": receiver.base_url,
                    "ANALYTICS_SECRETS_DIR": str(secrets),
                    "ANALYTICS_BATCH_MAX_WAIT_MS": str(linger_ms),
                }
                for name, command, extra in (
                    ("stream", ["stream", "worker"], stream_env),
                    ("sink", ["sink", "worker"], sink_env),
                ):
                    log = tmp / f"{name}.log"
                    process = spawn([*CLI, *command], {**env, **extra}, log)
                    services.append(_Service(f"{name} worker", process, log, ports[name]))
                what = f"{{}} (linger {linger_ms} ms)"

                driver.at_once(warmup, "warmup")
                expected = _events(warmup)
                await _await_events(
                    receiver, expected, services, config.timeout_s, what.format("warm-up")
                )

                first_call = await driver.flat_out(burst, "burst")
                expected += _events(burst)
                await _await_events(
                    receiver, expected, services, config.timeout_s, what.format("burst")
                )
                last_arrival = max(r.wall_ms for r in receiver.requests) / 1000
                written = await read_from_start(
                    bootstrap, topics.events, want=expected, within=config.timeout_s
                )
                last_written = max(r.timestamp for r in written) / 1000
                capacity = len(burst) / max(last_written - first_call, 1e-3)
                capacity_received = len(burst) / max(last_arrival - first_call, 1e-3)

                rate = await driver.paced(steady, capacity * config.load, "steady")
                expected += _events(steady)
                await _await_events(
                    receiver, expected, services, config.timeout_s, what.format("steady phase")
                )
                driver.check_no_drops()
            except _StepTimeout as timeout:
                summary = await diagnose(
                    bootstrap=bootstrap,
                    facts_topic=topics.facts,
                    events_topic=topics.events,
                    groups={"stream": f"{prefix}-stream", "sink": f"{prefix}-sink"},
                    expected=driver.expected(),
                    receiver=receiver,
                    services=[ServiceProbe(s.name, s.process.pid, s.health_port) for s in services],
                    out=tmp / "diagnosis.txt",
                )
                timeout.add_note(f"diagnosis: {summary}; see {tmp / 'diagnosis.txt'}")
                raise
            finally:
                await asyncio.gather(*(_stop(s) for s in services))
                await asyncio.gather(*(c.close() for c in driver.clients))
            requests = list(receiver.requests)
        records = await read_from_start(
            bootstrap, topics.events, want=expected, within=config.timeout_s, settle=0.3
        )
        facts = await read_from_start(
            bootstrap, topics.facts, want=driver.queued, within=config.timeout_s, settle=0.3
        )
    hops = _latencies(_match(records, requests), _fact_stamps(facts), driver, _events(steady))
    return _PhaseResult(capacity, capacity_received, rate, *hops)


# -- matching arrivals to calls --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Written:
    """One events-topic record: its event's bytes, the fact that made it, and its
    timestamp (the stream's producer stamps it with the wall clock, in ms)."""

    event: bytes
    instance_id: str
    seq: int
    index: int
    timestamp_ms: int


_Matched = tuple[list[_Written], list[tuple[ReceivedRequest, Sequence[_Written]]], int]


def _match(records: Sequence[Any], requests: Sequence[ReceivedRequest]) -> _Matched:
    """(every events-topic record; each first-arriving 2xx request with the records it
    carried; events in repeated requests)."""
    # A batch is a run of one route's consecutive records in one partition: one lane
    # per (partition, route), in offset order, and where each event's bytes occur.
    lanes: dict[tuple[int, bytes], list[_Written]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        obj = orjson.loads(record.value)
        origin = obj["origin"]
        lanes[(record.partition, orjson.dumps(obj["route"]))].append(
            _Written(
                orjson.dumps(obj["event"]),
                origin["instance_id"],
                origin["seq"],
                origin["index"],
                record.timestamp,
            )
        )
    where: dict[bytes, list[tuple[list[_Written], int]]] = defaultdict(list)
    for lane in lanes.values():
        for position, written in enumerate(lane):
            where[written.event].append((lane, position))

    matched: list[tuple[ReceivedRequest, Sequence[_Written]]] = []
    repeats = 0
    seen_keys: set[str | None] = set()
    for request in requests:
        if not 200 <= request.status < 300:
            continue
        key = request.idempotency_key
        if key in seen_keys:
            repeats += len(request.events)  # the same batch again: its first arrival counts
            continue
        seen_keys.add(key)
        events = [orjson.dumps(e) for e in request.events]
        if not events:
            continue
        found = [
            lane[position : position + len(events)]
            for lane, position in where.get(events[0], [])
            if [w.event for w in lane[position : position + len(events)]] == events
        ]
        if len(found) > 1:  # identical events: the batch's key names its origins
            found = [run for run in found if _batch_key(run) == key]
        if len(found) != 1:
            raise RuntimeError(
                f"latency bench: {len(found)} runs of events-topic records match a request "
                f"of {len(events)} events (Idempotency-Key {key}): cannot name its facts"
            )
        matched.append((request, found[0]))
    return [w for lane in lanes.values() for w in lane], matched, repeats


def _batch_key(run: Sequence[_Written]) -> str:
    """The ``Idempotency-Key`` the sink gives a batch of these records."""
    batch = Batch(partition=0, route_key=b"")
    batch.records.extend(
        SinkRecord(0, 0, b"", None, origin=Origin(w.instance_id, w.seq, w.index)) for w in run
    )
    return batch.idempotency_key()


def _fact_stamps(records: Sequence[Any]) -> dict[tuple[str, int], int]:
    """The facts-topic record timestamp (the client's producer clock, ms) of every fact
    by ``(instance_id, seq)``; a pack's facts share their record's."""
    stamps: dict[tuple[str, int], int] = {}
    for record in records:
        value = orjson.loads(record.value)
        for fact in value if isinstance(value, list) else (value,):
            stamps.setdefault((fact["source"]["instance_id"], fact["seq"]), record.timestamp)
    return stamps


_Hops = tuple[list[float], list[float], list[float], list[float], list[float], list[float], int]


def _latencies(
    matched: _Matched, fact_stamps: dict[tuple[str, int], int], driver: _Driver, expected: int
) -> _Hops:
    """For every event of the steady step's facts, in ms: call -> receiver, call -> its
    events-topic record, and the three hops (client, stream, sink); each of the step's
    requests' batch age at arrival; and the deliveries repeated (counted once, at the
    first)."""
    written, requests, repeats = matched
    arrived: dict[tuple[str, int, int], ReceivedRequest] = {}
    client_of = {c.instance_id: n for n, c in enumerate(driver.clients)}
    batch_age: list[float] = []
    for received, run in requests:
        first = run[0]
        if driver.steps[client_of[first.instance_id]][first.seq - 1] == "steady":
            batch_age.append(received.wall_ms - min(w.timestamp_ms for w in run))
        for w in run:
            origin = (w.instance_id, w.seq, w.index)
            if origin in arrived:
                repeats += 1
            else:
                arrived[origin] = received
    wall_minus_monotonic = time.time() - time.monotonic()
    total: list[float] = []
    stream: list[float] = []
    client_hop: list[float] = []
    stream_hop: list[float] = []
    sink_hop: list[float] = []
    missing = 0
    for w in written:
        client = client_of[w.instance_id]
        if driver.steps[client][w.seq - 1] != "steady":
            continue
        called = driver.stamps[client][w.seq - 1]
        called_ms = (called + wall_minus_monotonic) * 1000
        stream.append(w.timestamp_ms - called_ms)
        request = arrived.get((w.instance_id, w.seq, w.index))
        if request is None:
            missing += 1
            continue
        total.append((request.at - called) * 1000)
        fact_ms = fact_stamps.get((w.instance_id, w.seq))
        if fact_ms is None:
            raise RuntimeError(
                f"latency bench: no facts-topic record for ({w.instance_id}, {w.seq}), "
                "whose event arrived"
            )
        client_hop.append(fact_ms - called_ms)
        stream_hop.append(w.timestamp_ms - fact_ms)
        sink_hop.append(request.wall_ms - w.timestamp_ms)
    if missing or len(total) != expected:
        raise RuntimeError(
            f"latency bench: {len(total)} events of the steady phase matched, {missing} "
            f"written but not received, {expected} expected"
        )
    return total, stream, client_hop, stream_hop, sink_hop, batch_age, repeats


def _hop_figures(head: str, linger: int, phases: Sequence[_PhaseResult]) -> list[Figure]:
    """Where the p99 goes: each hop's own p99, the hops of the slowest 1% of events
    (their median), and how long the sink kept each batch's oldest event past the
    linger."""
    hops: tuple[tuple[str, Callable[[_PhaseResult], list[float]]], ...] = (
        ("client (track_* -> facts topic)", attrgetter("client_hop_ms")),
        ("stream (facts topic -> events topic)", attrgetter("stream_hop_ms")),
        ("sink (events topic -> receiver)", attrgetter("sink_hop_ms")),
    )
    figures = [
        Figure(f"{head}: hop {name} p99", "ms", tuple(_percentile(of(r), 0.99) for r in phases))
        for name, of in hops
    ]
    figures += [
        Figure(
            f"{head}: slowest 1% of events, hop {name} (their median)",
            "ms",
            tuple(statistics.median(_slowest(r.latencies_ms, of(r), 0.99)) for r in phases),
        )
        for name, of in hops
    ]
    figures += [
        Figure(
            f"{head}: sink: batch's oldest event, events topic -> receiver, minus the linger, "
            f"p{share * 100:.0f}",
            "ms",
            tuple(_percentile(r.batch_age_ms, share) - linger for r in phases),
        )
        for share in (0.5, 0.99)
    ]
    return figures


def _slowest(totals: Sequence[float], parts: Sequence[float], share: float) -> list[float]:
    """``parts`` of the events whose total is at or past the ``share`` percentile."""
    cut = _percentile(totals, share)
    return [part for total, part in zip(totals, parts, strict=True) if total >= cut]


def _keep(tmp: Path, name: str) -> Path:
    """Move a failed phase's directory to ``$BENCH_KEEP_DIR`` (a stable place, unlike
    the temp directory's random name) and return where it is now."""
    root = Path(os.environ.get(KEEP_DIR_ENV) or Path(tempfile.gettempdir()) / "bench-failed")
    try:
        root.mkdir(parents=True, exist_ok=True)
        kept = root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{tmp.name.rsplit('-', 1)[-1]}"
        shutil.move(tmp, kept)
    except OSError:
        return tmp  # where it is, then
    return kept


def _percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value with at least ``share`` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# -- the suite -------------------------------------------------------------------------


def run(config: LatencyBenchConfig) -> list[Figure]:
    plan = _plan(config)
    results: dict[int, list[_PhaseResult]] = {linger: [] for linger in config.lingers_ms}
    for _ in range(config.runs):
        for linger in config.lingers_ms:
            tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
            try:
                results[linger].append(asyncio.run(_one_phase(config, plan, linger, tmp)))
            except BaseException as failure:
                kept = _keep(tmp, f"latency-linger{linger}")
                failure.add_note(f"latency bench: the failed phase's logs are kept in {kept}")
                print(f"latency bench: failed; logs kept in {kept}", file=sys.stderr, flush=True)
                raise
            shutil.rmtree(tmp, ignore_errors=True)

    figures: list[Figure] = []
    for linger, phases in results.items():
        head = f"linger {linger} ms"
        target = linger + TARGET_MARGIN_MS
        p99 = tuple(_percentile(r.latencies_ms, 0.99) for r in phases)
        figures += [
            Figure(
                f"{head}: capacity, {config.burst:,} facts at once -> events topic",
                "facts/s",
                tuple(r.capacity for r in phases),
            ),
            Figure(
                f"{head}: capacity, {config.burst:,} facts at once -> receiver",
                "facts/s",
                tuple(r.capacity_received for r in phases),
            ),
            Figure(
                f"{head}: steady rate, {config.load:.0%} of capacity "
                f"({config.instances} clients), achieved",
                "facts/s",
                tuple(r.rate for r in phases),
            ),
            Figure(
                f"{head}: events matched ({_events(plan.steady):,} expected of "
                f"{config.facts:,} facts)",
                "events",
                tuple(float(len(r.latencies_ms)) for r in phases),
            ),
            Figure(
                f"{head}: track_* -> receiver p50",
                "ms",
                tuple(_percentile(r.latencies_ms, 0.5) for r in phases),
            ),
            Figure(f"{head}: track_* -> receiver p99", "ms", p99),
            Figure(
                f"{head}: track_* -> receiver max", "ms", tuple(max(r.latencies_ms) for r in phases)
            ),
            Figure(
                f"{head}: track_* -> events topic (the stream's part) p99",
                "ms",
                tuple(_percentile(r.stream_ms, 0.99) for r in phases),
            ),
            *_hop_figures(head, linger, phases),
            Figure(
                f"{head}: p99 - target ({target:,} ms; <= 0 meets it)",
                "ms",
                tuple(v - target for v in p99),
            ),
        ]
    figures.append(
        Figure(
            "deliveries repeated (counted once)",
            "events",
            tuple(float(r.repeats) for phases in results.values() for r in phases),
        )
    )
    return figures
