"""Stream worker settings, from environment variables (documented in the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from codex_analytics.runtime.env import env_choice, env_number
from codex_analytics.runtime.kafka import TopicSettings

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class StreamSettings:
    topics: TopicSettings
    #: Faust app id: the consumer group and the prefix of the state changelog topic.
    app_id: str = "codex-analytics-stream"
    #: ``memory`` (default; state is rebuilt from the changelog on start) or ``rocksdb``.
    store: str = "memory"
    data_dir: str = "stream-data"
    state_horizon_ms: int = 24 * HOUR_MS
    dedupe_horizon_ms: int = 24 * HOUR_MS
    #: An instance state nobody wrote for this long is deleted (streams.sweep); at least
    #: both horizons, so a swept state is one the reducer would have emptied anyway.
    #: Default: twice the longer horizon.
    state_retention_ms: int = 48 * HOUR_MS
    #: How often the idle sweep starts (it runs in slices between batches).
    sweep_interval_s: float = 300.0
    batch_max_records: int = 2000
    batch_max_wait_ms: int = 10
    replication_factor: int = 1
    #: Largest facts record accepted; larger ones are dead-lettered as ``too_large``.
    #: Default: Kafka's default ``message.max.bytes``.
    max_record_bytes: int = 1024 * 1024
    #: Decoded instance states kept between batches (0: decode from the store each time).
    state_cache_size: int = 20_000
    #: ``HOST:PORT`` of ``/healthz`` and ``/metrics`` (off when unset).
    health_addr: str | None = None
    log_level: str = "WARNING"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StreamSettings:
        env = os.environ if environ is None else environ
        store = env_choice(env, "ANALYTICS_STREAM_STORE", ("memory", "rocksdb"), "memory")
        state_horizon_ms = int(
            env_number(env, "ANALYTICS_STATE_HORIZON_HOURS", 24, minimum=0.0001) * HOUR_MS
        )
        dedupe_horizon_ms = int(
            env_number(env, "ANALYTICS_DEDUPE_HORIZON_HOURS", 24, minimum=0.0001) * HOUR_MS
        )
        longest_horizon_ms = max(state_horizon_ms, dedupe_horizon_ms)
        retention_ms = int(
            env_number(
                env,
                "ANALYTICS_STATE_RETENTION_HOURS",
                2 * longest_horizon_ms / HOUR_MS,  # default: twice the longer horizon
                minimum=0.0001,
            )
            * HOUR_MS
        )
        if retention_ms < longest_horizon_ms:
            raise ValueError(
                "ANALYTICS_STATE_RETENTION_HOURS must be at least ANALYTICS_STATE_HORIZON_HOURS"
                " and ANALYTICS_DEDUPE_HORIZON_HOURS"
            )
        return cls(
            topics=TopicSettings.from_env(env),
            app_id=env.get("ANALYTICS_STREAM_APP_ID") or "codex-analytics-stream",
            store=store,
            data_dir=env.get("ANALYTICS_STREAM_DATA_DIR") or "stream-data",
            state_horizon_ms=state_horizon_ms,
            dedupe_horizon_ms=dedupe_horizon_ms,
            state_retention_ms=retention_ms,
            sweep_interval_s=env_number(env, "ANALYTICS_STREAM_SWEEP_INTERVAL_S", 300, minimum=0.1),
            batch_max_records=int(
                env_number(env, "ANALYTICS_STREAM_BATCH_MAX_RECORDS", 2000, minimum=1)
            ),
            batch_max_wait_ms=int(
                env_number(env, "ANALYTICS_STREAM_BATCH_MAX_WAIT_MS", 10, minimum=0)
            ),
            replication_factor=int(
                env_number(env, "ANALYTICS_TOPIC_REPLICATION_FACTOR", 1, minimum=1)
            ),
            max_record_bytes=int(
                env_number(env, "ANALYTICS_MAX_RECORD_BYTES", 1024 * 1024, minimum=1024)
            ),
            state_cache_size=int(
                env_number(env, "ANALYTICS_STREAM_STATE_CACHE", 20_000, minimum=0)
            ),
            health_addr=env.get("ANALYTICS_STREAM_HEALTH_ADDR") or None,
            log_level=(env.get("ANALYTICS_LOG_LEVEL") or "WARNING").upper(),
        )
