"""The verdict (delivered vs reduce) and the shared metric helpers."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry, generate_latest

from codex_analytics.devtools.localstack import MetricsSnapshot
from codex_analytics.devtools.verify import compare, events_of_bodies, reference_events
from codex_analytics.runtime.metrics import (
    CallbackCollector,
    counter_family,
    lag_family,
    partition_lag,
)
from codex_analytics.simulator.generator import GeneratorConfig, SessionGenerator


def _facts(n: int = 600) -> list[bytes]:
    return [
        orjson.dumps(f) for f in SessionGenerator(GeneratorConfig(instances=8, seed=3)).facts(n)
    ]


def test_reference_events_equal_bodies_rebuilt_from_them() -> None:
    expected = reference_events(_facts())
    bodies = [
        b'{"events":[' + b",".join(expected[i : i + 7]) + b"]}" for i in range(0, len(expected), 7)
    ]
    delivered = events_of_bodies(bodies)
    assert delivered == expected  # parse + dump keeps every byte, key order included
    verdict = compare(list(reversed(delivered)), expected)  # batching order is free
    assert verdict.passed
    assert verdict.summary.startswith("PASS")


def test_compare_names_missing_and_unexpected_events_by_type() -> None:
    expected = reference_events(_facts())
    delivered = [*expected[1:], expected[2]]
    verdict = compare(delivered, expected)
    assert not verdict.passed
    first_type = orjson.loads(expected[0])["event_type"]
    assert "1 missing" in verdict.detail
    assert first_type in verdict.detail
    assert "1 unexpected" in verdict.detail
    assert verdict.summary.startswith("FAIL: ")


def test_partition_lag_leaves_out_unknown_positions() -> None:
    assert partition_lag({0: 10, 1: None, 2: 5}, {0: 4, 1: 3}) == {0: 6}
    assert partition_lag({0: 3}, {0: 9}) == {0: 0}


def test_scraped_families_sum_over_processes() -> None:
    registry = CollectorRegistry()
    counts = {"turn_started": 3, "plugin_used": 1}
    lags = {0: 2, 3: 5}
    registry.register(
        CallbackCollector(
            lambda: [
                counter_family("codex_x_facts", "Facts.", "kind", counts),
                lag_family("codex_x_lag", "Lag.", lags),
            ]
        )
    )
    text = generate_latest(registry).decode()
    snapshot = MetricsSnapshot()
    snapshot.add_text(text)
    snapshot.add_text(text)  # a second worker
    assert snapshot.total("codex_x_facts_total") == 8
    assert snapshot.total("codex_x_facts_total", kind="plugin_used") == 2
    assert snapshot.by_label("codex_x_lag", "partition") == {"0": 4, "3": 10}
    counts["turn_started"] = 4  # read at scrape time
    assert 'codex_x_facts_total{kind="turn_started"} 4.0' in generate_latest(registry).decode()


def test_stream_metrics_read_the_counts_at_scrape_time() -> None:
    from streams.metrics import StreamCounts, StreamMetrics
    from streams.reducer.drops import DropReason, ReducerStats

    stats, counts = ReducerStats(), StreamCounts()
    metrics = StreamMetrics(stats, counts, lambda: {2: 7})
    stats.count_fact("turn_started")
    stats.count_event("codex_turn_event")
    stats.count_drop(DropReason.DEDUPE_REPEAT)
    counts.count_dead_letter("not_json")
    counts.records = 3
    metrics.batch_seconds.observe(0.01)
    snapshot = MetricsSnapshot()
    snapshot.add_text(metrics.render().decode())
    assert snapshot.total("codex_stream_facts_total", kind="turn_started") == 1
    assert snapshot.total("codex_stream_events_total", type="codex_turn_event") == 1
    assert snapshot.total("codex_stream_drops_total", reason="dedupe_repeat") == 1
    assert snapshot.total("codex_stream_dead_letters_total", reason="not_json") == 1
    assert snapshot.total("codex_stream_worker_total", what="records") == 3
    assert snapshot.by_label("codex_stream_consumer_lag", "partition") == {"2": 7}
    assert snapshot.total("codex_stream_batch_seconds_count") == 1
