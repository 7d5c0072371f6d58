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


def test_smoke_passes_then_fails_loudly_without_an_event(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    capture.write_text("stale\n")  # removed at start, as upstream
    result = _smoke("--capture", str(capture))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("PASS: ")
    types = [
        e["event_type"]
        for line in capture.read_bytes().splitlines()
        for e in orjson.loads(line)["events"]
    ]
    # The used event was tracked twice in one turn: the client let one through.
    assert sorted(types) == sorted(
        [
            "codex_plugin_disabled",
            "codex_plugin_enabled",
            "codex_plugin_used",
            "codex_plugin_installed",
            "codex_plugin_uninstalled",
        ]
    )
    assert "work directory" not in result.stderr  # removed on a pass

    # The same capture with one event removed: a loud FAIL naming it.
    for removed in ("codex_plugin_disabled", "codex_plugin_used", "codex_plugin_installed"):
        broken = tmp_path / f"without-{removed}.jsonl"
        _without(capture, removed, broken)
        check = _smoke("--check", "--capture", str(broken))
        assert check.returncode == 1, check.stdout
        assert check.stdout.splitlines()[-1].startswith(f"FAIL: exactly one {removed}")
        assert "found 0" in check.stdout

    # A duplicate delivery is not "exactly one" either; a garbage line fails too.
    doubled = tmp_path / "doubled.jsonl"
    doubled.write_bytes(capture.read_bytes() * 2 + b"not json\n")
    check = _smoke("--check", "--capture", str(doubled))
    assert check.returncode == 1
    assert "found 2" in check.stdout
    assert "line 3 is not JSON" in check.stdout or "is not JSON" in check.stdout


def test_smoke_usage_errors(tmp_path: Path) -> None:
    assert _smoke("--check").returncode == 2
    assert _smoke("--plugin-id", "no-marketplace").returncode == 2
    assert _smoke("--capture", str(tmp_path / "missing" / "c.jsonl")).returncode == 2
