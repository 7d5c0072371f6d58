"""The start-up wait's parts without a broker: which failures are worth waiting for, and
how aiokafka's per-host failure lines become the cause of ours."""

from __future__ import annotations

import logging
import socket
import ssl
import time

import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
)

from codex_analytics.runtime.kafka_connection import classify
from codex_analytics.runtime.kafka_start import (
    KafkaStartError,
    _connection_failures,
    wait_for_cluster,
)


@pytest.mark.parametrize(
    "exc",
    [
        SaslAuthenticationFailed("bad password"),
        GroupAuthorizationFailedError(),
        ssl.SSLCertVerificationError(1, "certificate verify failed"),
    ],
)
def test_refusals_are_permanent(exc: BaseException) -> None:
    assert classify("kafka-0:9092", exc).permanent


@pytest.mark.parametrize(
    "exc",
    [ConnectionRefusedError(111, "refused"), KafkaConnectionError("no broker"), TimeoutError()],
)
def test_unreachable_is_worth_waiting_for(exc: BaseException) -> None:
    assert not classify("kafka-0:9092", exc).permanent


def test_a_tls_failure_says_so() -> None:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    assert classify("kafka-0:9092", exc).line.startswith("Kafka at kafka-0:9092: TLS ")


def test_aiokafka_per_host_failures_are_collected_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiokafka logs ``Unable connect to "%s:%s": %s`` once per host and try; the wait
    keeps the cause and drops the line. Other lines of the logger pass. (It is logged on
    ``aiokafka.client``: a filter on the parent ``aiokafka`` would never see it.)"""
    logger = logging.getLogger("aiokafka.client")
    refused = ConnectionRefusedError(111, "Connect call failed")
    with caplog.at_level(logging.INFO, logger="aiokafka"), _connection_failures() as failures:
        logger.error('Unable connect to "%s:%s": %s', "kafka-0", 9092, refused)
        logger.info("something else: %s", "kept")
    assert failures == [("kafka-0:9092", refused)]
    assert [r.getMessage() for r in caplog.records] == ["something else: kept"]
    logger.error('Unable connect to "%s:%s": %s', "kafka-0", 9092, refused)
    assert len(caplog.records) == 2  # the filter is gone after the attempt


async def test_a_wait_of_zero_is_one_attempt() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(KafkaStartError) as raised:
        await wait_for_cluster(f"127.0.0.1:{port}", 0)
    assert time.monotonic() - started < 2
    assert str(raised.value).startswith(f"Kafka at 127.0.0.1:{port} not reachable within 0 s")
