"""The benchmarks still run (figures are not asserted: no timed tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("suite", "figures"),
    [
        (
            "reducer",
            (
                "reduce only",
                "decode + reduce + encode",
                "state per open turn",
                "state per live dedupe key",
            ),
        ),
        ("sink", ("ceiling (aiokafka + httpx", "sink worker, 1 process", "sink / ceiling")),
        (
            "producers",
            ("client track_* -> broker", "client track_* call, caller side", "gateway / ceiling"),
        ),
        (
            "stream",
            ("ceiling, 1 fact/record", "stream, 1 worker(s), packs of <= 32", "stream / ceiling"),
        ),
    ],
)
def test_benchmark_quick_mode_runs(suite: str, figures: tuple[str, ...]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", suite, "--quick"],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    for figure in figures:
        assert figure in out
