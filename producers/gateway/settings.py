"""Gateway settings, from environment variables.

Each variable is declared once below (:mod:`codex_analytics.runtime.config`); the
README's configuration table and ``codex-analytics gateway --help`` are generated from
these declarations. Kept apart from the server (:mod:`producers.gateway.service`): the declarations,
the dataclass and its reading belong together, the HTTP handling elsewhere.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codex_analytics.runtime.config import (
    FACTS_PER_RECORD,
    HEALTH_STALL_S,
    LOG_LEVEL,
    SHUTDOWN_TIMEOUT_S,
    Setting,
    address,
    declare,
    integer,
    number,
    text,
)
from codex_analytics.runtime.env import split_host_port
from codex_analytics.runtime.errors import ConfigError
from codex_analytics.runtime.kafka import (
    FACTS_TOPIC,
    MAX_RECORD_BYTES,
    PARTITIONS,
    TopicSettings,
)
from codex_analytics.runtime.topic_plan import TopicPlan

_GATEWAY = ("gateway",)

ADDR = declare(
    "ANALYTICS_GATEWAY_ADDR",
    address(),
    "127.0.0.1:8080",
    help="listen address (`/v1/facts`, `/livez`, `/readyz`, `/metrics`, `/healthz`); `--addr` wins",
    used_by=_GATEWAY,
)
TOKEN = declare(
    "ANALYTICS_GATEWAY_TOKEN",
    text("token"),
    None,
    help="require `Authorization: Bearer <token>` on ingest",
    used_by=_GATEWAY,
    secret=True,
    default_note="unset (open)",
)
MAX_BODY_BYTES = declare(
    "ANALYTICS_GATEWAY_MAX_BODY_BYTES",
    integer(minimum=1024),
    16 * 1024 * 1024,
    help="larger bodies get 413",
    used_by=_GATEWAY,
)
MAX_LINES = declare(
    "ANALYTICS_GATEWAY_MAX_LINES",
    integer(minimum=1),
    10_000,
    help="lines (blank ones included) or JSON array elements per request; more get 413, "
    "counted before any line is parsed",
    used_by=_GATEWAY,
)
MAX_CONCURRENT_REQUESTS = declare(
    "ANALYTICS_GATEWAY_MAX_CONCURRENT_REQUESTS",
    integer(minimum=1),
    4,
    help="ingest requests handled at once; more get 429 + `Retry-After`",
    used_by=_GATEWAY,
)
MAX_INFLIGHT_BYTES = declare(
    "ANALYTICS_GATEWAY_MAX_INFLIGHT_BYTES",
    integer(minimum=1024),
    32 * 1024 * 1024,
    help="body bytes of the ingest requests handled at once (a body without "
    "`Content-Length` counts as the largest body); more get 429 + `Retry-After`; at "
    "least `ANALYTICS_GATEWAY_MAX_BODY_BYTES`",
    used_by=_GATEWAY,
)
PUBLISH_TIMEOUT_S = declare(
    "ANALYTICS_GATEWAY_PUBLISH_TIMEOUT_S",
    number(minimum=0.1),
    5.0,
    help="how long a request waits for the broker's acks before 503",
    used_by=_GATEWAY,
)
RETRY_AFTER_S = declare(
    "ANALYTICS_GATEWAY_RETRY_AFTER_S",
    integer(minimum=1),
    2,
    help="`Retry-After` of a 503 or 429",
    used_by=_GATEWAY,
)
#: The gateway's default level is INFO (the other services': WARNING).
GATEWAY_LOG_LEVEL = LOG_LEVEL.variant(used_by=_GATEWAY, default="INFO")

SETTINGS: tuple[Setting[Any, Any], ...] = (
    ADDR,
    TOKEN,
    MAX_BODY_BYTES,
    MAX_LINES,
    MAX_CONCURRENT_REQUESTS,
    MAX_INFLIGHT_BYTES,
    PUBLISH_TIMEOUT_S,
    RETRY_AFTER_S,
    GATEWAY_LOG_LEVEL,
)

DEFAULT_ADDR = ADDR.default


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    addr: str = ADDR.default
    facts_topic: str = FACTS_TOPIC.default
    partitions: int = PARTITIONS.default
    max_body_bytes: int = MAX_BODY_BYTES.default
    max_lines: int = MAX_LINES.default
    max_concurrent_requests: int = MAX_CONCURRENT_REQUESTS.default
    max_inflight_bytes: int = MAX_INFLIGHT_BYTES.default
    publish_timeout_s: float = PUBLISH_TIMEOUT_S.default
    retry_after_s: int = RETRY_AFTER_S.default
    shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S.default
    #: ``/livez`` fails once the event loop has not stamped its heartbeat for this long.
    health_stall_s: float = HEALTH_STALL_S.default
    max_facts_per_record: int = FACTS_PER_RECORD.default
    #: The one record-size limit (``ANALYTICS_MAX_RECORD_BYTES``): the largest line
    #: accepted, where packs are cut, and the producer's ``max_request_size``.
    max_record_bytes: int = MAX_RECORD_BYTES.default
    #: Shared secret for ``Authorization: Bearer``; None leaves ingest open (local stack).
    token: str | None = field(default=TOKEN.default, repr=False)
    log_level: str = GATEWAY_LOG_LEVEL.default
    #: The topic policy (replication, configs, ``ANALYTICS_CREATE_TOPICS``) the facts
    #: topic is created with when it is missing.
    topics: TopicSettings = field(default_factory=TopicSettings)

    @property
    def topic_plan(self) -> TopicPlan:
        """The facts topic, as the topic policy creates it when it is missing."""
        topics = dataclasses.replace(
            self.topics,
            facts=self.facts_topic,
            partitions=self.partitions,
            max_record_bytes=self.max_record_bytes,
        )
        return TopicPlan.pipeline(topics).only("facts")

    def __post_init__(self) -> None:
        split_host_port(self.addr)  # an address given in code or by --addr
        if self.max_inflight_bytes < self.max_body_bytes:  # else a full body never runs
            raise ConfigError(
                f"{MAX_INFLIGHT_BYTES.name} ({self.max_inflight_bytes}) must be at least "
                f"{MAX_BODY_BYTES.name} ({self.max_body_bytes})"
            )

    def __repr__(self) -> str:
        auth = "bearer" if self.token else "none"
        return f"GatewaySettings(addr={self.addr!r}, facts_topic={self.facts_topic!r}, auth={auth})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        env = os.environ if environ is None else environ
        topic_settings = TopicSettings.from_env(env)
        return cls(
            addr=ADDR.read(env),
            facts_topic=topic_settings.facts,
            partitions=topic_settings.partitions,
            max_body_bytes=MAX_BODY_BYTES.read(env),
            max_lines=MAX_LINES.read(env),
            max_concurrent_requests=MAX_CONCURRENT_REQUESTS.read(env),
            max_inflight_bytes=MAX_INFLIGHT_BYTES.read(env),
            publish_timeout_s=PUBLISH_TIMEOUT_S.read(env),
            retry_after_s=RETRY_AFTER_S.read(env),
            shutdown_timeout_s=SHUTDOWN_TIMEOUT_S.read(env),
            health_stall_s=HEALTH_STALL_S.read(env),
            max_facts_per_record=FACTS_PER_RECORD.read(env),
            max_record_bytes=topic_settings.max_record_bytes,
            token=TOKEN.read(env),
            log_level=GATEWAY_LOG_LEVEL.read(env),
            topics=topic_settings,
        )
