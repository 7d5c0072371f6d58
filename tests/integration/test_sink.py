"""The sink worker against a real broker and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable

import orjson
import pytest

from codex_analytics.contract import route_key
from codex_analytics.contract.facts import AuthRoute
from codex_analytics.devtools.receiver import Answer, Receiver
from sinks.batching import BODY_OVERHEAD
from sinks.worker import SinkWorker

from .sink_helpers import (
    SinkRun,
    event_json,
    event_records,
    eventually,
    token_for,
    with_route,
)
from .stream_helpers import collect, produce

pytestmark = pytest.mark.integration


@pytest.fixture
def sink_run(kafka_bootstrap: str, new_sink_run: Callable[[str], SinkRun]) -> SinkRun:
    return new_sink_run(kafka_bootstrap)


async def test_requests_carry_the_route_headers_and_the_exact_batch_bytes(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    records = event_records(400, accounts=3)
    accounts = sorted({r.route.account_id for r in records if r.route.account_id})
    assert len(accounts) == 3
    fedramp = {r.route.account_id for r in records if r.route.is_fedramp}
    assert len(fedramp) == 1  # the generator makes the last account a FedRAMP one
    for account in accounts:
        sink_run.add_account(account, fedramp=account in fedramp)
    await sink_run.create_topics()
    await sink_run.publish(records)

    async with sink_run.worker():
        events = await receiver.wait_for_events(len(records), within=30)
    assert len(events) == len(records)

    by_account: dict[str, list[bytes]] = defaultdict(list)
    for record in records:
        assert record.route.account_id is not None
        by_account[record.route.account_id].append(event_json(record))
    delivered: dict[str, list[bytes]] = defaultdict(list)
    for request in receiver.requests:
        assert request.status == 200
        assert request.method == "POST"
        assert request.path == "/backend-api/codex/analytics-events/events"
        account = request.headers["chatgpt-account-id"]
        assert request.headers["authorization"] == f"Bearer {token_for(account)}"
        assert request.headers["content-type"] == "application/json"
        assert len(request.headers["idempotency-key"]) == 32
        if account in fedramp:
            assert request.headers["x-openai-fedramp"] == "true"
        else:
            assert "x-openai-fedramp" not in request.headers
        # The body is exactly {"events":[...]} of the events, as orjson writes them.
        parts = [orjson.dumps(e) for e in request.events]
        assert request.body == b'{"events":[' + b",".join(parts) + b"]}"
        delivered[account].extend(parts)
    # Every account's events arrive once, in their topic order, and never mixed.
    assert delivered == by_account


async def _single_route_run(sink_run: SinkRun, records_count: int) -> list[bytes]:
    records = [r for r in event_records(400, accounts=1) if r.route.account_id][:records_count]
    assert len(records) == records_count
    sink_run.add_account(records[0].route.account_id or "")
    await sink_run.create_topics()
    await sink_run.publish(records)
    return [event_json(r) for r in records]


async def test_a_batch_closes_at_max_events(sink_run: SinkRun, receiver: Receiver) -> None:
    sink_run.env_overrides.update(
        ANALYTICS_BATCH_MAX_EVENTS="7", ANALYTICS_BATCH_MAX_WAIT_MS="60000"
    )
    sent = await _single_route_run(sink_run, 49)
    async with sink_run.worker() as worker:
        events = await receiver.wait_for_events(49, within=30)
        assert [len(r.events) for r in receiver.requests] == [7] * 7
        assert worker.metrics.value("codex_sink_batches_closed_total", reason="count") == 7
    assert [orjson.dumps(e) for e in events] == sent


async def test_a_batch_closes_before_the_event_that_would_pass_max_bytes(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    limit = 2500
    sink_run.env_overrides.update(
        ANALYTICS_BATCH_MAX_BYTES=str(limit), ANALYTICS_BATCH_MAX_WAIT_MS="2000"
    )
    sent = await _single_route_run(sink_run, 60)
    assert max(len(e) for e in sent) + BODY_OVERHEAD <= limit
    async with sink_run.worker():
        events = await receiver.wait_for_events(60, within=30)
    assert [orjson.dumps(e) for e in events] == sent
    requests = receiver.requests
    assert len(requests) > 3
    for request, following in itertools.pairwise(requests):
        assert len(request.body) <= limit
        # Closed by size: the next batch's first event would not have fitted.
        assert len(request.body) + 1 + len(orjson.dumps(following.events[0])) > limit


async def test_a_batch_closes_after_max_wait(sink_run: SinkRun, receiver: Receiver) -> None:
    sink_run.env_overrides.update(
        ANALYTICS_BATCH_MAX_WAIT_MS="400", ANALYTICS_BATCH_LATENESS_MS="100"
    )
    await sink_run.create_topics()
    async with sink_run.worker() as worker:
        assert await eventually(lambda: len(worker.lanes) == sink_run.partitions, within=20)
        produced_ms = time.time_ns() // 1_000_000
        sent = await _single_route_run(sink_run, 3)
        events = await receiver.wait_for_events(3, within=10)
    assert [orjson.dumps(e) for e in events] == sent
    assert len(receiver.requests) == 1
    waited = receiver.requests[0].wall_ms - produced_ms
    # Not before max_wait (measured from the record timestamps, which are >= produced_ms):
    # the partition is idle, so the wall clock closes it when its first event is that old
    # (the lateness lies inside the linger). The slack is for a loaded machine.
    assert 400 <= waited < 400 + 1000, waited


def _lag(worker: SinkWorker, unit: str) -> dict[int, float]:
    """``codex_sink_consumer_lag_{unit}`` per partition, as a scrape reads it."""
    return {
        int(sample.labels["partition"]): sample.value
        for family in worker.metrics.registry.collect()
        if family.name == f"codex_sink_consumer_lag_{unit}"
        for sample in family.samples
    }


async def test_503_with_retry_after_is_retried_no_sooner_than_asked_and_nothing_is_lost(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    sink_run.env_overrides.update(ANALYTICS_BATCH_MAX_EVENTS="20")
    unavailable = Answer(503, b"overloaded", {"Retry-After": "1"})
    receiver.fail_next(*[unavailable] * 3)
    sent = await _single_route_run(sink_run, 100)
    async with sink_run.worker() as worker:
        # While the endpoint refuses, the undelivered events age: lag in seconds grows
        # past the first Retry-After; once delivered and committed, both lags are 0.
        assert await eventually(
            lambda: max(_lag(worker, "seconds").values(), default=0) > 1, within=10
        )
        events = await receiver.wait_for_events(100, within=30)
        assert worker.metrics.value("codex_sink_retries_total") == 3
        assert await eventually(
            lambda: (
                set(_lag(worker, "records").values())
                == {0}
                == set(_lag(worker, "seconds").values())
            ),
            within=10,
        ), (_lag(worker, "records"), _lag(worker, "seconds"))
    assert [orjson.dumps(e) for e in events] == sent
    first_four = receiver.requests[:4]
    assert [r.status for r in first_four] == [503, 503, 503, 200]
    # The same batch each time, with the same key, and never before its Retry-After.
    assert len({(r.body, r.idempotency_key) for r in first_four}) == 1
    gaps = [b.at - a.at for a, b in itertools.pairwise(first_four)]
    assert all(gap >= 1.0 for gap in gaps), gaps
    assert all(gap < 1.0 + 0.1 + 0.5 for gap in gaps), gaps  # honoured, not much more


async def test_transport_errors_and_500s_are_retried_with_backoff(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    receiver.fail_next(Answer(500), Answer(502), Answer(429))
    sent = await _single_route_run(sink_run, 30)
    async with sink_run.worker() as worker:
        events = await receiver.wait_for_events(30, within=30)
        assert worker.metrics.value("codex_sink_delivery_attempts_total", result="5xx") == 2
        assert worker.metrics.value("codex_sink_delivery_attempts_total", result="4xx") == 1
    assert [orjson.dumps(e) for e in events] == sent


async def test_a_400_dead_letters_its_batch_with_status_and_body_and_the_rest_flows(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    sink_run.env_overrides.update(ANALYTICS_BATCH_MAX_EVENTS="10")
    sent = await _single_route_run(sink_run, 50)
    poison = sent[23]  # in the third batch
    receiver.fail_when(
        lambda body, _: Answer(400, b'{"error":"bad event"}') if poison in body else None
    )
    async with sink_run.worker() as worker:
        await receiver.wait_for_events(40, within=30)
        assert await eventually(
            lambda: worker.metrics.value("codex_sink_events_total", outcome="dead_lettered") == 10,
            within=10,
        )
    delivered = [orjson.dumps(e) for e in receiver.accepted_events()]
    assert delivered == sent[:20] + sent[30:]
    dead = await collect(sink_run.bootstrap, sink_run.dlq, want=10, within=10, settle=0.5)
    assert len(dead.records) == 10
    assert [orjson.dumps(r["event"]) for r in dead.records] == sent[20:30]
    for headers in dead.headers:
        assert headers["error.reason"] == b"http_400"
        assert headers["http.status"] == b"400"
        assert headers["http.body"] == b'{"error":"bad event"}'
        assert headers["error.stage"] == b"deliver"
        assert headers["source.topic"] == sink_run.events.encode()
        assert len(headers["batch.idempotency_key"]) == 32
    # Offsets are committed past the dead-lettered batch too.
    committed = await sink_run.committed()
    assert sum(o or 0 for o in committed.values()) == 50


async def test_unreadable_records_and_oversized_events_are_dead_lettered_not_sent(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    sink_run.env_overrides.update(ANALYTICS_BATCH_MAX_BYTES="1200")
    records = [r for r in event_records(300, accounts=1) if r.route.account_id]
    small = [r for r in records if len(event_json(r)) + BODY_OVERHEAD <= 1200][:20]
    big = next(r for r in records if len(event_json(r)) + BODY_OVERHEAD > 1200)
    sink_run.add_account(small[0].route.account_id or "")
    await sink_run.create_topics()
    key = route_key(small[0].route)
    await sink_run.publish([*small[:10], big])
    await produce(
        sink_run.bootstrap, sink_run.events, [b"{not json", b'{"route":{}}'], keys=[key, key]
    )
    await sink_run.publish(small[10:])
    async with sink_run.worker():
        events = await receiver.wait_for_events(20, within=30)
        dead = await collect(sink_run.bootstrap, sink_run.dlq, want=3, within=10, settle=0.5)
    assert [orjson.dumps(e) for e in events] == [event_json(r) for r in small]
    reasons = sorted(h["error.reason"] for h in dead.headers)
    assert reasons == [b"missing_key", b"not_json", b"too_large"]
    assert b"{not json" in dead.raw
    assert all(h["source.partition"] for h in dead.headers)


async def test_routes_that_fail_the_auth_gate_are_skipped_counted_and_committed(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    records = [r for r in event_records(200, accounts=1) if r.route.account_id][:40]
    account = records[0].route.account_id or ""
    sink_run.add_account(account)
    api_key = with_route(records[:10], AuthRoute(kind="api_key", account_id=account))
    unknown_account = with_route(
        records[10:20], AuthRoute(kind="chatgpt", account_id="acct-nobody")
    )
    anonymous = with_route(records[20:30], AuthRoute())
    good = records[30:]
    await sink_run.create_topics()
    await sink_run.publish(api_key + unknown_account + anonymous + good)
    async with sink_run.worker() as worker:
        events = await receiver.wait_for_events(10, within=30)
        assert await eventually(
            lambda: worker.metrics.value("codex_sink_events_total", outcome="skipped") == 30,
            within=10,
        )
        skips = {
            reason: worker.metrics.value("codex_sink_gate_skipped_events_total", reason=reason)
            for reason in ("not_chatgpt_login", "no_token", "no_auth")
        }
    assert skips == {"not_chatgpt_login": 10, "no_token": 10, "no_auth": 10}
    assert [orjson.dumps(e) for e in events] == [event_json(r) for r in good]
    assert len(receiver.requests) == 1
    committed = await sink_run.committed()
    assert sum(o or 0 for o in committed.values()) == 40


async def test_single_tenant_mode_sends_unrouted_events_for_the_configured_account(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    records = with_route(event_records(100, accounts=1)[:15], AuthRoute())
    sink_run.env_overrides.update(
        ANALYTICS_BEARER_TOKEN=token_for("solo"), ANALYTICS_ACCOUNT_ID="solo", ANALYTICS_FEDRAMP="1"
    )
    await sink_run.create_topics()
    await sink_run.publish(records)
    async with sink_run.worker():
        events = await receiver.wait_for_events(15, within=30)
    assert [orjson.dumps(e) for e in events] == [event_json(r) for r in records]
    for request in receiver.requests:
        assert request.headers["authorization"] == f"Bearer {token_for('solo')}"
        assert request.headers["chatgpt-account-id"] == "solo"
        assert request.headers["x-openai-fedramp"] == "true"


async def test_a_401_pauses_until_the_token_is_rotated_then_delivers_with_the_new_one(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    records = [r for r in event_records(200, accounts=1) if r.route.account_id][:30]
    secret = sink_run.secrets_dir / (records[0].route.account_id or "")
    secret.write_text("expired-token")
    receiver.fail_when(
        lambda _, headers: (
            None
            if headers.get("authorization") == "Bearer fresh-token"
            else Answer(401, b'{"error":"token expired"}')
        )
    )
    await sink_run.create_topics()
    await sink_run.publish(records)
    async with sink_run.worker() as worker:
        assert await eventually(
            lambda: worker.metrics.value("codex_sink_retries_total") >= 2, within=20
        )
        assert receiver.accepted() == []  # paused on the first batch, nothing skipped
        secret.write_text("fresh-token")  # rotated, as a mounted secret would be
        events = await receiver.wait_for_events(30, within=30)
    assert [orjson.dumps(e) for e in events] == [event_json(r) for r in records]
    refused = [r for r in receiver.requests if r.status == 401]
    assert len(refused) >= 2
    assert {r.headers["authorization"] for r in refused} == {"Bearer expired-token"}
    assert {r.headers["authorization"] for r in receiver.accepted()} == {"Bearer fresh-token"}
