"""``codex-analytics offsets``: show and reset consumer group positions."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from codex_analytics.ops.group_offsets import GroupPositions
    from codex_analytics.runtime.kafka import KafkaCluster

DESCRIPTION = """\
Show or reset the committed positions of the pipeline's consumer groups.

  offsets show                     both services: the stream group on the facts topic
                                   and the sink group on the events topic
  offsets show --service sink      one of them (or --group G --topic T for any group)
  offsets show --service stream --export before.csv      and save the positions
  offsets reset --service sink --to earliest            a dry run: prints the plan
  offsets reset --service sink --to earliest --execute  commits it
  offsets reset --service sink --from-file before.csv --execute   puts them back

Where to (one of):
  --to earliest | latest | PARTITION:OFFSET[,...] (others unchanged) | a time
  --to-datetime T     the first record at or after T: an ISO 8601 time with its zone,
                      epoch ms, or a duration ago (2h, 30m, 1d)
  --by-duration D     the same as --to-datetime D: the first record of D ago
  --shift-by N        N records forward (or back, N < 0) from the committed offset
                      (from the earliest where none is committed)
  --from-file FILE    the offsets of a file --export wrote (topic,partition,offset lines,
                      as kafka-consumer-groups --export writes them)
Offsets are clamped to each partition's range; a partition the topic does not have
(in --to P:O or in a file) is an error, and nothing is changed. --export FILE writes
the plan (reset) or the committed offsets (show) as such a file ('-': stdout). A reset
needs the group stopped (no live members); the command refuses otherwise.

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
    where = reset.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", metavar="POINT", help="earliest | latest | P:O,... | time")
    where.add_argument("--to-datetime", metavar="T", help="ISO 8601 time, epoch ms, or 2h ago")
    where.add_argument("--by-duration", metavar="D", help="the first record of D ago (2h, 1d)")
    where.add_argument("--shift-by", type=int, metavar="N", help="N records from the committed")
    where.add_argument("--from-file", metavar="FILE", help="offsets a --export wrote")
    reset.add_argument("--execute", action="store_true", help="commit the plan (default: dry run)")
    show.add_argument("--export", metavar="FILE", help="write the committed offsets as CSV")
    reset.add_argument("--export", metavar="FILE", help="write the plan as CSV ('-': stdout)")


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
    if getattr(args, "export", None):
        raise ValueError("--export writes one group's offsets: give --service or --group/--topic")
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
    from codex_analytics.runtime.kafka_start import KafkaStartError, start_failed, wait_for_cluster

    try:
        await wait_for_cluster(cluster, cluster.start_wait_s)
    except KafkaStartError as exc:
        return start_failed("offsets", exc)
    status = 0
    for group, topic in targets:
        try:
            positions = await read_positions(cluster, group, topic)
            if args.action == "reset":
                return await _reset(args, cluster, positions)
            _print_positions(positions, _human_output(args))
            if args.export:
                committed = {p.partition: p.committed for p in positions.partitions}
                _export(args.export, topic, {p: o for p, o in committed.items() if o is not None})
        except GroupOffsetsError as exc:
            print(f"offsets: group {group}: {exc}", file=sys.stderr)
            status = 1
    return status


def _human_output(args: argparse.Namespace) -> TextIO:
    """Where the tables go: stderr when the export goes to stdout, to keep it clean."""
    return sys.stderr if args.export == "-" else sys.stdout


def _print_positions(group: GroupPositions, out: TextIO) -> None:
    uncommitted = group.uncommitted
    if len(uncommitted) == len(group.partitions):
        lag = "no committed offset (the group has not committed on this topic)"
    else:
        lag = f"total lag {group.total_lag:,}"
        if uncommitted:
            lag += f"; no committed offset on {len(uncommitted)} partition(s)"
    print(
        f"group {group.group} on {group.topic}: {group.members} member(s), state {group.state}, "
        + lag,
        file=out,
    )
    print(
        f"  {'partition':>9}  {'earliest':>10}  {'committed':>12}  {'end':>10}  {'lag':>8}",
        file=out,
    )
    for p in group.partitions:
        committed = "none" if p.committed is None else f"{p.committed:,}"
        lag = "-" if p.lag is None else f"{p.lag:,}"
        print(
            f"  {p.partition:>9}  {p.earliest:>10,}  {committed:>12}  {p.end:>10,}  {lag:>8}",
            file=out,
        )


def _export(path: str, topic: str, offsets: Mapping[int, int]) -> None:
    """Write ``offsets`` as ``reset --from-file`` reads them (``-``: stdout)."""
    from codex_analytics.ops.group_offsets import export_csv

    text = export_csv(topic, offsets)
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise ValueError(f"--export {path}: {exc.strerror}; nothing was changed") from None
    print(f"wrote {len(offsets)} partition offset(s) to {path}", file=sys.stderr)


async def _reset(args: argparse.Namespace, cluster: KafkaCluster, group: GroupPositions) -> int:
    from codex_analytics.ops.group_offsets import commit_plan

    plan, point = await _plan(args, cluster, group)
    out = _human_output(args)
    current = {p.partition: p.committed for p in group.partitions}
    verb = "resetting" if args.execute else "dry run: would reset"
    print(f"{verb} group {group.group} on {group.topic} to {point}:", file=out)
    for partition, offset in sorted(plan.items()):
        before = current.get(partition)
        print(
            f"  partition {partition}: {'none' if before is None else before} -> {offset}", file=out
        )
    if args.export:
        _export(args.export, group.topic, plan)
    if not args.execute:
        print("nothing changed; add --execute to commit this plan", file=out)
        return 0
    await commit_plan(cluster, group.group, group.topic, plan)
    print(f"committed {len(plan)} partition(s)", file=out)
    return 0


async def _plan(
    args: argparse.Namespace, cluster: KafkaCluster, group: GroupPositions
) -> tuple[dict[int, int], str]:
    """The plan of the reset's target, and that target as the plan's title says it. A
    bad target is a ``ValueError`` (a usage error)."""
    import time

    from codex_analytics.ops.group_offsets import import_csv, offsets_for_time, plan_reset
    from codex_analytics.ops.moments import iso_ms, parse_duration, parse_moment
    from codex_analytics.ops.replay import StartPoint

    if args.shift_by is not None:
        return plan_reset(group, to="shift", shift=args.shift_by), f"shift by {args.shift_by:+d}"
    if args.from_file is not None:
        try:
            text = await asyncio.to_thread(Path(args.from_file).read_text, encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"--from-file {args.from_file}: {exc.strerror}") from None
        offsets = import_csv(text, group.topic, source=args.from_file)
        return plan_reset(group, to="offsets", offsets=offsets), f"the offsets of {args.from_file}"
    now_ms = int(time.time() * 1000)
    if args.to in ("earliest", "latest"):
        return plan_reset(group, to=args.to), args.to
    if args.by_duration is not None:
        ago = parse_duration(args.by_duration)  # a duration only, as Kafka's tool takes it
        point = StartPoint(timestamp_ms=now_ms - int(ago * 1000))
    elif args.to_datetime is not None:
        point = StartPoint(timestamp_ms=parse_moment(args.to_datetime, now_ms=now_ms))
    else:
        point = StartPoint.parse(args.to, flag="--to", now_ms=now_ms)
    if point.timestamp_ms is None:
        return plan_reset(group, to="offsets", offsets=point.offsets), args.to
    times = await offsets_for_time(cluster, group.topic, point.timestamp_ms)
    return plan_reset(group, to="timestamp", times=times), iso_ms(point.timestamp_ms)
