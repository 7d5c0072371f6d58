"""Sink worker settings, from environment variables.

Each variable is declared once below (:mod:`codex_analytics.runtime.config`), the
credentials' variables included (:mod:`sinks.credentials` reads them); the README's
configuration table and ``codex-analytics sink worker --help`` are generated from these
declarations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from codex_analytics.contract.facts import AuthKind
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
    existing_directory,
    existing_file,
    file_path,
    http_url,
    integer,
    number,
    text,
)
from codex_analytics.runtime.kafka import TopicSettings

from .batching import BatchLimits
from .errors import SinkConfigError
from .retry import RetryPolicy

_SINK = ("sink worker",)
#: Every auth kind (profile-j.md §6).
AUTH_KINDS: tuple[str, ...] = get_args(AuthKind)

#: Upstream's variable (delivery.md §4); ``ANALYTICS_CAPTURE_FILE`` is our alias.
CAPTURE_FILE_ENV = "CODEX_ANALYTICS_EVENTS_CAPTURE_FILE"

BASE_URL = declare(
    "ANALYTICS_BASE_URL",
    http_url(),
    None,
    help="analytics endpoint base, e.g. `https://chatgpt.com/backend-api/`; no default, so "
    "nothing is sent anywhere by accident",
    used_by=_SINK,
    default_note="**none** (required in HTTP mode)",
)
CAPTURE_FILE = declare(
    CAPTURE_FILE_ENV,
    file_path(),
    None,
    help="capture mode: append each batch body as one line to this file (0600) and never use HTTP",
    used_by=_SINK,
    aliases=("ANALYTICS_CAPTURE_FILE",),
)
CAPTURE_FSYNC = declare(
    "ANALYTICS_CAPTURE_FSYNC",
    boolean(),
    False,
    help="`fsync` the capture file after every batch",
    used_by=_SINK,
)
CAPTURE_IGNORES_AUTH = declare(
    "ANALYTICS_CAPTURE_IGNORES_AUTH",
    boolean(),
    False,
    help="for tests only: capture batches even when the auth gate would skip them",
    used_by=_SINK,
)
AUTH_KIND = declare(
    "ANALYTICS_AUTH_KIND",
    choice(*AUTH_KINDS),
    None,
    help="the single account's auth kind (profile-j.md §6): it needs "
    "`ANALYTICS_BEARER_TOKEN` (`chatgpt`, `chatgpt_tokens`, `api_key`, "
    "`personal_access_token`), `ANALYTICS_AGENT_IDENTITY` or `ANALYTICS_AUTH_HEADERS`; "
    "`bedrock_api_key` needs nothing and sends nothing",
    used_by=_SINK,
    default_note="the kind of the secret that is set (`chatgpt` for a token)",
)
BEARER_TOKEN = declare(
    "ANALYTICS_BEARER_TOKEN",
    text("token"),
    None,
    help="single-account credential: the access token (an API key or a personal access "
    "token for those kinds); prefer `ANALYTICS_BEARER_TOKEN_FILE`",
    used_by=_SINK,
    secret=True,
)
BEARER_TOKEN_FILE = declare(
    "ANALYTICS_BEARER_TOKEN_FILE",
    existing_file(),
    None,
    help="file holding `ANALYTICS_BEARER_TOKEN`, read again whenever it changes",
    used_by=_SINK,
)
AGENT_IDENTITY = declare(
    "ANALYTICS_AGENT_IDENTITY",
    text("JSON"),
    None,
    help="single-account `agent_identity` credential: upstream's record "
    '`{"agent_runtime_id", "agent_private_key", "task_id", ...}` (the sink signs an '
    "`AgentAssertion` per request); prefer `ANALYTICS_AGENT_IDENTITY_FILE`",
    used_by=_SINK,
    secret=True,
)
AGENT_IDENTITY_FILE = declare(
    "ANALYTICS_AGENT_IDENTITY_FILE",
    existing_file(),
    None,
    help="file holding `ANALYTICS_AGENT_IDENTITY`, read again whenever it changes",
    used_by=_SINK,
)
AUTH_HEADERS = declare(
    "ANALYTICS_AUTH_HEADERS",
    text("JSON"),
    None,
    help="single-account `headers` credential: a JSON object of the headers to send as "
    "given; prefer `ANALYTICS_AUTH_HEADERS_FILE`",
    used_by=_SINK,
    secret=True,
)
AUTH_HEADERS_FILE = declare(
    "ANALYTICS_AUTH_HEADERS_FILE",
    existing_file(),
    None,
    help="file holding `ANALYTICS_AUTH_HEADERS`, read again whenever it changes",
    used_by=_SINK,
)
ACCOUNT_ID = declare(
    "ANALYTICS_ACCOUNT_ID",
    text(),
    None,
    help="the single account's id; events whose route names no account go to it",
    used_by=_SINK,
)
FEDRAMP = declare(
    "ANALYTICS_FEDRAMP",
    boolean(),
    False,
    help="the single account is a FedRAMP account (`X-OpenAI-Fedramp: true`)",
    used_by=_SINK,
)
SECRETS_DIR = declare(
    "ANALYTICS_SECRETS_DIR",
    existing_directory(),
    None,
    help='directory with one file per account id holding its token (or `{"auth_kind", '
    '"access_token" | "api_key" | "personal_access_token" | "agent_identity" | "headers", '
    '"is_fedramp"}`, docs/sink.md); re-read on change',
    used_by=_SINK,
)
CODEX_HOME = declare(
    "CODEX_HOME",
    existing_directory(),
    None,
    help="read the login in `$CODEX_HOME/auth.json` (ChatGPT tokens, `OPENAI_API_KEY`, a "
    "personal access token, an agent identity; re-read on change)",
    used_by=_SINK,
)
GROUP = declare(
    "ANALYTICS_SINK_GROUP",
    text(),
    "codex-analytics-sink",
    help="consumer group; sink workers sharing it share the partitions",
    used_by=(*_SINK, "offsets"),
)
# ``replay`` batches its capture lines as the sink does.
BATCH_MAX_EVENTS = declare(
    "ANALYTICS_BATCH_MAX_EVENTS",
    integer(minimum=1),
    500,
    help="a batch closes at this many events",
    used_by=(*_SINK, "replay"),
)
BATCH_MAX_BYTES = declare(
    "ANALYTICS_BATCH_MAX_BYTES",
    integer(minimum=64),
    1024 * 1024,
    help="...or before its body would pass this size; a larger single event is dead-lettered",
    used_by=(*_SINK, "replay", "dlq"),
)
BATCH_MAX_WAIT_MS = declare(
    "ANALYTICS_BATCH_MAX_WAIT_MS",
    integer(minimum=1),
    1000,
    help="...or once its first event is this old (from its record timestamp)",
    used_by=_SINK,
)
BATCH_LATENESS_MS = declare(
    "ANALYTICS_BATCH_LATENESS_MS",
    integer(minimum=0),
    200,
    help="part of the linger (at most half) kept for events on their way: a batch takes those stamped up to linger minus this after its first",
    used_by=_SINK,
)
HTTP_TIMEOUT_S = declare(
    "ANALYTICS_HTTP_TIMEOUT_S",
    number(minimum=0.001),
    10.0,
    help="request timeout",
    used_by=_SINK,
)
HTTP_GZIP = declare(
    "ANALYTICS_HTTP_GZIP",
    boolean(),
    False,
    help="gzip request bodies (`Content-Encoding: gzip`); upstream sends plain JSON",
    used_by=_SINK,
)
HTTP_CLIENT = declare(
    "ANALYTICS_HTTP_CLIENT",
    choice("aiohttp", "httpx"),
    "aiohttp",
    help="the HTTP client that posts batches: `aiohttp` (faster: see docs/benchmarks.md) "
    "or `httpx`; the same timeouts, headers and error handling either way",
    used_by=_SINK,
)
HTTP_MAX_CONNECTIONS = declare(
    "ANALYTICS_HTTP_MAX_CONNECTIONS",
    integer(minimum=1),
    16,
    help="connection pool size",
    used_by=_SINK,
)
RETRY_INITIAL_MS = declare(
    "ANALYTICS_RETRY_INITIAL_MS",
    number(minimum=1),
    500,
    help="first delay of the full-jitter exponential backoff for transport errors, "
    "timeouts, 401 (credentials re-read), 408, 429 and 5xx, and the shortest wait between "
    "two tries of a batch, whatever `Retry-After` says",
    used_by=_SINK,
)
RETRY_MAX_MS = declare(
    "ANALYTICS_RETRY_MAX_MS",
    number(minimum=1),
    30_000,
    help="longest delay of that backoff",
    used_by=_SINK,
)
RETRY_AFTER_MAX_S = declare(
    "ANALYTICS_RETRY_AFTER_MAX_S",
    number(minimum=0),
    300,
    help="cap on an honoured `Retry-After` (one shorter than the backoff leaves the backoff)",
    used_by=_SINK,
)
RETRY_MAX_ELAPSED_S = declare(
    "ANALYTICS_RETRY_MAX_ELAPSED_S",
    number(minimum=0),
    0,
    help="give up on a batch after this long and dead-letter it as `retries_exhausted`",
    used_by=_SINK,
    default_note="for ever",
)
CREDENTIAL_WAIT_S = declare(
    "ANALYTICS_CREDENTIAL_WAIT_S",
    number(minimum=0),
    60.0,
    help="how long an account's batches wait, retried, for a credential that exists but "
    "cannot be used (unreadable secret file, token that is not a header value) before "
    "they are dead-lettered as `credentials_unreadable` / `invalid_credentials`",
    used_by=_SINK,
)
# 8 batches of 500: at 1000 the lanes paused their partition after every second batch,
# and aiokafka drops what it prefetched for a paused partition (the sink waited on Kafka
# a fifth of the time, and routes sharing a partition closed at 400-499 events by
# pressure). Memory: <= 2x this many records per partition (sinks/memory.py).
MAX_BUFFERED = declare(
    "ANALYTICS_SINK_MAX_BUFFERED",
    integer(minimum=1),
    4000,
    help="per partition: open batches close early past this many records, and nothing more "
    "is fetched while this many wait for delivery (memory: see docs/sink.md)",
    used_by=_SINK,
)
VALIDATE_EVENTS = declare(
    "ANALYTICS_SINK_VALIDATE_EVENTS",
    boolean(),
    False,
    help="decode every event through its model; by default only its type is checked and "
    "its bytes, checked to be JSON, pass through",
    used_by=_SINK,
)
HEALTH_ADDR = declare(
    "ANALYTICS_SINK_HEALTH_ADDR",
    address(),
    None,
    help="`HOST:PORT` for `GET /livez`, `/readyz`, `/metrics` (Prometheus) and `/healthz` "
    "(deprecated alias of `/readyz`); off when unset",
    used_by=_SINK,
)
#: The sink accepts only these levels (the others pass any name to :mod:`logging`).
SINK_LOG_LEVEL = LOG_LEVEL.variant(used_by=_SINK, kind=choice("debug", "info", "warning", "error"))

SETTINGS: tuple[Setting[Any, Any], ...] = (
    BASE_URL,
    CAPTURE_FILE,
    CAPTURE_FSYNC,
    CAPTURE_IGNORES_AUTH,
    AUTH_KIND,
    BEARER_TOKEN,
    BEARER_TOKEN_FILE,
    AGENT_IDENTITY,
    AGENT_IDENTITY_FILE,
    AUTH_HEADERS,
    AUTH_HEADERS_FILE,
    ACCOUNT_ID,
    FEDRAMP,
    SECRETS_DIR,
    CODEX_HOME,
    GROUP,
    BATCH_MAX_EVENTS,
    BATCH_MAX_BYTES,
    BATCH_MAX_WAIT_MS,
    BATCH_LATENESS_MS,
    HTTP_TIMEOUT_S,
    HTTP_GZIP,
    HTTP_CLIENT,
    HTTP_MAX_CONNECTIONS,
    RETRY_INITIAL_MS,
    RETRY_MAX_MS,
    RETRY_AFTER_MAX_S,
    RETRY_MAX_ELAPSED_S,
    CREDENTIAL_WAIT_S,
    MAX_BUFFERED,
    VALIDATE_EVENTS,
    HEALTH_ADDR,
    SINK_LOG_LEVEL,
)


@dataclass(frozen=True, slots=True)
class SinkSettings:
    topics: TopicSettings
    #: ``http`` or ``capture``; chosen once, at start, from whether a capture file is set.
    mode: str
    base_url: str | None
    capture_file: str | None
    limits: BatchLimits
    retry: RetryPolicy
    group_id: str = GROUP.default
    http_timeout_s: float = HTTP_TIMEOUT_S.default
    http_gzip: bool = HTTP_GZIP.default
    http_max_connections: int = HTTP_MAX_CONNECTIONS.default
    http_client: str = HTTP_CLIENT.default
    capture_fsync: bool = CAPTURE_FSYNC.default
    #: For tests only: capture batches even when the auth gate would skip them.
    capture_ignores_auth: bool = CAPTURE_IGNORES_AUTH.default
    #: Per partition: open batches close early past this many records, and fetching
    #: pauses while closed batches hold this many (memory <= 2x this per partition).
    max_buffered_records: int = MAX_BUFFERED.default
    shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S.default
    #: ``/livez`` fails once the event loop has not stamped its heartbeat for this long.
    health_stall_s: float = HEALTH_STALL_S.default
    #: How long from the start of an account's credential outage (unreadable or
    #: invalid) its batches are retried before they are dead-lettered.
    credential_wait_s: float = CREDENTIAL_WAIT_S.default
    #: Decode every event through its model (every field checked) instead of checking
    #: its type and passing its bytes through.
    validate_events: bool = VALIDATE_EVENTS.default
    #: Consumer-group session timeout; a dead worker's partitions move after this long.
    session_timeout_ms: int = SESSION_TIMEOUT_MS.default
    health_addr: str | None = HEALTH_ADDR.default
    log_level: str = LOG_LEVEL.default

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
        capture_file = CAPTURE_FILE.read(env)
        base_url = BASE_URL.read(env)
        if capture_file is None and base_url is None:
            raise SinkConfigError(
                f"{BASE_URL.name} is not set: set it to the analytics endpoint's base URL "
                "(e.g. https://chatgpt.com/backend-api/), or set "
                f"{CAPTURE_FILE.name} to write batches to a file instead. There is no "
                "default, so that nothing is ever sent to a real endpoint by accident."
            )
        max_elapsed = RETRY_MAX_ELAPSED_S.read(env)
        max_buffered = MAX_BUFFERED.read(env)
        return cls(
            topics=TopicSettings.from_env(env),
            mode="http" if capture_file is None else "capture",
            base_url=base_url,
            capture_file=capture_file,
            limits=BatchLimits(
                max_events=BATCH_MAX_EVENTS.read(env),
                max_bytes=BATCH_MAX_BYTES.read(env),
                max_wait_ms=BATCH_MAX_WAIT_MS.read(env),
                lateness_ms=BATCH_LATENESS_MS.read(env),
                max_open_records=max_buffered,
            ),
            retry=RetryPolicy(
                initial_s=RETRY_INITIAL_MS.read(env) / 1000,
                max_s=RETRY_MAX_MS.read(env) / 1000,
                max_retry_after_s=RETRY_AFTER_MAX_S.read(env),
                max_elapsed_s=max_elapsed or None,
            ),
            group_id=GROUP.read(env),
            http_timeout_s=HTTP_TIMEOUT_S.read(env),
            http_gzip=HTTP_GZIP.read(env),
            http_max_connections=HTTP_MAX_CONNECTIONS.read(env),
            http_client=HTTP_CLIENT.read(env),
            capture_fsync=CAPTURE_FSYNC.read(env),
            validate_events=VALIDATE_EVENTS.read(env),
            capture_ignores_auth=CAPTURE_IGNORES_AUTH.read(env),
            max_buffered_records=max_buffered,
            shutdown_timeout_s=SHUTDOWN_TIMEOUT_S.read(env),
            health_stall_s=HEALTH_STALL_S.read(env),
            credential_wait_s=CREDENTIAL_WAIT_S.read(env),
            session_timeout_ms=SESSION_TIMEOUT_MS.read(env),
            health_addr=HEALTH_ADDR.read(env),
            log_level=SINK_LOG_LEVEL.read(env).upper(),
        )
