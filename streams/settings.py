"""Stream worker settings, from environment variables.

Each variable is declared once below (:mod:`codex_analytics.runtime.config`); the
README's configuration table and ``codex-analytics stream worker --help`` are generated
from these declarations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codex_analytics.runtime.config import (
    HEALTH_STALL_S,
    LOG_LEVEL,
    SESSION_TIMEOUT_MS,
    SHUTDOWN_TIMEOUT_S,
    Setting,
    address,
    boolean,
    choice,
    declare,
    directory_path,
    number,
    topic_name,
    truncated_integer,
)
from codex_analytics.runtime.kafka import TopicSettings
from codex_analytics.runtime.topic_plan import TopicPlan

HOUR_MS = 3_600_000

#: ``replay`` reads the stream settings too: it runs the same reduction.
_READERS = ("stream worker", "replay")

APP_ID = declare(
    "ANALYTICS_STREAM_APP_ID",
    topic_name("name"),  # it prefixes the changelog topic's name
    "codex-analytics-stream",
    help="Faust app id: consumer group and changelog prefix; workers sharing it share the "
    "partitions",
    used_by=(*_READERS, "offsets", "topics"),
)
STORE = declare(
    "ANALYTICS_STREAM_STORE",
    choice("memory", "rocksdb"),
    "memory",
    help="`memory` (state rebuilt from the changelog on start) or `rocksdb`",
    used_by=_READERS,
)
DATA_DIR = declare(
    "ANALYTICS_STREAM_DATA_DIR",
    directory_path(),
    "stream-data",
    help="where the RocksDB store keeps its files",
    used_by=_READERS,
)
STATE_HORIZON_HOURS = declare(
    "ANALYTICS_STATE_HORIZON_HOURS",
    number(minimum=0.0001),
    24,
    help="idle reducer state expires after this much event time",
    used_by=_READERS,
)
DEDUPE_HORIZON_HOURS = declare(
    "ANALYTICS_DEDUPE_HORIZON_HOURS",
    number(minimum=0.0001),
    24,
    help="window of the app/plugin use dedupe (event time)",
    used_by=_READERS,
)
STATE_RETENTION_HOURS = declare(
    "ANALYTICS_STATE_RETENTION_HOURS",
    number(minimum=0.0001),
    None,  # computed in from_env
    help="an instance state nobody wrote for this long (worker's clock) is deleted, "
    "changelog included; at least both horizons",
    used_by=_READERS,
    default_note="twice the longer horizon",
)
SWEEP_INTERVAL_S = declare(
    "ANALYTICS_STREAM_SWEEP_INTERVAL_S",
    number(minimum=0.1),
    300.0,
    help="how often the idle sweep starts (it runs in slices between batches)",
    used_by=_READERS,
)
BATCH_MAX_RECORDS = declare(
    "ANALYTICS_STREAM_BATCH_MAX_RECORDS",
    truncated_integer(minimum=1),
    2000,
    help="records per processing batch at most",
    used_by=_READERS,
)
BATCH_MAX_WAIT_MS = declare(
    "ANALYTICS_STREAM_BATCH_MAX_WAIT_MS",
    truncated_integer(minimum=0),
    10,
    help="how long an idle worker lets a partial batch fill (a busy one takes what has arrived)",
    used_by=_READERS,
)
STATE_CACHE = declare(
    "ANALYTICS_STREAM_STATE_CACHE",
    truncated_integer(minimum=0),
    20_000,
    help="decoded instance states kept between batches (0: decode from the store each time)",
    used_by=_READERS,
)
COMPACT_STATES = declare(
    "ANALYTICS_STREAM_COMPACT_STATES",
    boolean(),
    False,
    help="write instance states in the packed format 6 (about 0.2 of the bytes;"
    " every worker reads it from this release on: turn it on once no older worker runs)",
    used_by=_READERS,
)
HEALTH_ADDR = declare(
    "ANALYTICS_STREAM_HEALTH_ADDR",
    address(),
    None,
    help="`HOST:PORT` for `GET /livez`, `/readyz`, `/metrics` (Prometheus) and `/healthz` "
    "(deprecated alias of `/readyz`); off when unset",
    used_by=_READERS,
)

SETTINGS: tuple[Setting[Any, Any], ...] = (
    APP_ID,
    STORE,
    DATA_DIR,
    STATE_HORIZON_HOURS,
    DEDUPE_HORIZON_HOURS,
    STATE_RETENTION_HOURS,
    SWEEP_INTERVAL_S,
    BATCH_MAX_RECORDS,
    BATCH_MAX_WAIT_MS,
    STATE_CACHE,
    COMPACT_STATES,
    HEALTH_ADDR,
)


def _hours_ms(hours: float) -> int:
    return int(hours * HOUR_MS)


def _default_retention_ms(state_horizon_ms: int, dedupe_horizon_ms: int) -> int:
    """Twice the longer horizon: a swept state is then one the reducer would have
    emptied anyway, with a margin for a worker's clock that runs behind event time."""
    return 2 * max(state_horizon_ms, dedupe_horizon_ms)


@dataclass(frozen=True, slots=True)
class StreamSettings:
    topics: TopicSettings
    #: Faust app id: the consumer group and the prefix of the state changelog topic.
    app_id: str = APP_ID.default
    #: ``memory`` (default; state is rebuilt from the changelog on start) or ``rocksdb``.
    store: str = STORE.default
    data_dir: str = DATA_DIR.default
    state_horizon_ms: int = _hours_ms(STATE_HORIZON_HOURS.default)
    dedupe_horizon_ms: int = _hours_ms(DEDUPE_HORIZON_HOURS.default)
    #: An instance state nobody wrote for this long is deleted (streams.sweep); at least
    #: both horizons, so a swept state is one the reducer would have emptied anyway.
    #: Default: twice the longer horizon.
    state_retention_ms: int = _default_retention_ms(
        _hours_ms(STATE_HORIZON_HOURS.default), _hours_ms(DEDUPE_HORIZON_HOURS.default)
    )
    #: How often the idle sweep starts (it runs in slices between batches).
    sweep_interval_s: float = SWEEP_INTERVAL_S.default
    batch_max_records: int = BATCH_MAX_RECORDS.default
    batch_max_wait_ms: int = BATCH_MAX_WAIT_MS.default
    #: Decoded instance states kept between batches (0: decode from the store each time).
    state_cache_size: int = STATE_CACHE.default
    #: Write states as format 6 (``streams.reducer.state``); off: format 3 or 4.
    compact_states: bool = COMPACT_STATES.default
    #: ``HOST:PORT`` of ``/livez``, ``/readyz``, ``/healthz`` and ``/metrics`` (off when unset).
    health_addr: str | None = HEALTH_ADDR.default
    #: SIGTERM: the batch in flight, the last commit and Faust's shutdown have this long
    #: together; then the process exits anyway (a second SIGTERM: at once).
    shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S.default
    #: ``/livez`` fails once the event loop has not stamped its heartbeat for this long.
    health_stall_s: float = HEALTH_STALL_S.default
    #: The consumer group's session timeout (heartbeats every quarter of it, at most 1 s).
    session_timeout_ms: int = SESSION_TIMEOUT_MS.default
    log_level: str = LOG_LEVEL.default

    @property
    def max_record_bytes(self) -> int:
        """The one record-size limit (``ANALYTICS_MAX_RECORD_BYTES``, read with the topic
        settings): facts records over it are dead-lettered as ``too_large``, and no
        output over it is produced (``streams.processor``)."""
        return self.topics.max_record_bytes

    @property
    def topic_plan(self) -> TopicPlan:
        """The topics the worker reads and writes, its state changelog included, as the
        topic policy creates them."""
        plan = TopicPlan.pipeline(self.topics, app_id=self.app_id)
        return plan.only("facts", "events", "facts_dlq", "changelog")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StreamSettings:
        env = os.environ if environ is None else environ
        store = STORE.read(env)
        state_horizon_ms = _hours_ms(STATE_HORIZON_HOURS.read(env))
        dedupe_horizon_ms = _hours_ms(DEDUPE_HORIZON_HOURS.read(env))
        retention_hours = STATE_RETENTION_HOURS.read(env)
        retention_ms = (
            _default_retention_ms(state_horizon_ms, dedupe_horizon_ms)
            if retention_hours is None
            else _hours_ms(retention_hours)
        )
        if retention_ms < max(state_horizon_ms, dedupe_horizon_ms):
            raise ValueError(
                f"{STATE_RETENTION_HOURS.name} must be at least {STATE_HORIZON_HOURS.name}"
                f" and {DEDUPE_HORIZON_HOURS.name}"
            )
        return cls(
            topics=TopicSettings.from_env(env),
            app_id=APP_ID.read(env),
            store=store,
            data_dir=DATA_DIR.read(env),
            state_horizon_ms=state_horizon_ms,
            dedupe_horizon_ms=dedupe_horizon_ms,
            state_retention_ms=retention_ms,
            sweep_interval_s=SWEEP_INTERVAL_S.read(env),
            batch_max_records=BATCH_MAX_RECORDS.read(env),
            batch_max_wait_ms=BATCH_MAX_WAIT_MS.read(env),
            state_cache_size=STATE_CACHE.read(env),
            compact_states=COMPACT_STATES.read(env),
            health_addr=HEALTH_ADDR.read(env),
            shutdown_timeout_s=SHUTDOWN_TIMEOUT_S.read(env),
            health_stall_s=HEALTH_STALL_S.read(env),
            session_timeout_ms=SESSION_TIMEOUT_MS.read(env),
            log_level=LOG_LEVEL.read(env),
        )
