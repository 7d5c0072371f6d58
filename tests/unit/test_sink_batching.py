"""The sink's batching core: limits, ordering, commit points, and replay determinism."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_analytics.contract import DecodeError, DecodeReason
from codex_analytics.contract.facts import AuthRoute
from codex_analytics.contract.records import Origin
from sinks.batching import (
    BODY_OVERHEAD,
    Batch,
    BatchLimits,
    CloseReason,
    PartitionBatcher,
    SinkRecord,
)

ROUTES = {
    name: AuthRoute(kind="chatgpt", account_id=f"acct-{name}", is_fedramp=False) for name in "abc"
}


def rec(
    offset: int,
    route: str = "a",
    *,
    ts: int = 0,
    size: int = 20,
    event_type: str = "codex_turn_event",
) -> SinkRecord:
    body = b'"' + b"x" * (size - 2) + b'"'
    return SinkRecord(
        offset=offset,
        timestamp_ms=ts,
        raw=b"raw",
        key=None,
        route=ROUTES[route],
        route_key=route.encode(),
        origin=Origin(f"inst-{route}", offset, 0),
        event_type=event_type,
        event_json=body,
    )


def feed(batcher: PartitionBatcher, records: list[SinkRecord]) -> list[Batch]:
    closed: list[Batch] = []
    for record in records:
        closed.extend(batcher.add(record))
    return closed


def offsets(batches: list[Batch]) -> list[list[int]]:
    return [[r.offset for r in b.records] for b in batches]


def test_count_limit_closes_a_batch_as_it_fills() -> None:
    batcher = PartitionBatcher(0, BatchLimits(max_events=3))
    closed = feed(batcher, [rec(i) for i in range(7)])
    assert offsets(closed) == [[0, 1, 2], [3, 4, 5]]
    assert {b.closed_by for b in closed} == {CloseReason.COUNT}
    assert offsets(batcher.flush()) == [[6]]


def test_byte_limit_closes_before_the_event_that_would_not_fit() -> None:
    limit = BODY_OVERHEAD + 3 * 20 + 2  # three 20-byte events and two commas
    batcher = PartitionBatcher(0, BatchLimits(max_bytes=limit))
    closed = feed(batcher, [rec(i) for i in range(7)])
    assert offsets(closed) == [[0, 1, 2], [3, 4, 5]]
    assert all(len(b.body()) == limit for b in closed)
    assert {b.closed_by for b in closed} == {CloseReason.BYTES}


def test_body_is_the_events_joined_and_size_is_tracked_exactly() -> None:
    batcher = PartitionBatcher(0, BatchLimits())
    feed(batcher, [rec(0, size=5), rec(1, size=9)])
    (batch,) = batcher.flush()
    assert batch.body() == b'{"events":["xxx","xxxxxxx"]}'
    assert batch.body_size == len(batch.body())


def test_event_time_closes_a_batch_when_the_partition_moves_past_its_window() -> None:
    # The window is the linger less the lateness kept for records on their way.
    batcher = PartitionBatcher(0, BatchLimits(max_wait_ms=1000, lateness_ms=200))
    assert feed(batcher, [rec(0, "a", ts=0), rec(1, "b", ts=500), rec(2, "a", ts=800)]) == []
    closed = feed(batcher, [rec(3, "b", ts=801)])  # past a's window (not b's)
    assert offsets(closed) == [[0, 2]]
    assert closed[0].closed_by is CloseReason.TIME
    assert offsets(batcher.flush()) == [[1, 3]]


def test_an_idle_partition_closes_a_batch_when_its_first_event_is_a_linger_old() -> None:
    # The linger bounds an event's wait from its record timestamp; the lateness is
    # inside it, not on top of it.
    batcher = PartitionBatcher(0, BatchLimits(max_wait_ms=1000, lateness_ms=200))
    feed(batcher, [rec(0, ts=10_000)])
    assert batcher.next_deadline_ms() == 11_000
    assert batcher.expire(10_999, caught_up=True) == []
    assert batcher.expire(50_000, caught_up=False) == []  # records still coming decide
    assert offsets(batcher.expire(11_000, caught_up=True)) == [[0]]
    assert batcher.next_deadline_ms() is None


@pytest.mark.parametrize(
    ("max_wait_ms", "lateness_ms", "window_ms"), [(1000, 200, 800), (100, 200, 50), (1, 200, 1)]
)
def test_the_lateness_takes_at_most_half_the_linger(
    max_wait_ms: int, lateness_ms: int, window_ms: int
) -> None:
    limits = BatchLimits(max_wait_ms=max_wait_ms, lateness_ms=lateness_ms)
    assert limits.window_ms == window_ms
    assert limits.window_ms + limits.lateness == max_wait_ms


def test_routes_never_share_a_batch_and_keep_their_order() -> None:
    batcher = PartitionBatcher(0, BatchLimits(max_events=2))
    closed = feed(batcher, [rec(0, "a"), rec(1, "b"), rec(2, "a"), rec(3, "b"), rec(4, "c")])
    assert offsets(closed) == [[0, 2], [1, 3]]
    assert offsets(batcher.flush()) == [[4]]


def test_isolated_events_travel_alone_between_their_neighbours() -> None:
    # delivery.md §3.4: [a, b, F1, F2, c, d] -> [a,b], [F1], [F2], [c,d]
    fp = "codex_accepted_line_fingerprints"
    batcher = PartitionBatcher(0, BatchLimits())
    records = [rec(0), rec(1), rec(2, event_type=fp), rec(3, event_type=fp), rec(4), rec(5)]
    closed = feed(batcher, records) + batcher.flush()
    assert offsets(closed) == [[0, 1], [2], [3], [4, 5]]


def test_too_large_and_undecodable_records_become_unsendable_single_batches() -> None:
    batcher = PartitionBatcher(0, BatchLimits(max_bytes=100))
    bad = SinkRecord(offset=2, timestamp_ms=0, raw=b"{", key=None)
    bad.error = DecodeError(DecodeReason.NOT_JSON, "", "truncated")
    closed = feed(batcher, [rec(0), rec(1, size=200), bad, rec(3)])
    assert [(b.closed_by, offsets([b])[0]) for b in closed] == [
        (CloseReason.TOO_LARGE, [1]),
        (CloseReason.UNDECODABLE, [2]),
    ]
    assert not any(b.sendable for b in closed)
    assert offsets(batcher.flush()) == [[0, 3]]


def test_idempotency_key_depends_on_the_origins_only() -> None:
    one, two = PartitionBatcher(0, BatchLimits()), PartitionBatcher(5, BatchLimits())
    feed(one, [rec(0), rec(1)])
    feed(two, [rec(0, ts=99), rec(1, size=50)])
    (a,), (b,) = one.flush(), two.flush()
    assert a.idempotency_key() == b.idempotency_key()
    three = PartitionBatcher(0, BatchLimits())
    feed(three, [rec(0), rec(2)])
    assert three.flush()[0].idempotency_key() != a.idempotency_key()


def test_commit_point_is_the_first_unfinished_offset() -> None:
    batcher = PartitionBatcher(0, BatchLimits(max_events=2))
    first, second = feed(batcher, [rec(0, "a"), rec(1, "a"), rec(2, "b"), rec(3, "b")])
    assert batcher.commit_point() == 0
    batcher.finished(second)  # [2, 3] done, [0, 1] still out
    assert batcher.commit_point() == 0
    batcher.finished(first)
    assert batcher.commit_point() == 4
    assert PartitionBatcher(0, BatchLimits()).commit_point() is None


def test_commit_point_moves_back_to_the_start_of_a_finished_batch_that_straddles_it() -> None:
    batcher = PartitionBatcher(0, BatchLimits(max_events=2))
    (a_batch,) = feed(batcher, [rec(0, "a"), rec(1, "b"), rec(2, "c"), rec(3, "a")])
    batcher.finished(a_batch)  # [0, 3] is done; b [1] and c [2] are open
    # Committing 1 would make a re-read form a's batch as [3] alone, under another key:
    # the point stays at the start of [0, 3] while anything inside it is unfinished.
    assert batcher.commit_point() == 0
    b_batch, c_batch = batcher.flush()
    batcher.finished(b_batch)
    assert batcher.commit_point() == 0
    batcher.finished(c_batch)
    assert batcher.commit_point() == 4


@st.composite
def record_streams(draw: st.DrawFn) -> tuple[BatchLimits, list[SinkRecord]]:
    limits = BatchLimits(
        max_events=draw(st.integers(1, 6)),
        max_bytes=draw(st.integers(BODY_OVERHEAD + 60, 400)),
        max_wait_ms=draw(st.integers(50, 1000)),
        lateness_ms=draw(st.integers(0, 300)),
        max_open_records=draw(st.integers(1, 12)),
    )
    count = draw(st.integers(1, 60))
    ts = 0
    records = []
    for offset in range(count):
        ts = max(0, ts + draw(st.integers(-50, 400)))
        route = draw(st.sampled_from("abc"))
        size = draw(st.sampled_from([10, 20, 45, 500]))
        kind = draw(
            st.sampled_from(["codex_turn_event"] * 5 + ["codex_accepted_line_fingerprints"])
        )
        records.append(rec(offset, route, ts=ts, size=size, event_type=kind))
    return limits, records


def assert_replay_forms_the_same_batches(
    limits: BatchLimits, records: list[SinkRecord], crash_at: int, done: int
) -> None:
    """Crash after ``crash_at`` records with the first ``done`` closed batches finished
    (a lane finishes in order), re-read from the commit point: every batch formed again
    is one of the original batches, whole, and every original batch before the point
    was finished (nothing lost)."""
    original = PartitionBatcher(0, limits)
    reference = feed(original, records) + original.flush()
    live = PartitionBatcher(0, limits)
    closed = feed(live, records[:crash_at])
    for batch in closed[:done]:
        live.finished(batch)
    point = live.commit_point()
    if point is None:
        return
    replay = PartitionBatcher(0, limits)
    again = feed(replay, records[point:]) + replay.flush()
    reference_spans = {tuple(o) for o in offsets(reference)}
    for span in offsets(again):
        assert tuple(span) in reference_spans, (span, point)
    finished = {tuple(o) for o in offsets(closed[:done])}
    for span in offsets(reference):
        if span[0] < point:
            assert tuple(span) in finished, (span, point)
    assert sorted(itertools.chain.from_iterable(offsets(again))) == list(range(point, len(records)))


@settings(max_examples=300, deadline=None)
@given(record_streams(), st.data())
def test_a_re_read_from_the_commit_point_forms_the_same_batches(
    stream: tuple[BatchLimits, list[SinkRecord]], data: st.DataObject
) -> None:
    """The property behind stable Idempotency-Keys, for any crash point."""
    limits, records = stream
    crash_at = data.draw(st.integers(0, len(records)), label="records read before the crash")
    probe = PartitionBatcher(0, limits)
    closed = len(feed(probe, records[:crash_at]))
    done = data.draw(st.integers(0, closed), label="batches finished")
    assert_replay_forms_the_same_batches(limits, records, crash_at, done)


def test_a_re_read_that_misses_an_old_open_batch_still_cuts_the_same() -> None:
    # a0 is open while u1, p2, p3 arrive, so the original run feels one more open
    # record than a re-read from offset 1 does. Closing the oldest batch under pressure
    # makes a0 pay for it, and u and p are cut the same either way; closing the newest
    # instead would cut p as [2] and [3] once and as [2, 3] on the re-read.
    limits = BatchLimits(max_open_records=2, max_wait_ms=100)
    records = [
        rec(0, "a", ts=0),
        rec(1, "b", ts=10),
        rec(2, "c", ts=20),
        rec(3, "c", ts=30),
        rec(4, "a", ts=150),
    ]
    for crash_at in range(len(records) + 1):
        probe = PartitionBatcher(0, limits)
        for done in range(len(feed(probe, records[:crash_at])) + 1):
            assert_replay_forms_the_same_batches(limits, records, crash_at, done)


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="lateness_ms"):
        BatchLimits(lateness_ms=-1)
    with pytest.raises(ValueError, match="max_events"):
        BatchLimits(max_events=0)
    with pytest.raises(ValueError, match="max_bytes"):
        BatchLimits(max_bytes=5)
