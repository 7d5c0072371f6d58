"""The sink's lifecycle under faults (issue #16, items 6, 8, 10, 13), through the real
``codex-analytics sink worker`` process, a real broker and the recording receiver.

- a rebalance while batches are in flight kills no worker and loses nothing;
- a capture append that fails half-way (file size limit) leaves no torn line;
- SIGTERM ends the sink in time while the broker is gone; a second SIGTERM at once;
- one malformed events record is dead-lettered alone; its batchmates are delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from codex_analytics.contract import encode_event_record, route_key
from codex_analytics.contract.records import EventRecord
from codex_analytics.devtools.broker import EmbeddedBroker
from codex_analytics.devtools.receiver import Answer, Receiver
from tests.integration.sink_helpers import SinkRun, event_json, event_records, eventually
from tests.integration.stream_helpers import collect, produce

pytestmark = pytest.mark.chaos


@pytest.fixture
def sink_run(fresh_broker: str, new_sink_run: Callable[[str], SinkRun]) -> SinkRun:
    return new_sink_run(fresh_broker)


def _records(facts: int, *, accounts: int = 3, seed: int = 5) -> list[EventRecord]:
    return [r for r in event_records(facts, accounts=accounts, seed=seed) if r.route.account_id]


async def _prepare(sink_run: SinkRun, records: list[EventRecord]) -> list[bytes]:
    for account in {r.route.account_id for r in records}:
        sink_run.add_account(account or "")
    await sink_run.create_topics()
    await sink_run.publish(records)
    return [event_json(r) for r in records]


def _captured(path: Path) -> list[bytes]:
    """Every event in the capture file; fails on any line that is not a whole body."""
    events: list[bytes] = []
    if not path.exists():
        return events
    for number, line in enumerate(path.read_bytes().splitlines(keepends=True), 1):
        assert line.endswith(b"\n"), f"line {number} is torn: {line[-80:]!r}"
        try:
            body = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise AssertionError(f"line {number} is not JSON: {line[:80]!r}...") from None
        events.extend(orjson.dumps(e) for e in body["events"])
    return events


def _readable(path: Path) -> list[bytes]:
    """The events of the lines that are whole bodies (a test's wait, not its check)."""
    events: list[bytes] = []
    for line in path.read_bytes().splitlines() if path.exists() else []:
        try:
            events.extend(orjson.dumps(e) for e in orjson.loads(line)["events"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return events


# -- 6: rebalances while batches are in flight ---------------------------------------------


async def test_rebalance_with_batches_in_flight_kills_no_worker_and_loses_nothing(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    """Two rebalances (a worker joins, then the first leaves) while batches are in
    flight. The exact race (a hand-over completing between two chunks of a fetch being
    decoded) is rare here; tests/unit/test_sink_lifecycle.py forces it."""
    sink_run.env_overrides.update(ANALYTICS_BATCH_MAX_EVENTS="20")
    sent = await _prepare(sink_run, _records(700, accounts=8))
    # A slow endpoint: batches are in flight, and fetched records wait in the lanes,
    # whenever the group rebalances.
    receiver.fail_when(lambda body, headers: Answer(200, delay=0.05))
    with sink_run.process("sink") as first:
        assert await eventually(lambda: len(receiver.requests) >= 5, within=60), sink_run.log_text()
        with sink_run.process("sink-2") as second:
            await asyncio.sleep(4)  # both take part in a rebalance...
            assert first.poll() is None, sink_run.log_text("sink")
            first.send_signal(signal.SIGTERM)  # ...then the first leaves: another one
            await asyncio.to_thread(_wait_quietly, first, 20)
            assert first.returncode == 0, sink_run.log_text("sink")
            await receiver.wait_for_events(len(sent), within=60)
            assert second.poll() is None, sink_run.log_text("sink-2")
            # The survivor commits everything (every commit after the rebalances works).
            total = 0
            for _ in range(100):
                total = sum(o or 0 for o in (await sink_run.committed()).values())
                if total == len(sent):
                    break
                await asyncio.sleep(0.2)
            assert total == len(sent), sink_run.log_text("sink-2")
    assert Counter(orjson.dumps(e) for e in receiver.accepted_events()) >= Counter(sent)
    for name in ("sink", "sink-2"):
        log = sink_run.log_text(name)
        assert "Traceback" not in log, log
        assert "commit failed" not in log, log


# -- 8: a capture append that fails half-way ------------------------------------------------


async def test_capture_append_failing_half_way_leaves_only_whole_lines(
    sink_run: SinkRun, receiver: Receiver, tmp_path: Path
) -> None:
    capture = tmp_path / "events.jsonl"
    sink_run.env_overrides.update(
        CODEX_ANALYTICS_EVENTS_CAPTURE_FILE=str(capture),
        ANALYTICS_BATCH_MAX_EVENTS="10",
        ANALYTICS_RETRY_MAX_MS="200",
        ANALYTICS_LOG_LEVEL="WARNING",  # the log file is under the same size limit
    )
    sent = await _prepare(sink_run, _records(200))
    limit = 20_000  # a few lines fit; the line that crosses it is written in part

    def file_size_limit() -> None:
        # Past the limit a write fails with EFBIG (no SIGXFSZ), after a short write.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    with sink_run.process(preexec_fn=file_size_limit) as proc:
        failed = await eventually(
            lambda: "failed to capture" in sink_run.log_text(), within=60, step=0.1
        )
        assert failed, sink_run.log_text()
        await asyncio.sleep(0.5)  # a few retries while the disk is "full"
        assert capture.stat().st_size <= limit
        # The disk has room again: the retries go through.
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        # (Waits while any line is torn: the end state decides.)
        await eventually(lambda: set(_readable(capture)) >= set(sent), within=20, step=0.2)
        assert proc.poll() is None
    assert Counter(_captured(capture)) >= Counter(sent)  # whole lines, every event


# -- 10: shutdown while the broker is unreachable -------------------------------------------


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker this test may stop."""
    broker = EmbeddedBroker(log_path=str(tmp_path / "own-broker.log"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _client_errors(log: str) -> int:
    """Lines the Kafka client logged at warning level or above."""
    return sum(
        1
        for line in log.splitlines()
        if '"logger":"aiokafka' in line and '"level":"info"' not in line
    )


async def test_sigterm_ends_the_sink_in_time_while_the_broker_is_gone(
    own_broker: EmbeddedBroker, new_sink_run: Callable[[str], SinkRun], receiver: Receiver
) -> None:
    sink_run = new_sink_run(own_broker.bootstrap_servers)
    sink_run.env_overrides.update(
        ANALYTICS_SHUTDOWN_TIMEOUT_S="2",
        ANALYTICS_BATCH_MAX_EVENTS="10",
        ANALYTICS_BATCH_MAX_WAIT_MS="600000",  # only the shutdown's flush closes the rest
    )
    sent = await _prepare(sink_run, _records(40, accounts=1))
    whole = len(sent) // 10 * 10
    assert whole < len(sent)
    with sink_run.process() as proc:
        await receiver.wait_for_events(whole, within=60)
        await asyncio.sleep(0.5)  # committed; the rest is held open ...
        assert len(receiver.accepted_events()) == whole
        # ... when the broker goes: the flushed batch is delivered, its commit cannot be.
        own_broker.stop(timeout=5)
        before = len(sink_run.log_text().splitlines())
        await asyncio.sleep(3)  # the client fails over and over meanwhile
        outage = "\n".join(sink_run.log_text().splitlines()[before:])
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        await asyncio.to_thread(_wait_quietly, proc, 15)
        took = time.monotonic() - started
        assert proc.poll() is not None, f"still running after SIGTERM\n{sink_run.log_text()}"
    assert took < 2 + 5, took
    assert proc.returncode == 0, sink_run.log_text()  # a bounded shutdown, not a crash
    assert "Traceback" not in sink_run.log_text()
    assert sorted(orjson.dumps(e) for e in receiver.accepted_events()) == sorted(sent)
    # Repeated client errors are rate-limited (they were ~40 a second).
    assert _client_errors(outage) <= 10, outage[-3000:]


async def test_a_second_sigterm_ends_the_sink_at_once(
    sink_run: SinkRun, receiver: Receiver
) -> None:
    sink_run.env_overrides.update(ANALYTICS_SHUTDOWN_TIMEOUT_S="60", ANALYTICS_HTTP_TIMEOUT_S="1")
    await _prepare(sink_run, _records(30, accounts=1))
    receiver.fail_when(lambda body, headers: Answer(503))  # the shutdown waits for its batches
    with sink_run.process() as proc:
        assert await eventually(lambda: "retry" in sink_run.log_text(), within=60)
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        assert proc.poll() is None  # the first SIGTERM waits (up to 60 s) for the batches
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        await asyncio.to_thread(_wait_quietly, proc, 10)
        took = time.monotonic() - started
        assert proc.poll() is not None, f"still running after two SIGTERMs\n{sink_run.log_text()}"
    assert took < 1.5, took


def _wait_quietly(proc: subprocess.Popen[bytes], timeout: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)


# -- 13: one malformed record among valid ones ----------------------------------------------


def _malformed(record: EventRecord) -> bytes:
    """``record`` in the stream's own layout, its event no longer JSON: the fast path
    slices such an event out without parsing it."""
    raw = encode_event_record(record)
    at = raw.index(b',"event":') + len(b',"event":')
    event = raw[at:-1]
    type_end = event.index(b'"', len(b'{"event_type":"'))
    return raw[:at] + event[: type_end + 1] + b",oops}" + b"}"


async def test_one_malformed_record_is_dead_lettered_alone_and_its_batchmates_arrive(
    fresh_broker: str, new_sink_run: Callable[[str], SinkRun], receiver: Receiver, tmp_path: Path
) -> None:
    records = _records(40, accounts=1)
    bad = _malformed(records[len(records) // 2])
    good = [r for i, r in enumerate(records) if i != len(records) // 2]
    values = [encode_event_record(r) for r in good]
    values.insert(len(values) // 2, bad)
    keys: list[bytes | None] = [route_key(records[0].route)] * len(values)
    sent = [event_json(r) for r in good]

    http = new_sink_run(fresh_broker)
    capture_file = tmp_path / "capture.jsonl"
    capture = new_sink_run(fresh_broker)
    capture.env_overrides.update(CODEX_ANALYTICS_EVENTS_CAPTURE_FILE=str(capture_file))
    for run in (http, capture):
        run.env_overrides.update(ANALYTICS_BATCH_MAX_EVENTS="500")
        run.add_account(records[0].route.account_id or "")
        await run.create_topics()
        await produce(fresh_broker, run.events, values, keys=keys)

    with http.process("http"), capture.process("capture"):
        await receiver.wait_for_events(len(sent), within=60)
        assert await eventually(lambda: len(_captured(capture_file)) >= len(sent), within=60), (
            capture.log_text("capture")
        )
        dead = [await collect(fresh_broker, run.dlq, want=1, within=20) for run in (http, capture)]
    assert sorted(orjson.dumps(e) for e in receiver.accepted_events()) == sorted(sent)
    assert sorted(_captured(capture_file)) == sorted(sent)
    for letters in dead:
        assert letters.raw == [bad]
        assert letters.headers[0]["error.reason"] == b"not_json"
