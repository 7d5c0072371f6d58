"""The README's main command, as a user runs it: the services as separate processes on a
fresh embedded broker, and a verdict."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from codex_analytics.devtools.receiver_checks import event_contracts
from codex_analytics.devtools.verify import (
    captured_events,
    received_events,
    reference_by_contract,
    reference_events,
)
from tests.cli import run_cli

pytestmark = pytest.mark.integration


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("demo", *args)


def test_demo_passes_on_the_embedded_broker(tmp_path: Path) -> None:
    capture = tmp_path / "out" / "events.jsonl"
    result = _demo("--facts", "4000", "--instances", "40", "--capture", str(capture))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "PASS: the " in out
    lines = capture.read_bytes().splitlines()
    assert lines
    for line in lines:  # every line is a request body of valid events, of either contract
        for event in orjson.loads(line)["events"]:
            event_contracts(event)
    assert capture.stat().st_mode & 0o777 == 0o600
    # The verdict is checked again here, independently of the demo's own; both contracts
    # were in the load and emitted events (the default is a mix).
    facts = (tmp_path / "out" / "facts.jsonl").read_bytes().splitlines()
    reference = reference_by_contract(facts)
    assert sorted(captured_events(capture)) == sorted(reference.events)
    assert set(reference.by_contract) == {"2026-06", "2026-08"}
    assert "2026-06: 30 instances" in out
    assert "2026-08: 10 instances" in out
    logs = tmp_path / "out" / "logs"
    # Separate processes, each with its log.
    assert "stream worker: Kafka" in (logs / "stream-1.log").read_text()
    assert "sink worker: Kafka" in (logs / "sink.log").read_text()


def test_demo_through_the_receiver_with_two_stream_workers(tmp_path: Path) -> None:
    capture = tmp_path / "out" / "events.jsonl"
    result = _demo(
        "--facts", "2000", "--instances", "30", "--receiver", "--stream-workers", "2",
        "--capture", str(capture),
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "receiver store" in out
    assert "PASS: the " in out
    store = tmp_path / "out" / "received.jsonl"
    facts = (tmp_path / "out" / "facts.jsonl").read_bytes().splitlines()
    assert sorted(received_events(store)) == sorted(reference_events(facts))
    accounts = {orjson.loads(line)["account_id"] for line in store.read_bytes().splitlines()}
    assert len(accounts) > 1  # uploads carried each route's account, not one default
    for secret in (tmp_path / "out" / "secrets").iterdir():
        assert secret.read_text() not in (tmp_path / "out" / "logs" / "sink.log").read_text()
