"""The session generator: valid, complete, deterministic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from codex_analytics.contract import EVENT_TYPES, FACT_KINDS, decode_fact
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from streams.reducer.offline import OfflineReducer

ROOT = Path(__file__).resolve().parents[2]


def generate(total: int, **config: int) -> list[bytes]:
    return [orjson.dumps(f) for f in SessionGenerator(GeneratorConfig(**config)).facts(total)]


def test_output_decodes_covers_every_kind_and_reduces_to_every_event_type() -> None:
    lines = generate(20_000, instances=50, seed=7)
    facts = [decode_fact(line) for line in lines]  # raises on any invalid fact
    assert {f.kind for f in facts} == set(FACT_KINDS)
    reducer = OfflineReducer()
    emitted = {e.event_type for f in facts for e in reducer.apply(f).events}
    assert emitted == set(EVENT_TYPES)
    stats = reducer.stats
    # Redeliveries and facts the reducer must drop are part of the mix.
    assert stats.drops["duplicate_seq"] > 0
    assert stats.drops["compaction_missing_thread_connection"] > 0
    assert len(reducer.states) == 50


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    assert generate(3000, seed=1) == generate(3000, seed=1)
    assert generate(3000, seed=1) != generate(3000, seed=2)


def test_seq_is_strictly_increasing_per_instance_apart_from_redeliveries() -> None:
    last: dict[str, int] = {}
    redelivered = 0
    for line in generate(5000, instances=20, seed=3):
        fact = orjson.loads(line)
        instance, seq = fact["source"]["instance_id"], fact["seq"]
        if seq <= last.get(instance, 0):
            redelivered += 1
        else:
            assert seq == last.get(instance, 0) + 1
            last[instance] = seq
    assert 0 < redelivered < 5000 * 0.05


def test_no_duplicates_when_the_rate_is_zero() -> None:
    reducer = OfflineReducer()
    for line in generate(5000, seed=4, duplicate_rate=0):
        reducer.apply(decode_fact(line))
    assert "duplicate_seq" not in reducer.stats.drops


@pytest.mark.parametrize("bad", [{"instances": 0}, {"duplicate_rate": 1.5}, {"accounts": 0}])
def test_bad_config_is_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        GeneratorConfig(**bad)  # type: ignore[arg-type]


def test_generate_command_writes_the_library_output(tmp_path: Path) -> None:
    out = tmp_path / "facts.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "codex_analytics.cli.main",
        "generate",
        "--instances",
        "30",
        "--facts",
        "2500",
        "--seed",
        "9",
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=60)
    assert out.read_bytes() == b"".join(
        line + b"\n" for line in generate(2500, instances=30, seed=9)
    )


def test_generate_then_reduce_commands_emit_every_event_type(tmp_path: Path) -> None:
    """The acceptance path: the two commands, chained through a file."""
    out = tmp_path / "facts.jsonl"
    base = [sys.executable, "-m", "codex_analytics.cli.main"]
    subprocess.run(
        [
            *base,
            "generate",
            "--instances",
            "50",
            "--facts",
            "20000",
            "--seed",
            "7",
            "--out",
            str(out),
        ],
        check=True,
        cwd=ROOT,
        timeout=120,
    )
    reduced = subprocess.run(
        [*base, "reduce", str(out)], check=True, cwd=ROOT, timeout=120, capture_output=True
    )
    events = [orjson.loads(line) for line in reduced.stdout.splitlines()]
    assert {e["event_type"] for e in events} == set(EVENT_TYPES)
    assert len(EVENT_TYPES) == 14
