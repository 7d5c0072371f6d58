"""What ``produce`` and ``generate --to-kafka`` share: options, the Kafka connection
(embedded broker when none is configured), the facts topic, progress and the summary."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable


def add_publish_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate", type=float, metavar="N", help="publish at most N facts per second"
    )
    parser.add_argument(
        "--pack",
        type=int,
        default=None,
        metavar="N",
        help="pack up to N consecutive facts of one instance per record "
        "(default: ANALYTICS_FACTS_PER_RECORD, else 1 = one envelope per record)",
    )
    parser.add_argument(
        "--retry-for",
        type=float,
        default=None,
        metavar="S",
        help="keep retrying an unreachable broker for S seconds before failing, at the start "
        "(topic creation included) and while publishing (default: ANALYTICS_KAFKA_WAIT_S, "
        "else 60)",
    )


def publish_to_kafka(lines: Iterable[bytes], args: argparse.Namespace, command: str) -> int:
    """Publish validated lines to the facts topic; 0 when all lines were published,
    1 when some were rejected (reported on stderr) or the broker failed."""
    import asyncio
    import os

    from codex_analytics.devtools.broker import kafka_cluster
    from codex_analytics.runtime.config import FACTS_PER_RECORD
    from codex_analytics.runtime.kafka import BROKER_WAIT_S, KafkaCluster, TopicSettings
    from codex_analytics.runtime.kafka_start import KafkaStartError, prepare_topics, start_failed
    from codex_analytics.runtime.progress import Progress
    from codex_analytics.runtime.topic_plan import TopicPlan
    from producers.publishing.bulk import BulkPublishError, publish_lines
    from producers.publishing.ingest import LineResult
    from producers.publishing.transport import KafkaFactTransport

    try:
        topics = TopicSettings.from_env()
        pack = args.pack or FACTS_PER_RECORD.read(os.environ)
        configured = KafkaCluster.configured()
    except ValueError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    if args.rate is not None and args.rate <= 0:
        print(f"{command}: --rate must be positive", file=sys.stderr)
        return 2
    if args.retry_for is not None and args.retry_for < 0:
        print(f"{command}: --retry-for must not be negative", file=sys.stderr)
        return 2

    def report(rejection: LineResult) -> None:
        print(
            f"{command}: line {rejection.line}: {rejection.reason} at "
            f"{rejection.path or '<record>'}: {rejection.detail}",
            file=sys.stderr,
        )

    async def main(cluster: KafkaCluster) -> int:
        retry_for = cluster.start_wait_s if args.retry_for is None else args.retry_for
        plan = TopicPlan.pipeline(topics).only("facts")
        try:
            limit = BROKER_WAIT_S.name if args.retry_for is None else "--retry-for"
            await prepare_topics(cluster, plan, within=retry_for, limit=limit)
        except KafkaStartError as exc:
            return start_failed(command, exc)
        transport = KafkaFactTransport(
            cluster,
            topics.facts,
            client_id=f"codex-analytics-{command}",
            max_record_bytes=topics.max_record_bytes,
        )
        try:
            summary = await publish_lines(
                lines,
                transport,
                max_facts_per_record=pack,
                max_record_bytes=topics.max_record_bytes,
                rate=args.rate,
                retry_for_s=retry_for,
                progress=Progress(),
                on_rejection=report,
            )
        except BulkPublishError as exc:
            print(
                f"{command}: {exc} ({exc.summary.accepted:,} facts were published before)",
                file=sys.stderr,
            )
            return 1
        finally:
            await transport.close()
        print(
            f"{command}: published {summary.accepted:,} facts in {summary.records:,} records "
            f"to {topics.facts} on {cluster.bootstrap} ({summary.rate:,.0f} facts/s); "
            f"rejected {summary.rejected:,} lines",
            file=sys.stderr,
        )
        return 1 if summary.rejected else 0

    with kafka_cluster(configured) as cluster:
        return asyncio.run(main(cluster))
