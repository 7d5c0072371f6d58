"""Kafka security against real endpoints: TLS (and mTLS) terminated in front of the
embedded broker, which advertises the TLS port (tests/integration/tls_proxy.py), and
SASL against the embedded broker with authentication on. Every compression codec
against the embedded broker.

The idempotent producer cannot be tested here: the embedded broker does not serve
InitProducerId. tests/unit/test_kafka_security.py checks its mapping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from codex_analytics.devtools.broker import EmbeddedBroker, free_port
from codex_analytics.runtime.kafka import KafkaCluster, ensure_topics, read_from_start
from codex_analytics.runtime.kafka_connection import diagnose
from codex_analytics.runtime.kafka_security import KafkaSecurity, Secret
from tests.cli import run_cli
from tests.integration.tls_proxy import TlsBroker, tls_broker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    with tls_broker(tmp_path_factory.mktemp("tls")) as broker:
        yield broker


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    with tls_broker(tmp_path_factory.mktemp("mtls"), require_client_cert=True) as broker:
        yield broker


def _ssl(bootstrap: str, ca: Path, **files: Path) -> KafkaCluster:
    security = KafkaSecurity(
        "SSL", ssl_ca_file=str(ca), **{name: str(path) for name, path in files.items()}
    )
    security.check()
    return KafkaCluster(bootstrap, security=security)


async def _round_trip(cluster: KafkaCluster, topic: str) -> None:
    """Create a topic, produce to it and read it back: admin, producer, consumer."""
    assert await ensure_topics(cluster, {topic: 1}) == {topic: 1}
    producer = AIOKafkaProducer(**cluster.producer_options())
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"through-tls", key=b"k")
    finally:
        await producer.stop()
    records = await read_from_start(cluster, topic, want=1, within=10.0)
    assert [r.value for r in records] == [b"through-tls"]


async def test_every_kind_of_client_works_through_tls(
    tls: TlsBroker, unique_name: Callable[[str], str]
) -> None:
    cluster = _ssl(tls.bootstrap, tls.pki.ca)
    assert await diagnose(cluster, within=2.0) is None
    # One answering bootstrap host is enough, whatever the others do.
    dead = f"127.0.0.1:{free_port('127.0.0.1')}"
    two = KafkaCluster(f"{dead},{tls.plaintext},{tls.bootstrap}", security=cluster.security)
    assert await diagnose(two, within=2.0) is None
    await _round_trip(cluster, unique_name("tls"))


async def test_mtls_with_an_encrypted_client_key(
    mtls: TlsBroker, unique_name: Callable[[str], str]
) -> None:
    pki = mtls.pki
    cluster = _ssl(
        mtls.bootstrap,
        pki.ca,
        ssl_cert_file=pki.client_cert,
        ssl_key_file=pki.client_key_encrypted,
        ssl_key_password_file=pki.client_key_password,
    )
    await _round_trip(cluster, unique_name("mtls"))


def _failures(tls: TlsBroker, mtls: TlsBroker) -> dict[str, tuple[KafkaCluster, str, bool]]:
    """name -> (cluster, the whole line, permanent)."""
    pki = tls.pki
    free = f"127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there
    return {
        "wrong CA": (
            _ssl(tls.bootstrap, pki.other_ca),
            f"Kafka at {tls.bootstrap}: TLS handshake failed: certificate verify failed: "
            f"unable to get local issuer certificate (KAFKA_SSL_CA_FILE={pki.other_ca})",
            True,
        ),
        "TLS client, plaintext port": (
            _ssl(tls.plaintext, pki.ca),
            f"Kafka at {tls.plaintext}: the port speaks plaintext Kafka, not TLS "
            "(KAFKA_SECURITY_PROTOCOL=SSL)",
            True,
        ),
        "plaintext client, TLS port": (
            KafkaCluster(tls.bootstrap),
            f"Kafka at {tls.bootstrap}: the port speaks TLS "
            "(KAFKA_SECURITY_PROTOCOL=PLAINTEXT: use SSL or SASL_SSL)",
            True,
        ),
        "no client certificate": (
            _ssl(mtls.bootstrap, mtls.pki.ca),
            f"Kafka at {mtls.bootstrap}: TLS refused: the connection was closed after the "
            "handshake (the broker may require a client certificate: set KAFKA_SSL_CERT_FILE)",
            True,
        ),
        "unreachable": (
            _ssl(free, pki.ca),
            f"Kafka at {free}: unreachable (connection refused)",
            False,
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong CA",
        "TLS client, plaintext port",
        "plaintext client, TLS port",
        "no client certificate",
        "unreachable",
    ],
)
async def test_a_failed_connection_is_one_line_naming_the_host_and_the_cause(
    case: str, tls: TlsBroker, mtls: TlsBroker
) -> None:
    cluster, line, permanent = _failures(tls, mtls)[case]
    started = time.monotonic()
    failure = await diagnose(cluster, within=1.0)
    assert failure is not None
    assert (failure.line, failure.permanent) == (line, permanent)
    assert time.monotonic() - started < 4.0  # never a hang: a TLS client on a plaintext port


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SASL_SSL", "SCRAM-SHA-512"),
    ],
)
async def test_sasl_refused_by_the_broker_is_one_line_without_the_password(
    protocol: str,
    mechanism: str,
    sasl_broker: str,
    sasl_tls: TlsBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The embedded broker serves SCRAM but, memory-only, holds no user: every login is
    refused (a right password cannot be tested here; PLAIN it does not offer at all).
    SASL_SSL: the same exchange inside TLS."""
    caplog.set_level(logging.DEBUG)
    tls = protocol == "SASL_SSL"
    bootstrap = sasl_tls.bootstrap if tls else sasl_broker
    security = KafkaSecurity(
        protocol,
        ssl_ca_file=str(sasl_tls.pki.ca) if tls else None,
        sasl_mechanism=mechanism,
        sasl_username="alice",
        sasl_password=Secret("wrong-Pa55word"),
    )
    security.check()
    failure = await diagnose(KafkaCluster(bootstrap, security=security), within=2.0)
    assert failure is not None
    assert failure.line == (
        f"Kafka at {bootstrap}: SASL authentication failed for user alice ({mechanism})"
    )
    assert failure.permanent
    assert not any("wrong-Pa55word" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("sasl") / "broker.log"
    with EmbeddedBroker(log_path=str(log), authentication=True) as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="module")
def sasl_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    with tls_broker(tmp_path_factory.mktemp("sasl-tls"), authentication=True) as broker:
        yield broker


@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd"])
async def test_every_compression_codec_round_trips(
    codec: str, kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    cluster = KafkaCluster(kafka_bootstrap, compression=codec)
    topic = unique_name(codec)
    await ensure_topics(cluster, {topic: 1})
    producer = AIOKafkaProducer(**cluster.producer_options())
    await producer.start()
    try:
        await asyncio.gather(
            *[await producer.send(topic, b"x" * 1000 + bytes([i])) for i in range(20)]
        )
    finally:
        await producer.stop()
    records = await read_from_start(kafka_bootstrap, topic, want=20, within=10.0)
    assert sorted(r.value[-1] for r in records) == list(range(20))


def _kafka_env(bootstrap: str, ca: Path) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SSL",
        "KAFKA_SSL_CA_FILE": str(ca),
    }


def _messages(stderr: str) -> list[str]:
    """Each stderr line's message: a JSON log line's ``message``, a plain line as is."""
    messages = []
    for line in stderr.strip().splitlines():
        try:
            messages.append(orjson.loads(line)["message"])
        except (orjson.JSONDecodeError, TypeError, KeyError):
            messages.append(line)
    return messages


@pytest.mark.parametrize(
    "command",
    [
        ("produce", "-"),
        ("stream", "worker"),
        ("sink", "worker"),
        ("gateway", "--addr", "127.0.0.1:0"),
        ("offsets", "show"),
        ("replay", "--from", "earliest", "--capture", "{tmp}/replayed.jsonl"),
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_a_wrong_ca_ends_every_command_with_one_line_and_status_1(
    command: tuple[str, ...], tls: TlsBroker, tmp_path: Path
) -> None:
    env = _kafka_env(tls.bootstrap, tls.pki.other_ca)
    env["CODEX_ANALYTICS_EVENTS_CAPTURE_FILE"] = str(tmp_path / "capture.jsonl")
    argv = [part.replace("{tmp}", str(tmp_path)) for part in command]
    started = time.monotonic()
    result = run_cli(*argv, env=env, stdin="", timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    # The services log JSON (their banner first): one line says what failed.
    failures = [line for line in _messages(result.stderr) if "Kafka at" in line]
    assert len(failures) == 1, result.stderr
    assert (
        f"Kafka at {tls.bootstrap}: TLS handshake failed: certificate verify failed: "
        f"unable to get local issuer certificate (KAFKA_SSL_CA_FILE={tls.pki.other_ca})"
    ) in failures[0]
    assert "Traceback" not in result.stderr
    assert elapsed < 15


def test_the_demo_passes_through_tls(tls: TlsBroker, tmp_path: Path) -> None:
    """The stream worker (Faust: consumer, producer, changelog creation), the sink and
    the client library, each a process of its own, all through TLS."""
    capture = tmp_path / "out" / "events.jsonl"
    result = run_cli(
        "demo", "--facts", "300", "--instances", "10", "--capture", str(capture),
        env=_kafka_env(tls.bootstrap, tls.pki.ca), timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: the " in result.stdout
    assert f"Kafka at {tls.bootstrap} (SSL)" in result.stderr
    logs = tmp_path / "out" / "logs"
    assert f"stream worker: Kafka {tls.bootstrap}" in (logs / "stream-1.log").read_text()


async def test_an_absent_broker_is_worth_waiting_for_a_refusing_one_is_not(
    tls: TlsBroker,
) -> None:
    """What the start-up wait asks on every attempt (codex_analytics.runtime.kafka_start):
    a broker that is not there may come, one that refuses the configuration will not."""
    from codex_analytics.runtime.kafka_connection import diagnose

    dead = KafkaCluster(f"127.0.0.1:{free_port('127.0.0.1')}")
    absent = await diagnose(dead, within=2)
    assert absent is not None
    assert absent.line == f"Kafka at {dead.bootstrap}: unreachable (connection refused)"
    assert not absent.permanent
    refused = await diagnose(_ssl(tls.bootstrap, tls.pki.other_ca), within=2)
    assert refused is not None
    assert refused.permanent
    assert await diagnose(_ssl(tls.bootstrap, tls.pki.ca), within=2) is None
