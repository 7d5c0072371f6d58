"""A 20 s endpoint outage (503 and 429, each with ``Retry-After``) while events keep
arriving: nothing lost, no batch sent again before its ``Retry-After``, and the sink's
memory stays bounded (it stops fetching instead of buffering the backlog)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from pathlib import Path

import pytest

from codex_analytics.devtools.receiver import Answer, ReceivedRequest, Receiver
from tests.integration.sink_helpers import event_json, event_records, eventually

from .system import (
    Pipeline,
    assert_one_body_per_key,
    sampling_rss,
    stop_all,
    wait_delivered,
)

#: From the sink's first upload on: time for ~10 rounds of retries, and ~15 s of RSS
#: samples while the whole backlog sits on the broker (an unbounded sink fetches it all
#: in a few seconds).
OUTAGE_S = 20.0
#: The outage's answers, alternating: status -> its ``Retry-After`` (seconds).
RETRY_AFTER = {503: 2, 429: 3}
#: Clocks differ by a little: the receiver stamps arrival, the sink schedules the retry.
CLOCK_SLACK_S = 0.05
#: RSS may grow this much over its first sample in the outage (MiB); holding the whole
#: backlog would take several times more.
RSS_GROWTH_LIMIT_MB = 30.0


async def test_a_20_s_outage_with_retry_after_loses_nothing_and_bounds_memory(
    fresh_broker: str, tmp_path: Path, receiver: Receiver
) -> None:
    pipeline = Pipeline.on(fresh_broker, tmp_path, receiver, partitions=4)
    sink = pipeline.sink
    sink.env_overrides.update(
        ANALYTICS_BATCH_MAX_EVENTS="200",
        ANALYTICS_SINK_MAX_BUFFERED="400",  # per partition: then consumption pauses
    )
    # A backlog of ~30k events (~20 MB of JSON): far more than the sink may hold.
    records = [r for r in event_records(80_000, accounts=3, seed=31) if r.route.account_id]
    early, late = records[:2_000], records[2_000:]
    expected = [event_json(r) for r in records]
    await sink.create_topics()
    await sink.publish(early)

    # The outage starts with the sink's first upload, not before its start-up: all of it
    # is seen by a running sink whatever the start-up took on a loaded machine.
    outage_ends = float("inf")
    answered = 0

    def outage(body: bytes, headers: dict[str, str]) -> Answer | None:
        nonlocal answered, outage_ends
        if answered == 0:
            outage_ends = time.monotonic() + OUTAGE_S
        if time.monotonic() >= outage_ends:
            return None
        answered += 1
        status = 503 if answered % 2 else 429
        return Answer(status, b'{"error":"down"}', {"Retry-After": str(RETRY_AFTER[status])})

    receiver.fail_when(outage)
    with sink.process() as proc:
        await sink.publish(late)  # the backlog grows during the outage
        # Sampled once the sink is up and failing (imports, clients and batches made).
        started = await eventually(lambda: bool(receiver.requests), within=60)
        assert started, f"no upload within 60 s: {sink.log_text()[-3000:]}"
        await asyncio.sleep(2.0)
        async with sampling_rss(proc.pid) as rss:
            while time.monotonic() < outage_ends:
                assert proc.poll() is None, sink.log_text()
                await asyncio.sleep(0.5)
        async with sampling_rss(proc.pid) as rss_draining:
            verdict = await wait_delivered(receiver, expected, within=60)
        exits = await stop_all(proc)
    if verdict.missing or verdict.unexpected:
        pytest.fail(f"{verdict.summary()}; logs in {pipeline.keep_logs('endpoint-outage')}")
    assert exits == {proc.pid: 0}, sink.log_text()
    assert_one_body_per_key(receiver)

    failed = [r for r in receiver.requests if r.status in RETRY_AFTER]
    assert len(failed) >= 10, "the outage never reached the sink"
    early_retries = _retries_before_retry_after(receiver.requests)
    assert not early_retries, early_retries[:5]

    growth = max(rss) - rss[0]
    print(
        f"endpoint outage: {verdict.summary()}; {len(failed)} answered 503/429; "
        f"sink RSS {rss[0]:.0f} MiB early in the outage, peak {max(rss):.0f}, "
        f"peak {max(rss_draining):.0f} while delivering the {len(expected)} events after it"
    )
    assert growth < RSS_GROWTH_LIMIT_MB, f"RSS grew {growth:.0f} MiB during the outage"


def _retries_before_retry_after(requests: list[ReceivedRequest]) -> list[str]:
    """Each batch (one ``Idempotency-Key``) sent again before the ``Retry-After`` of its
    previous answer had passed."""
    by_key: dict[str | None, list[ReceivedRequest]] = defaultdict(list)
    for request in requests:
        by_key[request.idempotency_key].append(request)
    early = []
    for key, attempts in by_key.items():
        for before, after in itertools.pairwise(attempts):
            wait = RETRY_AFTER.get(before.status)
            if wait is not None and after.at - before.at < wait - CLOCK_SLACK_S:
                early.append(f"{key}: {after.at - before.at:.2f} s after a {before.status}")
    return early
