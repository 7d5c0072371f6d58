"""The sink as its own process (``codex-analytics sink worker``): crash and restart,
graceful shutdown, capture mode, health, and where the token must never appear."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from codex_analytics.devtools.broker import free_port
from codex_analytics.devtools.receiver import Answer, Receiver

from .sink_helpers import TOKEN_PREFIX, SinkRun, event_json, event_records, eventually
from .stream_helpers import collect

pytestmark = pytest.mark.integration


@pytest.fixture
def sink_run(fresh_broker: str, new_sink_run: Callable[[str], SinkRun]) -> SinkRun:
    return new_sink_run(fresh_broker)


async def _prepare(sink_run: SinkRun, facts: int, accounts: int = 3) -> list[bytes]:
    records = [r for r in event_records(facts, accounts=accounts) if r.route.account_id]
    for account in {r.route.account_id for r in records}:
        sink_run.add_account(account or "")
    await sink_run.create_topics()
    await sink_run.publish(records)
    return [event_json(r) for r in records]


async def _assert_token_nowhere(sink_run: SinkRun, *files: Path) -> None:
    """The token must not be in the logs, the topics or any file the sink wrote."""
    for name in ("sink", "sink-2"):
        path = sink_run.tmp / f"{name}.log"
        if path.exists():
            assert TOKEN_PREFIX not in path.read_text(errors="replace")
    for path in files:
        if path.exists():
            assert TOKEN_PREFIX.encode() not in path.read_bytes()
    for topic in (sink_run.events, sink_run.dlq):
        records = await collect(sink_run.bootstrap, topic, want=10**9, within=3, settle=0)
        for raw, headers in zip(records.raw, records.headers, strict=True):
            assert TOKEN_PREFIX.encode() not in raw
            assert all(TOKEN_PREFIX.encode() not in v for v in headers.values())


async def test_kill_9_and_restart_delivers_everything_and_repeats_keep_their_key(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    sink_run.env_overrides.update(ANALYTICS_BATCH_MAX_EVENTS="10")
    sent = await _prepare(sink_run, 600)
    # A slow endpoint, so that batches are in flight (received, not yet answered) when
    # the sink dies: the server has them, the sink never learned it.
    receiver.fail_when(lambda body, headers: Answer(200, delay=0.3))
    with sink_run.process() as first:
        assert await eventually(lambda: len(receiver.requests) >= 8, within=60), sink_run.log_text()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    in_flight_at_kill = len(receiver.requests)
    receiver.fail_when(None)
    with sink_run.process("sink-2"):
        events = await receiver.wait_for_events(len(sent), within=90)
        await asyncio.sleep(1.0)  # anything more would be a duplicate: catch it

    # Every event arrived at least once...
    assert Counter(orjson.dumps(e) for e in receiver.accepted_events()) >= Counter(sent)
    # ...repeats happened (the in-flight batches were sent again)...
    keys = Counter(r.idempotency_key for r in receiver.requests)
    assert any(n > 1 for n in keys.values()), (in_flight_at_kill, keys.most_common(3))
    # ...a key always names the same body...
    bodies: dict[str | None, bytes] = {}
    for request in receiver.requests:
        assert bodies.setdefault(request.idempotency_key, request.body) == request.body
    # ...and folding repeats by key leaves every event exactly once.
    assert sorted(orjson.dumps(e) for e in events) == sorted(sent)
    await _assert_token_nowhere(sink_run)


async def test_sigterm_flushes_open_batches_commits_and_exits_in_time(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    sink_run.env_overrides.update(
        ANALYTICS_BATCH_MAX_EVENTS="10",
        ANALYTICS_BATCH_MAX_WAIT_MS="600000",  # only a flush can close a partial batch
        ANALYTICS_SHUTDOWN_TIMEOUT_S="5",
    )
    sent = await _prepare(sink_run, 120, accounts=1)
    full_batches = len(sent) // 10 * 10
    assert full_batches < len(sent)
    with sink_run.process() as proc:
        await receiver.wait_for_events(full_batches, within=60)
        await asyncio.sleep(0.5)
        assert len(receiver.accepted_events()) == full_batches  # the rest is held open
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        await asyncio.to_thread(proc.wait, 15)
        took = time.monotonic() - started
        assert proc.returncode == 0, sink_run.log_text()
    assert took < 5 + 3, took
    assert sorted(orjson.dumps(e) for e in receiver.accepted_events()) == sorted(sent)
    committed = await sink_run.committed()
    assert sum(o or 0 for o in committed.values()) == len(sent)


async def test_capture_mode_writes_exact_bodies_never_posts_and_survives_a_missing_dir(
    sink_run: SinkRun, receiver: Receiver, tmp_path: Path
) -> None:
    capture_dir = tmp_path / "not-yet"
    capture = capture_dir / "events.jsonl"
    port = free_port("127.0.0.1")
    sink_run.env_overrides.update(
        CODEX_ANALYTICS_EVENTS_CAPTURE_FILE=str(capture),
        ANALYTICS_SINK_HEALTH_ADDR=f"127.0.0.1:{port}",
        ANALYTICS_BATCH_MAX_EVENTS="25",
        ANALYTICS_RETRY_MAX_MS="300",
    )
    sent = await _prepare(sink_run, 300)

    async def health(path: str = "/readyz") -> tuple[int, dict[str, object]]:
        async with httpx.AsyncClient() as client:
            try:
                response = await client.get(f"http://127.0.0.1:{port}{path}")
            except httpx.TransportError:
                return 0, {}
            return response.status_code, response.json()

    async def capture_errors() -> float:
        async with httpx.AsyncClient() as client:
            try:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.TransportError:
                return 0
        for line in text.splitlines():
            if line.startswith('codex_sink_delivery_attempts_total{result="capture_error"}'):
                return float(line.split()[-1])
        return 0

    with sink_run.process():
        # Several appends fail (and are retried) while the directory is missing...
        for _ in range(300):
            if await capture_errors() >= 3:
                break
            await asyncio.sleep(0.1)
        assert await capture_errors() >= 3, sink_run.log_text()
        status, body = await health()
        assert status == 503, body  # ...not ready meanwhile
        assert body["capture_failing"] is True
        assert (await health("/livez"))[0] == 200  # and live: a restart cannot mend a disk
        assert not capture.exists()
        capture_dir.mkdir()
        lines: list[bytes] = []

        def all_captured() -> bool:
            nonlocal lines
            lines = capture.read_bytes().splitlines() if capture.exists() else []
            return sum(len(orjson.loads(line)["events"]) for line in lines) >= len(sent)

        assert await eventually(all_captured, within=60), sink_run.log_text()
        status, body = await health()
        assert status == 200, body
        assert body["capture_failing"] is False
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'codex_sink_events_total{outcome="captured"}' in metrics
        assert TOKEN_PREFIX not in metrics

    assert receiver.requests == []  # HTTP is never used in capture mode
    assert stat.S_IMODE(os.stat(capture).st_mode) == 0o600
    captured: list[bytes] = []
    for line in lines:
        events = [orjson.dumps(e) for e in orjson.loads(line)["events"]]
        assert line == b'{"events":[' + b",".join(events) + b"]}"  # the exact request body
        captured.extend(events)
    assert sorted(captured) == sorted(sent)  # nothing lost while the directory was missing
    assert "failed to capture analytics events" in sink_run.log_text()
    await _assert_token_nowhere(sink_run, capture)
