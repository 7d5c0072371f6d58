"""Start-up and shutdown against real brokers, through the ``codex-analytics`` commands as
processes: an unreachable broker is waited for (``ANALYTICS_KAFKA_WAIT_S``) and then
one line and exit 1; a broker that comes up during the wait lets the command proceed;
SIGTERM ends a service during the wait and during topic creation; topics are created as
the topic plan says, or must exist (``ANALYTICS_CREATE_TOPICS=false``); ``topics
plan|apply``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from codex_analytics.devtools.broker import free_port
from codex_analytics.runtime.kafka_start import KafkaStartError, inspect_topics, with_cluster
from codex_analytics.runtime.topic_plan import TopicPlan
from tests.chaos.proxy import KafkaProxy, proxied_broker
from tests.cli import ROOT

WAIT_S = 1.0
#: A process's own start (imports: Faust's are the heaviest) on a loaded 2-core runner
#: (measured up to 18 s for nine at once with a load average of 14); far below the
#: default wait (60 s), so a command that ignored ``ANALYTICS_KAFKA_WAIT_S`` fails.
START_MARGIN_S = 25.0
CREATE_TOPICS_API = 19


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without pipeline or Kafka settings, plus ``settings``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANALYTICS_", "KAFKA_", "CODEX_ANALYTICS_"))
    }
    return {**base, **settings}


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "codex_analytics.cli.main", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def wait_for_text(log: Path, text: str, within: float) -> None:
    deadline = time.monotonic() + within
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {text!r} within {within} s:\n{log.read_text()}"
        time.sleep(0.05)


def text_of(line: str) -> str:
    """A line's text: the message of a JSON log line (services off a terminal)."""
    return str(orjson.loads(line)["message"]) if line.startswith("{") else line


@pytest.fixture
def closed_port() -> int:
    return free_port("127.0.0.1")  # nothing listens there: connections are refused at once


# -- (a) an unreachable broker: one line naming the host, exit 1, within the wait ----------

COMMANDS: dict[str, list[str]] = {
    "produce": ["produce", "{facts}"],
    "generate": ["generate", "--facts", "5", "--to-kafka"],
    "stream worker": ["stream", "worker"],
    "sink worker": ["sink", "worker"],
    "gateway": ["gateway", "--addr", "127.0.0.1:0"],
    "offsets": ["offsets", "show"],
    "replay": ["replay", "--from", "earliest", "--capture", "{tmp}/replay.jsonl"],
    "topics": ["topics", "apply"],
    "demo": ["demo", "--facts", "5", "--capture", "{tmp}/demo/capture.jsonl"],
}


def test_an_unreachable_broker_is_one_line_and_exit_1(closed_port: int, tmp_path: Path) -> None:
    """Every command at once (the waits overlap: one test's time, not nine)."""
    facts = tmp_path / "facts.jsonl"
    facts.write_text("{}\n")
    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{closed_port}",
        ANALYTICS_KAFKA_WAIT_S=str(WAIT_S),
        CODEX_ANALYTICS_EVENTS_CAPTURE_FILE=str(tmp_path / "capture.jsonl"),
    )
    started = time.monotonic()
    processes = {
        command: spawn(
            [a.format(facts=facts, tmp=tmp_path) for a in args], env, tmp_path / f"{command}.log"
        )
        for command, args in COMMANDS.items()
    }
    try:
        statuses = {c: p.wait(WAIT_S + START_MARGIN_S) for c, p in processes.items()}
    finally:
        for process in processes.values():
            process.kill()
    elapsed = time.monotonic() - started
    for command, status in statuses.items():
        stderr = (tmp_path / f"{command}.log").read_text()
        assert status == 1, f"{command}: {stderr}"
        assert "Traceback" not in stderr, f"{command}: {stderr}"
        last = text_of(stderr.strip().splitlines()[-1])
        assert last.startswith(
            f"{command}: Kafka at 127.0.0.1:{closed_port} not reachable within 1 s"
        ), last
        assert "unreachable (connection refused)" in last
        # One line per attempt of ours, none of aiokafka's own per host and retry.
        assert 1 <= stderr.count("waiting for Kafka at") <= 6, f"{command}: {stderr}"
        assert "Unable connect" not in stderr, f"{command}: {stderr}"
    assert elapsed < WAIT_S + START_MARGIN_S


async def test_a_refusal_no_wait_can_mend_ends_the_wait_at_once(kafka_bootstrap: str) -> None:
    """Authentication, authorization, TLS: one line at once, not after the wait."""
    import ssl

    async def refused(admin: object) -> None:
        raise ssl.SSLCertVerificationError(1, "certificate verify failed")

    started = time.monotonic()
    with pytest.raises(KafkaStartError, match=f"Kafka at {kafka_bootstrap}: TLS handshake failed"):
        await with_cluster(kafka_bootstrap, refused, within=30)
    assert time.monotonic() - started < 5


# -- (b) a broker that comes up during the wait ----------------------------------------------


@pytest.fixture
def late_broker(kafka_bootstrap: str) -> Iterator[KafkaProxy]:
    """The module's broker behind a proxy that refuses connections until ``restore()``."""
    proxy = KafkaProxy(int(kafka_bootstrap.rsplit(":", 1)[1])).start()
    proxy.cut()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_produce_proceeds_when_the_broker_comes_up(
    late_broker: KafkaProxy,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator

    topic = unique_name("facts")
    facts = tmp_path / "facts.jsonl"
    config = GeneratorConfig(instances=2, seed=3)
    facts.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in SessionGenerator(config).facts(20)))
    log = tmp_path / "produce.log"
    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=late_broker.address,
        ANALYTICS_FACTS_TOPIC=topic,
        ANALYTICS_TOPIC_PARTITIONS="2",
    )
    process = spawn(["produce", str(facts), "--retry-for", "30"], env, log)
    try:
        wait_for_text(log, "waiting for Kafka at", START_MARGIN_S)
        late_broker.restore()
        assert process.wait(30) == 0, log.read_text()
    finally:
        process.kill()
    assert "published 20 facts" in log.read_text()
    assert late_broker.accepted > 0


def test_a_service_proceeds_when_the_broker_comes_up(
    late_broker: KafkaProxy,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """The sink waits, then creates its topics and runs until SIGTERM (exit 0)."""
    prefix = unique_name("late")
    log = tmp_path / "sink.log"
    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=late_broker.address,
        ANALYTICS_EVENTS_TOPIC=f"{prefix}.events",
        ANALYTICS_EVENTS_DLQ_TOPIC=f"{prefix}.events.dlq",
        ANALYTICS_SINK_GROUP=f"{prefix}-sink",
        ANALYTICS_TOPIC_PARTITIONS="2",
        ANALYTICS_LOG_LEVEL="INFO",
        CODEX_ANALYTICS_EVENTS_CAPTURE_FILE=str(tmp_path / "capture.jsonl"),
    )
    process = spawn(["sink", "worker"], env, log)
    try:
        wait_for_text(log, "waiting for Kafka at", START_MARGIN_S)
        late_broker.restore()
        wait_for_text(log, "created topic", 20)
        plan = TopicPlan.named({f"{prefix}.events": 2, f"{prefix}.events.dlq": 2})
        found = asyncio.run(inspect_topics(kafka_bootstrap, plan, within=5))
        assert {name: t.partitions for name, t in found.items()} == {
            f"{prefix}.events": 2,
            f"{prefix}.events.dlq": 2,
        }
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0, log.read_text()
    finally:
        process.kill()


# -- (c) SIGTERM during the wait, and during topic creation -----------------------------------

SERVICES = {
    "stream worker": ["stream", "worker"],
    "sink worker": ["sink", "worker"],
    "gateway": ["gateway", "--addr", "127.0.0.1:0"],
}
SHUTDOWN_TIMEOUT_S = 2.0


def test_sigterm_during_the_wait_ends_each_service(closed_port: int, tmp_path: Path) -> None:
    env = clean_env(
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{closed_port}",
        ANALYTICS_KAFKA_WAIT_S="120",
        ANALYTICS_SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_TIMEOUT_S),
        CODEX_ANALYTICS_EVENTS_CAPTURE_FILE=str(tmp_path / "capture.jsonl"),
    )
    logs = {service: tmp_path / f"{service}.log" for service in SERVICES}
    processes = {s: spawn(args, env, logs[s]) for s, args in SERVICES.items()}
    try:
        for service, process in processes.items():
            wait_for_text(logs[service], "waiting for Kafka at", START_MARGIN_S)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            status = process.wait(SHUTDOWN_TIMEOUT_S + 5)
            assert time.monotonic() - signalled < SHUTDOWN_TIMEOUT_S + 5
            assert status == 0, logs[service].read_text()
            assert "Traceback" not in logs[service].read_text()
    finally:
        for process in processes.values():
            process.kill()


def test_sigterm_during_topic_creation_ends_the_stream_worker(
    tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    """CreateTopics answers held back 60 s: the worker is stuck in its start, before
    Faust and its signal handlers exist."""
    log = tmp_path / "stream.log"
    with proxied_broker(tmp_path / "broker.log") as (bootstrap, proxy):
        proxy.hold(CREATE_TOPICS_API, 60)
        prefix = unique_name("held")
        env = clean_env(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            ANALYTICS_FACTS_TOPIC=f"{prefix}.facts",
            ANALYTICS_SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_TIMEOUT_S),
        )
        process = spawn(["stream", "worker"], env, log)
        try:
            deadline = time.monotonic() + START_MARGIN_S + 10
            while not proxy.held_count.get(CREATE_TOPICS_API):
                assert time.monotonic() < deadline, log.read_text()
                assert process.poll() is None, log.read_text()
                time.sleep(0.05)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            status = process.wait(SHUTDOWN_TIMEOUT_S + 5)
        finally:
            process.kill()
    assert time.monotonic() - signalled < SHUTDOWN_TIMEOUT_S + 5
    assert status == 0, log.read_text()


# -- (d) replication, (e) pre-created topics, (f) topics plan|apply --------------------------


Invoke = Callable[..., tuple[int, str, str]]


@pytest.fixture
def invoke(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Invoke:
    """``invoke(*args, env=...)``: the command in this process (its parser, its ``run``
    and its output, without a process start): ``(status, stdout, stderr)``; stderr ends
    with its log lines of level WARNING and above, as a process without logging
    configured writes them (pytest's own handler takes them here)."""
    from codex_analytics.cli.main import main

    def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
        for name in list(os.environ):
            if name.startswith(("ANALYTICS_", "KAFKA_", "CODEX_ANALYTICS_")):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            status = main(list(args))
        out = capsys.readouterr()
        logged = "".join(
            f"{r.getMessage()}\n" for r in caplog.records if r.levelno >= logging.WARNING
        )
        return status, out.out, out.err + logged

    return run


def topics_env(bootstrap: str, prefix: str, **settings: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "ANALYTICS_FACTS_TOPIC": f"{prefix}.facts",
        "ANALYTICS_FACTS_DLQ_TOPIC": f"{prefix}.facts.dlq",
        "ANALYTICS_EVENTS_TOPIC": f"{prefix}.events",
        "ANALYTICS_EVENTS_DLQ_TOPIC": f"{prefix}.events.dlq",
        "ANALYTICS_STREAM_APP_ID": prefix,
        "ANALYTICS_TOPIC_PARTITIONS": "3",
        "ANALYTICS_KAFKA_WAIT_S": "5",
        **settings,
    }


def test_topics_plan_then_apply_then_plan_again(
    kafka_bootstrap: str, unique_name: Callable[[str], str], invoke: Invoke
) -> None:
    prefix = unique_name("plan")
    env = topics_env(kafka_bootstrap, prefix, ANALYTICS_TOPIC_RETENTION_HOURS="48")
    changelog = f"{prefix}-reducer-state-changelog"

    status, out, err = invoke("topics", "plan", "--format", "json", env=env)
    assert status == 0, err
    doc = orjson.loads(out)
    assert doc["cluster"] == kafka_bootstrap
    assert [(t["name"], t["status"]) for t in doc["topics"]] == [
        (f"{prefix}.facts", "create"),
        (f"{prefix}.events", "create"),
        (f"{prefix}.facts.dlq", "create"),
        (f"{prefix}.events.dlq", "create"),
        (changelog, "create"),
    ]
    assert doc["topics"][4]["configs"]["cleanup.policy"] == "compact"

    status, out, err = invoke("topics", "apply", env=env)
    assert status == 0, err
    assert out.count("  created ") == 5
    assert "never changed" in out

    status, out, err = invoke("topics", "apply", "--format", "json", env=env)
    assert status == 0, err
    topics = orjson.loads(out)["topics"]
    assert {t["status"] for t in topics} == {"ok"}
    # As the plan said, read back from the broker: partitions, replication, configs.
    facts, changelog_topic = topics[0], topics[4]
    assert facts["existing"]["partitions"] == 3
    assert facts["existing"]["replication_factor"] == 1
    assert facts["existing"]["configs"]["retention.ms"] == str(48 * 3_600_000)
    assert changelog_topic["existing"]["configs"]["cleanup.policy"] == "compact"


def test_topics_plan_reports_differences_and_a_mismatched_changelog(
    kafka_bootstrap: str, unique_name: Callable[[str], str], invoke: Invoke
) -> None:
    prefix = unique_name("diff")
    asyncio.run(
        with_cluster(
            kafka_bootstrap,
            lambda admin: admin.create_topics(
                [
                    _new_topic(f"{prefix}.facts", 3),
                    _new_topic(f"{prefix}-reducer-state-changelog", 2),
                    _new_topic(f"{prefix}.events", 5),
                ]
            ),
            within=5,
        )
    )
    status, out, err = invoke("topics", "plan", env=topics_env(kafka_bootstrap, prefix))
    assert status == 1, err
    lines = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert lines[f"{prefix}.events"].lstrip().startswith("warning")
    assert "has 5 partitions, the plan 3" in lines[f"{prefix}.events"]
    assert lines[f"{prefix}-reducer-state-changelog"].lstrip().startswith("error")
    assert lines[f"{prefix}.facts.dlq"].lstrip().startswith("create")


def _new_topic(name: str, partitions: int) -> object:
    from aiokafka.admin import NewTopic

    return NewTopic(name, num_partitions=partitions, replication_factor=1)


def test_a_replication_factor_the_cluster_cannot_hold_is_one_line(
    kafka_bootstrap: str, unique_name: Callable[[str], str], invoke: Invoke
) -> None:
    """The embedded broker is one node and would even accept replication 3 (listing the
    one node three times): the check before creating says what a real cluster would."""
    env = topics_env(kafka_bootstrap, unique_name("rf"), ANALYTICS_TOPIC_REPLICATION_FACTOR="3")
    status, _, err = invoke("topics", "apply", env=env)
    assert status == 1
    [line] = err.strip().splitlines()
    assert "with replication factor 3: the cluster at" in line
    assert "has 1 broker(s) (ANALYTICS_TOPIC_REPLICATION_FACTOR)" in line


def test_pre_created_topics_that_are_missing_are_one_line(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path, invoke: Invoke
) -> None:
    prefix = unique_name("precreated")
    facts = tmp_path / "facts.jsonl"
    facts.write_text("{}\n")
    env = topics_env(
        kafka_bootstrap, prefix, ANALYTICS_CREATE_TOPICS="false", ANALYTICS_KAFKA_WAIT_S="1"
    )
    status, _, err = invoke("produce", str(facts), env=env)
    assert status == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"produce: topic(s) {prefix}.facts do not exist on {kafka_bootstrap}")
    assert "ANALYTICS_CREATE_TOPICS=false" in last
    assert "codex-analytics topics apply" in last
    # Nothing created it meanwhile.
    plan = TopicPlan.named({f"{prefix}.facts": 3})
    assert asyncio.run(inspect_topics(kafka_bootstrap, plan, within=5)) == {}
