"""What every ``codex-analytics <service> worker`` command shares: the ``worker`` role,
settings errors as exit status 2, the start (logging, unknown variables) and the Kafka
bootstrap (embedded when unset)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from codex_analytics.runtime.kafka import KafkaCluster

S = TypeVar("S")


def add_worker_role(parser: argparse.ArgumentParser, service: str, description: str) -> None:
    add_only_action(
        parser,
        ("role", "ROLE"),
        "worker",
        help=f"run one {service} worker until SIGTERM / Ctrl-C",
        description=description,
    )


def add_only_action(
    parser: argparse.ArgumentParser,
    dest_metavar: tuple[str, str],
    name: str,
    *,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    """The one (required) second word of a command (``stream worker``, ``config check``,
    ``smoke plugin``), its help laid out as written; returns its parser."""
    dest, metavar = dest_metavar
    actions = parser.add_subparsers(dest=dest, metavar=metavar, required=True)
    return actions.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def run_worker_role(
    service: str,
    load_settings: Callable[[], S],
    start: Callable[[S, KafkaCluster], int],
    *,
    log_level: Callable[[S], str],
) -> int:
    """Load the settings (a ``ValueError`` is a usage error: exit 2), start the service
    (:func:`start_service`), then run the worker against ``KAFKA_BOOTSTRAP_SERVERS`` or an
    embedded broker (the service waits for a configured one: ``ANALYTICS_KAFKA_WAIT_S``)."""
    from codex_analytics.devtools.broker import kafka_cluster

    try:
        settings = load_settings()
        configured = KafkaCluster.configured()
    except ValueError as exc:
        print(f"{service} worker: {exc}", file=sys.stderr)
        return 2
    start_service(f"{service} worker", log_level(settings))
    with kafka_cluster(configured) as cluster:
        return start(settings, cluster)


def start_service(command: str, log_level: str) -> None:
    """What a long-running service does once its settings are read: set up logging at
    its level (its runner may set it up again, identically), then log one warning per
    unknown ``ANALYTICS_*`` / ``KAFKA_*`` variable, so that a misspelled variable does
    not pass silently in production."""
    from codex_analytics.cli.settings_catalog import declared_names
    from codex_analytics.runtime.env_names import warn_unknown_variables
    from codex_analytics.runtime.logs import configure_logging

    configure_logging(log_level)
    warn_unknown_variables(os.environ, declared_names(), service=command)
