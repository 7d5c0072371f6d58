"""The README's main command, as a user runs it: a process on a fresh embedded broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from codex_analytics.contract import decode_event

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_demo_passes_on_the_embedded_broker(tmp_path: Path) -> None:
    capture = tmp_path / "out" / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "codex_analytics.cli.main",
            "demo",
            "--facts",
            "4000",
            "--instances",
            "40",
            "--capture",
            str(capture),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=180,
        check=False,
    )
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "PASS: capture equals reduce" in out
    lines = capture.read_bytes().splitlines()
    assert lines
    for line in lines:  # every line is a request body of valid events
        for event in orjson.loads(line)["events"]:
            decode_event(orjson.dumps(event))
    assert capture.stat().st_mode & 0o777 == 0o600
