"""``codex-analytics smoke plugin`` through the running pipeline, and its failures."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from tests.cli import run_cli

pytestmark = pytest.mark.integration


def _smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("smoke", "plugin", *args, timeout=120)


def _without(capture: Path, event_type: str, out: Path) -> None:
    lines = []
    for line in capture.read_bytes().splitlines():
        events = [e for e in orjson.loads(line)["events"] if e["event_type"] != event_type]
        lines.append(orjson.dumps({"events": events}))
    out.write_bytes(b"\n".join(lines) + b"\n")


PLUGIN_EVENTS = [
    "codex_plugin_disabled",
    "codex_plugin_enabled",
    "codex_plugin_used",
    "codex_plugin_installed",
    "codex_plugin_uninstalled",
]


def test_smoke_passes_for_both_contracts_then_fails_loudly_without_an_event(
    tmp_path: Path,
) -> None:
    capture = tmp_path / "capture.jsonl"
    capture.write_text("stale\n")  # removed at start, as upstream
    result = _smoke("--capture", str(capture))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("PASS: ")
    events = [e for line in capture.read_bytes().splitlines() for e in orjson.loads(line)["events"]]
    by_contract: dict[str, list[str]] = {"2026-06": [], "2026-08": []}
    for event in events:
        contract = "2026-08" if "remote_plugin_id" in event["event_params"] else "2026-06"
        by_contract[contract].append(event["event_type"])
    # Each contract's workflow arrived once (2026-06: the used event was tracked twice in
    # one turn and the client let one through).
    assert sorted(by_contract["2026-06"]) == sorted(PLUGIN_EVENTS)
    assert sorted(by_contract["2026-08"]) == sorted(PLUGIN_EVENTS)
    assert "  [ok  ] 2026-08: exactly one codex_plugin_uninstalled" in result.stdout
    assert "work directory" not in result.stderr  # removed on a pass

    # The same capture with one event type removed: a loud FAIL naming it.
    for removed, contract, key in (
        ("codex_plugin_disabled", "2026-06", "plugin_id"),
        ("codex_plugin_used", "2026-06", "plugin_id"),
        ("codex_plugin_uninstalled", "2026-08", "remote_plugin_id"),
    ):
        broken = tmp_path / f"without-{removed}.jsonl"
        _without(capture, removed, broken)
        check = _smoke("--check", "--capture", str(broken))
        assert check.returncode == 1, check.stdout
        last = check.stdout.splitlines()[-1]
        assert last.startswith(f"FAIL: {contract}: exactly one {removed} with {key}"), last
        assert "found 0" in check.stdout

    # One contract's checks alone pass on a capture of both.
    only_j = _smoke("--check", "--contract", "2026-08", "--capture", str(capture))
    assert only_j.returncode == 0, only_j.stdout
    assert "2026-06:" not in only_j.stdout

    # A duplicate delivery is not "exactly one" either; a garbage line fails too.
    doubled = tmp_path / "doubled.jsonl"
    doubled.write_bytes(capture.read_bytes() * 2 + b"not json\n")
    check = _smoke("--check", "--capture", str(doubled))
    assert check.returncode == 1
    assert "found 2" in check.stdout
    assert "is not JSON" in check.stdout


def test_smoke_usage_errors(tmp_path: Path) -> None:
    assert _smoke("--check").returncode == 2
    assert _smoke("--plugin-id", "no-marketplace").returncode == 2
    assert _smoke("--capture", str(tmp_path / "missing" / "c.jsonl")).returncode == 2
