"""The session generator: valid, complete, deterministic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from codex_analytics.contract import (
    EVENT_TYPES,
    FACT_KINDS,
    decode_fact,
    encode_event,
    encode_fact,
    profile_j,
)
from codex_analytics.contract.versions import CONTRACT_J
from codex_analytics.simulator import DEFAULT_J_SHARE
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator
from streams.reducer.offline import OfflineReducer

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "codex_analytics.cli.main"]


def generate(total: int, **config: float) -> list[bytes]:
    return [
        orjson.dumps(f)
        for f in SessionGenerator(GeneratorConfig(**config)).facts(total)  # type: ignore[arg-type]
    ]


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


def test_a_mixed_run_keeps_the_2026_06_facts_of_a_2026_06_run_byte_for_byte() -> None:
    mixed = generate(6000, instances=20, seed=5, j_share=0.25)
    s_only = [line for line in mixed if b'"contract"' not in line]
    assert len(s_only) < len(mixed)
    assert s_only == generate(len(s_only), instances=15, seed=5)


def test_each_instance_speaks_one_contract_and_the_share_counts_instances() -> None:
    contracts: dict[str, set[str | None]] = {}
    for line in generate(4000, instances=12, seed=6, j_share=0.5):
        source = orjson.loads(line)["source"]
        contracts.setdefault(source["instance_id"], set()).add(source.get("contract"))
    assert len(contracts) == 12
    assert all(len(spoken) == 1 for spoken in contracts.values())
    assert [spoken == {CONTRACT_J} for spoken in contracts.values()].count(True) == 6
    assert GeneratorConfig(instances=3, j_share=0.01).j_instances == 1  # any share: one
    assert GeneratorConfig(instances=3, j_share=1).j_instances == 3


def test_2026_08_instances_decode_and_cover_every_profile_j_kind_and_rule() -> None:
    facts = [decode_fact(line) for line in generate(6000, instances=8, seed=7, j_share=1)]
    assert {f.source.contract for f in facts} == {CONTRACT_J}
    assert {f.kind for f in facts} == set(profile_j.FACT_KINDS)
    assert len(profile_j.FACT_KINDS) == 31
    # What the sessions exercise, seen in the reducer's output: held code-mode calls
    # released by each of their three releases, both reviewers, interrupted turns.
    reducer = OfflineReducer()
    seen: set[str] = set()
    for fact in facts:
        for event in reducer.apply(fact).events:
            params = orjson.loads(encode_event(event))["event_params"]
            if params.get("cell_id") is not None:
                trigger = fact.kind
                if trigger == "server_notification":
                    trigger = orjson.loads(encode_fact(fact))["payload"]["method"]
                seen.add(f"held call released by {trigger}")
            if "reviewer" in params:
                seen.add(f"{params['reviewer']} review")
            if params.get("explicit_client_interrupt_requested_at_ms") is not None:
                seen.add("interrupted turn")
    assert seen >= {
        "held call released by turn/completed",
        "held call released by flush",
        "held call released by code_mode_tool_call",
        "user review",
        "guardian review",
        "interrupted turn",
    }


@pytest.mark.parametrize(
    "bad", [{"instances": 0}, {"duplicate_rate": 1.5}, {"accounts": 0}, {"j_share": 1.5}]
)
def test_bad_config_is_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        GeneratorConfig(**bad)  # type: ignore[arg-type]


def test_generate_command_writes_the_library_output_a_mix_by_default(tmp_path: Path) -> None:
    out = tmp_path / "facts.jsonl"
    cmd = [*CLI, "generate", "--instances", "30", "--facts", "2500", "--seed", "9"]
    subprocess.run([*cmd, "--out", str(out)], check=True, cwd=ROOT, timeout=60)
    assert out.read_bytes() == b"".join(
        line + b"\n" for line in generate(2500, instances=30, seed=9, j_share=DEFAULT_J_SHARE)
    )


def test_generate_then_reduce_commands_emit_every_event_type_of_both_contracts(
    tmp_path: Path,
) -> None:
    """The acceptance path: the two commands, chained through a file. Each instance's
    state is its own, so reducing each contract's lines alone shows what its instances
    emitted in the mixed run."""
    out = tmp_path / "facts.jsonl"
    subprocess.run(
        [
            *CLI,
            "generate",
            "--instances",
            "24",
            "--facts",
            "9000",
            "--seed",
            "7",
            "--out",
            str(out),
        ],
        check=True,
        cwd=ROOT,
        timeout=120,
    )
    lines = out.read_bytes().splitlines()
    by_contract = {
        contract: b"".join(line + b"\n" for line in lines if (b'"contract":"2026-08"' in line) == j)
        for contract, j in (("2026-06", False), ("2026-08", True))
    }
    emitted = {}
    for contract, facts in by_contract.items():
        reduced = subprocess.run(
            [*CLI, "reduce", "-"],
            input=facts,
            check=True,
            cwd=ROOT,
            timeout=120,
            capture_output=True,
        )
        emitted[contract] = {
            orjson.loads(line)["event_type"] for line in reduced.stdout.splitlines()
        }
    assert emitted["2026-06"] == set(EVENT_TYPES)
    assert len(EVENT_TYPES) == 14
    assert emitted["2026-08"] == set(profile_j.EVENT_TYPES)
    assert len(profile_j.EVENT_TYPES) == 29
