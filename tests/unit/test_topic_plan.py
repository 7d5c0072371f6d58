"""The topic policy as a pure plan: names, partitions, replication, configs, and the
review of a cluster's topics against it (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codex_analytics.runtime.kafka import KafkaCluster, TopicSettings
from codex_analytics.runtime.topic_plan import (
    ExistingTopic,
    TopicPlan,
    changelog_topic,
    review,
)
from streams.settings import StreamSettings

ENV = {
    "ANALYTICS_TOPIC_PARTITIONS": "12",
    "ANALYTICS_TOPIC_REPLICATION_FACTOR": "3",
    "ANALYTICS_TOPIC_RETENTION_HOURS": "48",
    "ANALYTICS_DLQ_RETENTION_HOURS": "forever",
    "ANALYTICS_MAX_RECORD_BYTES": "2000000",
}


def test_every_topic_gets_the_replication_factor_and_its_configs() -> None:
    plan = TopicPlan.pipeline(TopicSettings.from_env(ENV), app_id="app")
    by_role = {spec.role: spec for spec in plan.specs}
    assert [spec.name for spec in plan.specs] == [
        "analytics.facts",
        "analytics.events",
        "analytics.facts.dlq",
        "analytics.events.dlq",
        "app-reducer-state-changelog",
    ]
    assert {spec.replication_factor for spec in plan.specs} == {3}
    assert {spec.partitions for spec in plan.specs} == {12}
    # The broker must take what producers may send: the record limit + 1024.
    assert {spec.configs["max.message.bytes"] for spec in plan.specs} == {"2001024"}
    for role in ("facts", "events"):
        assert by_role[role].configs["retention.ms"] == str(48 * 3_600_000)
        assert by_role[role].configs["cleanup.policy"] == "delete"
    for role in ("facts_dlq", "events_dlq"):
        assert by_role[role].configs["retention.ms"] == "-1"
    changelog = by_role["changelog"]
    assert changelog.configs["cleanup.policy"] == "compact"
    assert "retention.ms" not in changelog.configs  # compaction keeps the latest state
    assert plan.create


def test_defaults_retention_broker_and_no_changelog_without_an_app_id() -> None:
    plan = TopicPlan.pipeline(TopicSettings.from_env({}))
    assert [spec.role for spec in plan.specs] == ["facts", "events", "facts_dlq", "events_dlq"]
    assert plan.spec("facts").replication_factor == 1
    assert plan.spec("facts").configs["retention.ms"] == str(168 * 3_600_000)
    assert plan.spec("events_dlq").configs["retention.ms"] == str(720 * 3_600_000)
    broker = TopicPlan.pipeline(
        TopicSettings.from_env({"ANALYTICS_TOPIC_RETENTION_HOURS": "broker"})
    )
    assert "retention.ms" not in broker.spec("facts").configs
    assert TopicSettings.from_env({"ANALYTICS_CREATE_TOPICS": "false"}).create is False


@pytest.mark.parametrize("value", ["0", "-3", "week", "nan"])
def test_a_bad_retention_names_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match="ANALYTICS_TOPIC_RETENTION_HOURS must be hours > 0"):
        TopicSettings.from_env({"ANALYTICS_TOPIC_RETENTION_HOURS": value})


def test_the_wait_is_a_cluster_setting() -> None:
    cluster = KafkaCluster.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k:9092"})
    assert cluster.start_wait_s == 60.0
    assert KafkaCluster.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "ANALYTICS_KAFKA_WAIT_S": "2.5"}
    ).start_wait_s == pytest.approx(2.5)
    with pytest.raises(ValueError, match="ANALYTICS_KAFKA_WAIT_S"):
        KafkaCluster.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "ANALYTICS_KAFKA_WAIT_S": "-1"})


def test_services_create_what_they_use() -> None:
    settings = StreamSettings.from_env({**ENV, "ANALYTICS_STREAM_APP_ID": "s"})
    assert [s.role for s in settings.topic_plan.specs] == [
        "facts",
        "events",
        "facts_dlq",
        "changelog",
    ]
    plan = TopicPlan.pipeline(settings.topics)
    assert plan.renamed("events", "replayed").specs[0].configs == plan.spec("events").configs
    assert plan.renamed("events", "replayed").names == ["replayed"]


def test_the_changelog_is_the_one_faust_writes(tmp_path: Path) -> None:
    """The plan's changelog name and configs are the stream app's table's, and Faust
    itself creates no topic (the runner did, from the plan)."""
    from streams.faust_adapter.app import StreamApp

    settings = StreamSettings.from_env(
        {**ENV, "ANALYTICS_STREAM_APP_ID": "plan-test", "ANALYTICS_STREAM_DATA_DIR": str(tmp_path)}
    )
    app = StreamApp(settings, KafkaCluster("127.0.0.1:1"), partitions=12)
    assert app.store.changelog == changelog_topic("plan-test")
    assert app.store.changelog == settings.topic_plan.spec("changelog").name
    conf = app._app.conf
    assert conf.topic_allow_declare is False
    assert conf.topic_disable_leader is True
    assert conf.topic_replication_factor == 3


def existing(name: str, partitions: int, rf: int = 1, **configs: str) -> ExistingTopic:
    return ExistingTopic(name, partitions, rf, configs or None)


def test_review_creates_what_is_missing_and_never_changes_what_exists() -> None:
    plan = TopicPlan.pipeline(TopicSettings.from_env(ENV), app_id="app")
    have = {
        "analytics.facts": existing("analytics.facts", 6, 3),
        "analytics.events": existing("analytics.events", 12, 1, **{"cleanup.policy": "compact"}),
        "analytics.facts.dlq": existing("analytics.facts.dlq", 12, 3),
    }
    findings = {f.topic: f for f in review(plan, have)}
    assert findings["analytics.facts"].level == "warning"
    assert "has 6 partitions, the plan 12" in findings["analytics.facts"].text
    assert findings["analytics.events"].level == "warning"
    assert "has replication 1, the plan 3" in findings["analytics.events"].text
    assert "has cleanup.policy=compact, the plan delete" in findings["analytics.events"].text
    assert findings["analytics.facts.dlq"].level == "ok"
    assert findings["analytics.events.dlq"].level == "create"
    # A missing changelog follows the facts topic the cluster has, not the settings.
    changelog = findings["app-reducer-state-changelog"]
    assert changelog.level == "create"
    assert changelog.text.startswith("missing: would create with 6 partitions, replication 3")


def test_a_changelog_that_does_not_match_the_facts_topic_is_an_error() -> None:
    plan = TopicPlan.pipeline(TopicSettings.from_env(ENV), app_id="app")
    have = {
        "analytics.facts": existing("analytics.facts", 12, 3),
        "app-reducer-state-changelog": existing("app-reducer-state-changelog", 8, 3),
    }
    [changelog] = [f for f in review(plan, have) if f.topic == "app-reducer-state-changelog"]
    assert changelog.level == "error"
    assert "has 8 partitions, the facts topic 12" in changelog.text


def test_pre_created_topics_that_are_missing_are_errors() -> None:
    plan = TopicPlan.pipeline(
        TopicSettings.from_env({**ENV, "ANALYTICS_CREATE_TOPICS": "false"})
    ).only("facts")
    [finding] = review(plan, {})
    assert finding.level == "error"
    assert "ANALYTICS_CREATE_TOPICS=false" in finding.text
