"""The stress bench's bookkeeping: what a failed run says and keeps (its runs are
minutes of real workers: ``python -m bench stress``, not a test)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench import common
from bench.stress import RunResult, expected_events, facts_partition
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator


def test_a_failed_run_is_a_line_with_its_counts_and_logs() -> None:
    ok = RunResult(1, 12.0, expected=10, arrived=10, duplicates=2)
    assert ok.ok
    assert ok.line() == "run 1: ok, 10 events in 12.0 s (2 duplicates)"
    failed = RunResult(
        2,
        240.4,
        expected=10,
        arrived=7,
        duplicates=0,
        missing_by_partition={3: 3},
        logs=Path("bench-failures/x"),
    )
    assert not failed.ok
    assert failed.line() == (
        "run 2: failed: 7 of 10 events after 240 s, missing per facts partition {3: 3}, "
        "logs in bench-failures/x"
    )


def test_a_failed_runs_logs_are_kept_outside_its_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "FAILURES", tmp_path / "bench-failures")
    run = tmp_path / "run"
    run.mkdir()
    (run / "worker-0.log").write_text("stream partitions\n")
    first = common.keep_failure(run, "stream")
    second = common.keep_failure(run, "stream")  # same second: a folder of its own
    assert first != second
    for kept in (first, second):
        assert kept.parent == tmp_path / "bench-failures"
        assert (kept / "worker-0.log").read_text() == "stream partitions\n"


def test_expected_events_are_reduce_over_the_same_facts() -> None:
    facts = [
        orjson.dumps(f) for f in SessionGenerator(GeneratorConfig(instances=5, seed=3)).facts(300)
    ]
    want = expected_events(facts)
    assert want  # the generator's mix makes events
    assert {seq for _, seq, _ in want} <= {orjson.loads(f)["seq"] for f in facts}
    assert all(0 <= facts_partition(instance) < common.PARTITIONS for instance, _, _ in want)


def test_worker_totals_sum_each_workers_last_exit_line(tmp_path: Path) -> None:
    from bench.stress import worker_totals

    first, second, silent = tmp_path / "w0.log", tmp_path / "w1.log", tmp_path / "w2.log"
    line = {"message": "stream totals", "rebalances": 1, "seeks": 0, "stalls": 0, "held": 0}
    first.write_bytes(
        orjson.dumps(line)
        + b"\n"
        + orjson.dumps({**line, "rebalances": 2, "seeks": 3, "held": 40})
        + b"\n"
    )
    second.write_bytes(b"not json\n" + orjson.dumps({**line, "stalls": 1}) + b"\n")
    silent.write_bytes(b"")
    assert worker_totals([first, second, silent]) == {
        "rebalances": 3,
        "seeks": 3,
        "stalls": 1,
        "held": 40,
    }
