"""How a client proves who it is to Kafka and protects the connection: the security
protocol, TLS material and SASL credentials, read from the environment once.

:class:`KafkaSecurity` turns them into aiokafka's client options
(:meth:`KafkaSecurity.client_options`); :class:`~codex_analytics.runtime.kafka.KafkaCluster`
is the only caller. Secrets are read from files where a deployment mounts them and never
appear in a repr, a log line or an exception text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codex_analytics.runtime.config import Setting, choice, declare

#: Every command that talks to Kafka (the same readers as ``KAFKA_BOOTSTRAP_SERVERS``).
CLUSTER_READERS = (
    "stream worker",
    "sink worker",
    "gateway",
    "produce",
    "generate",
    "demo",
    "smoke plugin",
    "replay",
    "offsets",
    "dlq",
    "client library",
)

PROTOCOLS = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")

SECURITY_PROTOCOL = declare(
    "KAFKA_SECURITY_PROTOCOL",
    choice(*PROTOCOLS),
    "plaintext",
    help="how clients connect to the brokers: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or "
    "`SASL_SSL` (case-insensitive)",
    used_by=CLUSTER_READERS,
)

SETTINGS: tuple[Setting[Any, Any], ...] = (SECURITY_PROTOCOL,)


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """The connection's security: ``PLAINTEXT`` by default (the embedded broker)."""

    protocol: str = "PLAINTEXT"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaSecurity:
        env = os.environ if environ is None else environ
        return cls(protocol=SECURITY_PROTOCOL.read(env).upper())

    def client_options(self) -> dict[str, Any]:
        """aiokafka's options for this security (the same for every kind of client)."""
        return {"security_protocol": self.protocol}


PLAINTEXT = KafkaSecurity()
