"""The receiver command: checks uploads like the real endpoint, stores first-seen
batches, injects failures, serves what it stored; and a sink worker delivering to it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from codex_analytics.contract import encode_event
from codex_analytics.devtools.broker import free_port
from codex_analytics.devtools.receiver_checks import Accepted, Refusal, check_request
from streams.reducer.offline import OfflineReducer
from tests.factories import Instance

AUTH = {
    "Authorization": "Bearer tok",
    "chatgpt-account-id": "acct-1",
    "Content-Type": "application/json",
}


def some_events() -> list[bytes]:
    builder = Instance("i")
    reducer = OfflineReducer()
    facts = [builder.initialize(7), builder.thread_response(7, "thread-1")]
    from codex_analytics.contract import fact_from_json

    return [encode_event(e) for f in facts for e in reducer.apply(fact_from_json(f)).events]


def body(events: list[bytes]) -> bytes:
    return b'{"events":[' + b",".join(events) + b"]}"


def test_check_request_refusals() -> None:
    events = some_events()
    ok = check_request(
        "POST",
        "/backend-api/codex/analytics-events/events",
        {k.lower(): v for k, v in AUTH.items()},
        body(events),
    )
    assert isinstance(ok, Accepted)
    assert len(ok.events) == len(events)
    lower = {k.lower(): v for k, v in AUTH.items()}
    cases = [
        (("GET", "/x", lower, b""), 404),
        (("POST", "/codex/analytics-events/events", {}, body(events)), 401),
        (
            (
                "POST",
                "/codex/analytics-events/events",
                dict(lower, **{"content-type": "text/plain"}),
                body(events),
            ),
            415,
        ),
        (("POST", "/codex/analytics-events/events", lower, b"{"), 400),
        (("POST", "/codex/analytics-events/events", lower, b'{"events":[]}'), 400),
        (
            (
                "POST",
                "/codex/analytics-events/events",
                lower,
                b'{"events":[{"event_type":"nope"}]}',
            ),
            400,
        ),
    ]
    for args, status in cases:
        refusal = check_request(*args)
        assert isinstance(refusal, Refusal), args
        assert refusal.status == status, (args, refusal)
    bad = orjson.loads(events[0])
    del bad["event_params"]
    refusal = check_request(
        "POST", "/codex/analytics-events/events", lower, body([orjson.dumps(bad)])
    )
    assert isinstance(refusal, Refusal)
    assert "events[0]" in refusal.detail


@pytest.fixture
def receiver_process(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port("127.0.0.1")
    store = tmp_path / "store.jsonl"
    command = [
        sys.executable,
        "-m",
        "codex_analytics.cli.main",
        "receiver",
        "--addr",
        f"127.0.0.1:{port}",
        "--store",
        str(store),
        "--fail-first",
        "2",
        "--retry-after",
        "1",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{base}/healthz")
            break
        except httpx.TransportError:
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.1)
    yield base, store
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_receiver_command(receiver_process: tuple[str, Path]) -> None:
    base, store = receiver_process
    url = f"{base}/backend-api/codex/analytics-events/events"
    events = some_events()
    headers = dict(AUTH, **{"Idempotency-Key": "k1"})
    first = [httpx.post(url, content=body(events), headers=headers) for _ in range(2)]
    assert [r.status_code for r in first] == [503, 503]
    assert first[0].headers["Retry-After"] == "1"
    assert httpx.post(url, content=body(events), headers=headers).status_code == 200
    assert httpx.post(url, content=body(events), headers=headers).status_code == 200  # a repeat
    assert httpx.post(url, content=body(events), headers=AUTH).status_code == 200  # no key
    assert (
        httpx.post(
            url, content=body(events), headers={"Content-Type": "application/json"}
        ).status_code
        == 401
    )
    assert (
        httpx.post(url, content=b'{"events":[{"event_type":"x"}]}', headers=AUTH).status_code == 400
    )
    stored = [orjson.loads(line) for line in store.read_bytes().splitlines()]
    assert len(stored) == 2  # the repeat of k1 is not stored again
    assert stored[0]["idempotency_key"] == "k1"
    assert stored[0]["account_id"] == "acct-1"
    assert stored[0]["events"] == [orjson.loads(e) for e in events]
    # 2026-06 thread events: the 2026-08 model needs a session id they do not have.
    assert stored[0]["contracts"] == ["2026-06"] * len(events)
    served = httpx.get(f"{base}/received")
    assert served.content == store.read_bytes()
    assert httpx.get(f"{base}/healthz").json()["stored_batches"] == 2
    metrics = httpx.get(f"{base}/metrics").text
    assert "codex_receiver_stored_batches_total 2.0" in metrics
    assert 'codex_receiver_uploads_total{status="401"}' in metrics
    assert 'codex_receiver_uploads_total{status="400"} 1.0' in metrics
    assert (
        f'codex_receiver_stored_events_by_contract_total{{contract="2026-06"}} {2.0 * len(events)}'
        in metrics
    )
