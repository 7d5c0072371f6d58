"""The benchmarks still run (figures are not asserted: no timed tests), and the document
they write keeps every suite's section."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import read_sections, render_document, render_section
from bench.stats import Figure

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
        (
            "sink",
            (
                "ceiling (aiokafka + httpx",
                "sink worker, 1 process",
                "sink (aiohttp) / ceiling",
                "sink (aiohttp) / bare httpx loop",
                "bare aiohttp loop",
                "sink worker CPU per event, httpx",
                "What the CPU per event says",
            ),
        ),
        (
            "latency",
            ("linger 1000 ms: track_* -> receiver p99", "linger 100 ms: p99 - target"),
        ),
        (
            "scaling",
            ("1,000 instances: steady state, process()", "back once past the horizon"),
        ),
        ("profile", ("decode, dedupe, reduce, encode (pure core)", "What the profile changed")),
        (
            "producers",
            ("client track_* -> broker", "client track_* call, caller side", "gateway / ceiling"),
        ),
        (
            "cost",
            (
                "1 stream worker(s): gateway CPU per million facts",
                "1 stream worker(s): stream CPU per million facts",
                "1 stream worker(s): sink CPU per million facts",
                "1 stream worker(s): broker CPU per million facts",
                "events delivered twice",
            ),
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


def test_a_rewritten_section_replaces_only_its_own() -> None:
    sink = render_section("sink", [Figure("sink / bare httpx loop", "ratio x1000", (900.0,))], "c1")
    profile = render_section(
        "profile", [Figure("Faust + mode", "% of samples", (40.0,))], "c2", "What changed: x"
    )
    doc = render_document({"profile": profile, "sink": sink})
    assert doc.index("## sink") < doc.index("## profile"), "suites keep the command's order"
    sections = read_sections(doc)
    assert sections["profile"].strip() == profile.strip()
    sections["sink"] = render_section("sink", [Figure("sink / bare httpx loop", "x", (1.0,))], "c3")
    again = read_sections(render_document(sections))
    assert "What changed: x" in again["profile"]
    assert "c3" in again["sink"]
    assert "c1" not in again["sink"]


def test_cost_figures_compare_two_workers_with_one_and_show_a_failed_phase() -> None:
    from bench.cost import CostBenchConfig, PhaseResult, figures

    cpu = {"gateway": 50.0, "stream": 100.0, "sink": 40.0, "broker": 60.0}
    one = PhaseResult(1, ok=True, cpu_per_million=cpu, paced_rate=900.0, burst_rate=4_000.0)
    two = PhaseResult(2, ok=True, cpu_per_million={**cpu, "stream": 150.0}, burst_rate=6_000.0)
    failed = PhaseResult(2, error="3 of 10 events missing")
    rows = {f.name: f for f in figures(CostBenchConfig(), [one, two, failed])}
    assert rows["2 workers / 1 worker: stream CPU per million facts"].samples == (1500.0,)
    assert rows["2 workers / 1 worker: flat-out throughput"].samples == (1500.0,)
    assert any("phase failed" in name for name in rows)
    assert rows[
        "1 stream worker(s): all services CPU per million facts (2,000 facts/s, 4 partitions)"
    ].samples == (250.0,)


def test_cpu_seconds_reads_this_process() -> None:
    import os

    from bench.cost import cpu_seconds

    spent = os.times()
    assert abs(cpu_seconds(os.getpid()) - (spent.user + spent.system)) < 0.5


def test_the_sink_budget_says_when_a_run_was_too_short_for_the_cpu_clock() -> None:
    # --quick runs can spend less than a clock tick: no division by zero.
    from bench.sink import Measured, RunFigures, budget

    def measured(cpu_us: float) -> Measured:
        return Measured(rate=1.0, peak_rss_mb=1.0, cpu_us_per_event=cpu_us)

    def run(bare: float) -> RunFigures:
        both = {"aiohttp": measured(bare), "httpx": measured(bare)}
        return RunFigures(measured(8.0), dict(both), dict(both), 2.0, 5.0)

    assert budget([run(0.0)]) == "The runs were too short to measure CPU per event."
    assert "1.92x that budget" in budget([run(5.0)])  # (2 + 5 + 5) / (5 / 0.8)
