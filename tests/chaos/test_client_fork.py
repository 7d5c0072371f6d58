"""Issue #16 item 3: a client built before a fork. Workers forked from one client
(gunicorn ``--preload``, Celery prefork) must publish as instances of their own: distinct
instance ids, ``seq`` from 1 in each, none of the parent's queued facts repeated, and a
``close()`` in the child that returns within its timeout. Real forks of a real host
process (tests/chaos/fork_scenario.py), a real broker; the facts on the topic are then
run through the reducer, which must drop none as ``duplicate_seq``."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from codex_analytics.contract import decode_fact
from codex_analytics.runtime.kafka import read_from_start
from streams.reducer import InstanceState, Reducer
from tests.chaos.fork_scenario import CLOSE_TIMEOUT_S
from tests.cli import ROOT
from tests.integration.kafka_helpers import create_topic

CHILDREN, PARENT_FACTS, CHILD_FACTS = 3, 5, 5


def run_scenario(kind: str, bootstrap: str, topic: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.chaos.fork_scenario",
            f"--kind={kind}",
            f"--bootstrap={bootstrap}",
            f"--topic={topic}",
            f"--children={CHILDREN}",
            f"--parent-facts={PARENT_FACTS}",
            f"--child-facts={CHILD_FACTS}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_forked_workers_publish_as_instances_of_their_own(
    kind: str, kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("facts")
    await create_topic(kafka_bootstrap, topic, partitions=4)
    result = run_scenario(kind, kafka_bootstrap, topic)

    parent, children = result["parent"], result["children"]
    for child in children:
        assert "error" not in child, child
        # close() in the child delivers and returns within its timeout.
        assert child["closed"] is True, child
        assert child["close_s"] < CLOSE_TIMEOUT_S + 0.5, child
        assert child["queued"] == child["published"] == CHILD_FACTS, child
    assert parent["closed"] is True, parent
    assert parent["queued"] == parent["published"] == PARENT_FACTS, parent
    ids = [parent["instance_id"], *(c["instance_id"] for c in children)]
    assert len(set(ids)) == len(ids), ids
    assert all("/fork-" in c["instance_id"] for c in children), ids

    want = PARENT_FACTS + CHILDREN * CHILD_FACTS
    records = await read_from_start(kafka_bootstrap, topic, want=want, within=20, settle=1.0)
    facts = [decode_fact(r.value) for r in records]
    assert all(r.key == f.instance_id.encode() for r, f in zip(records, facts, strict=True))
    seqs: dict[str, list[int]] = defaultdict(list)
    for fact in facts:
        seqs[fact.instance_id].append(fact.seq)
    # Every process's facts, once each, seq from 1: the parent's queued facts were sent
    # by the parent only, never again by a child.
    assert {i: sorted(s) for i, s in seqs.items()} == {
        parent["instance_id"]: list(range(1, PARENT_FACTS + 1)),
        **{c["instance_id"]: list(range(1, CHILD_FACTS + 1)) for c in children},
    }
    assert {f.payload.turn_id.rsplit("-", 1)[0] for f in facts} == {  # type: ignore[union-attr]
        "turn-parent",
        *(f"turn-child{c}" for c in range(CHILDREN)),
    }
    # What the stream would do with them (facts of one instance share a partition, in order).
    reducer = Reducer()
    states: dict[str, InstanceState] = defaultdict(InstanceState)
    for fact in facts:
        reducer.apply(states[fact.instance_id], fact)
    assert reducer.stats.drops.get("duplicate_seq", 0) == 0, reducer.stats.drops
