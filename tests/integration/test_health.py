"""Liveness and readiness through real service processes.

* With a broker that accepts connections and never answers (a listening socket nobody
  accepts on), every service answers ``/livez`` 200 and ``/readyz`` 503 within seconds
  of its start, and stays live while it waits for the broker (until
  ``ANALYTICS_KAFKA_WAIT_S`` is over: exit 1): liveness never depends on Kafka.
* A stream worker reading its changelog back says ``recovering`` until it is done,
  then ``ready`` (the changelog is written beforehand, as a previous worker left it).
* A stream worker whose event loop is blocked answers ``/livez`` 503 ``stalled`` once
  the heartbeat is older than ``ANALYTICS_HEALTH_STALL_S``, and 200 again after.
* A capture-mode sink whose capture directory is missing is live and not ready, and
  ready once the directory is there (no event needed).
* A health address that cannot be served is one line naming the variable, exit 2.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from codex_analytics.devtools.broker import free_port
from codex_analytics.devtools.localstack import child_env
from codex_analytics.runtime.kafka import ensure_topics

from .stream_helpers import ROOT, StreamRun, cli_process
from .stream_wedged_loop import MARKER_SUFFIX

pytestmark = pytest.mark.integration

#: command, the variable of its health address, what else it needs to start.
SERVICES: dict[str, tuple[list[str], str, dict[str, str]]] = {
    "stream": (["stream", "worker"], "ANALYTICS_STREAM_HEALTH_ADDR", {}),
    "sink": (
        ["sink", "worker"],
        "ANALYTICS_SINK_HEALTH_ADDR",
        {"ANALYTICS_BASE_URL": "http://127.0.0.1:9/backend-api/"},
    ),
    "gateway": (["gateway"], "ANALYTICS_GATEWAY_ADDR", {}),
}

#: How long the services wait for the silent broker before they give up (exit 1).
GIVE_UP_AFTER_S = 3

#: How soon after the process starts both probes must answer. Python's start-up and
#: imports are all of it: 0.4-1.0 s on an idle 2-core machine, but 4-5 s when the
#: machine runs 16 processes per core (a CI run with -n 4 and brokers) - a bound a
#: loaded machine can meet. That nothing waits before the door opens is shown by the
#: status: with the broker silent, it answers "starting" or "connecting".
ANSWERS_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def silent_broker() -> Iterator[str]:
    """A "broker" whose connections are accepted by the kernel and never answered."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of ``path``; ``(0, {})`` when nothing answers."""
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
    except httpx.TransportError:
        return 0, {}
    return answer.status_code, answer.json()


def stop_now(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL: what these tests look at is over, and how a service stops is tested
    elsewhere (a graceful stop with a silent broker takes its whole timeout)."""
    proc.kill()
    proc.wait(10)


def wait_answers(
    proc: subprocess.Popen[bytes], port: int, log: Path, within: float
) -> tuple[float, tuple[int, dict[str, Any]], tuple[int, dict[str, Any]]]:
    started = time.monotonic()
    while True:
        live, ready = probe(port, "/livez"), probe(port, "/readyz")
        if live[0] and ready[0]:
            return time.monotonic() - started, live, ready
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() - started < within, log.read_text()
        time.sleep(0.05)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_with_a_silent_broker_a_service_is_live_and_not_ready_from_its_start(
    service: str, silent_broker: str, tmp_path: Path
) -> None:
    command, variable, extra = SERVICES[service]
    port = free_port("127.0.0.1")
    env = child_env(
        KAFKA_BOOTSTRAP_SERVERS=silent_broker,
        ANALYTICS_KAFKA_WAIT_S=str(GIVE_UP_AFTER_S),
        **{variable: f"127.0.0.1:{port}"},
        **extra,
        ANALYTICS_LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    log = tmp_path / f"{service}.log"
    with cli_process(command, env, log) as proc:
        took, live, ready = wait_answers(proc, port, log, ANSWERS_WITHIN_S)
        assert live[0] == 200, live
        assert live[1]["status"] == "alive", live
        assert ready[0] == 503, ready
        assert ready[1]["service"] == service
        assert ready[1]["status"] in ("starting", "connecting"), ready
        assert ready[1]["ready"] is False
        assert ready[1]["reason"]
        # It waits for the broker while it answers, live and not ready, until
        # ANALYTICS_KAFKA_WAIT_S is over: then one line naming the broker, and exit 1.
        while proc.poll() is None:
            still_live, later = probe(port, "/livez"), probe(port, "/readyz")
            if proc.poll() is None and still_live[0] and later[0]:
                assert still_live[0] == 200, still_live
                assert later[1]["status"] in ("starting", "connecting"), later
            time.sleep(0.2)
        assert proc.wait() == 1, log.read_text()
        assert silent_broker in log.read_text().splitlines()[-1]
    print(f"{service}: /livez and /readyz answered {took:.2f} s after the process started")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_health_address_that_cannot_be_served_is_one_line_and_exit_2(
    service: str, silent_broker: str
) -> None:
    command, variable, extra = SERVICES[service]
    env = child_env(
        KAFKA_BOOTSTRAP_SERVERS=silent_broker,
        **{variable: "bad"},
        **extra,
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-m", "codex_analytics.cli.main", *command],
        env=env,
        capture_output=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr.decode()
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert variable in lines[0], lines
    assert "'bad'" in lines[0] or "=bad" in lines[0], lines


#: Changelog entries written before the worker starts. Faust reads ~30k/s back into the
#: memory store here (8k in 0.27 s: between two heartbeats), so the worker runs behind
#: a seam that delays each record 1 ms (tests/integration/stream_slow_recovery.py):
#: about 2.5 s of recovery, five heartbeats.
CHANGELOG_ENTRIES = 2_000


async def write_changelog(run: StreamRun, entries: int) -> None:
    """The state table's changelog as a previous worker of the group left it."""
    changelog = f"{run.prefix}-stream-reducer-state-changelog"
    await ensure_topics(
        run.bootstrap,
        {run.facts: run.partitions, run.events: run.partitions, run.dlq: run.partitions},
    )
    await ensure_topics(run.bootstrap, {changelog: run.partitions})
    # The embedded broker reports a partition's end as its last batch's base offset + 1,
    # and Faust recovers up to that end: small batches, and a last one of one record.
    producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap, linger_ms=5, max_batch_size=4096)
    await producer.start()
    try:
        value = b"x" * 64
        sent = [
            await producer.send(
                changelog, value, key=f"instance-{n}".encode(), partition=n % run.partitions
            )
            for n in range(entries - run.partitions)
        ]
        await asyncio.gather(*sent)
        for partition in range(run.partitions):
            key = f"instance-last-{partition}".encode()
            await producer.send_and_wait(changelog, value, key=key, partition=partition)
    finally:
        await producer.stop()


def test_a_stream_worker_reading_its_changelog_back_is_recovering_then_ready(
    kafka_bootstrap: str, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    run = StreamRun(bootstrap=kafka_bootstrap, prefix=unique_name("h"), log_dir=tmp_path)
    run.partitions = 2
    asyncio.run(write_changelog(run, CHANGELOG_ENTRIES))
    port = free_port("127.0.0.1")
    run.extra_env.update(
        ANALYTICS_STREAM_HEALTH_ADDR=f"127.0.0.1:{port}", ANALYTICS_STREAM_STORE="memory"
    )
    seen: list[tuple[float, int, str, Any]] = []  # (s since start, livez, status, remaining)
    slow = "tests.integration.stream_slow_recovery"
    with cli_process(["stream", "worker"], run.env(), tmp_path / "w1.log", module=slow) as proc:
        started = time.monotonic()
        while time.monotonic() - started < 60:
            live, ready = probe(port, "/livez"), probe(port, "/readyz")
            if live[0] and ready[0]:
                status = ready[1]["status"]
                if not seen or seen[-1][2:] != (status, ready[1].get("changelog_remaining")):
                    seen.append(
                        (
                            round(time.monotonic() - started, 2),
                            live[0],
                            status,
                            ready[1].get("changelog_remaining"),
                        )
                    )
                if status == "ready":
                    break
            assert proc.poll() is None, run.log_text()
            time.sleep(0.05)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        stop_now(proc)
    statuses = [status for _, _, status, _ in seen]
    assert "recovering" in statuses, (seen, run.log_text())
    assert statuses[-1] == "ready", (seen, run.log_text())
    assert statuses.index("recovering") < statuses.index("ready")
    assert set(statuses) <= {"starting", "connecting", "joining", "recovering", "ready"}, seen
    assert all(live == 200 for _, live, _, _ in seen), seen  # live throughout
    # Faust counts what is left from the highwaters it looks up as recovery begins (0
    # until then); from the first count on, it only goes down.
    remaining = [left for _, _, status, left in seen if status == "recovering" and left]
    assert remaining, seen
    assert remaining == sorted(remaining, reverse=True), seen  # read back, not stuck
    assert remaining[0] <= CHANGELOG_ENTRIES, seen
    assert metrics.status_code == 200
    assert b"codex_stream_consumer_lag" in metrics.content
    # Where each partition's records are, every partition from 0 (run.partitions = 2).
    for name in ("fetched", "processed", "acked", "held"):
        assert f'codex_stream_{name}_records_total{{partition="1"}}'.encode() in metrics.content
    assert b'codex_stream_partition_seeks_total{partition="1"}' in metrics.content
    assert b"codex_stream_rebalances_total" in metrics.content
    print(f"readiness over time: {orjson.dumps(seen).decode()}")


def test_a_stream_worker_whose_loop_is_blocked_fails_livez_until_it_runs_again(
    kafka_bootstrap: str, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    """The seam blocks the worker's loop once the marker file appears; no need to wait
    for the group join: the loop runs from mode's first hook."""
    run = StreamRun(bootstrap=kafka_bootstrap, prefix=unique_name("hw"), log_dir=tmp_path)
    run.partitions = 1
    port = free_port("127.0.0.1")
    data_dir = tmp_path / "stream-data"
    marker = Path(f"{data_dir}{MARKER_SUFFIX}")
    run.extra_env.update(
        ANALYTICS_STREAM_HEALTH_ADDR=f"127.0.0.1:{port}",
        ANALYTICS_HEALTH_STALL_S="1",
        ANALYTICS_STREAM_DATA_DIR=str(data_dir),
    )
    log = tmp_path / "stream.log"
    wedged = "tests.integration.stream_wedged_loop"
    with cli_process(["stream", "worker"], run.env(), log, module=wedged) as proc:
        deadline = time.monotonic() + 30
        # Published by the worker's own loop (it counts records), and beating.
        while "records" not in probe(port, "/readyz")[1] or probe(port, "/livez")[0] != 200:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        marker.touch()
        deadline = time.monotonic() + 5
        while (live := probe(port, "/livez"))[0] != 503:
            assert time.monotonic() < deadline, (live, log.read_text())
            time.sleep(0.05)
        assert live[1]["status"] == "stalled", live
        assert live[1]["heartbeat_age_s"] >= 1.0, live
        ready = probe(port, "/readyz")  # the loop cannot answer: its last publication
        assert ready[0] == 503, ready
        while (live := probe(port, "/livez"))[0] != 200:
            assert time.monotonic() < deadline + 5, (live, log.read_text())
            time.sleep(0.05)
        assert not marker.exists()
        assert proc.poll() is None, log.read_text()
        stop_now(proc)


def test_a_capture_sink_whose_volume_is_missing_is_live_and_not_ready_until_it_is_there(
    kafka_bootstrap: str, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    """Restarting cannot free a disk or mount a volume: liveness must not fail for it.
    (A capture path that can never be a file is refused at start, exit 2; a directory
    not there yet is a volume not mounted yet: the sink waits for it.)"""
    volume = tmp_path / "not-mounted-yet"
    capture = volume / "events.jsonl"  # ENOENT, whoever the test runs as
    prefix = unique_name("hs")
    port = free_port("127.0.0.1")
    env = child_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        ANALYTICS_EVENTS_TOPIC=f"{prefix}.events",
        ANALYTICS_EVENTS_DLQ_TOPIC=f"{prefix}.events.dlq",
        ANALYTICS_TOPIC_PARTITIONS="2",
        ANALYTICS_SINK_GROUP=f"{prefix}-sink",
        ANALYTICS_KAFKA_SESSION_TIMEOUT_MS="4000",
        CODEX_ANALYTICS_EVENTS_CAPTURE_FILE=str(capture),
        ANALYTICS_SINK_HEALTH_ADDR=f"127.0.0.1:{port}",
        ANALYTICS_LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    log = tmp_path / "sink.log"
    with cli_process(["sink", "worker"], env, log) as proc:
        wait_answers(proc, port, log, ANSWERS_WITHIN_S)
        deadline = time.monotonic() + 30
        while True:  # past the start (topics, group join): the capture file decides
            ready = probe(port, "/readyz")
            assert ready[0] == 503, ready
            if ready[1]["status"] == "unavailable" and ready[1]["broker_reachable"] is not None:
                break
            assert time.monotonic() < deadline, (ready, log.read_text())
            time.sleep(0.1)
        live = probe(port, "/livez")
        assert live[0] == 200, live
        assert ready[1]["reason"] == "the capture file cannot be written"
        assert ready[1]["capture_failing"] is True
        assert ready[1]["mode"] == "capture"
        assert ready[1]["broker_reachable"] is True
        volume.mkdir()  # mounted, with no event to append: the probe itself rechecks
        deadline = time.monotonic() + 5
        while (ready := probe(port, "/readyz"))[0] != 200:
            assert time.monotonic() < deadline, (ready, log.read_text())
            time.sleep(0.1)
        assert capture.exists()
        stop_now(proc)
