"""What every ``codex-analytics <service> worker`` command shares: the ``worker`` role,
settings errors as exit status 2, and the Kafka bootstrap (embedded when unset)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeVar

from codex_analytics.runtime.kafka import KafkaCluster

S = TypeVar("S")


def add_worker_role(parser: argparse.ArgumentParser, service: str, description: str) -> None:
    roles = parser.add_subparsers(dest="role", metavar="ROLE", required=True)
    roles.add_parser(
        "worker",
        help=f"run one {service} worker until SIGTERM / Ctrl-C",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def run_worker_role(
    service: str, load_settings: Callable[[], S], start: Callable[[S, KafkaCluster], int]
) -> int:
    """Load the settings (a ``ValueError`` is a usage error: exit 2), then start the
    worker against ``KAFKA_BOOTSTRAP_SERVERS`` or an embedded broker."""
    from codex_analytics.cli.kafka_check import connection_refused
    from codex_analytics.devtools.broker import kafka_cluster

    try:
        settings = load_settings()
        configured = KafkaCluster.configured()
    except ValueError as exc:
        print(f"{service} worker: {exc}", file=sys.stderr)
        return 2
    refused = connection_refused(f"{service} worker", configured)
    if refused is not None:
        return refused
    with kafka_cluster(configured) as cluster:
        return start(settings, cluster)
