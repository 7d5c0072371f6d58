"""The verdict (delivered vs reduce) and the shared metric helpers."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry, generate_latest

from codex_analytics.devtools.localstack import MetricsSnapshot
from codex_analytics.devtools.verify import compare, events_of_bodies, reference_events
from codex_analytics.runtime.metrics import (
    Backlog,
    CallbackCollector,
    LagClock,
    backlogs,
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
    metrics = StreamMetrics(stats, counts, lambda: {2: Backlog(7, 1_000), 5: None})
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
    assert snapshot.total("codex_stream_records_total") == 3
    assert snapshot.by_label("codex_stream_consumer_lag_records", "partition") == {"2": 7}
    assert snapshot.total("codex_stream_batch_seconds_count") == 1
    assert snapshot.total("codex_stream_assigned_partitions") == 2  # one lag still unknown
    (seconds,) = snapshot.by_label("codex_stream_consumer_lag_seconds", "partition").items()
    assert seconds[0] == "2"
    assert seconds[1] > 1_000_000  # the record of 1970 is old
    info = snapshot.by_label("codex_analytics_build_info", "service")
    assert info == {"stream": 1}
    assert snapshot.total("process_resident_memory_bytes") > 0


def test_worker_counts_are_one_counter_each() -> None:
    from streams.metrics import StreamCounts, StreamMetrics
    from streams.reducer.drops import ReducerStats

    counts = StreamCounts(
        records=1,
        batches=2,
        misrouted=3,
        seeks=4,
        stalls=5,
        corrupt_states=6,
        swept_states=7,
        sweeps=8,
    )
    snapshot = MetricsSnapshot()
    snapshot.add_text(StreamMetrics(ReducerStats(), counts, dict).render().decode())
    names = (
        "records",
        "batches",
        "misrouted_facts",
        "offset_seeks",
        "stalled_partitions",
        "corrupt_states",
        "swept_states",
        "sweeps",
    )
    assert [snapshot.total(f"codex_stream_{n}_total") for n in names] == list(range(1, 9))
    assert snapshot.total("codex_stream_assigned_partitions") == 0


def test_partition_counts_are_series_at_zero_from_the_start() -> None:
    """What a stall or a loss shows in, per facts partition, before anything happened."""
    from streams.metrics import StreamCounts, StreamMetrics
    from streams.reducer.drops import ReducerStats

    counts = StreamCounts.for_partitions(3)
    metrics = StreamMetrics(ReducerStats(), counts, dict, lambda: {1: 40, 2: None})
    snapshot = MetricsSnapshot()
    snapshot.add_text(metrics.render().decode())
    zeros = {"0": 0, "1": 0, "2": 0}
    for short in ("fetched_records", "processed_records", "acked_records", "held_records"):
        assert snapshot.by_label(f"codex_stream_{short}_total", "partition") == zeros, short
    assert snapshot.by_label("codex_stream_partition_seeks_total", "partition") == zeros
    assert snapshot.by_label("codex_stream_committed_offset", "partition") == {"1": 40}
    assert "codex_stream_rebalances_total 0.0" in metrics.render().decode()
    counts.held[2] += 5  # read at scrape time
    counts.rebalances += 1
    snapshot = MetricsSnapshot()
    snapshot.add_text(metrics.render().decode())
    assert snapshot.by_label("codex_stream_held_records_total", "partition")["2"] == 5
    assert snapshot.total("codex_stream_rebalances_total") == 1


def test_backlogs_know_the_oldest_record_only_when_behind() -> None:
    oldest = {0: 111, 1: 222}.get
    assert backlogs({0: 10, 1: 5, 2: None}, {0: 4, 1: 5, 2: 3}, oldest) == {
        0: Backlog(6, 111),
        1: Backlog(0, None),
        2: None,
    }


def test_lag_clock_is_the_age_of_the_oldest_unprocessed_record() -> None:
    now = [1_000.0]
    clock = LagClock(lambda: now[0])
    assert clock.seconds({0: Backlog(0), 1: Backlog(3, 990_000)}) == {0: 0.0, 1: 10.0}
    # Behind, the oldest record not fetched: the time since first seen behind grows
    # while the consumer does not move (never "caught up" blindly).
    assert clock.seconds({0: Backlog(5)}) == {0: 0.0}
    now[0] += 30
    assert clock.seconds({0: Backlog(5)}) == {0: 30.0}
    assert clock.seconds({0: Backlog(0)}) == {0: 0.0}  # caught up: forgotten
    now[0] += 5
    assert clock.seconds({0: Backlog(2)}) == {0: 0.0}
    # A producer clock ahead of ours is not a negative lag.
    assert clock.seconds({1: Backlog(1, 2_000_000)}) == {1: 0.0}


def test_pending_timestamps_follow_processing_and_seeks() -> None:
    from streams.metrics import PendingTimestamps

    pending = PendingTimestamps()
    for offset in range(5):
        pending.handed(0, [(offset, 100 + offset)])
    pending.handed(1, [(7, 500)])
    assert pending.oldest_ms(0) == 100
    pending.processed(0, 3)
    assert pending.oldest_ms(0) == 103
    pending.processed(0, 5)
    assert pending.oldest_ms(0) is None
    pending.handed(0, [(5, 105)])
    pending.forget(0)  # a seek back: handed over again
    assert pending.oldest_ms(0) is None
    pending.keep_only([0])  # partition 1 revoked
    assert pending.oldest_ms(1) is None


def test_a_fresh_sink_exports_every_outcome_at_zero() -> None:
    """The not-consuming alert takes the rate of the handled events: a sink that has
    handled nothing since it started must export 0, not no series at all."""
    from sinks.metrics import OUTCOMES, SinkMetrics

    metrics = SinkMetrics()
    text = metrics.render().decode()
    for outcome in OUTCOMES:
        assert f'codex_sink_events_total{{outcome="{outcome}"}} 0.0' in text
