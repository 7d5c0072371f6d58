"""The start of every service and command that talks to Kafka: wait for the cluster,
then make the topics of a :class:`~.topic_plan.TopicPlan` exist.

A broker that is not there yet (a pod scheduled before Kafka's, a rolling restart) is
waited for: each attempt connects an admin client and does the work, failures are
retried with capped, jittered exponential backoff (0.25 s up to 5 s) until
``ANALYTICS_KAFKA_WAIT_S`` passed, with one log line per attempt (aiokafka's own error
line per host and retry is held back: its cause goes into ours). Then one line naming
the hosts and the last failure, which the command prints before exiting 1.

What no wait can mend fails at once: authentication, authorization, TLS
(:func:`~.kafka_connection.classify`; each attempt first connects as the clients do,
:func:`~.kafka_connection.diagnose`, since aiokafka hides the cause and a TLS client on a
plaintext port would wait out its request timeout), a replication factor the
cluster has too few brokers for, a creation the cluster refuses (a topic policy).
Pre-created topics (``ANALYTICS_CREATE_TOPICS=false``) that are missing are waited for
too, since a topics job may be running beside the service, then named in the error.

Nothing is cached between attempts: each one starts a new client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

from tenacity import RetryCallState

from codex_analytics.runtime.errors import PermanentError, RetryableError
from codex_analytics.runtime.kafka import BROKER_WAIT_S, KafkaCluster, KafkaTarget
from codex_analytics.runtime.kafka_connection import (
    DIAGNOSE_TIMEOUT_S,
    classify,
    diagnose,
    is_refusal,
)
from codex_analytics.runtime.kafka_errors import describe
from codex_analytics.runtime.retry import RetryPolicy
from codex_analytics.runtime.topic_plan import (
    ExistingTopic,
    TopicPlan,
    TopicSpec,
    missing_topics_error,
    review,
)

T = TypeVar("T")

log = logging.getLogger("codex_analytics.kafka")

#: The backoff between attempts: jittered, so that the pods of a deployment that all
#: wait for the same broker do not all come back at the same instant.
BACKOFF = RetryPolicy(initial_s=0.25, max_s=5.0, jitter=True)
#: An attempt that gets no answer (a host that accepts connections and stays silent)
#: fails after this long, or what is left of the wait if that is less...
ATTEMPT_S = 10.0
#: ...but never less than this: a wait of 0 still makes one real attempt.
MIN_ATTEMPT_S = 1.0

#: Kafka error codes of a topic creation or description that a later attempt may not get.
_TRANSIENT_TOPIC_CODES = {
    5,  # LEADER_NOT_AVAILABLE: just created
    7,  # REQUEST_TIMED_OUT
    41,  # NOT_CONTROLLER
}
_TOPIC_ALREADY_EXISTS = 36


class KafkaStartError(PermanentError):
    """The start could not reach or prepare the cluster. Its text is one line naming
    the hosts (or the topics) and the cause; commands report it (:func:`start_failed`)
    and exit 1."""


class _NotYet(RetryableError):
    """One attempt failed in a way a later one may not; ``final`` is the error if the
    wait runs out on it."""

    def __init__(self, cause: str, *, final: str | None = None) -> None:
        super().__init__(cause)
        self.final = final


def start_failed(command: str, exc: KafkaStartError, *, then: str = "") -> int:
    """Report a start that gave up: one ``critical`` line (a JSON line where the command
    logs JSON, the bare text where it configured no logging), status 1 to exit with."""
    log.critical("%s: %s%s", command, exc, then, extra={"command": command})
    return 1


async def with_cluster(
    cluster: KafkaTarget,
    use: Callable[[Any], Awaitable[T]],
    *,
    within: float,
    limit: str = BROKER_WAIT_S.name,
) -> T:
    """``use(admin)`` with an admin client connected to ``cluster``, retried until it
    succeeds, fails for good or ``within`` seconds passed (then
    :class:`KafkaStartError`). ``limit`` names where ``within`` came from, for the lines
    (a command's ``--retry-for``)."""
    kafka = KafkaCluster.of(cluster)
    started = time.monotonic()
    deadline = started + within
    attempts = 0

    def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        next_in = state.upcoming_sleep
        log.warning(
            "waiting for Kafka at %s: %s; attempt %d, next in %.1f s, giving up %.3g s "
            "after the start (%s)",
            kafka.bootstrap,
            error,
            attempts,
            next_in,
            within,
            limit,
            extra={"kafka": kafka.bootstrap, "attempt": attempts, "next_in_s": round(next_in, 3)},
        )

    try:
        async for attempt in BACKOFF.retrying(
            deadline=lambda: deadline, before_sleep=before_sleep, retry_on=_NotYet
        ):
            with attempt:
                attempts += 1
                left = deadline - time.monotonic()
                return await _attempt(kafka, use, max(MIN_ATTEMPT_S, min(ATTEMPT_S, left)))
    except _NotYet as exc:
        raise KafkaStartError(
            exc.final
            or f"Kafka at {kafka.bootstrap} not reachable within {within:g} s ({limit}): {exc}"
        ) from None
    raise AssertionError("unreachable: the retrier returns or raises")  # pragma: no cover


async def wait_for_cluster(cluster: KafkaTarget, within: float) -> None:
    """Return once the cluster answers (its metadata); :class:`KafkaStartError` after
    ``within`` seconds of failures, or at once for a permanent one."""

    async def answered(admin: Any) -> None:
        await admin.describe_cluster()

    await with_cluster(cluster, answered, within=within)


async def prepare_topics(
    cluster: KafkaTarget, plan: TopicPlan, *, within: float, limit: str = BROKER_WAIT_S.name
) -> dict[str, ExistingTopic]:
    """Wait for the cluster, create the plan's missing topics (unless the plan forbids
    it: then wait for them), and return each planned topic as the cluster has it."""
    kafka = KafkaCluster.of(cluster)
    return await with_cluster(
        kafka, lambda admin: _ensure(admin, kafka, plan), within=within, limit=limit
    )


async def apply_plan(
    cluster: KafkaTarget, plan: TopicPlan, *, within: float
) -> tuple[list[str], dict[str, ExistingTopic]]:
    """Create the plan's missing topics whatever ``plan.create`` says (this is the tool
    that pre-creates them), change nothing that exists; the names created and every
    planned topic as the cluster then has it, configs included."""
    kafka = KafkaCluster.of(cluster)

    async def apply(admin: Any) -> tuple[list[str], dict[str, ExistingTopic]]:
        existing = await existing_topics(admin, plan.names)
        planned = plan.co_partitioned(existing)
        missing = [spec for spec in planned.specs if spec.name not in existing]
        if missing:
            await _create(admin, kafka, missing)
        return [spec.name for spec in missing], await existing_topics(
            admin, plan.names, configs=True
        )

    return await with_cluster(kafka, apply, within=within)


async def inspect_topics(
    cluster: KafkaTarget, plan: TopicPlan, *, within: float
) -> dict[str, ExistingTopic]:
    """The plan's topics as the cluster has them, configs included; creates nothing."""

    async def inspect(admin: Any) -> dict[str, ExistingTopic]:
        return await existing_topics(admin, plan.names, configs=True)

    return await with_cluster(cluster, inspect, within=within)


async def existing_topics(
    admin: Any, names: list[str], *, configs: bool = False
) -> dict[str, ExistingTopic]:
    """The topics among ``names`` that the cluster has. A plain metadata request for a
    missing topic may create it (``auto.create.topics.enable``, the embedded broker
    always): only listed topics are described. ``configs`` also reads their configs
    (None where the cluster does not tell)."""
    listed = set(await admin.list_topics())
    present = [name for name in names if name in listed]
    if not present:
        return {}
    found: dict[str, ExistingTopic] = {}
    for topic in await admin.describe_topics(present):
        code = topic["error_code"]
        if code:
            from aiokafka.errors import for_code

            error = for_code(code)()
            if is_refusal(error):  # not authorized to see it
                raise KafkaStartError(f"topic {topic['topic']}: {describe(error)}")
            raise _NotYet(f"topic {topic['topic']}: {describe(error)}")
        partitions = topic["partitions"]
        replicas = max((len(p["replicas"]) for p in partitions), default=0)
        found[topic["topic"]] = ExistingTopic(topic["topic"], len(partitions), replicas)
    if configs:
        described = await _topic_configs(admin, list(found))
        found = {
            name: ExistingTopic(t.name, t.partitions, t.replication_factor, described.get(name))
            for name, t in found.items()
        }
    return found


async def _attempt(
    cluster: KafkaCluster, use: Callable[[Any], Awaitable[T]], timeout_s: float
) -> T:
    from aiokafka.admin import AIOKafkaAdminClient

    # First connect as every client does: aiokafka's start() hides why it failed, and a
    # TLS client on a plaintext port would wait out its whole request timeout.
    failure = await diagnose(cluster, within=min(DIAGNOSE_TIMEOUT_S, timeout_s))
    if failure is not None:
        if failure.permanent:
            raise KafkaStartError(failure.line)
        raise _NotYet(f"{failure.host}: {failure.what}")
    admin = AIOKafkaAdminClient(
        **cluster.client_options(), request_timeout_ms=max(1000, int(timeout_s * 1000))
    )
    with _connection_failures() as failures:
        try:
            async with asyncio.timeout(timeout_s):
                await admin.start()
                return await use(admin)
        except (KafkaStartError, _NotYet):
            raise
        except TimeoutError:
            raise _NotYet(
                _causes(cluster, failures) or f"no answer within {timeout_s:.3g} s"
            ) from None
        except Exception as exc:
            found = [classify(cluster, cause, where) for where, cause in failures]
            permanent = [f for f in [*found, classify(cluster, exc)] if f.permanent]
            if permanent:
                raise KafkaStartError(permanent[0].line) from None
            raise _NotYet(_causes(cluster, failures) or describe(exc)) from None
        finally:
            with contextlib.suppress(Exception, TimeoutError):
                async with asyncio.timeout(1.0):
                    await admin.close()


async def _ensure(admin: Any, cluster: KafkaCluster, plan: TopicPlan) -> dict[str, ExistingTopic]:
    existing = await existing_topics(admin, plan.names)
    plan = plan.co_partitioned(existing)
    missing = [spec for spec in plan.specs if spec.name not in existing]
    if missing and not plan.create:
        names = [spec.name for spec in missing]
        final = missing_topics_error(names, cluster.bootstrap)
        raise _NotYet(f"topic(s) {', '.join(names)} missing", final=final)
    if missing:
        await _create(admin, cluster, missing)
        existing = await existing_topics(admin, plan.names)
        late = [spec.name for spec in missing if spec.name not in existing]
        if late:
            raise _NotYet(f"created topic(s) {', '.join(late)} not listed yet")
    for finding in review(plan, existing):
        if finding.level == "error":
            raise KafkaStartError(f"topic {finding.topic} on {cluster.bootstrap}: {finding.text}")
        if finding.level == "warning":
            log.warning("topic %s: %s", finding.topic, finding.text)
    return existing


async def _create(admin: Any, cluster: KafkaCluster, specs: list[TopicSpec]) -> None:
    from aiokafka.admin import NewTopic
    from aiokafka.errors import for_code

    brokers = len((await admin.describe_cluster())["brokers"])
    short = [spec.name for spec in specs if spec.replication_factor > brokers]
    if short:
        raise KafkaStartError(
            f"cannot create topic(s) {', '.join(short)} with replication factor "
            f"{specs[0].replication_factor}: the cluster at {cluster.bootstrap} has {brokers} "
            "broker(s) (ANALYTICS_TOPIC_REPLICATION_FACTOR)"
        )
    response = await admin.create_topics(
        [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                topic_configs=dict(spec.configs),
            )
            for spec in specs
        ]
    )
    for entry in response.topic_errors:
        topic, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        if code in (0, _TOPIC_ALREADY_EXISTS):  # already there: another worker was first
            continue
        error = f"{for_code(code).__name__}" + (f": {message}" if message else "")
        if code in _TRANSIENT_TOPIC_CODES:
            raise _NotYet(f"creating topic {topic}: {error}")
        raise KafkaStartError(
            f"the cluster at {cluster.bootstrap} refused to create topic {topic}: {error}"
        )
    for spec in specs:
        log.info("created topic %s (%s)", spec.name, spec.partitions)


async def _topic_configs(admin: Any, names: list[str]) -> Mapping[str, Mapping[str, str]]:
    """Each topic's configs as the cluster reports them; empty where it does not."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    if not names:
        return {}
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    except Exception as exc:  # an ACL without DescribeConfigs: configs unknown
        log.info("cannot read topic configs: %s", describe(exc))
        return {}
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            error_code, _, _, name, entries = resource[:5]
            if not error_code:
                found[name] = {entry[0]: entry[1] for entry in entries if entry[1] is not None}
    return found


#: Where aiokafka logs a failed connection (``Unable connect to "host:port": err``).
_CONNECTION_LOGGERS = ("aiokafka.client", "aiokafka.conn")


@contextlib.contextmanager
def _connection_failures() -> Iterator[list[tuple[str, BaseException]]]:
    """Collect aiokafka's per-host connection failures (``Unable connect to "host:port":
    err``, one error line per host and try) instead of logging them: the wait logs one
    line per attempt with their cause. Other aiokafka lines pass."""
    failures: list[tuple[str, BaseException]] = []

    def keep(record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 3 and isinstance(args[2], BaseException):
            failures.append((f"{args[0]}:{args[1]}", args[2]))
            return False
        return True

    # A logger's filters see only the records logged on it, not those its children
    # propagate: the filter goes where aiokafka logs them.
    loggers = [logging.getLogger(name) for name in _CONNECTION_LOGGERS]
    for logger in loggers:
        logger.addFilter(keep)
    try:
        yield failures
    finally:
        for logger in loggers:
            logger.removeFilter(keep)


def _causes(cluster: KafkaCluster, failures: list[tuple[str, BaseException]]) -> str:
    """``host:port: cause`` per host, the last failure of each."""
    last = dict(failures)
    return "; ".join(
        f"{where}: {classify(cluster, cause, where).what}" for where, cause in last.items()
    )
