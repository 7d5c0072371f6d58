"""Settings of the client library, from code or from the environment.

Its variables are declared once below (:mod:`codex_analytics.runtime.config`); the
broker, the facts topic and ``ANALYTICS_FACTS_PER_RECORD`` are declared in the runtime
kernel because the commands read them too. The README's configuration table is
generated from these declarations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codex_analytics.contract.versions import CONTRACTS, NEWEST_CONTRACT, ContractId
from codex_analytics.runtime.config import (
    FACTS_PER_RECORD,
    Setting,
    boolean,
    choice,
    declare,
    integer,
    number,
)
from codex_analytics.runtime.kafka import (
    CLIENT_BOOTSTRAP,
    FACTS_TOPIC,
    MAX_RECORD_BYTES,
    KafkaCluster,
    KafkaTarget,
)

_CLIENT = ("client library",)

ENABLED = declare(
    "ANALYTICS_ENABLED",
    boolean(),
    None,  # None and True both mean enabled: only an explicit false disables
    help="`false` makes every `track_*` call a no-op (upstream `analytics.enabled`)",
    used_by=_CLIENT,
    default_note="unset (enabled)",
)
#: Upstream's queue capacity (``delivery.md`` §2.1).
QUEUE_CAPACITY = declare(
    "ANALYTICS_CLIENT_QUEUE_CAPACITY",
    integer(minimum=1),
    256,
    help="facts held while the broker is slow; beyond it new facts are dropped with a warning",
    used_by=_CLIENT,
)
DELIVERY_TIMEOUT_S = declare(
    "ANALYTICS_CLIENT_DELIVERY_TIMEOUT_S",
    number(minimum=0.001),
    30.0,
    help="how long unacknowledged facts are retried before `on_delivery_error`",
    used_by=_CLIENT,
)
FORWARD_ALL = declare(
    "ANALYTICS_CLIENT_FORWARD_ALL",
    boolean(),
    False,
    help="forward every request, response and notification (the seed client)",
    used_by=_CLIENT,
)

#: The contract a client announces in every fact's ``source.contract`` (profile-j.md §1).
CONTRACT = declare(
    "ANALYTICS_CLIENT_CONTRACT",
    choice(*CONTRACTS),
    NEWEST_CONTRACT,
    help="the contract the client's facts speak: `2026-08` (Profile J) or `2026-06` "
    "(Profile S, facts without a `contract` key, as before Profile J)",
    used_by=_CLIENT,
)

SETTINGS: tuple[Setting[Any, Any], ...] = (
    ENABLED,
    QUEUE_CAPACITY,
    DELIVERY_TIMEOUT_S,
    FORWARD_ALL,
    CONTRACT,
)

DEFAULT_QUEUE_CAPACITY = QUEUE_CAPACITY.default
DEFAULT_BOOTSTRAP = CLIENT_BOOTSTRAP.default


@dataclass(frozen=True, slots=True)
class ClientSettings:
    #: The brokers: a bootstrap string (``PLAINTEXT``) or a :class:`KafkaCluster` with
    #: its security and producer settings (what :meth:`from_env` reads).
    kafka: KafkaTarget = DEFAULT_BOOTSTRAP
    topic: str = FACTS_TOPIC.default
    #: Upstream ``analytics.enabled``: None and True mean enabled; only False disables.
    enabled: bool | None = ENABLED.default
    #: Facts held while the broker is slow or away; beyond it new facts are dropped.
    queue_capacity: int = DEFAULT_QUEUE_CAPACITY
    #: 1 publishes one envelope per record (the spec's plain form); more packs
    #: consecutive facts of the instance into one record (up to this many).
    max_facts_per_record: int = FACTS_PER_RECORD.default
    #: How long one set of facts is retried before it is reported as failed.
    delivery_timeout_s: float = DELIVERY_TIMEOUT_S.default
    #: Forward every request, response and notification (the seed client) instead of
    #: the ones the reducer reads (the June client). Events are the same either way.
    forward_all_protocol_messages: bool = FORWARD_ALL.default
    #: The one record-size limit: packs are cut at it, and the producer's
    #: ``max_request_size`` derives from it.
    max_record_bytes: int = MAX_RECORD_BYTES.default
    #: The contract of every fact (``source.contract``): ``2026-08`` unless told
    #: otherwise; ``2026-06`` writes no ``contract`` key (facts exactly as before).
    contract: ContractId = NEWEST_CONTRACT

    def __post_init__(self) -> None:
        if self.contract not in CONTRACTS:
            raise ValueError(
                f"contract must be one of {', '.join(CONTRACTS)}, not {self.contract!r}"
            )
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
        return cls(
            kafka=KafkaCluster.from_env(env, bootstrap=CLIENT_BOOTSTRAP.read(env)),
            topic=FACTS_TOPIC.read(env),
            enabled=ENABLED.read(env),
            queue_capacity=QUEUE_CAPACITY.read(env),
            max_facts_per_record=FACTS_PER_RECORD.read(env),
            delivery_timeout_s=DELIVERY_TIMEOUT_S.read(env),
            forward_all_protocol_messages=FORWARD_ALL.read(env),
            max_record_bytes=MAX_RECORD_BYTES.read(env),
            contract=_contract(CONTRACT.read(env)),
        )


def _contract(value: str) -> ContractId:
    for contract in CONTRACTS:  # the choice kind already refused anything else
        if contract == value:
            return contract
    raise ValueError(f"unknown contract {value!r}")
