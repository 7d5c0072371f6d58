"""The delivery step's outcomes, how the metrics record them, and the lanes (no broker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from codex_analytics.contract.facts import AuthRoute
from codex_analytics.contract.records import Origin
from codex_analytics.runtime.deadletter import DeadLetter
from sinks.auth import SkipReason
from sinks.batching import Batch, BatchLimits, PartitionBatcher, SinkRecord
from sinks.capture import CaptureDestination
from sinks.credentials import Credential, CredentialChain, CredentialProvider
from sinks.deadletters import DeadLetterQueue
from sinks.delivery import BatchDelivery
from sinks.destinations import destination_for
from sinks.errors import (
    DeliveryError,
    InvalidCredentialError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    UnreadableCredentialError,
    UnsendableRequestError,
)
from sinks.http import HttpDestination
from sinks.lanes import DeliverBatch, Lane, Lanes, Sending
from sinks.metrics import SinkMetrics
from sinks.outcomes import BatchOutcome, DeadLettered, Delivered, GateSkipped, SuccessOutcome
from sinks.settings import SinkSettings

ROUTE = AuthRoute(kind="chatgpt", account_id="acct-1", is_fedramp=False)
FAST_RETRIES = {"ANALYTICS_RETRY_INITIAL_MS": "1", "ANALYTICS_RETRY_MAX_MS": "2"}


def settings(**env: str) -> SinkSettings:
    return SinkSettings.from_env({"ANALYTICS_BASE_URL": "http://h/", **FAST_RETRIES, **env})


def with_token() -> CredentialChain:
    return CredentialChain.from_env(
        {"ANALYTICS_BEARER_TOKEN": "tok-1", "ANALYTICS_ACCOUNT_ID": "acct-1"}
    )


def record(offset: int, *, size: int = 20) -> SinkRecord:
    return SinkRecord(
        offset=offset,
        timestamp_ms=0,
        raw=b"raw-%d" % offset,
        key=b"key",
        route=ROUTE,
        route_key=b"a",
        origin=Origin("inst", offset, 0),
        event_type="codex_turn_event",
        event_json=b'"' + b"x" * (size - 2) + b'"',
    )


def batch(*offsets: int, limits: BatchLimits | None = None, size: int = 20) -> Batch:
    batcher = PartitionBatcher(0, limits or BatchLimits())
    closed = [b for o in offsets for b in batcher.add(record(o, size=size))]
    return [*closed, *batcher.flush()][0]


class FakeDestination:
    """Answers each write with the next of ``answers`` (a status or an error), then 200."""

    name = "fake"
    target = "nowhere"
    failing = False

    def __init__(
        self,
        answers: list[int | DeliveryError] | None = None,
        *,
        success_outcome: SuccessOutcome = "delivered",
        may_ignore_auth: bool = False,
    ) -> None:
        self.answers = list(answers or [])
        self.success_outcome: SuccessOutcome = success_outcome
        self.may_ignore_auth = may_ignore_auth
        self.sent: list[tuple[bytes, dict[str, str]]] = []

    def prepare(self) -> None:
        return None

    async def deliver(self, body: bytes, headers: dict[str, str]) -> int:
        self.sent.append((body, headers))
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, int):
            return answer
        raise answer

    async def aclose(self) -> None:
        return None


class RecordingDeadLetters(DeadLetterQueue):
    """The events DLQ without a broker: keeps what it was asked to produce."""

    def __init__(self) -> None:
        super().__init__("unused:9092", settings().topics)
        self.produced: list[DeadLetter] = []

    async def produce(self, letters: list[DeadLetter]) -> None:
        self.produced.extend(letters)


class FakeLane:
    partition = 3

    def __init__(self) -> None:
        self.retrying = False
        self.marks: list[bool] = []
        self.request_slot = asyncio.Semaphore()

    def mark_retrying(self, retrying: bool) -> None:
        self.retrying = retrying
        self.marks.append(retrying)


def delivery(
    destination: FakeDestination,
    *,
    credentials: CredentialProvider | None = None,
    sink_settings: SinkSettings | None = None,
) -> tuple[BatchDelivery, SinkMetrics, RecordingDeadLetters]:
    metrics = SinkMetrics()
    dead_letters = RecordingDeadLetters()
    step = BatchDelivery(
        sink_settings or settings(),
        destination,
        credentials or with_token(),
        metrics,
        dead_letters,
    )
    return step, metrics, dead_letters


def test_metrics_record_each_outcome_under_the_names_dashboards_read() -> None:
    metrics = SinkMetrics()
    metrics.record(Delivered("delivered", events=5, body_bytes=100, seconds=0.2))
    metrics.record(Delivered("captured", events=2, body_bytes=40, seconds=0.01))
    metrics.record(GateSkipped(SkipReason.NO_TOKEN, events=3))
    metrics.record(DeadLettered("http_400", events=4))
    value = metrics.value
    assert value("codex_sink_events_total", outcome="delivered") == 5
    assert value("codex_sink_events_total", outcome="captured") == 2
    assert value("codex_sink_events_total", outcome="skipped") == 3
    assert value("codex_sink_events_total", outcome="dead_lettered") == 4
    for outcome in ("delivered", "captured", "skipped", "dead_lettered"):
        assert value("codex_sink_batches_total", outcome=outcome) == 1
    assert value("codex_sink_gate_skipped_events_total", reason="no_token") == 3
    assert value("codex_sink_dead_letters_total", reason="http_400") == 4
    assert value("codex_sink_capture_bytes_total") == 41  # the line: body and newline
    assert value("codex_sink_delivery_seconds_count") == 2
    assert value("codex_sink_delivery_seconds_sum") == pytest.approx(0.21)


async def test_a_delivered_batch_carries_the_route_headers_and_its_body() -> None:
    destination = FakeDestination([202])
    step, metrics, _ = delivery(destination)
    sent = batch(0, 1, 2)
    lane = FakeLane()
    outcome = await step(sent, lane)
    assert isinstance(outcome, Delivered)
    assert (outcome.outcome, outcome.events, outcome.body_bytes) == (
        "delivered",
        3,
        len(sent.body()),
    )
    ((body, headers),) = destination.sent
    assert body == sent.body()
    assert headers["Authorization"] == "Bearer tok-1"
    assert headers["Idempotency-Key"] == sent.idempotency_key()
    assert metrics.value("codex_sink_delivery_attempts_total", result="2xx") == 1
    assert lane.marks == []


async def test_a_retried_batch_marks_its_lane_retrying_until_it_is_delivered() -> None:
    destination = FakeDestination([RetryableDeliveryError("busy", status=503), 200])
    step, metrics, _ = delivery(destination)
    lane = FakeLane()
    outcome = await step(batch(0, 1), lane)
    assert isinstance(outcome, Delivered)
    assert lane.marks == [True, False]
    assert len(destination.sent) == 2
    assert metrics.value("codex_sink_retries_total") == 1
    assert metrics.value("codex_sink_delivery_attempts_total", result="5xx") == 1
    assert metrics.value("codex_sink_delivery_attempts_total", result="2xx") == 1


async def test_a_refused_batch_is_dead_lettered_with_the_response() -> None:
    refused = PermanentDeliveryError("events failed with status 400", status=400, body=b"bad")
    step, metrics, dead_letters = delivery(FakeDestination([refused]))
    outcome = await step(batch(0, 1), FakeLane())
    assert outcome == DeadLettered("http_400", 2)
    assert [dict(dl.headers)["source.offset"] for dl in dead_letters.produced] == [b"0", b"1"]
    headers = dict(dead_letters.produced[0].headers)
    assert (headers["http.status"], headers["http.body"]) == (b"400", b"bad")
    assert metrics.value("codex_sink_delivery_attempts_total", result="4xx") == 1


async def test_an_event_larger_than_a_body_is_dead_lettered_unsent() -> None:
    destination = FakeDestination()
    step, _, dead_letters = delivery(destination)
    too_large = batch(0, limits=BatchLimits(max_bytes=64), size=100)
    assert await step(too_large, FakeLane()) == DeadLettered("too_large", 1)
    assert destination.sent == []
    assert dict(dead_letters.produced[0].headers)["error.reason"] == b"too_large"


async def test_retries_exhausted_are_dead_lettered() -> None:
    destination = FakeDestination([RetryableDeliveryError("down", status=500)] * 1000)
    step, _, _ = delivery(destination, sink_settings=settings(ANALYTICS_RETRY_MAX_ELAPSED_S="0.05"))
    lane = FakeLane()
    assert await step(batch(0), lane) == DeadLettered("retries_exhausted", 1)
    assert lane.marks[-1] is False


@pytest.mark.parametrize(
    ("may_ignore_auth", "expected"),
    [(True, Delivered), (False, GateSkipped)],
)
async def test_capture_ignores_auth_opens_the_gate_only_where_the_destination_allows_it(
    may_ignore_auth: bool, expected: type[BatchOutcome]
) -> None:
    destination = FakeDestination(success_outcome="captured", may_ignore_auth=may_ignore_auth)
    step, _, _ = delivery(
        destination,
        credentials=CredentialChain.from_env({}),
        sink_settings=settings(ANALYTICS_CAPTURE_IGNORES_AUTH="1"),
    )
    outcome = await step(batch(0, 1), FakeLane())
    assert type(outcome) is expected
    if isinstance(outcome, GateSkipped):
        assert outcome == GateSkipped(SkipReason.NO_TOKEN, 2)
        assert destination.sent == []
    else:
        assert outcome.outcome == "captured"
        assert destination.sent[0][1] == {}  # no credential, no headers


def test_destination_for_picks_the_destination_the_mode_names(tmp_path: Path) -> None:
    http = destination_for(settings())
    assert type(http) is HttpDestination
    assert (http.name, http.success_outcome, http.may_ignore_auth, http.failing) == (
        "http",
        "delivered",
        False,
        False,
    )
    assert http.target == "POST http://h/codex/analytics-events/events"
    path = tmp_path / "capture.jsonl"
    capture = destination_for(settings(CODEX_ANALYTICS_EVENTS_CAPTURE_FILE=str(path)))
    assert type(capture) is CaptureDestination
    assert (capture.name, capture.success_outcome, capture.may_ignore_auth) == (
        "capture",
        "captured",
        True,
    )
    assert capture.target == f"capture file {path}"


async def test_a_failed_capture_is_failing_until_an_append_succeeds(tmp_path: Path) -> None:
    capture = CaptureDestination(str(tmp_path / "missing" / "c.jsonl"))
    capture.prepare()
    assert capture.failing
    with pytest.raises(DeliveryError):
        await capture.deliver(b"{}", {})
    assert capture.failing
    (tmp_path / "missing").mkdir()
    await capture.deliver(b"{}", {})
    assert not capture.failing


def lanes_for(
    deliver: DeliverBatch,
    limits: BatchLimits | None = None,
    metrics: SinkMetrics | None = None,
    *,
    batch_done: Callable[[], None] = lambda: None,
    failed: Callable[[BaseException], None] | None = None,
    max_in_flight: int = 16,
) -> Lanes:
    """Lanes delivering with ``deliver``; a lane that fails fails the test (unless
    ``failed`` says otherwise)."""
    return Lanes(
        limits or BatchLimits(),
        metrics or SinkMetrics(),
        deliver,
        batch_done=batch_done,
        pressure_changed=lambda: None,
        failed=failed or (lambda err: pytest.fail(f"lane failed: {err!r}")),
        max_in_flight=max_in_flight,
    )


async def test_a_lane_delivers_its_batches_in_order_and_records_each_outcome() -> None:
    seen: list[int] = []
    done: list[None] = []

    async def deliver(batch: Batch, lane: Sending) -> BatchOutcome:
        await asyncio.sleep(0)
        seen.append(batch.first_offset)
        return GateSkipped(SkipReason.NO_AUTH, len(batch.records))

    metrics = SinkMetrics()
    lanes = lanes_for(
        deliver, BatchLimits(max_events=2), metrics, batch_done=lambda: done.append(None)
    )
    tp = TopicPartition("events", 0)
    lane = lanes.open(tp)
    for offset in range(5):
        lane.enqueue(lane.batcher.add(record(offset)))
    await lanes.drain(flush=True, within=5)
    assert seen == [0, 2, 4]
    assert len(done) == 3
    assert lane.batcher.commit_point() == 5
    assert metrics.value("codex_sink_batches_closed_total", reason="count") == 2
    assert metrics.value("codex_sink_batches_closed_total", reason="flush") == 1
    assert metrics.value("codex_sink_events_total", outcome="skipped") == 5
    await lanes.stop([tp])
    assert len(lanes) == 0
    assert not lane.assigned


def routed(route: bytes, *offsets: int) -> Batch:
    """A closed batch of ``route`` holding ``offsets``."""
    closed = batch(*offsets)
    closed.route_key = route
    return closed


async def test_a_lane_sends_routes_side_by_side_and_each_route_in_order() -> None:
    # One request at a time per partition made every route wait for the others'.
    release: dict[int, asyncio.Event] = {}
    started: list[int] = []

    async def deliver(batch: Batch, lane: Sending) -> BatchOutcome:
        started.append(batch.first_offset)
        release[batch.first_offset] = gate = asyncio.Event()
        await gate.wait()
        return GateSkipped(SkipReason.NO_AUTH, len(batch.records))

    lanes = lanes_for(deliver)
    lane = lanes.open(TopicPartition("events", 0))
    lane.enqueue([routed(b"a", 0), routed(b"a", 1), routed(b"b", 2)])
    await asyncio.sleep(0.01)
    assert started == [0, 2]  # b does not wait for a; a's second waits for its first
    release[2].set()
    await asyncio.sleep(0.01)
    assert started == [0, 2]
    release[0].set()
    await asyncio.sleep(0.01)
    assert started == [0, 2, 1]
    release[1].set()
    await lanes.drain(flush=False, within=5)
    assert lane.queued == 0
    assert lane.batcher.commit_point() is None  # no record went through the batcher
    await lanes.stop([TopicPartition("events", 0)])


async def test_batches_in_flight_are_bounded_over_all_lanes() -> None:
    in_flight, most = 0, 0

    async def deliver(batch: Batch, lane: Sending) -> BatchOutcome:
        nonlocal in_flight, most
        async with lane.request_slot:
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0.005)
            in_flight -= 1
        return GateSkipped(SkipReason.NO_AUTH, len(batch.records))

    lanes = lanes_for(deliver, max_in_flight=3)
    for partition in range(2):
        lane = lanes.open(TopicPartition("events", partition))
        lane.enqueue([routed(b"r%d" % r, r) for r in range(5)])
    await lanes.drain(flush=False, within=5)
    assert most == 3
    assert all(lane.queued == 0 for lane in lanes.values())
    await lanes.cancel()


class EndpointDown(FakeDestination):
    """Fails every body holding ``down`` (an event's bytes) with a 503 until ``up`` is
    set."""

    def __init__(self, down: bytes) -> None:
        super().__init__()
        self.down = down
        self.up = asyncio.Event()
        self.delivered: list[bytes] = []

    async def deliver(self, body: bytes, headers: dict[str, str]) -> int:
        if self.down in body and not self.up.is_set():
            raise RetryableDeliveryError("unavailable", status=503)
        self.delivered.append(body)
        return 200


async def test_a_batch_holds_no_request_slot_while_it_backs_off() -> None:
    # A slot held across a backoff let a few failing routes hold every slot while they
    # slept: every healthy route of every partition waited behind them.
    destination = EndpointDown(b"down")
    step, _, _ = delivery(
        destination,
        sink_settings=settings(ANALYTICS_RETRY_INITIAL_MS="20", ANALYTICS_RETRY_MAX_MS="20"),
    )
    lanes = lanes_for(step, max_in_flight=1)
    failing = lanes.open(TopicPartition("events", 0))
    healthy = lanes.open(TopicPartition("events", 1))
    down, fine = routed(b"a", 0), routed(b"b", 0)
    for r in down.records:
        r.event_json = b'"down"'
    failing.enqueue([down])
    await asyncio.sleep(0.01)  # the failing batch tried, and backs off
    assert failing.retrying
    healthy.enqueue([fine])
    async with asyncio.timeout(5):
        await healthy.idle.wait()
    assert len(destination.delivered) == 1
    assert b"down" not in destination.delivered[0]
    assert failing.retrying
    assert failing.queued == 1
    destination.up.set()
    await lanes.drain(flush=False, within=5)
    assert failing.queued == 0
    assert not failing.retrying
    await lanes.cancel()


def test_a_lane_retries_while_any_of_its_batches_does() -> None:
    changes: list[None] = []
    lane = Lane(
        TopicPartition("events", 0),
        PartitionBatcher(0, BatchLimits()),
        SinkMetrics(),
        lambda: changes.append(None),
    )
    first, second = Sending(lane), Sending(lane)
    first.mark_retrying(True)
    second.mark_retrying(True)
    assert lane.retrying
    second.mark_retrying(False)
    second.mark_retrying(False)  # twice: counted once
    assert lane.retrying  # the first still retries: the partition stays paused
    first.mark_retrying(False)
    assert not lane.retrying
    assert len(changes) == 2  # paused once, resumed once


async def test_a_lane_that_raises_reports_its_failure() -> None:
    failures: list[BaseException] = []

    async def deliver(batch: Batch, lane: Sending) -> BatchOutcome:
        raise RuntimeError("bug")

    lanes = lanes_for(deliver, failed=failures.append)
    lane = lanes.open(TopicPartition("events", 0))
    lane.enqueue([batch(0)])
    assert lane.task is not None
    await lane.task
    assert [str(f) for f in failures] == ["bug"]
    assert lane.queued == 1  # not done: its records stay uncommitted


# -- issue #16: credentials that exist but cannot be used -------------------------------


class FlakyCredentials:
    """A credential source whose lookups raise ``failures`` first, then find the token."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.lookups = 0
        self.found = CredentialChain.from_env(
            {"ANALYTICS_BEARER_TOKEN": "tok-1", "ANALYTICS_ACCOUNT_ID": "acct-1"}
        )

    def lookup(self, account_id: str) -> Credential | None:
        self.lookups += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.found.lookup(account_id)

    def default(self) -> None:
        return None


async def test_an_unreadable_credential_is_retried_until_it_reads_never_skipped() -> None:
    since = time.monotonic()
    failures: list[Exception] = [
        UnreadableCredentialError("account acct-1: secret file f could not be read", since=since)
        for _ in range(3)
    ]
    credentials = FlakyCredentials(failures)
    destination = FakeDestination()
    step, metrics, dead_letters = delivery(destination, credentials=credentials)
    lane = FakeLane()
    outcome = await step(batch(0, 1), lane)
    assert isinstance(outcome, Delivered)
    assert len(destination.sent) == 1
    assert destination.sent[0][1]["Authorization"] == "Bearer tok-1"
    assert dead_letters.produced == []
    assert (lane.marks[0], lane.marks[-1]) == (True, False)  # paused while it waited
    assert metrics.value("codex_sink_retries_total") >= 2


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (UnreadableCredentialError, "credentials_unreadable"),
        (InvalidCredentialError, "invalid_credentials"),
    ],
)
async def test_a_lasting_credential_problem_is_dead_lettered_with_its_reason(
    error: type[UnreadableCredentialError], reason: str
) -> None:
    since = time.monotonic()
    credentials = FlakyCredentials([error("account acct-1: secret file f", since=since)] * 10_000)
    destination = FakeDestination()
    step, _, dead_letters = delivery(
        destination,
        credentials=credentials,
        sink_settings=settings(ANALYTICS_CREDENTIAL_WAIT_S="0.05"),
    )
    assert await step(batch(0, 1), FakeLane()) == DeadLettered(reason, 2)
    assert destination.sent == []
    headers = dict(dead_letters.produced[0].headers)
    assert headers["error.reason"] == reason.encode()
    assert b"account acct-1: secret file f" in headers["error.detail"]
    # The outage is the account's, not the batch's: the next batch waits no longer.
    lookups = credentials.lookups
    started = time.monotonic()
    assert await step(batch(2), FakeLane()) == DeadLettered(reason, 1)
    assert time.monotonic() - started < 0.05
    assert credentials.lookups - lookups <= 2


async def test_an_unsendable_request_is_dead_lettered_not_retried() -> None:
    unsendable = UnsendableRequestError("the events request could not be written")
    step, _, dead_letters = delivery(FakeDestination([unsendable]))
    assert await step(batch(0), FakeLane()) == DeadLettered("unsendable_request", 1)
    assert dict(dead_letters.produced[0].headers)["error.reason"] == b"unsendable_request"


async def test_retry_lines_are_rate_limited_per_partition(caplog: pytest.LogCaptureFixture) -> None:
    destination = FakeDestination([RetryableDeliveryError("busy", status=503)] * 30)
    step, metrics, _ = delivery(destination)
    with caplog.at_level("WARNING", logger="codex_analytics.sink"):
        assert isinstance(await step(batch(0), FakeLane()), Delivered)
    assert metrics.value("codex_sink_retries_total") == 30
    assert len([r for r in caplog.records if "retry" in r.getMessage()]) == 1


async def test_gate_skips_are_logged_once_per_reason_and_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A skip is upstream's rule, but a sink whose tokens are missing must say so.
    step, _, _ = delivery(FakeDestination(), credentials=CredentialChain.from_env({}))
    with caplog.at_level("WARNING", logger="codex_analytics.sink"):
        for first in range(0, 10, 2):
            assert await step(batch(first, first + 1), FakeLane()) == GateSkipped(
                SkipReason.NO_TOKEN, 2
            )
    lines = [r.getMessage() for r in caplog.records if "auth gate" in r.getMessage()]
    assert len(lines) == 1
    assert "no_token" in lines[0]
