"""Kafka glue shared by every service: settings from the environment, topic creation,
and client defaults tuned for the brokers we run on.

The defaults come from measurements (``shared/notes/embedded-broker.md``): small fetch
waits (the broker holds a fetch open for most of ``fetch_max_wait_ms`` even when data is
there), a 10 s session timeout (JoinGroup takes half of it), and producer batches of
256 KB with a short linger. The idempotent producer is off: the embedded broker cannot
do it; at-least-once plus idempotent reduction is the design.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from codex_analytics.contract import DEFAULT_MAX_RECORD_BYTES, topics
from codex_analytics.runtime.config import (
    Kind,
    Setting,
    boolean,
    broker_list,
    choice,
    declare,
    integer_literal,
    number,
    topic_name,
    truncated_integer,
)
from codex_analytics.runtime.errors import ConfigError
from codex_analytics.runtime.kafka_security import (
    CLUSTER_READERS,
    PLAINTEXT,
    KafkaSecurity,
)
from codex_analytics.runtime.partitioner import KeyedPartitioner
from codex_analytics.runtime.record_size import max_request_bytes

if TYPE_CHECKING:
    from codex_analytics.runtime.topic_plan import TopicPlan

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
PARTITIONS_ENV = "ANALYTICS_TOPIC_PARTITIONS"

#: Every command that reads the topic settings (:meth:`TopicSettings.from_env`): the
#: smoke workflow and the client library name their topics themselves.
TOPIC_READERS = tuple(r for r in CLUSTER_READERS if r not in ("smoke plugin", "client library"))

BOOTSTRAP = declare(
    BOOTSTRAP_ENV,
    broker_list(),
    None,
    help="Kafka bootstrap servers, used as is; `replay`, `offsets` and `dlq` need it, "
    "`broker` ignores it (it always starts a broker)",
    used_by=(*(r for r in CLUSTER_READERS if r != "client library"), "broker"),
    default_note="an embedded, memory-only broker",
)
#: The client library's broker when ``KAFKA_BOOTSTRAP_SERVERS`` is unset (a library
#: never starts a broker of its own).
CLIENT_BOOTSTRAP = BOOTSTRAP.variant(used_by=("client library",), default="127.0.0.1:9092")
FACTS_TOPIC = declare(
    topics.FACTS_TOPIC_ENV,
    topic_name(),
    topics.FACTS_TOPIC,
    help="topic of fact envelopes, keyed by `source.instance_id`",
    used_by=(*TOPIC_READERS, "client library"),
)
FACTS_DLQ_TOPIC = declare(
    topics.FACTS_DLQ_TOPIC_ENV,
    topic_name(),
    topics.FACTS_DLQ_TOPIC,
    help="facts that failed to decode, with the reason in headers",
    used_by=TOPIC_READERS,
)
EVENTS_TOPIC = declare(
    topics.EVENTS_TOPIC_ENV,
    topic_name(),
    topics.EVENTS_TOPIC,
    help="one record per track event, keyed by delivery route",
    used_by=TOPIC_READERS,
)
EVENTS_DLQ_TOPIC = declare(
    topics.EVENTS_DLQ_TOPIC_ENV,
    topic_name(),
    topics.EVENTS_DLQ_TOPIC,
    help="events the sink gave up on (refused by the endpoint, too large, unreadable), "
    "with the reason in headers",
    used_by=TOPIC_READERS,
)
PARTITIONS = declare(
    PARTITIONS_ENV,
    integer_literal(minimum=1),
    8,
    help="partitions of topics created when missing",
    used_by=TOPIC_READERS,
)
DEFAULT_PARTITIONS = PARTITIONS.default
REPLICATION_FACTOR = declare(
    "ANALYTICS_TOPIC_REPLICATION_FACTOR",
    truncated_integer(minimum=1),
    1,
    help="replication factor of every topic the pipeline creates (facts, events, both "
    "dead-letter topics, the stream's changelog); 3 on a production cluster. "
    "`min.insync.replicas` is left to the cluster",
    used_by=TOPIC_READERS,
)
CREATE_TOPICS = declare(
    "ANALYTICS_CREATE_TOPICS",
    boolean(),
    True,
    help="create missing topics at start; `false` where topics are pre-created (`codex-analytics "
    "topics apply`, or your own tooling from `topics plan`): a missing topic is then waited "
    "for, then an error naming it",
    used_by=TOPIC_READERS,
)


def _retention_hours() -> Kind[float | None]:
    """Hours (a number > 0), ``forever``, or ``broker`` (no ``retention.ms`` set: the
    cluster's default applies). Parsed to hours, -1 for ever, None for the broker's."""

    def parse(name: str, raw: str) -> float | None:
        word = raw.lower()
        if word == "broker":
            return None
        if word == "forever":
            return -1.0
        try:
            hours = float(raw)
        except ValueError:
            hours = 0.0
        if not 0 < hours < float("inf"):
            raise ValueError(f"{name} must be hours > 0, `forever` or `broker`, got {raw!r}")
        return hours

    return Kind("hours | forever | broker", parse)


RETENTION_HOURS = declare(
    "ANALYTICS_TOPIC_RETENTION_HOURS",
    _retention_hours(),
    168.0,
    help="`retention.ms` of the facts and events topics when they are created (replay and a "
    "reset of the stream group reach back this far); `broker`: the cluster's default",
    used_by=TOPIC_READERS,
)
DLQ_RETENTION_HOURS = declare(
    "ANALYTICS_DLQ_RETENTION_HOURS",
    _retention_hours(),
    720.0,
    help="`retention.ms` of both dead-letter topics when they are created: time to fix the "
    "cause and send the dead letters back",
    used_by=TOPIC_READERS,
)
#: The one record-size limit (:mod:`codex_analytics.runtime.record_size`).
MAX_RECORD_BYTES = declare(
    "ANALYTICS_MAX_RECORD_BYTES",
    truncated_integer(minimum=1024),
    DEFAULT_MAX_RECORD_BYTES,
    help="largest record (key, value, headers) any service writes or accepts: larger fact "
    "records are dead-lettered as `too_large`, an output that would be larger dead-letters "
    "its fact (`state_too_large`, `output_too_large`), a larger dead letter is cut to fit; "
    "producers' `max_request_size` is this plus 1024 (the broker must accept that)",
    used_by=(*TOPIC_READERS, "client library"),
)

IDEMPOTENCE = declare(
    "KAFKA_PRODUCER_IDEMPOTENCE",
    boolean(),
    False,
    help="idempotent producers (no duplicate from a producer's own retries); turn it on "
    "for a real cluster, the embedded broker cannot do it",
    used_by=CLUSTER_READERS,
)
COMPRESSION = declare(
    "KAFKA_COMPRESSION",
    choice("none", "gzip", "lz4", "zstd"),
    "none",
    help="compression of every producer's batches",
    used_by=CLUSTER_READERS,
)

BROKER_WAIT_S = declare(
    "ANALYTICS_KAFKA_WAIT_S",
    number(minimum=0),
    60.0,
    help="how long a service or command waits at start for an unreachable broker (or for "
    "pre-created topics), retrying with capped backoff and one log line per attempt, "
    "before it exits 1 with one line naming the hosts; an authentication, TLS or "
    "authorization failure exits at once",
    used_by=(*TOPIC_READERS, "smoke plugin"),
)

SETTINGS: tuple[Setting[Any, Any], ...] = (
    BOOTSTRAP,
    CLIENT_BOOTSTRAP,
    IDEMPOTENCE,
    COMPRESSION,
    BROKER_WAIT_S,
    FACTS_TOPIC,
    FACTS_DLQ_TOPIC,
    EVENTS_TOPIC,
    EVENTS_DLQ_TOPIC,
    PARTITIONS,
    REPLICATION_FACTOR,
    CREATE_TOPICS,
    RETENTION_HOURS,
    DLQ_RETENTION_HOURS,
    MAX_RECORD_BYTES,
)


@dataclass(frozen=True, slots=True)
class TopicSettings:
    facts: str = FACTS_TOPIC.default
    facts_dlq: str = FACTS_DLQ_TOPIC.default
    events: str = EVENTS_TOPIC.default
    events_dlq: str = EVENTS_DLQ_TOPIC.default
    partitions: int = PARTITIONS.default
    #: The one record-size limit: the largest record written to or accepted from these
    #: topics (key, value, headers).
    max_record_bytes: int = MAX_RECORD_BYTES.default
    #: The topic policy of :mod:`codex_analytics.runtime.topic_plan`: what a topic the
    #: pipeline creates looks like, and whether it creates any.
    replication_factor: int = REPLICATION_FACTOR.default
    create: bool = CREATE_TOPICS.default
    #: Hours, -1 for ever, None for the broker's default.
    retention_hours: float | None = RETENTION_HOURS.default
    dlq_retention_hours: float | None = DLQ_RETENTION_HOURS.default

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TopicSettings:
        env = os.environ if environ is None else environ
        return cls(
            facts=FACTS_TOPIC.read(env),
            facts_dlq=FACTS_DLQ_TOPIC.read(env),
            events=EVENTS_TOPIC.read(env),
            events_dlq=EVENTS_DLQ_TOPIC.read(env),
            partitions=PARTITIONS.read(env),
            max_record_bytes=MAX_RECORD_BYTES.read(env),
            replication_factor=REPLICATION_FACTOR.read(env),
            create=CREATE_TOPICS.read(env),
            retention_hours=RETENTION_HOURS.read(env),
            dlq_retention_hours=DLQ_RETENTION_HOURS.read(env),
        )


@dataclass(frozen=True, slots=True)
class KafkaCluster:
    """Where the brokers are and how every client of this process talks to them: the
    one builder of aiokafka client options (producers, consumers, admin clients, and
    Faust's through the stream's transport).

    Anything that takes a cluster also takes a bare bootstrap string
    (:data:`KafkaTarget`): that is a ``PLAINTEXT`` cluster with the default producer
    settings, as the embedded broker and the tests use it. Services read theirs with
    :meth:`from_env`."""

    bootstrap: str
    security: KafkaSecurity = PLAINTEXT
    #: ``KAFKA_PRODUCER_IDEMPOTENCE``.
    idempotence: bool = IDEMPOTENCE.default
    #: ``KAFKA_COMPRESSION``: ``none``, ``gzip``, ``lz4`` or ``zstd``.
    compression: str = COMPRESSION.default
    #: ``ANALYTICS_KAFKA_WAIT_S``: how long a start waits for the cluster (and for
    #: pre-created topics) before it gives up (:mod:`codex_analytics.runtime.kafka_start`).
    start_wait_s: float = BROKER_WAIT_S.default

    @classmethod
    def of(cls, target: KafkaTarget) -> KafkaCluster:
        return target if isinstance(target, KafkaCluster) else cls(target)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, bootstrap: str | None = None
    ) -> KafkaCluster:
        """The cluster of ``KAFKA_BOOTSTRAP_SERVERS`` (or ``bootstrap``, e.g. an embedded
        broker's address) with the security and producer settings of the environment."""
        env = os.environ if environ is None else environ
        servers = bootstrap if bootstrap is not None else BOOTSTRAP.read(env)
        if not servers:
            raise ValueError(f"{BOOTSTRAP_ENV} is not set")
        compression = COMPRESSION.read(env)
        _require_codec(compression)
        return cls(
            servers,
            security=KafkaSecurity.from_env(env),
            idempotence=IDEMPOTENCE.read(env),
            compression=compression,
            start_wait_s=BROKER_WAIT_S.read(env),
        )

    @classmethod
    def configured(cls, environ: Mapping[str, str] | None = None) -> KafkaCluster | None:
        """The cluster of ``KAFKA_BOOTSTRAP_SERVERS``, or None when it is unset (the
        commands then start an embedded broker). A bad setting raises ``ValueError``
        naming the variable, whether or not the bootstrap is set."""
        env = os.environ if environ is None else environ
        cluster = cls.from_env(env, bootstrap=BOOTSTRAP.read(env) or "unset")
        return cluster if BOOTSTRAP.read(env) else None

    @property
    def hosts(self) -> list[str]:
        return [server.strip() for server in self.bootstrap.split(",") if server.strip()]

    def client_options(self) -> dict[str, Any]:
        """Where and how to connect: the options every aiokafka client takes."""
        return {"bootstrap_servers": self.bootstrap, **self.security.client_options()}

    def producer_options(self, max_record_bytes: int = MAX_RECORD_BYTES.default) -> dict[str, Any]:
        """A producer's options (:func:`producer_options` plus where, how, idempotence
        and compression)."""
        options = {**self.client_options(), **producer_options(max_record_bytes)}
        options["enable_idempotence"] = self.idempotence
        if self.compression != "none":
            options["compression_type"] = self.compression
        return options

    def consumer_options(self, **tuning: Any) -> dict[str, Any]:
        """A group consumer's options (:func:`consumer_options` plus where and how)."""
        return {**self.client_options(), **consumer_options(**tuning)}

    def environment(self) -> dict[str, str]:
        """The variables that describe this cluster, the inverse of :meth:`from_env`:
        what a process this one starts must be given to reach the same cluster the same
        way (and nothing else: an embedded broker's cluster says ``PLAINTEXT``, whatever
        this process's own environment says). Files are passed as paths."""
        return {
            BOOTSTRAP_ENV: self.bootstrap,
            **self.security.environment(),
            IDEMPOTENCE.name: "true" if self.idempotence else "false",
            COMPRESSION.name: self.compression,
        }

    def describe(self) -> str:
        """Where and how, for a start line: ``broker:9093 (SASL_SSL SCRAM-SHA-512 as app)``."""
        return f"{self.bootstrap} ({self.security.describe()})"


#: A cluster, or a bare ``PLAINTEXT`` bootstrap string (see :class:`KafkaCluster`).
KafkaTarget = KafkaCluster | str


def _require_codec(compression: str) -> None:
    """aiokafka compresses lz4 and zstd with ``cramjam`` (a dependency of this package);
    an install without it fails here, at start, rather than at the first send."""
    from aiokafka import codec

    available = {"none": True, "gzip": True, "lz4": codec.has_lz4(), "zstd": codec.has_zstd()}
    if not available[compression]:
        raise ConfigError(
            f"{COMPRESSION.name}={compression} needs the cramjam package "
            "(pip install 'aiokafka[lz4,zstd]')"
        )


def producer_options(max_record_bytes: int = MAX_RECORD_BYTES.default) -> dict[str, Any]:
    """aiokafka producer tuning (no address, no security: :meth:`KafkaCluster.producer_options`
    adds those); pass the service's ``TopicSettings.max_record_bytes`` so that the
    client's limit is derived from the one record-size setting."""
    return {
        "enable_idempotence": False,
        "acks": "all",
        "partitioner": KeyedPartitioner(),
        "linger_ms": 10,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30_000,
        "max_request_size": max_request_bytes(max_record_bytes),
    }


def heartbeat_interval_ms(session_timeout_ms: int) -> int:
    """A group member's heartbeat: a quarter of the session timeout, 0.1 s to 1 s."""
    return max(100, min(1_000, session_timeout_ms // 4))


def consumer_options(*, session_timeout_ms: int = 10_000) -> dict[str, Any]:
    return {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": 100,
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": heartbeat_interval_ms(session_timeout_ms),
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }


async def ensure_topics(
    cluster: KafkaTarget, wanted: TopicPlan | Mapping[str, int], *, within: float = 0.0
) -> dict[str, int]:
    """Create the missing topics of a plan (a ``{name: partitions}`` mapping is a plan of
    bare topics: tests and benchmarks); return each one's partition count as the cluster
    has it (an existing topic keeps its own). Waits ``within`` seconds for an unreachable
    cluster; errors are :class:`~codex_analytics.runtime.kafka_start.KafkaStartError`
    (see :func:`~codex_analytics.runtime.kafka_start.prepare_topics`)."""
    from codex_analytics.runtime.kafka_start import prepare_topics
    from codex_analytics.runtime.topic_plan import TopicPlan

    plan = wanted if isinstance(wanted, TopicPlan) else TopicPlan.named(wanted)
    existing = await prepare_topics(cluster, plan, within=within)
    return {name: topic.partitions for name, topic in existing.items()}


async def read_from_start(
    cluster: KafkaTarget, topic: str, *, want: int, within: float, settle: float = 0.0
) -> list[Any]:
    """Every record of ``topic`` from its first offset, without a consumer group, until
    ``want`` arrived (then ``settle`` seconds more, to catch extra ones) or ``within``
    seconds passed. For checks, replays and benchmarks; returns aiokafka records.

    Each partition is read from offset 0 as soon as it is assigned, not from the
    ListOffsets(earliest) answer the consumer resets to, which the embedded broker
    sometimes gives too high (see :func:`first_offsets`); a broker whose log starts
    later answers 0 as out of range, and the consumer resets to its earliest."""
    import time

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        **KafkaCluster.of(cluster).client_options(),
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    records: list[Any] = []
    from_zero: set[Any] = set()  # partitions sought to offset 0
    deadline = time.monotonic() + within
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            # Partitions are assigned as the metadata shows them (the topic may not
            # exist yet); a seek drops what was fetched for the partition before it.
            for tp in consumer.assignment() - from_zero:
                consumer.seek(tp, 0)
                from_zero.add(tp)
            for tp, batch in (await consumer.getmany(timeout_ms=300)).items():
                if tp in from_zero:  # else fetched before its seek: it comes again
                    records.extend(batch)
            if settle_until is None and len(records) >= want:
                settle_until = time.monotonic() + settle
    finally:
        await consumer.stop()
    return records


async def first_offsets(
    cluster: KafkaTarget, partitions: Collection[Any], *, within: float = 5.0
) -> dict[Any, int]:
    """Where a reader of each partition starts that has no committed offset: the first
    offset a fetch from offset 0 is served at, by the given partitions (anything with
    ``topic`` and ``partition``: aiokafka's or Faust's ``TopicPartition``).

    Not ListOffsets(earliest): the embedded broker (Tansu 0.6, memory storage) sometimes
    answers it too high when several producers' first writes to a partition race (the
    log start taken from a later batch's base offset), while the records before it are
    still there and served: a reader that trusts it skips them, silently (measured: 1 in
    40 partitions written first by 10 producers at once; the latency bench lost the
    first facts of an instance that way). A broker whose log really starts later (its
    retention deleted the head) answers a fetch at 0 as out of range, and the consumer
    resets to its earliest, which is then the answer. Partitions that got no answer
    within ``within`` seconds are left out: the caller falls back to its own default."""
    import asyncio
    import time

    from aiokafka import AIOKafkaConsumer, TopicPartition

    asked = {TopicPartition(tp.topic, tp.partition): tp for tp in partitions}
    wanted = list(asked)
    if not wanted:
        return {}
    consumer = AIOKafkaConsumer(
        **KafkaCluster.of(cluster).client_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        # Only the position a fetch is served at matters, never the records: a broker
        # answers at least one batch whatever the limit, and no more than that is read
        # (aiokafka's default, 50 MB, made this probe's answer several MiB per
        # partition on a large backlog).
        fetch_max_bytes=1,
    )
    await consumer.start()
    try:
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, 0)
        # The fetcher fetches on its own once positions are set; a partition has its
        # answer once a fetch was served at its current position (a highwater is known;
        # an out-of-range 0 is reset first). Records are never taken from the consumer,
        # so the position is still where that fetch was served: the first offset.
        deadline = time.monotonic() + within
        while any(consumer.highwater(tp) is None for tp in wanted):
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.01)
        return {
            tp: await consumer.position(tp) for tp in wanted if consumer.highwater(tp) is not None
        }
    finally:
        await consumer.stop()
