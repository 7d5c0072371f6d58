"""The benchmarks still run (figures are not asserted: no timed tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reducer_benchmark_quick_mode_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "reducer", "--quick"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    for figure in (
        "reduce only",
        "decode + reduce + encode",
        "state per open turn",
        "state per live thread",
    ):
        assert figure in out


def test_stream_benchmark_quick_mode_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "stream", "--quick"],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    for figure in (
        "ceiling, 1 fact/record",
        "stream, 1 worker(s), packs of <= 32",
        "stream / ceiling",
    ):
        assert figure in out
