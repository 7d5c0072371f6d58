"""Replay's pure parts: start points, deterministic capture batching, reset plans."""

from __future__ import annotations

import orjson
import pytest

from codex_analytics.contract import ISOLATED_EVENT_TYPES, join_batch
from codex_analytics.ops.group_offsets import GroupPositions, PartitionPosition, plan_reset
from codex_analytics.ops.replay import CaptureBatcher, StartPoint


def test_start_points_parse() -> None:
    assert StartPoint.parse("earliest") == StartPoint()
    assert StartPoint.parse("0:12,3:4").offsets == {0: 12, 3: 4}
    assert StartPoint.parse("1763798400000").timestamp_ms == 1763798400000
    assert StartPoint.parse("2026-11-22T08:00:00Z").timestamp_ms == 1795334400000
    assert StartPoint.parse("2h", now_ms=10_000_000).timestamp_ms == 2_800_000
    for bad in ("latest", "0:", "2026-11-22T08:00:00", "yesterday"):
        with pytest.raises(ValueError, match="--from"):
            StartPoint.parse(bad)
    with pytest.raises(ValueError, match="--to 'soon': expected 'earliest'"):
        StartPoint.parse("soon", flag="--to")


def test_capture_batches_close_on_count_and_bytes_per_route() -> None:
    batcher = CaptureBatcher(max_events=2, max_bytes=1000)
    ev = [orjson.dumps({"event_type": "x", "n": n}) for n in range(5)]
    size = len(ev[0])  # every event has the same size
    closed = []
    closed += batcher.add(b"a", ev[0])
    closed += batcher.add(b"b", ev[1])
    closed += batcher.add(b"a", ev[2])
    closed += batcher.add(b"a", ev[3])  # a is full at 2 events
    assert closed == [b'{"events":[' + ev[0] + b"," + ev[2] + b"]}"]
    two_events = len(b'{"events":[]}') + 2 * size + 1
    big = CaptureBatcher(max_events=10, max_bytes=two_events)
    assert big.add(b"a", ev[0]) == []
    assert big.add(b"a", ev[1]) == []  # exactly at the byte limit
    assert big.add(b"a", ev[2]) == [b'{"events":[' + ev[0] + b"," + ev[1] + b"]}"]
    # Flush: routes in first-seen order; every body is valid JSON.
    bodies = batcher.flush()
    assert [orjson.loads(b)["events"] for b in bodies] == [
        [{"event_type": "x", "n": 3}],
        [{"event_type": "x", "n": 1}],
    ]
    assert batcher.flush() == []


def _group() -> GroupPositions:
    return GroupPositions(
        "g",
        "t",
        0,
        "Empty",
        [PartitionPosition(0, 5, 100, 40), PartitionPosition(1, 0, 10, None)],
    )


def test_reset_plans_are_clamped_to_each_partition() -> None:
    group = _group()
    assert plan_reset(group, to="earliest") == {0: 5, 1: 0}
    assert plan_reset(group, to="latest") == {0: 100, 1: 10}
    assert plan_reset(group, to="offsets", offsets={0: 1}) == {0: 5}
    with pytest.raises(ValueError, match="topic t has no partition 7, 9 "):
        plan_reset(group, to="offsets", offsets={0: 1, 7: 3, 9: 1})
    assert plan_reset(group, to="shift", shift=-50) == {0: 5, 1: 0}  # from earliest if none
    assert plan_reset(group, to="shift", shift=7) == {0: 47, 1: 7}
    assert plan_reset(group, to="shift", shift=900) == {0: 100, 1: 10}
    assert plan_reset(group, to="timestamp", times={0: 60, 1: None}) == {0: 60, 1: 10}
    assert group.partitions[0].lag == 60
    assert group.partitions[1].lag is None
    with pytest.raises(ValueError, match="unknown"):
        plan_reset(group, to="sideways")


def test_capture_batcher_puts_isolated_events_in_a_body_of_their_own() -> None:
    (isolated,) = ISOLATED_EVENT_TYPES
    batcher = CaptureBatcher(max_events=10)
    plain = [orjson.dumps({"event_type": "x", "n": n}) for n in range(3)]
    alone = orjson.dumps({"event_type": isolated})
    assert batcher.add(b"a", plain[0], "x") == []
    assert batcher.add(b"b", plain[1], "x") == []
    # The route's open body closes first (order kept), then the isolated event alone.
    assert batcher.add(b"a", alone, isolated) == [join_batch([plain[0]]), join_batch([alone])]
    assert batcher.add(b"a", plain[2], "x") == []
    assert batcher.flush() == [join_batch([plain[1]]), join_batch([plain[2]])]
