"""``codex-analytics topics plan|apply``: the pipeline's topics, as the topic policy
creates them (:mod:`codex_analytics.runtime.topic_plan`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codex_analytics.runtime.kafka import KafkaCluster
    from codex_analytics.runtime.topic_plan import ExistingTopic, Finding, TopicPlan

DESCRIPTION = """\
The pipeline's topics as the services create them when they are missing: the facts and
events topics, both dead-letter topics and the stream worker's state changelog
(<ANALYTICS_STREAM_APP_ID>-reducer-state-changelog, compacted, as many partitions as
the facts topic), with ANALYTICS_TOPIC_PARTITIONS, ANALYTICS_TOPIC_REPLICATION_FACTOR and
their configs (cleanup.policy, retention.ms, max.message.bytes).

  topics plan                 what would be created, and how the existing topics differ
                              (without KAFKA_BOOTSTRAP_SERVERS: the plan alone)
  topics plan --format json   the same, for tooling (Terraform, a GitOps repository...)
  topics apply                create the missing topics; existing ones are never changed

Existing topics are compared with the plan: another partition count, replication factor
or config is a warning (left as it is); a changelog whose partition count differs from
the facts topic's is an error (the stream's state table is co-partitioned with it).
min.insync.replicas is left to the cluster: set it to 2 with replication 3.

Run 'topics apply' once per cluster (a Kubernetes Job, a compose one-shot) and set
ANALYTICS_CREATE_TOPICS=false on the services where they may not create topics.

Exit status: 0 when every topic exists (apply) or could (plan) as planned, warnings
included; 1 on an error finding or when the cluster is unreachable within
ANALYTICS_KAFKA_WAIT_S; 2 on a usage error.
"""

_LEVEL_WIDTH = 8


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    plan = actions.add_parser("plan", help="what would be created; how existing topics differ")
    apply = actions.add_parser("apply", help="create the missing topics (idempotent)")
    for sub in (plan, apply):
        sub.add_argument(
            "--format", choices=("text", "json"), default="text", help="output (default: text)"
        )


def run(args: argparse.Namespace) -> int:
    from codex_analytics.runtime.kafka import KafkaCluster
    from codex_analytics.runtime.kafka_start import KafkaStartError, start_failed

    try:
        plan = _plan(os.environ)
        cluster = KafkaCluster.configured()
        if cluster is None and args.action == "apply":
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS is not set: apply needs a cluster")
    except ValueError as exc:
        return _failed(exc, 2)
    try:
        return asyncio.run(_main(args, plan, cluster))
    except KafkaStartError as exc:
        return start_failed("topics", exc)


def _failed(exc: Exception, status: int) -> int:
    print(f"topics: {exc}", file=sys.stderr)
    return status


def _plan(env: Mapping[str, str]) -> TopicPlan:
    from codex_analytics.runtime.kafka import TopicSettings
    from codex_analytics.runtime.topic_plan import TopicPlan
    from streams.settings import APP_ID

    return TopicPlan.pipeline(TopicSettings.from_env(env), app_id=APP_ID.read(env))


async def _main(args: argparse.Namespace, plan: TopicPlan, cluster: KafkaCluster | None) -> int:
    from codex_analytics.runtime.kafka_start import apply_plan, inspect_topics
    from codex_analytics.runtime.topic_plan import review

    created: list[str] = []
    if cluster is None:
        existing: dict[str, ExistingTopic] | None = None
    elif args.action == "apply":
        created, existing = await apply_plan(cluster, plan, within=cluster.start_wait_s)
    else:
        existing = await inspect_topics(cluster, plan, within=cluster.start_wait_s)
    findings = None if existing is None else review(plan, existing)
    where = "no cluster (KAFKA_BOOTSTRAP_SERVERS unset)" if cluster is None else cluster.bootstrap
    if args.format == "json":
        _print_json(plan, where, findings, existing, created)
    else:
        _print_text(plan, where, findings, created, apply=args.action == "apply")
    return 1 if findings and any(f.level == "error" for f in findings) else 0


def _print_text(
    plan: TopicPlan,
    where: str,
    findings: Sequence[Finding] | None,
    created: Sequence[str],
    *,
    apply: bool,
) -> None:
    from codex_analytics.runtime.topic_plan import describe

    creating = "on" if plan.create else "off (ANALYTICS_CREATE_TOPICS=false)"
    print(f"topics on {where}; creation by the services {creating}")
    by_name = {f.topic: f for f in findings or ()}
    for spec in plan.specs:
        finding = by_name.get(spec.name)
        if spec.name in created:
            level, text = "created", describe(spec)
        elif finding is None:
            level, text = "plan", describe(spec)
        else:
            level, text = finding.level, finding.text
        print(f"  {level:<{_LEVEL_WIDTH}} {spec.name} ({spec.role}): {text}")
    if apply:
        print("existing topics are never changed; change them with your cluster's tools")


def _print_json(
    plan: TopicPlan,
    where: str,
    findings: Sequence[Finding] | None,
    existing: Mapping[str, ExistingTopic] | None,
    created: Sequence[str],
) -> None:
    import orjson

    by_name = {f.topic: f for f in findings or ()}
    topics: list[dict[str, Any]] = []
    for spec in plan.co_partitioned(existing or {}).specs:
        finding = by_name.get(spec.name)
        have = (existing or {}).get(spec.name)
        topics.append(
            {
                "name": spec.name,
                "role": spec.role,
                "partitions": spec.partitions,
                "replication_factor": spec.replication_factor,
                "configs": dict(spec.configs),
                "status": "created"
                if spec.name in created
                else (finding.level if finding else "plan"),
                "detail": finding.text if finding else None,
                "existing": None
                if have is None
                else {
                    "partitions": have.partitions,
                    "replication_factor": have.replication_factor,
                    "configs": None if have.configs is None else dict(have.configs),
                },
            }
        )
    doc = {"cluster": where, "create_topics": plan.create, "topics": topics}
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
