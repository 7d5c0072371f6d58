"""Running ``codex-analytics`` commands as processes, as users do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the command with the caller's environment minus any Kafka or pipeline
    settings (so an embedded broker is used) plus ``env``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k != "KAFKA_BOOTSTRAP_SERVERS" and not k.startswith("ANALYTICS_")
    }
    return subprocess.run(
        [sys.executable, "-m", "codex_analytics.cli.main", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
