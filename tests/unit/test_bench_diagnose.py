"""A benchmark that waited in vain says where the missing events are, and keeps its logs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from bench import latency
from bench.diagnose import locate
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator


def _facts() -> list[dict[str, Any]]:
    """Real facts (the generator's), renumbered per instance as clients number them."""
    generator = SessionGenerator(GeneratorConfig(instances=3, seed=5, duplicate_rate=0))
    facts = list(generator.facts(30))
    seqs: dict[str, int] = {}
    for fact in facts:
        instance = fact["source"]["instance_id"]
        fact["seq"] = seqs[instance] = seqs.get(instance, 0) + 1
    return facts


def _record(fact: dict[str, Any], partition: int, offset: int) -> Any:
    return SimpleNamespace(partition=partition, offset=offset, value=orjson.dumps(fact))


def _event(instance: str, seq: int, index: int, partition: int, offset: int) -> Any:
    event = {"event_type": "e", "instance": instance, "seq": seq, "index": index}
    value = orjson.dumps(
        {
            "route": {"kind": "chatgpt", "account_id": "a"},
            "origin": {"instance_id": instance, "seq": seq, "index": index},
            "event": event,
        }
    )
    return SimpleNamespace(partition=partition, offset=offset, value=value, key=b"route-a"), event


def test_each_missing_event_is_placed_where_it_stopped() -> None:
    by_instance: dict[str, list[dict[str, Any]]] = {}
    for fact in _facts():
        by_instance.setdefault(fact["source"]["instance_id"], []).append(fact)
    (i1, (a1, a2, *_)), (i2, (b1, *_)) = list(by_instance.items())[:2]
    in_topic = [_record(a1, 0, 0), _record(a2, 0, 1), _record(b1, 3, 0)]
    delivered, e1 = _event(i1, 1, 0, 5, 0)
    held, _ = _event(i1, 2, 0, 5, 1)
    expected = {
        (i1, 1): 1,  # written and received
        (i1, 2): 2,  # one event written, not received; the other not written
        (i2, b1["seq"]): 1,  # in the facts topic only
        ("never-sent", 1): 1,  # not in the facts topic
        ("never-sent", 2): 0,  # makes no event: not expected anywhere
    }

    where, lines = locate(expected, in_topic, [delivered, held], [e1])

    assert (where.not_produced, where.not_reduced, where.not_delivered) == (1, 2, 1)
    assert (where.facts_expected, where.events_expected) == (4, 5)
    assert "not produced: never-sent seq 1 (1 events)" in lines
    assert f"not reduced: {i1} seq 2: facts partition 0 offset 1; 1 of 2 events written" in lines
    assert any(
        line.startswith(f"not reduced: {i2} seq {b1['seq']}: facts partition 3") for line in lines
    )
    assert any(
        line.startswith(f"not delivered: {i1} seq 2: events partition 5 offset 1") for line in lines
    )
    assert not any(
        line.startswith(("not reduced: " + i1 + " seq 1:", "not delivered: " + i1 + " seq 1:"))
        for line in lines
    )


def test_a_failed_phase_keeps_its_directory_in_a_stable_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    phase = tmp_path / "bench-latency-abc123"
    phase.mkdir()
    (phase / "sink.log").write_text("the sink's last words")
    monkeypatch.setenv(latency.KEEP_DIR_ENV, str(tmp_path / "kept"))

    kept = latency._keep(phase, "latency-linger100")

    assert kept.parent == tmp_path / "kept"
    assert kept.name.startswith("latency-linger100-")
    assert kept.name.endswith("-abc123")
    assert (kept / "sink.log").read_text() == "the sink's last words"
    assert not phase.exists()
