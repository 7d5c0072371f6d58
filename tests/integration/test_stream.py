"""The stream worker on a real broker, as separate processes: equality with the offline
reducer, crash and rebalance safety, bad input, replay determinism, the RocksDB store."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson
import pytest

from codex_analytics.contract import DEFAULT_MAX_RECORD_BYTES
from codex_analytics.runtime.deadletter import ORIGINAL_BYTES, TRUNCATED
from tests.cli import run_cli

from .stream_helpers import (
    StreamRun,
    collect,
    distinct_by_origin,
    event_bytes,
    expected_events,
    generated_facts,
    produce,
    run,
)

pytestmark = pytest.mark.integration


def test_stream_equals_batch_one_worker(stream_run: StreamRun) -> None:
    facts = generated_facts(20_000)
    expected = expected_events(facts)
    with stream_run.worker() as worker:
        run(produce(stream_run.bootstrap, stream_run.facts, facts))
        out = run(collect(stream_run.bootstrap, stream_run.events, want=len(expected), within=120))
        assert worker.poll() is None, stream_run.log_text()
    assert event_bytes(out) == expected
    # Events are keyed by route: one account's events share a partition.
    assert all(r["route"]["account_id"] is not None for r in out.records)


def test_stream_equals_reduce_on_a_mix_of_both_contracts(stream_run: StreamRun) -> None:
    """Instances of both contracts in one load (half of them 2026-08): the worker's
    events equal what ``codex-analytics reduce`` prints for the same facts, and each
    event record names its fact's contract (none for 2026-06)."""
    facts = generated_facts(6_000, instances=40, seed=19, j_share=0.5)
    reduced = run_cli("reduce", "-", stdin=b"".join(f + b"\n" for f in facts), text=False)
    assert reduced.returncode == 0, reduced.stderr
    expected = sorted(reduced.stdout.splitlines())
    contract_of = {}
    for fact in facts:
        source = orjson.loads(fact)["source"]
        contract_of[source["instance_id"]] = source.get("contract")
    assert set(contract_of.values()) == {None, "2026-08"}
    with stream_run.worker() as worker:
        run(produce(stream_run.bootstrap, stream_run.facts, facts))
        out = run(collect(stream_run.bootstrap, stream_run.events, want=len(expected), within=120))
        assert worker.poll() is None, stream_run.log_text()
    assert event_bytes(out) == expected
    origins = [r["origin"] for r in out.records]
    assert all(o.get("contract") == contract_of[o["instance_id"]] for o in origins)
    assert {o.get("contract") for o in origins} == {None, "2026-08"}


def test_stream_equals_batch_two_workers_eight_partitions(stream_run: StreamRun) -> None:
    facts = generated_facts(20_000, seed=12)
    expected = expected_events(facts)
    with stream_run.worker("w1"), stream_run.worker("w2"):
        time.sleep(8)  # both in the group before the load arrives
        run(produce(stream_run.bootstrap, stream_run.facts, facts))
        out = run(collect(stream_run.bootstrap, stream_run.events, want=len(expected), within=150))
    events, repeats = distinct_by_origin(out)
    assert events == expected
    assert repeats == 0  # no rebalance happened during the load


def test_kill_9_mid_run_loses_nothing_and_repeats_exactly(stream_run: StreamRun) -> None:
    facts = generated_facts(12_000, seed=13)
    expected = expected_events(facts)
    with stream_run.worker("first") as first:
        run(produce(stream_run.bootstrap, stream_run.facts, facts[:6_000]))
        # Kill it once it is busy: some events are out, not all.
        partial = run(
            collect(stream_run.bootstrap, stream_run.events, want=500, within=90, settle=0)
        )
        assert len(partial.raw) >= 500, stream_run.log_text("first")
        first.send_signal(signal.SIGKILL)
        first.wait()
    run(produce(stream_run.bootstrap, stream_run.facts, facts[6_000:]))
    with stream_run.worker("second") as second:
        out = run(collect(stream_run.bootstrap, stream_run.events, want=len(expected), within=150))
        assert second.poll() is None, stream_run.log_text("second")
    events, repeats = distinct_by_origin(out)  # asserts every repeat is byte-identical
    assert events == expected, f"{len(events)} distinct events vs {len(expected)} expected"
    print(f"kill -9: {repeats} exact repeats of {len(out.raw)} records")


def test_second_worker_joining_mid_run_changes_nothing(stream_run: StreamRun) -> None:
    facts = generated_facts(12_000, seed=14)
    expected = expected_events(facts)
    with stream_run.worker("w1"):
        run(produce(stream_run.bootstrap, stream_run.facts, facts[:6_000]))
        with stream_run.worker("w2") as second:
            run(produce(stream_run.bootstrap, stream_run.facts, facts[6_000:]))
            out = run(
                collect(stream_run.bootstrap, stream_run.events, want=len(expected), within=150)
            )
            assert second.poll() is None, stream_run.log_text("w2")
    events, repeats = distinct_by_origin(out)
    assert events == expected
    print(f"rebalance: {repeats} exact repeats of {len(out.raw)} records")


def _bad_records(n: int) -> list[bytes]:
    good = orjson.loads(generated_facts(1, instances=1, seed=99)[0])
    kinds = []
    for i in range(n):
        variant = i % 5
        if variant == 0:
            kinds.append(b"not json at all " + str(i).encode())
        elif variant == 1:
            kinds.append(orjson.dumps({**good, "seq": "seven"}))
        elif variant == 2:
            kinds.append(orjson.dumps({**good, "kind": "mystery_kind"}))
        elif variant == 3:
            kinds.append(
                b'{"envelope_version":1,"pad":"'
                + b"x" * DEFAULT_MAX_RECORD_BYTES  # over the record limit (the default)
                + b'"}'
                if i % 100 == 3
                else orjson.dumps(good)[: 40 + i % 50]
            )
        else:
            kinds.append(orjson.dumps(good)[:-7])  # truncated
    return kinds


def test_invalid_records_go_to_the_dlq_and_valid_ones_through(stream_run: StreamRun) -> None:
    facts = generated_facts(8_000, seed=15)
    expected = expected_events(facts)
    bad = _bad_records(1_000)
    values, keys = [], []
    for i, fact in enumerate(facts):
        values.append(fact)
        keys.append(orjson.loads(fact)["source"]["instance_id"].encode())
        if i % 8 == 0 and bad:
            values.append(bad.pop())
            keys.append(b"bad")
    values += bad
    keys += [b"bad"] * len(bad)
    stream_run.extra_env["ANALYTICS_STREAM_BATCH_MAX_RECORDS"] = "500"
    # ANALYTICS_MAX_RECORD_BYTES at its default: the too_large dead letters (as large as
    # their records) used to be refused by the producer, and the worker exited.
    with stream_run.worker() as worker:
        pid = worker.pid
        run(produce(stream_run.bootstrap, stream_run.facts, values, keys))
        out = run(collect(stream_run.bootstrap, stream_run.events, want=len(expected), within=120))
        dead = run(collect(stream_run.bootstrap, stream_run.dlq, want=1_000, within=60))
        assert worker.poll() is None  # never died...
        assert worker.pid == pid  # ...nor was restarted
    assert event_bytes(out) == expected
    assert len(dead.raw) == 1_000
    sent_bad = sorted(_bad_records(1_000))
    kept = sorted(v for v, h in zip(dead.raw, dead.headers, strict=True) if TRUNCATED not in h)
    assert kept == [v for v in sent_bad if len(v) <= DEFAULT_MAX_RECORD_BYTES]  # unchanged
    # A record over the limit cannot be dead-lettered whole: its head, and its size.
    cut = [(v, h) for v, h in zip(dead.raw, dead.headers, strict=True) if TRUNCATED in h]
    assert len(cut) == 10
    for value, headers in cut:
        assert headers["error.reason"] == b"too_large"
        assert int(headers[ORIGINAL_BYTES]) > DEFAULT_MAX_RECORD_BYTES
        assert value.startswith(b'{"envelope_version":1,"pad":"xxx')
        assert len(value) + sum(len(k) + len(v) for k, v in headers.items()) <= (
            DEFAULT_MAX_RECORD_BYTES
        )
    reasons = {h["error.reason"] for h in dead.headers}
    assert {b"not_json", b"wrong_type", b"unknown_kind", b"too_large"} <= reasons
    for headers in dead.headers:
        assert headers["error.stage"] == b"decode"
        assert headers["source.topic"] == stream_run.facts.encode()
        assert int(headers["source.offset"]) >= 0


def test_replay_into_fresh_topics_gives_byte_identical_events(stream_run: StreamRun) -> None:
    facts = generated_facts(10_000, seed=16)
    outputs = []
    base = stream_run.prefix
    for attempt in ("a", "b"):
        stream_run.prefix = f"{base}-{attempt}"
        with stream_run.worker(attempt):
            run(produce(stream_run.bootstrap, stream_run.facts, facts))
            outputs.append(
                run(
                    collect(
                        stream_run.bootstrap,
                        stream_run.events,
                        want=len(expected_events(facts)),
                        within=120,
                    )
                )
            )
    assert sorted(outputs[0].raw) == sorted(outputs[1].raw)
    assert event_bytes(outputs[0]) == expected_events(facts)


def test_rocksdb_store_restart_continues_from_local_state(stream_run: StreamRun, tmp_path) -> None:  # type: ignore[no-untyped-def]
    facts = generated_facts(10_000, seed=17)
    expected = expected_events(facts)
    stream_run.extra_env.update(
        ANALYTICS_STREAM_STORE="rocksdb", ANALYTICS_STREAM_DATA_DIR=str(tmp_path / "state")
    )
    with stream_run.worker("r1"):
        run(produce(stream_run.bootstrap, stream_run.facts, facts[:5_000]))
        run(collect(stream_run.bootstrap, stream_run.events, want=1, within=90, settle=4))
    assert any((tmp_path / "state").rglob("*")), "no RocksDB files written"
    run(produce(stream_run.bootstrap, stream_run.facts, facts[5_000:]))
    with stream_run.worker("r2") as worker:
        out = run(collect(stream_run.bootstrap, stream_run.events, want=len(expected), within=120))
        assert worker.poll() is None, stream_run.log_text("r2")
    events, _ = distinct_by_origin(out)
    assert events == expected


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_states_nobody_writes_are_swept_from_store_and_changelog(
    stream_run: StreamRun, store: str, tmp_path: Path
) -> None:
    # Retention 3.6 s (horizons as short, since retention may not be below them), a sweep
    # every second: once the facts are processed, every instance falls silent.
    stream_run.extra_env.update(
        ANALYTICS_STREAM_STORE=store,
        ANALYTICS_STREAM_DATA_DIR=str(tmp_path / "state"),
        ANALYTICS_STATE_HORIZON_HOURS="0.001",
        ANALYTICS_DEDUPE_HORIZON_HOURS="0.001",
        ANALYTICS_STATE_RETENTION_HOURS="0.001",
        ANALYTICS_STREAM_SWEEP_INTERVAL_S="1",
    )
    facts = generated_facts(3_000, instances=40, seed=18)
    instances = {orjson.loads(f)["source"]["instance_id"].encode() for f in facts}
    changelog = f"{stream_run.prefix}-stream-reducer-state-changelog"
    with stream_run.worker() as worker:
        run(produce(stream_run.bootstrap, stream_run.facts, facts))
        first = run(collect(stream_run.bootstrap, stream_run.events, want=1, within=60, settle=3))
        assert first.raw, stream_run.log_text()
        deadline = time.monotonic() + 45
        latest: dict[bytes, bytes | None] = {}
        while time.monotonic() < deadline:
            written = run(collect(stream_run.bootstrap, changelog, want=1, within=10, settle=1))
            latest = {}
            for record in written.records_raw:
                latest[record.key] = record.value
            swept = all(latest.get(key, b"") is None for key in instances)
            if swept and "idle sweep: deleted" in stream_run.log_text():  # the log may lag
                break
            time.sleep(1)
        states = {k: v for k, v in latest.items() if k in instances}
        assert set(states) == instances
        assert all(v is None for v in states.values()), stream_run.log_text()
        assert "idle sweep: deleted" in stream_run.log_text()
        # Still working: a returning instance starts from an empty state.
        again = generated_facts(3_200, instances=40, seed=18)[3_000:]
        run(produce(stream_run.bootstrap, stream_run.facts, again))
        more = run(
            collect(stream_run.bootstrap, stream_run.events, want=len(first.raw) + 1, within=60)
        )
        assert len(more.raw) > len(first.raw)
        assert worker.poll() is None, stream_run.log_text()
