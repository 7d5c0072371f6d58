"""The topic policy: what every topic the pipeline creates looks like, in one pure plan.

:class:`TopicPlan` is built from the topic settings (:class:`~.kafka.TopicSettings`):
names, partitions, ``ANALYTICS_TOPIC_REPLICATION_FACTOR`` and the topic configs a
platform team expects to see declared rather than inherited by accident:

* facts and events: ``cleanup.policy=delete`` with ``retention.ms`` from
  ``ANALYTICS_TOPIC_RETENTION_HOURS``; the dead-letter topics keep theirs longer
  (``ANALYTICS_DLQ_RETENTION_HOURS``: time to fix the cause and send them back);
* the stream's state changelog (``<app_id>-reducer-state-changelog``, the name Faust
  gives a table's changelog): ``cleanup.policy=compact`` and no retention (compaction
  keeps each instance's latest state, a restart rebuilds the table from it), and always
  as many partitions as the facts topic (the table is co-partitioned with it);
* every topic: ``max.message.bytes`` = the producers' ``max_request_size``
  (``ANALYTICS_MAX_RECORD_BYTES`` + 1024), so that the broker takes what a producer may
  send whatever the cluster's default.

``min.insync.replicas`` is left to the cluster (its default, or a policy): every
producer uses ``acks=all``, so with replication 3 set it to 2 on the cluster.

Every creator uses the plan: the services' start (through
:func:`~.kafka_start.prepare_topics`), the stream worker's Faust table (its changelog
configs) and ``codex-analytics topics plan|apply``. :func:`review` compares a plan with
what a cluster has; nothing here talks to Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from codex_analytics.runtime.kafka import TopicSettings
from codex_analytics.runtime.record_size import max_request_bytes

HOUR_MS = 3_600_000

#: A topic's part in the pipeline (also how the plan command names it).
Role = Literal["facts", "facts_dlq", "events", "events_dlq", "changelog", "output"]

#: The name Faust gives a table's changelog topic, and the stream's table.
STATE_TABLE = "reducer-state"


def changelog_topic(app_id: str) -> str:
    """The stream worker's state changelog: ``<app_id>-reducer-state-changelog``
    (Faust's ``{app id}-{table name}-changelog``)."""
    return f"{app_id}-{STATE_TABLE}-changelog"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as the plan would create it."""

    name: str
    role: Role
    partitions: int
    replication_factor: int
    #: Topic configs, as Kafka takes them (strings).
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExistingTopic:
    """A topic as a cluster has it. ``configs`` holds the values of the plan's config
    keys the cluster reported (None when they could not be read)."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of a review: ``create`` (missing, the plan creates it), ``ok``,
    ``warning`` (it exists and differs; left as it is) or ``error`` (it cannot work)."""

    level: Literal["create", "ok", "warning", "error"]
    topic: str
    text: str


@dataclass(frozen=True, slots=True)
class TopicPlan:
    specs: tuple[TopicSpec, ...]
    #: ``ANALYTICS_CREATE_TOPICS``: False where topics are pre-created (a missing one is
    #: then an error naming it).
    create: bool = True

    @classmethod
    def pipeline(cls, topics: TopicSettings, *, app_id: str | None = None) -> TopicPlan:
        """Every topic of the pipeline; the stream's changelog too when ``app_id`` (the
        stream's ``ANALYTICS_STREAM_APP_ID``) is given."""

        def spec(name: str, role: Role, retention: float | None, cleanup: str) -> TopicSpec:
            configs = {
                "cleanup.policy": cleanup,
                "max.message.bytes": str(max_request_bytes(topics.max_record_bytes)),
            }
            if retention is not None:
                configs["retention.ms"] = str(-1 if retention < 0 else round(retention * HOUR_MS))
            return TopicSpec(name, role, topics.partitions, topics.replication_factor, configs)

        specs = [
            spec(topics.facts, "facts", topics.retention_hours, "delete"),
            spec(topics.events, "events", topics.retention_hours, "delete"),
            spec(topics.facts_dlq, "facts_dlq", topics.dlq_retention_hours, "delete"),
            spec(topics.events_dlq, "events_dlq", topics.dlq_retention_hours, "delete"),
        ]
        if app_id is not None:
            specs.append(spec(changelog_topic(app_id), "changelog", None, "compact"))
        return cls(tuple(specs), create=topics.create)

    @classmethod
    def named(cls, partitions: Mapping[str, int]) -> TopicPlan:
        """Bare topics of ``{name: partitions}``, replication 1, no configs: for tests
        and benchmarks on the embedded broker, never for a service."""
        return cls(tuple(TopicSpec(n, "output", p, 1) for n, p in partitions.items()))

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    def only(self, *roles: Role) -> TopicPlan:
        """The plan's topics of these roles (a service creates the topics it uses)."""
        return replace(self, specs=tuple(s for s in self.specs if s.role in roles))

    def spec(self, role: Role) -> TopicSpec:
        return next(s for s in self.specs if s.role == role)

    def renamed(self, role: Role, name: str) -> TopicPlan:
        """One topic of ``role``'s policy under another name (``replay --to-topic``)."""
        return replace(self, specs=(replace(self.spec(role), name=name, role="output"),))

    def co_partitioned(self, existing: Mapping[str, ExistingTopic]) -> TopicPlan:
        """The plan with the changelog's partitions set to what the facts topic has on
        the cluster: Faust writes a fact's state to the changelog partition of the
        fact's partition, whatever the settings say."""
        facts = next((s for s in self.specs if s.role == "facts"), None)
        if facts is None or facts.name not in existing:
            return self
        count = existing[facts.name].partitions
        return replace(
            self,
            specs=tuple(
                replace(s, partitions=count) if s.role == "changelog" else s for s in self.specs
            ),
        )


def review(plan: TopicPlan, existing: Mapping[str, ExistingTopic]) -> list[Finding]:
    """Each planned topic against the cluster's: missing ones are created, existing ones
    are never changed (a difference is a warning), and a changelog whose partitions do
    not match the facts topic's is an error (the table cannot be co-partitioned)."""
    plan = plan.co_partitioned(existing)
    findings: list[Finding] = []
    for spec in plan.specs:
        have = existing.get(spec.name)
        if have is None:
            level: Literal["create", "error"] = "create" if plan.create else "error"
            findings.append(Finding(level, spec.name, _missing(spec, plan.create)))
            continue
        differences = list(_differences(spec, have))
        if spec.role == "changelog" and have.partitions != spec.partitions:
            findings.append(
                Finding(
                    "error",
                    spec.name,
                    f"has {have.partitions} partitions, the facts topic {spec.partitions}: "
                    "the stream's state table needs as many; recreate the changelog (the "
                    "state is rebuilt by a replay) or the facts topic",
                )
            )
        elif differences:
            findings.append(
                Finding("warning", spec.name, "; ".join(differences) + " (left as it is)")
            )
        else:
            findings.append(Finding("ok", spec.name, "exists as planned"))
    return findings


def describe(spec: TopicSpec) -> str:
    """``8 partitions, replication 3, cleanup.policy=compact, ...``"""
    configs = ", ".join(f"{k}={v}" for k, v in sorted(spec.configs.items()))
    return f"{spec.partitions} partitions, replication {spec.replication_factor}" + (
        f", {configs}" if configs else ""
    )


def missing_topics_error(names: Iterable[str], bootstrap: str) -> str:
    """The one line for pre-created topics that are not there."""
    listed = ", ".join(names)
    return (
        f"topic(s) {listed} do not exist on {bootstrap} and ANALYTICS_CREATE_TOPICS=false: "
        "create them with `codex-analytics topics apply` (or as `codex-analytics topics "
        "plan` lists them)"
    )


def _missing(spec: TopicSpec, create: bool) -> str:
    if create:
        return f"missing: would create with {describe(spec)}"
    return f"missing, and ANALYTICS_CREATE_TOPICS=false: create it with {describe(spec)}"


def _differences(spec: TopicSpec, have: ExistingTopic) -> Iterable[str]:
    if have.partitions != spec.partitions:
        yield f"has {have.partitions} partitions, the plan {spec.partitions}"
    if have.replication_factor != spec.replication_factor:
        yield f"has replication {have.replication_factor}, the plan {spec.replication_factor}"
    if have.configs is not None:
        for key, wanted in sorted(spec.configs.items()):
            actual = have.configs.get(key)
            if actual is not None and actual != wanted:
                yield f"has {key}={actual}, the plan {wanted}"
