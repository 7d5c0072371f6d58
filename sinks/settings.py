"""Sink worker settings, from environment variables (documented in the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from codex_analytics.runtime.env import env_bool, env_choice, env_int, env_number, env_str
from codex_analytics.runtime.kafka import TopicSettings

from .batching import BatchLimits
from .errors import SinkConfigError
from .retry import RetryPolicy

#: Upstream's variable (delivery.md §4); ``ANALYTICS_CAPTURE_FILE`` is our alias.
CAPTURE_FILE_ENV = "CODEX_ANALYTICS_EVENTS_CAPTURE_FILE"


@dataclass(frozen=True, slots=True)
class SinkSettings:
    topics: TopicSettings
    #: ``http`` or ``capture``; chosen once, at start, from whether a capture file is set.
    mode: str
    base_url: str | None
    capture_file: str | None
    limits: BatchLimits
    retry: RetryPolicy
    group_id: str = "codex-analytics-sink"
    http_timeout_s: float = 10.0
    http_gzip: bool = False
    http_max_connections: int = 16
    capture_fsync: bool = False
    #: For tests only: capture batches even when the auth gate would skip them.
    capture_ignores_auth: bool = False
    #: Per partition: open batches close early past this many records, and fetching
    #: pauses while closed batches hold this many (memory <= 2x this per partition).
    max_buffered_records: int = 4000
    shutdown_timeout_s: float = 10.0
    #: Decode every event through its model (every field checked) instead of checking
    #: its type and passing its bytes through.
    validate_events: bool = False
    #: Consumer-group session timeout; a dead worker's partitions move after this long.
    session_timeout_ms: int = 10_000
    health_addr: str | None = None
    log_level: str = "WARNING"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SinkSettings:
        env = os.environ if environ is None else environ
        try:
            return cls._from_env(env)
        except SinkConfigError:
            raise
        except ValueError as err:
            raise SinkConfigError(str(err)) from None

    @classmethod
    def _from_env(cls, env: Mapping[str, str]) -> SinkSettings:
        capture_file = env_str(env, CAPTURE_FILE_ENV) or env_str(env, "ANALYTICS_CAPTURE_FILE")
        base_url = env_str(env, "ANALYTICS_BASE_URL")
        if capture_file is None and base_url is None:
            raise SinkConfigError(
                "ANALYTICS_BASE_URL is not set: set it to the analytics endpoint's base URL "
                "(e.g. https://chatgpt.com/backend-api/), or set "
                f"{CAPTURE_FILE_ENV} to write batches to a file instead. There is no "
                "default, so that nothing is ever sent to a real endpoint by accident."
            )
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise SinkConfigError(f"ANALYTICS_BASE_URL must be an http(s) URL, got {base_url!r}")
        max_elapsed = env_number(env, "ANALYTICS_RETRY_MAX_ELAPSED_S", 0, minimum=0)
        # 8 batches of 500: at 1000 the lanes paused their partition after every second
        # batch, and aiokafka drops what it prefetched for a paused partition (the sink
        # waited on Kafka a fifth of the time, and routes sharing a partition closed at
        # 400-499 events by pressure). Memory: <= 2x this many records per partition.
        max_buffered = env_int(env, "ANALYTICS_SINK_MAX_BUFFERED", 4000, minimum=1)
        return cls(
            topics=TopicSettings.from_env(env),
            mode="http" if capture_file is None else "capture",
            base_url=base_url,
            capture_file=capture_file,
            limits=BatchLimits(
                max_events=env_int(env, "ANALYTICS_BATCH_MAX_EVENTS", 500, minimum=1),
                max_bytes=env_int(env, "ANALYTICS_BATCH_MAX_BYTES", 1024 * 1024, minimum=64),
                max_wait_ms=env_int(env, "ANALYTICS_BATCH_MAX_WAIT_MS", 1000, minimum=1),
                lateness_ms=env_int(env, "ANALYTICS_BATCH_LATENESS_MS", 200, minimum=0),
                max_open_records=max_buffered,
            ),
            retry=RetryPolicy(
                initial_s=env_number(env, "ANALYTICS_RETRY_INITIAL_MS", 500, minimum=1) / 1000,
                max_s=env_number(env, "ANALYTICS_RETRY_MAX_MS", 30_000, minimum=1) / 1000,
                max_retry_after_s=env_number(env, "ANALYTICS_RETRY_AFTER_MAX_S", 300, minimum=0),
                max_elapsed_s=max_elapsed or None,
            ),
            group_id=env_str(env, "ANALYTICS_SINK_GROUP") or "codex-analytics-sink",
            http_timeout_s=env_number(env, "ANALYTICS_HTTP_TIMEOUT_S", 10, minimum=0.001),
            http_gzip=env_bool(env, "ANALYTICS_HTTP_GZIP"),
            http_max_connections=env_int(env, "ANALYTICS_HTTP_MAX_CONNECTIONS", 16, minimum=1),
            capture_fsync=env_bool(env, "ANALYTICS_CAPTURE_FSYNC"),
            validate_events=env_bool(env, "ANALYTICS_SINK_VALIDATE_EVENTS"),
            capture_ignores_auth=env_bool(env, "ANALYTICS_CAPTURE_IGNORES_AUTH"),
            max_buffered_records=max_buffered,
            shutdown_timeout_s=env_number(env, "ANALYTICS_SHUTDOWN_TIMEOUT_S", 10, minimum=0),
            session_timeout_ms=env_int(
                env, "ANALYTICS_KAFKA_SESSION_TIMEOUT_MS", 10_000, minimum=1000
            ),
            health_addr=env_str(env, "ANALYTICS_SINK_HEALTH_ADDR"),
            log_level=env_choice(
                env,
                "ANALYTICS_LOG_LEVEL",
                ("debug", "info", "warning", "error"),
                "warning",
            ).upper(),
        )
