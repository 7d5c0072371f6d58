"""The shared vocabulary: one error tree, one retry policy, aiokafka errors by type."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
    UnknownError,
)

from codex_analytics.runtime.errors import (
    ConfigError,
    PermanentError,
    PipelineError,
    RetryableError,
)
from codex_analytics.runtime.kafka_errors import is_permanent
from codex_analytics.runtime.retry import PUBLISH_RETRY, LogThrottle, RetryPolicy
from producers.publishing.transport import (
    PermanentPublishError,
    RetryablePublishError,
    classify,
    send_with_retry,
)
from sinks.errors import (
    BackpressureError,
    CaptureWriteError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    SinkConfigError,
)


def test_publish_and_delivery_errors_join_one_tree() -> None:
    for retryable in (
        RetryablePublishError("x"),
        RetryableDeliveryError("x"),
        BackpressureError("x", retry_after=1.0),
        CaptureWriteError("x"),
    ):
        assert isinstance(retryable, RetryableError)
        assert isinstance(retryable, PipelineError)
    for permanent in (
        PermanentPublishError("x"),
        PermanentDeliveryError("x", status=400, body=b""),
    ):
        assert isinstance(permanent, PermanentError)
        assert not isinstance(permanent, RetryableError)
    assert isinstance(SinkConfigError("x"), ConfigError)
    assert isinstance(SinkConfigError("x"), ValueError)  # settings errors stay ValueErrors
    assert BackpressureError("x", retry_after=2.5).retry_after == 2.5


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (MessageSizeTooLargeError(), True),
        (TopicAuthorizationFailedError(), True),
        (KafkaConnectionError(), False),
        (NotLeaderForPartitionError(), False),
        (UnknownError(), False),  # what a freshly restarted broker answers
        (TimeoutError(), False),
        (asyncio.CancelledError(), True),  # never retried
    ],
)
def test_kafka_errors_are_mapped_by_type(error: BaseException, permanent: bool) -> None:
    assert is_permanent(error) is permanent
    mapped = classify(error)
    assert isinstance(mapped, PermanentPublishError if permanent else RetryablePublishError)
    assert str(mapped).startswith(type(error).__name__)


def test_a_subclass_of_a_permanent_kafka_error_is_permanent() -> None:
    class Custom(MessageSizeTooLargeError):  # type: ignore[misc]
        pass

    assert is_permanent(Custom())


def test_publish_policy_doubles_from_50_ms_to_2_s() -> None:
    wait = PUBLISH_RETRY.wait()

    class State:
        outcome = None
        attempt_number = 1

    waits = []
    for attempt in range(1, 9):
        state = State()
        state.attempt_number = attempt
        waits.append(wait(state))  # type: ignore[arg-type]
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


class FlakyTransport:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls = 0

    async def start(self) -> None:
        return None

    async def send(self, records: object) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)

    async def probe(self) -> bool:
        return True

    async def close(self) -> None:
        return None


async def test_send_with_retry_retries_retryable_errors_and_reports_each() -> None:
    transport = FlakyTransport([RetryablePublishError("a"), RetryablePublishError("b")])
    seen: list[tuple[str, int]] = []
    await send_with_retry(
        transport,
        [(b"k", b"v")],
        deadline=lambda: time.monotonic() + 5,
        on_retry=lambda exc, attempt: seen.append((str(exc), attempt)),
    )
    assert transport.calls == 3
    assert seen == [("a", 0), ("b", 1)]


async def test_send_with_retry_raises_a_permanent_error_at_once() -> None:
    transport = FlakyTransport([PermanentPublishError("too big"), RetryablePublishError("x")])
    with pytest.raises(PermanentPublishError, match="too big"):
        await send_with_retry(transport, [], deadline=lambda: time.monotonic() + 5)
    assert transport.calls == 1


async def test_send_with_retry_gives_up_at_the_deadline_with_the_last_error() -> None:
    transport = FlakyTransport([RetryablePublishError(str(n)) for n in range(1000)])
    until = time.monotonic() + 0.3
    started = time.monotonic()
    with pytest.raises(RetryablePublishError):
        await send_with_retry(transport, [], deadline=lambda: until)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 1.5  # no wait runs past the deadline
    assert 3 <= transport.calls <= 8


async def test_a_moved_deadline_is_read_before_each_wait() -> None:
    transport = FlakyTransport([RetryablePublishError("x")] * 3)
    until = [time.monotonic() - 1]  # already passed: one attempt only...

    def deadline() -> float:
        return until[0]

    def extend(exc: RetryablePublishError, attempt: int) -> None:
        until[0] = time.monotonic() + 5

    with pytest.raises(RetryablePublishError):
        await send_with_retry(transport, [], deadline=deadline, on_retry=extend)
    assert transport.calls == 1
    until[0] = time.monotonic() + 5  # ...and with room, all of them
    await send_with_retry(transport, [], deadline=deadline)
    assert transport.calls == 4


async def test_policy_honours_retry_after_and_stops_after_max_elapsed() -> None:
    policy = RetryPolicy(initial_s=0.01, max_s=0.02, max_elapsed_s=0.2)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(0.05)

    attempts = 0

    async def run() -> None:
        nonlocal attempts
        async for attempt in policy.retrying(sleep=sleep):
            with attempt:
                attempts += 1
                raise BackpressureError("slow down", retry_after=0.5)

    with pytest.raises(BackpressureError):
        await run()
    assert attempts >= 2
    assert all(0.5 <= s <= 0.55 for s in sleeps)


async def test_policy_does_not_retry_other_errors() -> None:
    attempts = 0

    async def run() -> None:
        nonlocal attempts
        async for attempt in RetryPolicy().retrying():
            with attempt:
                attempts += 1
                raise PermanentDeliveryError("no", status=400, body=b"")

    with pytest.raises(PermanentDeliveryError):
        await run()
    assert attempts == 1


def test_a_log_throttle_lets_one_line_per_interval_and_counts_the_rest() -> None:
    now = [100.0]
    throttle = LogThrottle(10.0, clock=lambda: now[0])
    assert throttle.admit(3) == 0  # the first failure is news
    assert [throttle.admit(3) for _ in range(5)] == [None] * 5
    assert throttle.admit(4) == 0  # another key has its own interval
    now[0] += 10.0
    assert throttle.admit(3) == 5  # one line, saying how many were held back
    assert throttle.admit(3) is None


def test_a_retry_after_never_shortens_the_steady_backoff() -> None:
    async def run() -> list[float]:
        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

        async for attempt in PUBLISH_RETRY.retrying(sleep=sleep):
            with attempt:
                if len(sleeps) < 4:
                    raise RetryablePublishError("busy", retry_after=0.0)
        return sleeps

    assert asyncio.run(run()) == pytest.approx([0.05, 0.1, 0.2, 0.4])
