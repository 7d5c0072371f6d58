"""``codex-analytics demo``: the main job. The whole pipeline as separate processes on a
real broker, a realistic load, live progress, and a verdict."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codex_analytics.devtools.localstack import LocalStack, MetricsSnapshot
    from codex_analytics.runtime.kafka import KafkaCluster

DESCRIPTION = """\
Run the whole pipeline as users deploy it and check its output.

Starts the broker (embedded, memory-only, when KAFKA_BOOTSTRAP_SERVERS is unset), the
stream worker(s) and the sink worker as separate processes (and, with --receiver, a
local analytics endpoint), generates a realistic load of facts from simulated Codex
instances, publishes it to the facts topic, and follows the run live: facts in, events
out, duplicates and dedupe hits, dead letters, batches, consumer lag.

The instances speak both contracts (a --j-share of them 2026-08, the others 2026-06),
each its own, as a fleet mid-upgrade does; the summary shows each contract's events and
types. It passes (exit 0) only if the events the sink delivered equal 'codex-analytics
reduce' over the same facts. Outputs (facts file, capture file or receiver store, one log per
service) are in the capture file's directory. Ctrl-C stops every process cleanly.

On a configured cluster the run uses topics and consumer groups of its own
(demo-<id>.*), so it never mixes with live data.
"""


def register(parser: argparse.ArgumentParser) -> None:
    from codex_analytics.simulator import DEFAULT_J_SHARE

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
        "--j-share",
        type=float,
        default=DEFAULT_J_SHARE,
        metavar="P",
        help="share of the instances speaking contract 2026-08, the others 2026-06 "
        f"(default: {DEFAULT_J_SHARE})",
    )
    parser.add_argument(
        "--capture",
        metavar="PATH",
        default="demo-output/events.jsonl",
        help="capture file the sink writes (default: demo-output/events.jsonl; replaced on "
        "each run); its directory holds the other outputs",
    )
    parser.add_argument(
        "--receiver",
        action="store_true",
        help="upload to a local receiver (codex-analytics receiver, with per-account tokens) "
        "instead of writing the capture file; it stores what it accepts in received.jsonl",
    )
    parser.add_argument(
        "--stream-workers",
        type=int,
        default=1,
        metavar="W",
        help="stream worker processes sharing the facts partitions (default: 1)",
    )
    parser.add_argument(
        "--pack",
        type=int,
        default=1,
        metavar="N",
        help="facts per Kafka record, as the bulk producers pack them (default: 1, one "
        "envelope per record as the client library sends them)",
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="fail when nothing moves for this long (default: 60)",
    )


@dataclass
class _Published:
    facts: int = 0
    records: int = 0
    rate: float = 0.0
    done: bool = False


def run(args: argparse.Namespace) -> int:
    if args.facts < 1 or args.instances < 1 or args.stream_workers < 1 or args.pack < 1:
        print(
            "demo: --facts, --instances, --stream-workers and --pack must be at least 1",
            file=sys.stderr,
        )
        return 2
    if not 0 <= args.j_share <= 1:
        print("demo: --j-share must be within [0, 1]", file=sys.stderr)
        return 2
    from codex_analytics.runtime.kafka import KafkaCluster, TopicSettings

    try:
        configured = KafkaCluster.configured()
        TopicSettings.from_env()
    except ValueError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    capture = Path(args.capture)
    out_dir = capture.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        stale_outputs = [capture, out_dir / "received.jsonl", out_dir / "logs"]
        for stale in [*stale_outputs, *out_dir.glob("stream-data-*")]:
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink(missing_ok=True)
    except OSError as exc:
        print(f"demo: cannot prepare {out_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        return _run(args, configured, capture, out_dir)
    except KeyboardInterrupt:
        print("\ndemo: interrupted; every service was stopped", file=sys.stderr)
        return 130


def _run(
    args: argparse.Namespace, configured: KafkaCluster | None, capture: Path, out_dir: Path
) -> int:
    import orjson

    from codex_analytics.contract import EVENT_TYPES, dumps_kept, profile_j
    from codex_analytics.contract.versions import CONTRACT_J, CONTRACT_S
    from codex_analytics.devtools.broker import kafka_cluster
    from codex_analytics.devtools.localstack import (
        LocalStack,
        StackError,
        create_topics,
        interrupts_raise,
        private_topics,
    )
    from codex_analytics.devtools.verify import (
        captured_events,
        compare,
        received_events,
        reference_by_contract,
    )
    from codex_analytics.runtime.kafka import TopicSettings
    from codex_analytics.runtime.kafka_start import KafkaStartError, start_failed
    from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator

    settings = TopicSettings.from_env()  # a bad value: one line, exit 2, nothing started
    started = time.monotonic()
    config = GeneratorConfig(instances=args.instances, seed=args.seed, j_share=args.j_share)
    facts = [dumps_kept(f) for f in SessionGenerator(config).facts(args.facts)]
    facts_path = out_dir / "facts.jsonl"
    facts_path.write_bytes(b"".join(line + b"\n" for line in facts))
    reference = reference_by_contract(facts)  # the verdict's reference: reduce, offline
    expected = reference.events
    accounts = tuple(
        sorted(
            {
                auth["account_id"]
                for auth in (orjson.loads(line)["source"].get("auth") for line in facts)
                if auth and auth.get("account_id")
            }
        )
    )
    run_id = f"demo-{uuid.uuid4().hex[:8]}"
    store = out_dir / "received.jsonl"
    (out_dir / "logs").mkdir(exist_ok=True)
    with (
        interrupts_raise(),
        kafka_cluster(configured, log_path=str(out_dir / "logs" / "broker.log")) as cluster,
    ):
        topics = private_topics(
            run_id, settings.partitions, settings.max_record_bytes, policy=settings
        )
        try:
            partitions = asyncio.run(create_topics(cluster, topics))
        except KafkaStartError as exc:
            return start_failed("demo", exc)
        print(
            f"demo: Kafka at {cluster.describe()}; topics {run_id}.* ({partitions} partitions); "
            f"{len(facts):,} facts from {args.instances} instances -> "
            f"{args.stream_workers} stream worker(s) -> sink -> "
            + (f"receiver ({store})" if args.receiver else f"capture file {capture}"),
            file=sys.stderr,
        )
        stack = LocalStack(
            cluster,
            out_dir,
            topics,
            run_id=run_id,
            stream_workers=args.stream_workers,
            capture_path=None if args.receiver else capture,
            receiver_store=store if args.receiver else None,
            accounts=accounts,
        )
        stack.start()
        try:
            follow = asyncio.run(_publish_and_follow(stack, facts, args, len(expected)))
        except StackError as exc:
            print(f"demo: FAIL: {exc}", file=sys.stderr)
            return 1
        finally:
            exits = stack.stop()
    delivered = received_events(store) if args.receiver else captured_events(capture)
    verdict = compare(delivered, expected)
    published, stream, sink = follow.published, follow.stream, follow.sink
    drops = stream.by_label("codex_stream_drops_total", "reason")
    dead_letters = stream.total("codex_stream_dead_letters_total")
    types = len(stream.by_label("codex_stream_events_total", "type"))
    j_instances = config.j_instances
    outcome = "delivered" if args.receiver else "captured"
    bad_exits = {name: code for name, code in exits.items() if code not in (0, None)}
    rows = [
        (
            "facts published",
            f"{published.facts:,} in {published.records:,} records ({args.instances} instances, "
            f"{partitions} partitions, {published.rate:,.0f} facts/s)",
        ),
        (
            "stream",
            f"{stream.total('codex_stream_facts_total'):,} facts reduced by "
            f"{args.stream_workers} worker(s); duplicates ignored "
            f"{drops.get('duplicate_seq', 0):,}; dedupe hits {drops.get('dedupe_repeat', 0):,}; "
            f"dead letters {dead_letters:,}",
        ),
        (
            "events",
            f"{stream.total('codex_stream_events_total'):,} emitted ({types} types); "
            f"{sink.total('codex_sink_events_total', outcome=outcome):,} {outcome} in "
            f"{sink.total('codex_sink_batches_total', outcome=outcome):,} batches; retries "
            f"{sink.total('codex_sink_retries_total'):,}; dead-lettered "
            f"{sink.total('codex_sink_events_total', outcome='dead_lettered'):,}",
        ),
        (
            "contracts",
            "; ".join(
                f"{contract}: {n:,} instances, {len(reference.by_contract.get(contract, [])):,} "
                f"events of {len(reference.types(contract))}/{len(all_types)} types"
                for contract, n, all_types in (
                    (CONTRACT_S, args.instances - j_instances, EVENT_TYPES),
                    (CONTRACT_J, j_instances, profile_j.EVENT_TYPES),
                )
                if n
            ),
        ),
        (
            "time",
            f"{time.monotonic() - started:.1f} s in all; last event out "
            f"{follow.pipeline_s:.1f} s after the first fact was published",
        ),
        ("facts file", str(facts_path)),
        (
            "receiver store" if args.receiver else "capture file",
            str(store if args.receiver else capture),
        ),
        ("service logs", str(out_dir / "logs")),
    ]
    if follow.error:
        rows.append(("run", f"FAIL: {follow.error}"))
    if bad_exits:
        rows.append(("exits", ", ".join(f"{n} {c}" for n, c in bad_exits.items())))
    passed = verdict.passed and not follow.error and not bad_exits
    if verdict.passed and not passed:
        rows.append(("verdict", "FAIL: the events match, but the run did not end cleanly"))
    else:
        rows.append(("verdict", verdict.summary))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0 if passed else 1


@dataclass
class _Follow:
    published: _Published
    stream: MetricsSnapshot
    sink: MetricsSnapshot
    pipeline_s: float = 0.0
    error: str = ""


async def _publish_and_follow(
    stack: LocalStack, facts: list[bytes], args: argparse.Namespace, expected_events: int
) -> _Follow:
    """Publish the facts while following the services' metrics; return when the sink
    has handled every event the stream emitted for every published fact."""
    from codex_analytics.devtools.localstack import MetricsSnapshot, PipelineCounts
    from codex_analytics.runtime.progress import Progress
    from producers.publishing.bulk import publish_lines
    from producers.publishing.transport import KafkaFactTransport

    published = _Published()
    transport = KafkaFactTransport(
        stack.cluster,
        stack.topics.facts,
        client_id="codex-analytics-demo",
        max_record_bytes=stack.topics.max_record_bytes,
    )

    async def publish() -> None:
        try:
            summary = await publish_lines(
                facts,
                transport,
                max_facts_per_record=args.pack,
                max_record_bytes=stack.topics.max_record_bytes,
            )
        finally:
            await transport.close()
        published.facts, published.records, published.rate = (
            summary.accepted,
            summary.records,
            summary.rate,
        )
        published.done = True

    progress = Progress(plain_every_s=5.0)
    first_fact = time.monotonic()
    publisher = asyncio.create_task(publish())
    stream, sink = MetricsSnapshot(), MetricsSnapshot()
    follow = _Follow(published, stream, sink)
    last_change, last_state = time.monotonic(), (-1, -1, -1)
    try:
        while True:
            await asyncio.sleep(0.5)
            if publisher.done():
                publisher.result()  # a publish failure ends the run here
            stack.check_alive()
            stream, sink = await asyncio.to_thread(stack.metrics)
            follow.stream, follow.sink = stream, sink
            counts = PipelineCounts.of(stream, sink)
            records, events_out, handled = counts.records, counts.events, counts.handled
            drops = stream.by_label("codex_stream_drops_total", "reason")
            head = (
                f"published {published.facts:,}/{len(facts):,}"
                if published.done
                else "publishing..."
            )
            progress.show(
                f"{head}  facts in {counts.facts:,}/{len(facts):,}  "
                f"events out {events_out:,}/{expected_events:,}  delivered {handled:,}  "
                f"duplicates {drops.get('duplicate_seq', 0):,}  "
                f"dedupe hits {drops.get('dedupe_repeat', 0):,}  "
                f"dead letters {stream.total('codex_stream_dead_letters_total'):,}  "
                f"batches {sink.total('codex_sink_batches_total'):,}  "
                f"lag {counts.stream_lag:,}/{counts.sink_lag:,}"
            )
            state = (records, events_out, handled)
            now = time.monotonic()
            if state != last_state:
                last_change, last_state = now, state
                if handled:
                    follow.pipeline_s = now - first_fact
            if published.done and counts.settled(published.records):
                break
            if now - last_change > args.stall_timeout:
                follow.error = (
                    f"nothing moved for {args.stall_timeout:.0f} s: {records:,} of "
                    f"{published.records or len(facts):,} records reduced, {handled:,} of "
                    f"{events_out:,} events delivered (see {stack.logs_dir})"
                )
                break
    finally:
        progress.done()
        if not publisher.done():
            publisher.cancel()
    return follow
