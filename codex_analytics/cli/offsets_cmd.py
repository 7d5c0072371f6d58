"""``codex-analytics offsets``: show and reset consumer group positions."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codex_analytics.ops.group_offsets import GroupPositions
    from codex_analytics.runtime.kafka import KafkaCluster

DESCRIPTION = """\
Show or reset the committed positions of the pipeline's consumer groups.

  offsets show                     both services: the stream group on the facts topic
                                   and the sink group on the events topic
  offsets show --service sink      one of them (or --group G --topic T for any group)
  offsets reset --service sink --to earliest            a dry run: prints the plan
  offsets reset --service sink --to earliest --execute  commits it

--to: earliest | latest | PARTITION:OFFSET[,...] (others unchanged) | an ISO 8601 time
or epoch ms (the first record at or after it). Offsets are clamped to each partition's
range. A reset needs the group stopped (no live members); the command refuses
otherwise.

Resetting the stream group re-reads facts, but the stream's state remembers every
instance's last seq and skips what it already applied: to recompute events from
scratch, use 'codex-analytics replay'. Resetting the sink group re-delivers events
(the endpoint drops repeated Idempotency-Keys).

Group names and topics come from the same environment variables as the services
(ANALYTICS_STREAM_APP_ID, ANALYTICS_SINK_GROUP, ANALYTICS_FACTS_TOPIC,
ANALYTICS_EVENTS_TOPIC). Needs KAFKA_BOOTSTRAP_SERVERS.
"""


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="committed offset, end and lag per partition")
    reset = actions.add_parser("reset", help="move a stopped group (dry run unless --execute)")
    for sub in (show, reset):
        sub.add_argument("--service", choices=("stream", "sink"), help="the service's group")
        sub.add_argument("--group", help="any consumer group (with --topic)")
        sub.add_argument("--topic", help="the topic whose positions to show or reset")
    reset.add_argument(
        "--to", required=True, metavar="POINT", help="earliest | latest | P:O,... | time"
    )
    reset.add_argument("--execute", action="store_true", help="commit the plan (default: dry run)")


def _targets(args: argparse.Namespace, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """The (group, topic) pairs the command works on; the services' groups and topics
    come from their own variables."""
    from codex_analytics.runtime.kafka import TopicSettings
    from sinks.settings import GROUP
    from streams.settings import APP_ID

    topics = TopicSettings.from_env(env)
    stream = (APP_ID.read(env), topics.facts)
    sink = (GROUP.read(env), topics.events)
    if args.group or args.topic:
        if not (args.group and args.topic) or args.service:
            raise ValueError("give --group and --topic together, or --service")
        return [(args.group, args.topic)]
    if args.service:
        return [stream if args.service == "stream" else sink]
    if args.action == "reset":
        raise ValueError("reset needs --service or --group/--topic")
    return [stream, sink]


def run(args: argparse.Namespace) -> int:
    from codex_analytics.runtime.kafka import KafkaCluster

    try:
        cluster = KafkaCluster.configured()
        if cluster is None:
            print("offsets: KAFKA_BOOTSTRAP_SERVERS is not set", file=sys.stderr)
            return 2
        targets = _targets(args, os.environ)
    except ValueError as exc:
        print(f"offsets: {exc}", file=sys.stderr)
        return 2
    from aiokafka.errors import KafkaError

    try:
        return asyncio.run(_main(args, cluster, targets))
    except KafkaError as exc:
        print(f"offsets: Kafka at {cluster.bootstrap}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"offsets: {exc}", file=sys.stderr)
        return 2


async def _main(
    args: argparse.Namespace, cluster: KafkaCluster, targets: list[tuple[str, str]]
) -> int:
    from codex_analytics.ops.group_offsets import GroupOffsetsError, read_positions
    from codex_analytics.runtime.kafka_start import KafkaStartError, wait_for_cluster

    try:
        await wait_for_cluster(cluster, cluster.start_wait_s)
    except KafkaStartError as exc:
        print(f"offsets: {exc}", file=sys.stderr)
        return 1
    status = 0
    for group, topic in targets:
        try:
            positions = await read_positions(cluster, group, topic)
            if args.action == "reset":
                return await _reset(args, cluster, positions)
            _print_positions(positions)
        except GroupOffsetsError as exc:
            print(f"offsets: group {group}: {exc}", file=sys.stderr)
            status = 1
    return status


def _print_positions(group: GroupPositions) -> None:
    print(
        f"group {group.group} on {group.topic}: {group.members} member(s), state {group.state}, "
        f"total lag {group.total_lag:,}"
    )
    print(f"  {'partition':>9}  {'earliest':>10}  {'committed':>10}  {'end':>10}  {'lag':>8}")
    for p in group.partitions:
        committed = "-" if p.committed is None else f"{p.committed:,}"
        lag = "-" if p.lag is None else f"{p.lag:,}"
        print(f"  {p.partition:>9}  {p.earliest:>10,}  {committed:>10}  {p.end:>10,}  {lag:>8}")


async def _reset(args: argparse.Namespace, cluster: KafkaCluster, group: GroupPositions) -> int:
    from codex_analytics.ops.group_offsets import commit_plan, offsets_for_time, plan_reset
    from codex_analytics.ops.replay import StartPoint

    if args.to in ("earliest", "latest"):
        plan = plan_reset(group, to=args.to)
    else:
        point = StartPoint.parse(args.to)  # ValueError -> usage error
        if point.timestamp_ms is not None:
            times = await offsets_for_time(cluster, group.topic, point.timestamp_ms)
            plan = plan_reset(group, to="timestamp", times=times)
        else:
            plan = plan_reset(group, to="offsets", offsets=point.offsets)
    current = {p.partition: p.committed for p in group.partitions}
    verb = "resetting" if args.execute else "dry run: would reset"
    print(f"{verb} group {group.group} on {group.topic} to {args.to}:")
    for partition, offset in sorted(plan.items()):
        before = current.get(partition)
        print(f"  partition {partition}: {'-' if before is None else before} -> {offset}")
    if not args.execute:
        print("nothing changed; add --execute to commit this plan")
        return 0
    await commit_plan(cluster, group.group, group.topic, plan)
    print(f"committed {len(plan)} partition(s)")
    return 0
