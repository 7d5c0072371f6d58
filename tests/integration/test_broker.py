"""The embedded broker: Kafka round trips, lifecycle, and no orphaned processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from codex_analytics.contract import decode_fact, encode_fact
from codex_analytics.devtools.broker import EmbeddedBroker, EmbeddedBrokerError, kafka_cluster
from codex_analytics.runtime.kafka import KafkaCluster
from tests.factories import Instance

from .kafka_helpers import create_topic

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# This broker answers JoinGroup after half the session timeout; aiokafka's 10 s
# default would make every group join take 5 s.
FAST_GROUP = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}


async def round_trip(bootstrap: str, topic: str, group: str, value: bytes) -> bytes:
    """Produce ``value`` to ``topic`` and consume it back in a new group."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        **FAST_GROUP,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(20):
            record = await consumer.getone()
    finally:
        await consumer.stop()
    assert record.value is not None
    return bytes(record.value)


async def test_produce_and_consume_a_fact(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("facts")
    await create_topic(kafka_bootstrap, topic)
    fact = decode_fact(orjson.dumps(Instance("inst-broker").turn_start_request(7, 1, images=1)))
    value = encode_fact(fact)

    received = await round_trip(kafka_bootstrap, topic, unique_name("group"), value)
    assert received == value
    assert decode_fact(received) == fact


def test_env_bootstrap_is_used_as_is_and_nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_start(self: EmbeddedBroker, timeout: float = 30.0) -> str:
        raise AssertionError("started an embedded broker although KAFKA_BOOTSTRAP_SERVERS is set")

    monkeypatch.setattr(EmbeddedBroker, "start", must_not_start)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "from-os-environ:9092")

    configured = KafkaCluster.configured({"KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092"})
    with kafka_cluster(configured) as cluster:
        assert cluster.bootstrap == "kafka.example:9092"
    with kafka_cluster(KafkaCluster.configured()) as cluster:
        assert cluster.bootstrap == "from-os-environ:9092"


def test_kafka_bootstrap_without_env_starts_and_stops_a_broker() -> None:
    seen: list[tuple[str, int]] = []

    def interrupted_inside() -> None:
        configured = KafkaCluster.configured({"KAFKA_BOOTSTRAP_SERVERS": " "})
        assert configured is None
        with kafka_cluster(configured) as cluster:
            host, port = cluster.bootstrap.rsplit(":", 1)
            seen.append((host, int(port)))
            assert accepts_connections(host, int(port))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_inside()

    ((host, port),) = seen
    assert not accepts_connections(host, port)


def test_broker_lifecycle(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=str(tmp_path / "broker.log"))
    assert (broker.pid, broker.running) == (None, False)

    address = broker.start(timeout=10)
    pid = broker.pid
    assert pid is not None
    started = process_start_time(pid)
    assert broker.running
    assert address == broker.bootstrap_servers
    assert address.startswith("127.0.0.1:")
    assert broker.start() == address  # already running: same broker

    broker.stop()
    broker.stop()  # idempotent
    assert broker.pid is None
    assert not process_alive(pid, started)
    with pytest.raises(EmbeddedBrokerError):
        _ = broker.bootstrap_servers


def test_taken_port_fails_fast_with_the_log(tmp_path: Path) -> None:
    with EmbeddedBroker() as first:
        port = int(first.bootstrap_servers.rsplit(":", 1)[1])
        second = EmbeddedBroker(port=port, log_path=str(tmp_path / "second.log"))
        started = time.monotonic()

        with pytest.raises(EmbeddedBrokerError, match="Address in use"):
            second.start(timeout=10)

        # The readiness probe must not mistake the first broker for the second.
        assert time.monotonic() - started < 5
        assert second.pid is None
        assert first.running


# --- the `broker` subcommand, run as a real process ---


@pytest.fixture
async def broker_command(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``python -m codex_analytics.cli.main broker`` and the address it printed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env["KAFKA_BOOTSTRAP_SERVERS"] = ""
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "codex_analytics.cli.main", "broker",
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=PROJECT_ROOT,
            env=env,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:"), (
            line,
            stderr_path.read_text(),
        )
        yield proc, line.strip().split("=", 1)[1]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_command_broker_dies_with_its_parent(
    broker_command: tuple[asyncio.subprocess.Process, str], unique_name: Callable[[str], str]
) -> None:
    proc, bootstrap = broker_command
    fact = orjson.dumps({"kind": "via-command"})
    topic = unique_name("facts")
    assert await round_trip(bootstrap, topic, unique_name("group"), fact) == fact
    (broker,) = child_pids(proc.pid)
    started = process_start_time(broker)

    proc.kill()  # SIGKILL: no handler, no atexit; only PR_SET_PDEATHSIG is left
    await proc.wait()

    assert await gone_within(5.0, broker, started)
    host, port = bootstrap.rsplit(":", 1)
    assert not accepts_connections(host, int(port))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_command_stops_cleanly_on_signal(
    broker_command: tuple[asyncio.subprocess.Process, str], signum: signal.Signals
) -> None:
    proc, bootstrap = broker_command
    (broker,) = child_pids(proc.pid)
    started = process_start_time(broker)

    proc.send_signal(signum)
    async with asyncio.timeout(15):
        code = await proc.wait()

    assert code == 0
    assert await gone_within(2.0, broker, started)
    host, port = bootstrap.rsplit(":", 1)
    assert not accepts_connections(host, int(port))


# --- /proc helpers (Linux) ---


def read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if there is no such process."""
    return read_stat_file(Path(f"/proc/{pid}/stat"))


def read_stat_file(path: Path) -> list[str] | None:
    try:
        text = path.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself contain spaces or ")".
    return text[text.rindex(")") + 2 :].split()


def process_start_time(pid: int) -> str:
    stat = read_stat(pid)
    assert stat is not None, f"no process {pid}"
    return stat[19]  # field 22 of stat: start time, tells a reused pid apart


def process_alive(pid: int, started: str) -> bool:
    """Whether any thread of the process is still running.

    A killed multi-threaded process shows its leader as a zombie ("Z") while its
    other threads are still being torn down (still holding its sockets), so
    every thread is checked, not just the leader.
    """
    stat = read_stat(pid)
    if stat is None or stat[19] != started:
        return False
    try:
        tasks = [task.name for task in Path(f"/proc/{pid}/task").iterdir()]
    except FileNotFoundError:
        return False
    for tid in tasks:
        task_stat = read_stat_file(Path(f"/proc/{pid}/task/{tid}/stat"))
        if task_stat is not None and task_stat[0] not in ("Z", "X"):
            return True
    return False


def child_pids(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None and int(stat[1]) == parent:
                children.append(int(entry.name))
    return children


async def gone_within(seconds: float, pid: int, started: str) -> bool:
    deadline = time.monotonic() + seconds
    while process_alive(pid, started):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
