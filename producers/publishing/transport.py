"""The one seam between producers and Kafka: hand records over, return once acked.

:class:`KafkaFactTransport` is the aiokafka implementation. The client library, the
gateway and the ``produce`` / ``generate --to-kafka`` commands all publish through it, so
"published" means the same everywhere: every record acknowledged by the broker
(``acks=all``). Tests of the pure parts use an in-memory transport of the same shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tenacity import RetryCallState

from codex_analytics.runtime.errors import PermanentError, PipelineError, RetryableError
from codex_analytics.runtime.health import topic_known
from codex_analytics.runtime.kafka import KafkaCluster, KafkaTarget
from codex_analytics.runtime.kafka_errors import describe, is_permanent, is_too_large
from codex_analytics.runtime.retry import PUBLISH_RETRY
from producers.publishing.records import MAX_RECORD_BYTES, Record


class PublishError(PipelineError):
    """Records were not (all) acknowledged by the broker.

    ``per_record``, when the transport knows it, is the outcome of each record sent, in
    order: ``None`` for an acknowledged one, else the error that stopped it (a record
    refused for its size is permanent while the others of the call may be acked)."""

    per_record: tuple[PublishError | None, ...] | None = None


class RetryablePublishError(PublishError, RetryableError):
    """The broker is unreachable, slow or electing a leader: try the same records again."""


class PermanentPublishError(PublishError, PermanentError):
    """Trying again cannot help (e.g. a record over the broker's size limit)."""


class RecordTooLargePublishError(PermanentPublishError):
    """A record over the producer's or the broker's size limit."""


class FactTransport(Protocol):
    async def start(self) -> None: ...

    async def send(self, records: Sequence[Record]) -> None:
        """Publish ``records`` in order; return when all are acknowledged, or raise
        :class:`PublishError`. On failure some of them may have been published: a retry
        repeats them, and the stream drops the repeats by ``(instance_id, seq)``."""
        ...

    async def probe(self) -> bool:
        """True when the broker answers and knows the topic (readiness checks)."""
        ...

    async def close(self) -> None: ...


def classify(exc: BaseException) -> PublishError:
    """aiokafka's errors as the two publish errors, by type (the message names the cause
    only; :mod:`codex_analytics.runtime.kafka_errors` says which are permanent)."""
    if isinstance(exc, PublishError):
        return exc
    if is_too_large(exc):
        return RecordTooLargePublishError(describe(exc))
    if is_permanent(exc):
        return PermanentPublishError(describe(exc))
    return RetryablePublishError(describe(exc))


async def send_with_retry(
    transport: FactTransport,
    records: Sequence[Record],
    *,
    deadline: Callable[[], float],
    on_retry: Callable[[RetryablePublishError, int], None] | None = None,
) -> None:
    """Send ``records``, retrying a :class:`RetryablePublishError` by the publishing
    policy (50 ms doubling to 2 s) until ``deadline()`` (a ``time.monotonic()`` instant,
    read before each wait so the caller may move it); then the last error is raised. A
    permanent error is raised at once. The client, the gateway and the bulk commands all
    publish through it."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if on_retry is not None and isinstance(error, RetryablePublishError):
            on_retry(error, state.attempt_number - 1)

    async for attempt in PUBLISH_RETRY.retrying(
        deadline=deadline, before_sleep=before_sleep, retry_on=RetryablePublishError
    ):
        with attempt:
            await transport.send(records)


#: One record's outcome: ``None`` once acknowledged, else why it is not.
Outcome = PublishError | None


async def publish_each(
    transport: FactTransport, records: Sequence[Record], *, within: float
) -> list[Outcome]:
    """Send ``records`` and return each one's outcome instead of raising: retryable
    failures are retried (records already acknowledged are not sent again) for
    ``within`` seconds, a permanent refusal ends that record's attempts at once. What is
    still unacknowledged at the end carries a :class:`RetryablePublishError`. For the
    gateway, which answers per line."""
    outcomes: list[Outcome] = [None] * len(records)
    pending = list(range(len(records)))
    until = time.monotonic() + within

    async def attempt() -> None:
        nonlocal pending
        try:
            await transport.send([records[i] for i in pending])
        except PublishError as exc:
            each = exc.per_record or (exc,) * len(pending)
            for index, outcome in zip(pending, each, strict=True):
                outcomes[index] = outcome
            pending = [i for i in pending if isinstance(outcomes[i], RetryablePublishError)]
            if pending:
                raise RetryablePublishError(str(exc)) from exc
        else:
            for index in pending:
                outcomes[index] = None
            pending = []

    try:
        async with asyncio.timeout(within):  # a send that hangs ends with the deadline
            async for retry in PUBLISH_RETRY.retrying(
                deadline=lambda: until, retry_on=RetryablePublishError
            ):
                with retry:
                    await attempt()
    except (TimeoutError, RetryablePublishError):
        unacknowledged = RetryablePublishError(f"not acknowledged within {within:g} s")
        for index in pending:
            if not isinstance(outcomes[index], RetryablePublishError):
                outcomes[index] = unacknowledged
    return outcomes


class KafkaFactTransport:
    """aiokafka producer with the project's defaults (``acks=all``, no idempotence: the
    embedded broker cannot do it; the stream's seq check makes repeats harmless)."""

    def __init__(
        self,
        cluster: KafkaTarget,
        topic: str,
        *,
        client_id: str = "codex-analytics-producer",
        request_timeout_ms: int = 10_000,
        linger_ms: int = 5,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        self.cluster = KafkaCluster.of(cluster)
        self.topic = topic
        #: The one record-size limit; the client's ``max_request_size`` (its own size
        #: check) derives from it. Tests lower it to get a real refusal from a broker
        #: that takes any size.
        self.max_record_bytes = max_record_bytes
        self._client_id = client_id
        self._request_timeout_ms = request_timeout_ms
        self._linger_ms = linger_ms
        self._producer: Any = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        if self._producer is not None:
            return
        options = self.cluster.producer_options(self.max_record_bytes)
        options.update(linger_ms=self._linger_ms, request_timeout_ms=self._request_timeout_ms)
        producer = AIOKafkaProducer(client_id=self._client_id, **options)
        try:
            await producer.start()
        except BaseException as exc:  # a cancelled start (a probe's deadline) too: no leak
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5.0)
            if isinstance(exc, Exception):
                raise classify(exc) from exc
            raise
        self._producer = producer

    async def send(self, records: Sequence[Record]) -> None:
        """Queue every record, then wait for all acks. A record the producer refuses
        outright (over its ``max_request_size``) is skipped and the rest still sent; a
        retryable failure to queue stops the queueing (what follows would overtake it).
        On any failure the error raised says each record's outcome (``per_record``)."""
        if self._producer is None:
            await self.start()
        producer = self._producer
        outcomes: list[PublishError | None] = [None] * len(records)
        futures: dict[int, asyncio.Future[Any]] = {}
        for index, (key, value) in enumerate(records):
            try:
                futures[index] = await producer.send(self.topic, value=value, key=key)
            except Exception as exc:
                outcomes[index] = error = classify(exc)
                if isinstance(error, RetryablePublishError):
                    for rest in range(index + 1, len(records)):
                        outcomes[rest] = RetryablePublishError(f"not sent after {error}")
                    break
        if futures:
            acked = await asyncio.gather(*futures.values(), return_exceptions=True)
            for index, result in zip(futures, acked, strict=True):
                if isinstance(result, asyncio.CancelledError):  # the producer stopped
                    outcomes[index] = RetryablePublishError("cancelled before its ack")
                elif isinstance(result, BaseException):
                    outcomes[index] = classify(result)
        failures = [outcome for outcome in outcomes if outcome is not None]
        if failures:
            retryable = [f for f in failures if isinstance(f, RetryablePublishError)]
            first = (retryable or failures)[0]
            raised = type(first)(f"{len(failures)} of {len(records)} records failed: {first}")
            raised.per_record = tuple(outcomes)
            raise raised

    async def probe(self) -> bool:
        if self._producer is None:
            await self.start()
        return await topic_known(self._producer.client, self.topic)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
