"""Every command's first contact with a configured Kafka cluster: when the cluster
refuses this client as configured (TLS, protocol, SASL) or cannot be reached, one line
naming the host and what failed, and exit status 1, before any client starts (aiokafka
would hide the cause, or, a TLS client on a plaintext port, wait out its request
timeout). See :mod:`codex_analytics.runtime.kafka_connection`."""

from __future__ import annotations

import asyncio
import sys

from codex_analytics.runtime.kafka import KafkaCluster
from codex_analytics.runtime.kafka_connection import DIAGNOSE_TIMEOUT_S, diagnose


def connection_failure(cluster: KafkaCluster | None, *, permanent_only: bool = False) -> str | None:
    """None when ``cluster`` answers as configured (or is None: the command starts an
    embedded broker; or the failure is transient and ``permanent_only``); else ``Kafka
    at host:port: what failed``."""
    if cluster is None:
        return None
    failure = asyncio.run(diagnose(cluster, within=DIAGNOSE_TIMEOUT_S))
    if failure is None or (permanent_only and not failure.permanent):
        return None
    return failure.line


def connection_refused(
    command: str, cluster: KafkaCluster | None, *, permanent_only: bool = False
) -> int | None:
    """:func:`connection_failure` for a command: None, or the line printed as
    ``<command>: Kafka at ...`` and the exit status, 1. ``permanent_only``: a service
    that serves while the broker is away (the gateway: ``/readyz`` says so) starts
    anyway when it is only unreachable."""
    line = connection_failure(cluster, permanent_only=permanent_only)
    if line is None:
        return None
    print(f"{command}: {line}", file=sys.stderr)
    return 1
