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
        default=60.0,
        metavar="S",
        help="keep retrying an unreachable broker for S seconds before failing (default: 60)",
    )


def publish_to_kafka(lines: Iterable[bytes], args: argparse.Namespace, command: str) -> int:
    """Publish validated lines to the facts topic; 0 when all lines were published,
    1 when some were rejected (reported on stderr) or the broker failed."""
    import asyncio
    import os

    from codex_analytics.cli.kafka_check import connection_refused
    from codex_analytics.devtools.broker import kafka_cluster
    from codex_analytics.runtime.config import FACTS_PER_RECORD
    from codex_analytics.runtime.kafka import KafkaCluster, TopicSettings, ensure_topics
    from codex_analytics.runtime.progress import Progress
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
    refused = connection_refused(command, configured)
    if refused is not None:
        return refused

    def report(rejection: LineResult) -> None:
        print(
            f"{command}: line {rejection.line}: {rejection.reason} at "
            f"{rejection.path or '<record>'}: {rejection.detail}",
            file=sys.stderr,
        )

    async def main(cluster: KafkaCluster) -> int:
        await ensure_topics(cluster, {topics.facts: topics.partitions})
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
                retry_for_s=args.retry_for,
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
