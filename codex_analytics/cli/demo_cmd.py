"""``codex-analytics demo``: the main job, end to end on a real broker, with a verdict."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from codex_analytics.progress import Progress
from streams.reducer.drops import ReducerStats

DESCRIPTION = """\
Run the pipeline end to end on a real Kafka broker and check its output.

Generates a realistic load of facts from simulated Codex instances, publishes them to
the facts topic (keyed by instance), consumes and reduces them into track events, and
writes the request bodies to a JSONL capture file (one {"events":[...]} line per fact
that emitted events, as upstream batches them). It passes only if the captured batches
equal 'codex-analytics reduce' over the same facts.

With KAFKA_BOOTSTRAP_SERVERS unset an embedded, memory-only broker is started and
stopped. With it set, the demo uses a run-private topic on that cluster.

This release reduces in-process; the Faust stream worker and the sink worker take over
those stages as they land (see CHANGELOG.md).
"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--facts", type=int, default=50_000, metavar="N", help="facts to generate (default: 50000)"
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=200,
        metavar="K",
        help="simulated Codex instances (default: 200)",
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    parser.add_argument(
        "--capture",
        metavar="PATH",
        default="demo-output/events.jsonl",
        help="capture file to write (default: demo-output/events.jsonl; replaced on each run)",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    import orjson

    from codex_analytics.broker import kafka_bootstrap
    from codex_analytics.contract import decode_fact, encode_batch
    from producers.generator import GeneratorConfig, SessionGenerator
    from streams.reducer.offline import OfflineReducer

    if args.facts < 1 or args.instances < 1:
        print("demo: --facts and --instances must be at least 1", file=sys.stderr)
        return 2
    capture = Path(args.capture)
    try:
        capture.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"demo: cannot create {capture.parent}: {exc.strerror}", file=sys.stderr)
        return 2
    started = time.monotonic()
    generator = SessionGenerator(GeneratorConfig(instances=args.instances, seed=args.seed))
    facts = [orjson.dumps(f) for f in generator.facts(args.facts)]
    facts_path = capture.parent / "facts.jsonl"
    facts_path.write_bytes(b"".join(line + b"\n" for line in facts))
    # The verdict's reference: the offline reducer over the very same facts.
    expected_reducer = OfflineReducer()
    expected = [
        encode_batch(events)
        for events in (expected_reducer.apply(decode_fact(line)).events for line in facts)
        if events
    ]

    with kafka_bootstrap(log_path=str(capture.parent / "broker.log")) as bootstrap:
        print(f"demo: Kafka at {bootstrap}", file=sys.stderr)
        outcome = asyncio.run(_through_kafka(bootstrap, facts))
    if outcome.error:
        print(f"demo: FAIL: {outcome.error}", file=sys.stderr)
        return 1

    # Created 0600 (it will hold analytics of real accounts), appended one batch a line.
    fd = os.open(capture, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(b"".join(line + b"\n" for line in outcome.batches))
    passed = sorted(outcome.batches) == sorted(expected)
    stats = outcome.stats
    events_out = sum(stats.events.values())
    rows = [
        (
            "facts published",
            f"{len(facts):,} ({args.instances} instances, {outcome.partitions} partitions)",
        ),
        ("facts consumed", f"{outcome.received:,}"),
        ("duplicates ignored", f"{stats.drops.get('duplicate_seq', 0):,}"),
        ("events out", f"{events_out:,} in {len(outcome.batches):,} batches"),
        ("event types", f"{len(stats.events)} of 14"),
        (
            "drops (by reason)",
            ", ".join(f"{k} {v}" for k, v in sorted(stats.drops.items())) or "none",
        ),
        ("wall time", f"{time.monotonic() - started:.1f} s"),
        ("facts file", str(facts_path)),
        ("capture file", str(capture)),
        (
            "verdict",
            "PASS: capture equals reduce"
            if passed
            else f"FAIL: {len(outcome.batches)} captured vs {len(expected)} expected batches",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0 if passed else 1


@dataclass
class _Outcome:
    batches: list[bytes] = field(default_factory=list)
    received: int = 0
    partitions: int = 0
    stats: ReducerStats = field(default_factory=ReducerStats)
    error: str = ""


async def _through_kafka(bootstrap: str, facts: list[bytes]) -> _Outcome:
    """Publish the facts keyed by instance, consume them back and reduce them."""
    import uuid

    import orjson
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from codex_analytics.contract import decode_fact, encode_batch
    from codex_analytics.kafka import (
        TopicSettings,
        consumer_options,
        ensure_topics,
        producer_options,
    )
    from streams.reducer.offline import OfflineReducer

    progress = Progress(interval_s=0)
    settings = TopicSettings.from_env()
    run_id = uuid.uuid4().hex[:8]
    topic = f"{settings.facts}.demo-{run_id}"  # run-private: never mixes with live data
    outcome = _Outcome()
    outcome.partitions = (await ensure_topics(bootstrap, {topic: settings.partitions}))[topic]

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **producer_options())
    await producer.start()
    try:
        for n, line in enumerate(facts, start=1):
            key = orjson.loads(line)["source"]["instance_id"].encode()
            await producer.send(topic, line, key=key)
            if n % 5000 == 0:
                progress.show(f"published {n:,}/{len(facts):,} facts")
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"codex-analytics-demo-{run_id}",
        **consumer_options(),
    )
    reducer = OfflineReducer()
    outcome.stats = reducer.stats
    last_record = time.monotonic()
    await consumer.start()
    try:
        while outcome.received < len(facts):
            records = await consumer.getmany(timeout_ms=500, max_records=5000)
            if not records and time.monotonic() - last_record > 30:
                outcome.error = f"no records for 30 s after {outcome.received:,} of {len(facts):,}"
                return outcome
            for batch in records.values():
                last_record = time.monotonic()
                for record in batch:
                    outcome.received += 1
                    events = reducer.apply(decode_fact(record.value)).events
                    if events:
                        outcome.batches.append(encode_batch(events))
            progress.show(
                f"facts in {outcome.received:,}/{len(facts):,}  batches out {len(outcome.batches):,}"
            )
        await consumer.commit()
    finally:
        await consumer.stop()
        progress.done()
    return outcome
