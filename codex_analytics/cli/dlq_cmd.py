"""``codex-analytics dlq``: inspect the dead-letter topics and send letters back."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codex_analytics.ops.dead_letter_topic import ReadRange
    from codex_analytics.ops.dead_letters import (
        Check,
        Letter,
        LetterFilter,
        RedriveLedger,
        RedrivePlan,
        RunRecord,
        Survey,
    )
    from codex_analytics.runtime.kafka import KafkaCluster

DESCRIPTION = """\
Inspect a dead-letter topic, or send its letters back where they came from.

  dlq show --topic facts                      counts by reason, 3 samples of each
  dlq show --topic events --reason http_400 --since 2h --format json
  dlq redrive --topic facts --reason output_too_large      a dry run: what it would send
  dlq redrive --topic facts --reason output_too_large --execute

--topic facts reads ANALYTICS_FACTS_DLQ_TOPIC and sends back to ANALYTICS_FACTS_TOPIC;
--topic events reads ANALYTICS_EVENTS_DLQ_TOPIC and sends back to ANALYTICS_EVENTS_TOPIC.
--since / --until (when a letter was dead-lettered): an ISO 8601 time with its zone,
epoch milliseconds, or a duration ago (2h, 30m, 1d). Both read without a consumer group
(nothing committed) and stop at each partition's end as of the start, within --timeout.

A redrive sends each letter's original key and value (the record as it was received),
with headers redrive.from (DLQ topic:partition:offset), redrive.at, redrive.run and
redrive.count. It skips letters cut to fit the dead letter (dead_letter.truncated),
letters still invalid now (facts: the contract decode the stream runs, with the current
ANALYTICS_MAX_RECORD_BYTES; events: the sink's decode, and a body under
ANALYTICS_BATCH_MAX_BYTES), and letters an earlier redrive sent: each run writes markers
into the DLQ partitions it read (before sending, and once everything is acknowledged),
so running the same redrive twice sends nothing the second time (--again overrides).

Facts sent back are de-duplicated by the stream by seq: a fact whose instance has
moved on (a later seq was applied) is dropped as duplicate_seq. See docs/operations.md,
"Dead letters: inspect and redrive". Needs KAFKA_BOOTSTRAP_SERVERS.
"""

#: (DLQ topic, target topic) of each --topic choice.
KINDS = ("facts", "events")


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="counts by reason, source partition and time; samples")
    redrive = actions.add_parser(
        "redrive", help="send letters back to their topic (dry run unless --execute)"
    )
    for sub in (show, redrive):
        sub.add_argument("--topic", choices=KINDS, required=True, help="which dead-letter topic")
        sub.add_argument(
            "--reason",
            action="append",
            default=[],
            metavar="R",
            help="only letters with this error.reason (repeatable)",
        )
        sub.add_argument("--since", metavar="T", help="dead-lettered at or after T")
        sub.add_argument("--until", metavar="T", help="dead-lettered at or before T")
        sub.add_argument("--limit", type=_positive, metavar="N", help="at most N letters")
        sub.add_argument(
            "--timeout", type=float, default=60.0, metavar="S", help="deadline of each read"
        )
    show.add_argument("--samples", type=_count, default=3, metavar="K", help="samples per reason")
    show.add_argument("--format", choices=("text", "json"), default="text")
    redrive.add_argument("--execute", action="store_true", help="send (default: dry run)")
    redrive.add_argument(
        "--again", action="store_true", help="also send letters an earlier redrive sent"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


@dataclass(frozen=True, slots=True)
class DlqSettings:
    dlq_topic: str
    #: Where letters go back to.
    target: str
    max_record_bytes: int
    batch_max_bytes: int

    def check(self, kind: str) -> Check:
        from codex_analytics.ops.dead_letters import EventsCheck, FactsCheck

        if kind == "facts":
            return FactsCheck(self.max_record_bytes)
        return EventsCheck(self.batch_max_bytes)


def read_settings(kind: str, env: Mapping[str, str]) -> DlqSettings:
    from codex_analytics.runtime.kafka import TopicSettings
    from sinks.settings import BATCH_MAX_BYTES

    topics = TopicSettings.from_env(env)
    dlq, target = (
        (topics.facts_dlq, topics.facts) if kind == "facts" else (topics.events_dlq, topics.events)
    )
    return DlqSettings(dlq, target, topics.max_record_bytes, BATCH_MAX_BYTES.read(env))


def _letter_filter(args: argparse.Namespace, now_ms: int) -> LetterFilter:
    from codex_analytics.ops.dead_letters import LetterFilter
    from codex_analytics.ops.moments import parse_moment

    since = None if args.since is None else parse_moment(args.since, now_ms=now_ms)
    until = None if args.until is None else parse_moment(args.until, now_ms=now_ms)
    if since is not None and until is not None and since > until:
        raise ValueError(f"--since {args.since} is after --until {args.until}")
    return LetterFilter(frozenset(args.reason), since, until)


def run(args: argparse.Namespace) -> int:
    from codex_analytics.ops.dead_letter_topic import DeadLetterToolError
    from codex_analytics.runtime.kafka import KafkaCluster

    try:
        cluster = KafkaCluster.configured()
        if cluster is None:
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS is not set: dlq reads an existing topic")
        settings = read_settings(args.topic, os.environ)
        letters = _letter_filter(args, int(time.time() * 1000))
    except ValueError as exc:
        print(f"dlq: {exc}", file=sys.stderr)
        return 2
    from aiokafka.errors import KafkaError

    from codex_analytics.runtime.kafka_start import KafkaStartError, wait_for_cluster

    main = _show if args.action == "show" else _redrive

    async def after_the_wait() -> int:
        await wait_for_cluster(cluster, cluster.start_wait_s)  # ANALYTICS_KAFKA_WAIT_S
        return await main(args, cluster, settings, letters)

    try:
        return asyncio.run(after_the_wait())
    except (DeadLetterToolError, KafkaStartError) as exc:
        print(f"dlq: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:
        print(f"dlq: Kafka at {cluster.bootstrap}: {exc!r}", file=sys.stderr)
        return 1


# -- show -------------------------------------------------------------------------------


async def _show(
    args: argparse.Namespace, cluster: KafkaCluster, settings: DlqSettings, letters: LetterFilter
) -> int:
    from codex_analytics.ops.dead_letters import DeadLetterSummary, Survey

    survey = Survey(letters, DeadLetterSummary(samples=args.samples), args.limit)
    read = await _read(args, cluster, settings, survey.feed, letters)
    if args.format == "json":
        _print_json(settings, read, survey)
    else:
        _print_text(settings, read, survey, cluster)
    return 0


async def _read(
    args: argparse.Namespace,
    cluster: KafkaCluster,
    settings: DlqSettings,
    feed: Callable[[Letter], None],
    letters: LetterFilter,
) -> ReadRange:
    """Read the DLQ (from ``--since``: markers of later runs come later anyway) into
    ``feed``."""
    from contextlib import aclosing

    from codex_analytics.ops.dead_letter_topic import ReadRange, read_letters

    read = ReadRange()
    records = read_letters(
        cluster, settings.dlq_topic, read, within=args.timeout, since_ms=letters.since_ms
    )
    async with aclosing(records):
        async for letter in records:
            feed(letter)
    return read


def _print_json(settings: DlqSettings, read: ReadRange, survey: Survey) -> None:
    import orjson

    report = {
        "topic": settings.dlq_topic,
        "read": {str(p): list(r) for p, r in sorted(read.ranges.items())},
        "records_read": read.records,
        "beyond_limit": survey.beyond_limit,
        **survey.summary.to_json(),
        "redrives": [_run_json(r) for r in survey.ledger.runs()],
    }
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")


def _run_json(run: RunRecord) -> dict[str, object]:
    from codex_analytics.ops.moments import iso_ms

    return {
        "run": run.run,
        "at": iso_ms(run.at_ms),
        "target": run.target,
        "claimed": run.claimed,
        "done": run.done,
        "cancelled": run.cancelled,
    }


def _print_text(
    settings: DlqSettings, read: ReadRange, survey: Survey, cluster: KafkaCluster
) -> None:
    from codex_analytics.ops.dead_letters import sample_lines
    from codex_analytics.ops.moments import iso_ms

    summary = survey.summary
    print(
        f"{settings.dlq_topic} on {cluster.bootstrap}: {summary.total:,} dead letter(s) "
        f"(read {read.records:,} records, partitions {read.describe()})"
    )
    if survey.beyond_limit:
        print(f"  {survey.beyond_limit:,} more past --limit, not counted")
    if summary.truncated:
        print(f"  {summary.truncated:,} cut to fit (dead_letter.truncated): cannot be redriven")
    if summary.reasons:
        print(f"  {'reason':<28} {'count':>8}  {'first':<24}  {'last':<24}  source partitions")
    reasons = sorted(summary.reasons.items(), key=lambda item: (-item[1].count, item[0]))
    for reason, count in reasons:
        partitions = ", ".join(f"{p} ({n:,})" for p, n in sorted(count.source_partitions.items()))
        first = iso_ms(count.first_ms) if count.first_ms is not None else "-"
        last = iso_ms(count.last_ms) if count.last_ms is not None else "-"
        print(f"  {_cell(reason):<28} {count.count:>8,}  {first:<24}  {last:<24}  {partitions}")
    for run in survey.ledger.runs():
        print(
            f"  redrive {run.run} at {iso_ms(run.at_ms)} -> {run.target}: "
            f"{run.claimed:,} letter(s), {run.state}"
        )
    for reason, count in reasons:
        if count.samples:
            print(f"samples of {_cell(reason)}:")
            for letter in count.samples:
                print("\n".join("  " + line for line in sample_lines(letter)))


def _cell(text: str) -> str:
    from codex_analytics.ops.dead_letters import preview

    return preview(text.encode(), 60)


# -- redrive ----------------------------------------------------------------------------


async def _redrive(
    args: argparse.Namespace, cluster: KafkaCluster, settings: DlqSettings, letters: LetterFilter
) -> int:
    from codex_analytics.ops.dead_letter_topic import Redrive
    from codex_analytics.ops.dead_letters import Judge, RedriveLedger, RedrivePlanner, new_run_id

    judge = Judge(
        settings.check(args.topic),
        RedriveLedger(),
        dlq_topic=settings.dlq_topic,
        target=settings.target,
        max_record_bytes=settings.max_record_bytes,
        again=args.again,
    )
    planner = RedrivePlanner(judge, letters, args.limit)
    read = await _read(args, cluster, settings, planner.feed, letters)
    plan = planner.plan()
    mode = "" if args.execute else " (dry run)"
    print(f"dlq redrive{mode}: {settings.dlq_topic} -> {settings.target} on {cluster.bootstrap}")
    print(f"  read {read.records:,} records, partitions {read.describe()}")
    _print_plan(plan, judge.ledger, executed=args.execute)
    if not args.execute or not plan.to_send:
        if plan.to_send:
            print("nothing sent; add --execute to send them")
        return 0
    at_ms = int(time.time() * 1000)
    redrive = Redrive(
        cluster,
        settings.dlq_topic,
        settings.target,
        settings.max_record_bytes,
        run=new_run_id(at_ms, os.urandom(3)),
        at_ms=at_ms,
        within=args.timeout,
    )
    sent = await redrive.execute(plan, {p: end for p, (_, end) in read.ranges.items()})
    skipped = sum(plan.skipped.values())
    print(
        f"redrive {redrive.run}: sent {sent:,} record(s) to {settings.target}, skipped "
        f"{skipped:,}; recorded in {settings.dlq_topic} (partitions "
        f"{', '.join(str(p) for p in sorted(plan.send))}): the same redrive again sends nothing"
    )
    return 0


def _print_plan(plan: RedrivePlan, ledger: RedriveLedger, *, executed: bool) -> None:
    from codex_analytics.ops.dead_letters import Skip

    verb = "sending" if executed else "would send"
    reasons = ", ".join(f"{_cell(r)} {n:,}" for r, n in plan.by_reason.most_common())
    print(
        f"  {verb} {plan.to_send:,} of {plan.considered:,} letter(s)"
        + (f": {reasons}" if reasons else "")
    )
    for line in plan.describe_skips():
        print(f"  skip {line}")
    if plan.left_over:
        print(f"  {plan.left_over:,} more sendable past --limit, left for a later run")
    unfinished = {run for (why, run), _ in plan.skipped.items() if why is Skip.UNFINISHED}
    for run in sorted(unfinished):
        record = ledger.run(run)
        print(
            f"  warning: run {run} claimed {record.claimed:,} letter(s) but did not record its "
            f"end: some may have been sent to {record.target}; check there, then use --again "
            "to send them anyway"
        )
