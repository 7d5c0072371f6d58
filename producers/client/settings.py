"""Settings of the client library (and the defaults the gateway shares), from code or
from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from codex_analytics.contract import topics
from codex_analytics.runtime.env import env_bool, env_int, env_number, env_str
from codex_analytics.runtime.kafka import BOOTSTRAP_ENV

#: Upstream's queue capacity (``delivery.md`` §2.1).
DEFAULT_QUEUE_CAPACITY = 256
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    bootstrap: str = DEFAULT_BOOTSTRAP
    topic: str = topics.FACTS_TOPIC
    #: Upstream ``analytics.enabled``: None and True mean enabled; only False disables.
    enabled: bool | None = None
    #: Facts held while the broker is slow or away; beyond it new facts are dropped.
    queue_capacity: int = DEFAULT_QUEUE_CAPACITY
    #: 1 publishes one envelope per record (the spec's plain form); more packs
    #: consecutive facts of the instance into one record (up to this many).
    max_facts_per_record: int = 1
    #: How long one set of facts is retried before it is reported as failed.
    delivery_timeout_s: float = 30.0
    #: Forward every request, response and notification (the seed client) instead of
    #: the ones the reducer reads (the June client). Events are the same either way.
    forward_all_protocol_messages: bool = False

    def __post_init__(self) -> None:
        if self.queue_capacity < 1:
            raise ValueError("queue_capacity must be at least 1")
        if self.max_facts_per_record < 1:
            raise ValueError("max_facts_per_record must be at least 1")
        if self.delivery_timeout_s <= 0:
            raise ValueError("delivery_timeout_s must be positive")

    @property
    def is_enabled(self) -> bool:
        return self.enabled is not False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientSettings:
        env = os.environ if environ is None else environ
        enabled_raw = env_str(env, "ANALYTICS_ENABLED")
        return cls(
            bootstrap=env_str(env, BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP) or DEFAULT_BOOTSTRAP,
            topic=env_str(env, topics.FACTS_TOPIC_ENV, topics.FACTS_TOPIC) or topics.FACTS_TOPIC,
            enabled=None if enabled_raw is None else env_bool(env, "ANALYTICS_ENABLED"),
            queue_capacity=env_int(
                env, "ANALYTICS_CLIENT_QUEUE_CAPACITY", DEFAULT_QUEUE_CAPACITY, minimum=1
            ),
            max_facts_per_record=env_int(env, "ANALYTICS_FACTS_PER_RECORD", 1, minimum=1),
            delivery_timeout_s=env_number(
                env, "ANALYTICS_CLIENT_DELIVERY_TIMEOUT_S", 30.0, minimum=0.001
            ),
            forward_all_protocol_messages=env_bool(env, "ANALYTICS_CLIENT_FORWARD_ALL"),
        )
