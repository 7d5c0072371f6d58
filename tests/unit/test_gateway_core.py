"""The gateway's pure pieces: what a body costs before parsing, bounded rejections,
per-record publish outcomes, the answers, admission and settings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
import pytest

from codex_analytics.runtime.errors import ConfigError
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from producers.gateway.admission import Admission
from producers.gateway.answers import (
    ingest_answer,
    line_ranges,
    settle,
    unavailable_answer,
)
from producers.gateway.settings import GatewaySettings
from producers.publishing.ingest import (
    JSON_VALUES_PER_LINE,
    IngestBatch,
    LineResult,
    TooManyElements,
    body_cost,
    body_units,
    parse_ingest_body,
)
from producers.publishing.records import Record, fact_record_groups, fact_records
from producers.publishing.transport import (
    PermanentPublishError,
    PublishError,
    RecordTooLargePublishError,
    RetryablePublishError,
    publish_each,
)


def good_lines(count: int) -> list[bytes]:
    config = GeneratorConfig(instances=2, seed=3, duplicate_rate=0)
    return [orjson.dumps(f) for f in SessionGenerator(config).facts(count)]


def test_body_cost_counts_lines_or_json_values_without_parsing() -> None:
    assert (body_cost(b"0\n" * 1000).unit, body_cost(b"0\n" * 1000).count) == ("lines", 1000)
    assert body_cost(b"a\nb").count == 2
    assert body_cost(b"").count == 1
    document = body_cost(b"[0,0,0]", "application/json; charset=utf-8")
    assert (document.unit, document.count) == ("values", 4)
    assert body_cost(b"[0,0,0]", "application/x-ndjson").unit == "lines"
    assert body_cost(b"0\n" * 11).over(10)
    assert not body_cost(b"0\n" * 10).over(10)
    assert not body_cost(b"[" + b"0," * 600 + b"0]", "application/json").over(10)
    many = b"[" + b"0," * (10 * JSON_VALUES_PER_LINE) + b"0]"
    assert body_cost(many, "application/json").over(10)


def test_body_units_number_lines_as_split_did() -> None:
    for body in (b"", b"a", b"a\n", b"a\n\nb\n", b"\n\n"):
        assert [(n, raw) for n, raw, _ in body_units(body)] == list(
            enumerate(body.split(b"\n"), start=1)
        )
    lines = good_lines(3)
    array = b"[" + b",".join(lines) + b"]"
    assert parse_ingest_body(array, "application/json").accepted == 3
    assert parse_ingest_body(b"\n".join(lines), "application/json").accepted == 3


def test_a_document_with_too_many_elements_is_refused_before_validation() -> None:
    units = body_units(b"[" + b"{}," * 10 + b"{}]", "application/json", max_elements=10)
    with pytest.raises(TooManyElements, match="11 array elements exceeds the limit of 10"):
        next(units)
    assert len(list(body_units(b"[{},{}]", "application/json", max_elements=2))) == 2


def test_a_batch_lists_the_first_rejections_and_counts_them_all() -> None:
    batch = parse_ingest_body(b"0\n" * 5000)
    assert batch.rejected == 5000
    assert batch.reasons == {"wrong_type": 5000}
    assert [r.line for r in batch.rejections()] == list(range(1, 101))
    everything = IngestBatch(keep_rejections=None)
    for line in range(3, 0, -1):
        everything.reject(LineResult(line, False, "not_json"))
    assert [r.line for r in everything.rejections()] == [1, 2, 3]


def test_record_groups_say_which_facts_each_record_carries() -> None:
    facts = [("a", b"{1}"), ("a", b"{2}"), ("b", b"{3}"), ("a", b"{4}")]
    assert fact_record_groups(facts) == [((b"a", b"{1}"), [0]), ((b"a", b"{2}"), [1]),
                                         ((b"b", b"{3}"), [2]), ((b"a", b"{4}"), [3])]  # fmt: skip
    packed = fact_record_groups(facts, max_facts_per_record=2)
    assert [indices for _, indices in packed] == [[0, 1], [3], [2]]
    assert [record for record, _ in packed] == fact_records(facts, max_facts_per_record=2)


class PerRecordTransport:
    """Refuses the records whose value is in ``refused``; fails the first ``flaky``
    calls for the records in ``slow`` (retryable); hangs on ``b"hang"``."""

    def __init__(
        self, refused: set[bytes], slow: frozenset[bytes] = frozenset(), flaky: int = 0
    ) -> None:
        self.refused, self.slow, self.flaky = refused, slow, flaky
        self.sent: list[list[bytes]] = []

    async def start(self) -> None:
        return None

    async def send(self, records: Sequence[Record]) -> None:
        values = [value for _, value in records]
        self.sent.append(values)
        if b"hang" in values:
            await asyncio.sleep(3600)
        flaky, self.flaky = self.flaky > 0, self.flaky - 1
        outcomes: list[PublishError | None] = []
        for value in values:
            if value in self.refused:
                outcomes.append(RecordTooLargePublishError("MessageSizeTooLargeError"))
            elif flaky and value in self.slow:
                outcomes.append(RetryablePublishError("RequestTimedOutError"))
            else:
                outcomes.append(None)
        failures = [o for o in outcomes if o is not None]
        if failures:
            error = type(failures[0])("some failed")
            error.per_record = tuple(outcomes)
            raise error

    async def probe(self) -> bool:
        return True

    async def close(self) -> None:
        return None


async def test_publish_each_retries_only_what_was_not_acknowledged() -> None:
    transport = PerRecordTransport(refused={b"big"}, slow=frozenset({b"2"}), flaky=2)
    records = [(b"k", v) for v in (b"1", b"big", b"2", b"3")]
    outcomes = await publish_each(transport, records, within=5)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], RecordTooLargePublishError)
    assert outcomes[2:] == [None, None]
    assert transport.sent == [[b"1", b"big", b"2", b"3"], [b"2"], [b"2"]]


async def test_publish_each_ends_a_hanging_send_at_its_deadline() -> None:
    transport = PerRecordTransport(refused=set())
    outcomes = await publish_each(transport, [(b"k", b"hang"), (b"k", b"x")], within=0.2)
    assert all(isinstance(o, RetryablePublishError) for o in outcomes)


async def test_publish_each_without_per_record_outcomes_fails_the_whole_call() -> None:
    class Refusing(PerRecordTransport):
        async def send(self, records: Sequence[Record]) -> None:
            raise PermanentPublishError("InvalidTopicError")

    outcomes = await publish_each(Refusing(set()), [(b"k", b"1"), (b"k", b"2")], within=1)
    assert all(isinstance(o, PermanentPublishError) for o in outcomes)


def test_answers_name_refused_lines_and_what_to_resend() -> None:
    batch = IngestBatch()
    for line in (1, 2, 4, 5, 6):
        batch.accept(line, "i", b"{}")
    batch.reject(LineResult(3, False, "not_json", "", "bad"))
    groups = [[0], [1], [2], [3], [4]]
    refused = RecordTooLargePublishError("MessageSizeTooLargeError: 2 MB")
    late = RetryablePublishError("timeout")
    outcome = settle(batch, groups, [None, refused, None, late, late])
    assert (outcome.published, outcome.refused, outcome.unacknowledged) == (
        2,
        ["record_too_large"],
        [5, 6],
    )
    doc = unavailable_answer(batch, outcome)
    assert (doc["accepted"], doc["rejected"], doc["resend"]) == (2, 2, [[5, 6]])
    assert [(r["line"], r["reason"]) for r in doc["results"]] == [
        (2, "record_too_large"),
        (3, "not_json"),
    ]
    assert line_ranges([1, 2, 3, 7, 9, 10]) == [[1, 3], [7, 7], [9, 10]]


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        ([None, None], 200),
        ([None, RecordTooLargePublishError("x")], 207),
        ([RecordTooLargePublishError("x")] * 2, 413),
        ([RecordTooLargePublishError("x"), PermanentPublishError("InvalidTopicError")], 422),
    ],
)
def test_a_permanent_refusal_is_a_4xx_never_a_retry(
    outcomes: list[PublishError | None], status: int
) -> None:
    batch = IngestBatch()
    batch.accept(1, "i", b"{}")
    batch.accept(2, "i", b"{}")
    answer_status, doc = ingest_answer(batch, settle(batch, [[0], [1]], outcomes))
    assert answer_status == status
    assert doc["unlisted_rejections"] == 0


def test_an_answer_lists_a_bounded_number_of_rejections() -> None:
    batch = parse_ingest_body(b"0\n" * 10_000)
    status, doc = ingest_answer(batch, settle(batch, [], []))
    assert status == 400
    assert (len(doc["results"]), doc["unlisted_rejections"]) == (100, 9_900)
    assert len(orjson.dumps(doc)) < 20_000


def test_admission_bounds_requests_and_bytes() -> None:
    admission = Admission(max_requests=2, max_bytes=100)
    assert admission.admit(60)
    assert not admission.admit(50)  # bytes
    assert admission.admit(40)
    assert not admission.admit(0)  # requests
    admission.release(60)
    assert admission.admit(10)


def test_in_flight_bytes_must_hold_one_full_body() -> None:
    with pytest.raises(ConfigError, match="ANALYTICS_GATEWAY_MAX_INFLIGHT_BYTES"):
        GatewaySettings(max_body_bytes=2048, max_inflight_bytes=1024)
    env = {"ANALYTICS_GATEWAY_MAX_LINES": "50", "ANALYTICS_GATEWAY_SHUTDOWN_TIMEOUT_S": "3"}
    settings = GatewaySettings.from_env(env)
    assert (settings.max_lines, settings.shutdown_timeout_s) == (50, 3.0)
