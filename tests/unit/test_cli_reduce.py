"""``codex-analytics reduce`` as a user runs it: a separate process, files and pipes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson

from tests.cli import run_cli
from tests.factories import Instance
from tests.unit.test_contract import VECTORS
from tests.unit.test_contract_j_vectors import VECTORS_J


def run_bytes(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return run_cli(*args, stdin=stdin, text=False, timeout=60)


def jsonl(objects: list[Any]) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objects)


def own_instance(vector_index: int, fact: dict[str, Any]) -> dict[str, Any]:
    """The fact with an instance id of its vector's own, so that every vector's facts
    reduce in one run as if alone (the vectors reuse instance ids)."""
    fact = orjson.loads(orjson.dumps(fact))
    fact["source"]["instance_id"] = f"v{vector_index}-{fact['source']['instance_id']}"
    return fact


def test_reduce_gives_every_vectors_events_and_batches_byte_identical(tmp_path: Path) -> None:
    """Every worked example of both contracts (``vectors.jsonl``, ``vectors-j.jsonl``),
    through the command, in one run per output form."""
    vectors = VECTORS + VECTORS_J
    facts = tmp_path / "facts.jsonl"
    facts.write_bytes(
        jsonl([own_instance(i, f) for i, v in enumerate(vectors) for f in v["facts"]])
    )
    events = run_bytes("reduce", str(facts))
    assert events.returncode == 0, events.stderr
    assert events.stdout == jsonl([e for v in vectors for e in v["expected_events"]])
    batches = run_bytes("reduce", "--batches", "-", stdin=facts.read_bytes())
    assert batches.returncode == 0, batches.stderr
    assert batches.stdout == jsonl([b for v in vectors for b in v["expected_batches"]])


def test_bad_lines_are_reported_skipped_and_fail_the_run() -> None:
    inst = Instance()
    good = [inst.hook_run(), inst.hook_run("running")]
    stdin = (
        jsonl([good[0]])
        + b"{oops\n\n"
        + b'{"envelope_version":1,"kind":"nope"}\n'
        + jsonl([good[1]])
    )
    result = run_bytes("reduce", stdin=stdin)
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 2  # both good facts still reduced
    errors = result.stderr.decode().splitlines()
    assert errors[0].startswith("line 2: <record>: not_json:")
    assert errors[1] == "line 4: kind: unknown_kind: unknown fact kind 'nope'"


def test_strict_stops_at_the_first_bad_line() -> None:
    inst = Instance()
    stdin = b"[]\n" + jsonl([inst.hook_run()])
    result = run_bytes("reduce", "--strict", stdin=stdin)
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode().startswith("line 1: <record>: wrong_type:")


def test_stats_and_warnings_go_to_stderr() -> None:
    inst = Instance()
    first = inst.hook_run()
    stdin = jsonl([first, first, inst.compaction("nope")])
    result = run_bytes("reduce", "--stats", "--warnings", stdin=stdin)
    assert result.returncode == 0
    err = result.stderr.decode()
    assert '"reason":"duplicate_seq"' in err
    assert (
        '"message":"dropping compaction analytics event: missing thread connection metadata"' in err
    )
    for counted in ("hook_run", "codex_hook_run", "compaction_missing_thread_connection"):
        assert counted in err


def test_missing_file_is_a_clear_error() -> None:
    result = run_bytes("reduce", "/nonexistent/facts.jsonl")
    assert result.returncode == 2
    assert b"cannot open /nonexistent/facts.jsonl" in result.stderr


def test_help_lists_every_subcommand() -> None:
    result = run_bytes("--help")
    assert result.returncode == 0
    out = result.stdout.decode()
    for name in ("broker", "reduce"):
        assert name in out
    version = run_bytes("--version")
    assert version.stdout.decode().startswith("codex-analytics ")
