"""Running ``codex-analytics`` commands as processes, as users do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: bytes | str | None = None,
    text: bool = True,
    timeout: float = 180,
) -> subprocess.CompletedProcess[Any]:
    """Run the command with the caller's environment minus any Kafka or pipeline
    settings (so an embedded broker is used) plus ``env``. Its output is text, or bytes
    with ``text=False`` (for byte-exact comparisons; ``stdin`` is then bytes too)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k != "KAFKA_BOOTSTRAP_SERVERS" and not k.startswith("ANALYTICS_")
    }
    return subprocess.run(
        [sys.executable, "-m", "codex_analytics.cli.main", *args],
        input=stdin,
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=text,
        timeout=timeout,
        check=False,
    )


def run_cli_on(
    bootstrap: str, facts_topic: str, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """:func:`run_cli` against the broker at ``bootstrap``, with its facts topic set."""
    return run_cli(
        *args,
        env={"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "ANALYTICS_FACTS_TOPIC": facts_topic},
        timeout=timeout,
    )
