"""The offset continuity guard of the stream worker."""

from __future__ import annotations

from dataclasses import dataclass

from streams.offsets import OffsetGuard


@dataclass
class Record:
    tp: str
    offset: int


def events(*pairs: tuple[str, int]) -> list[Record]:
    return [Record(tp, offset) for tp, offset in pairs]


def offsets(batch: list[Record]) -> list[tuple[str, int]]:
    return [(r.tp, r.offset) for r in batch]


def started(**starts: int) -> OffsetGuard:
    guard = OffsetGuard(retry_after_s=2.0)
    for tp, offset in starts.items():
        guard.start(tp, offset)
    return guard


def test_contiguous_offsets_are_processed_and_acked() -> None:
    guard = started(a=10, b=0)
    result = guard.check(events(("a", 10), ("b", 0), ("a", 11), ("b", 1)), now=0)
    assert offsets(result.process) == [("a", 10), ("b", 0), ("a", 11), ("b", 1)]
    assert result.ack == result.process
    assert result.seek == {}
    assert guard.expected == {"a": 12, "b": 2}


def test_a_hole_holds_back_its_partition_and_asks_for_one_seek() -> None:
    guard = started(a=10, b=0)
    result = guard.check(events(("a", 10), ("a", 13), ("b", 0), ("a", 14)), now=0)
    assert offsets(result.process) == [("a", 10), ("b", 0)]
    assert offsets(result.ack) == [("a", 10), ("b", 0)]  # nothing past the hole is acked
    assert result.seek == {"a": 11}
    # Stale records keep coming: no new seek until the retry interval has passed.
    assert guard.check(events(("a", 15)), now=1).seek == {}
    assert guard.check(events(("a", 16)), now=2.5).seek == {"a": 11}


def test_a_hole_nothing_arrives_for_is_sought_again_on_the_clock() -> None:
    # Everything past the hole was fetched and held back, then the seek was lost (Faust
    # seeking to the committed offsets at the same moment): no record will come to
    # trigger ``check``, so the batch loop asks ``due_seeks`` while it waits.
    guard = started(a=10, b=0)
    guard.check(events(("a", 12)), now=0)
    assert guard.next_retry_in(now=0.5) == 1.5
    assert guard.due_seeks(now=1.9) == {}
    assert guard.due_seeks(now=2.0) == {"a": 10}
    assert guard.due_seeks(now=2.1) == {}  # the clock restarts with each seek
    assert guard.next_retry_in(now=2.5) == 1.5
    guard.check(events(("a", 10)), now=3)
    assert guard.next_retry_in(now=3) is None
    assert guard.due_seeks(now=100) == {}


def test_re_read_records_are_acked_once_more_but_not_reduced_again() -> None:
    guard = started(a=10)
    guard.check(events(("a", 10), ("a", 11), ("a", 13)), now=0)
    result = guard.check(events(("a", 10), ("a", 11), ("a", 12), ("a", 13)), now=0.5)
    assert offsets(result.process) == [("a", 12), ("a", 13)]
    assert offsets(result.ack) == [("a", 10), ("a", 11), ("a", 12), ("a", 13)]
    assert result.seek == {}
    assert guard.holes == {}


def test_unknown_partitions_and_reset() -> None:
    guard = started(a=3)
    assert guard.unknown(events(("a", 3), ("b", 7))) == {"b"}
    guard.reset()
    assert guard.expected == {}
    assert guard.holes == {}


def test_what_a_hole_holds_back_is_listed() -> None:
    guard = started(a=10, b=0)
    result = guard.check(events(("a", 10), ("a", 12), ("b", 0), ("a", 13)), now=0)
    assert offsets(result.held) == [("a", 12), ("a", 13)], "neither reduced nor acked"


def test_a_revoked_partition_is_forgotten_with_its_hole() -> None:
    guard = started(a=10, b=0)
    guard.check(events(("a", 12)), now=0)
    guard.forget("a")
    assert guard.due_seeks(now=100) == {}, "no seek of a partition no longer ours"
    assert guard.unknown(events(("a", 10), ("b", 0))) == {"a"}


def test_a_partition_fetched_past_what_arrived_is_sought_back() -> None:
    """Records lost between the fetch and the worker at the end of a partition: no later
    record shows the hole, the fetch position does."""
    guard = started(a=10, b=0)
    guard.check(events(("a", 10), ("b", 0)), now=0)  # expects a 11, b 1
    positions = {"a": 40, "b": 1}
    assert guard.stalled(positions, now=1.9) == {}  # records may still be on their way
    assert guard.stalled(positions, now=2.0) == {"a": 11}
    assert guard.stalled(positions, now=2.5) == {}  # now a hole: due_seeks repeats it
    assert guard.due_seeks(now=4.0) == {"a": 11}
    result = guard.check(events(("a", 11)), now=4.1)  # the re-read fills it
    assert offsets(result.process) == [("a", 11)]
    assert guard.holes == {}


def test_no_stall_or_repeated_seek_is_found_while_the_flow_is_stopped() -> None:
    """A rebalance stops the flow for seconds (Faust clears its buffers, the join takes
    half the session timeout): silence then is no hole. The waits count from when the
    flow runs again (the stress bench's 2-8 false stalls per staggered run)."""
    guard = started(a=10, b=0)
    guard.check(events(("a", 10), ("b", 0)), now=0)
    guard.check(events(("b", 3)), now=0)  # a hole in b: sought back at once
    positions = {"a": 40, "b": 1}
    for now in (1.0, 2.0, 3.0, 4.0):  # rebalancing: the batch loop tells the guard
        guard.flow_stopped(now)
    assert guard.stalled(positions, now=5.9) == {}
    assert guard.due_seeks(now=5.9) == {}
    assert guard.next_retry_in(now=5.0) == 1.0
    assert guard.stalled(positions, now=6.0) == {"a": 11}
    assert guard.due_seeks(now=6.0) == {"b": 1}


def test_a_partition_whose_records_keep_arriving_is_not_stalled() -> None:
    guard = started(a=0)
    guard.check(events(("a", 0)), now=0)
    guard.check(events(("a", 1)), now=1.5)
    assert guard.stalled({"a": 50}, now=3.0) == {}
    assert guard.stalled({"a": 2}, now=9.0) == {}  # fetched no further than expected
    assert guard.stalled({"b": 7}, now=9.0) == {}  # not started: nothing expected yet
    guard.reset()
    assert guard.stalled({"a": 50}, now=20.0) == {}


def test_a_partition_none_of_whose_records_arrived_is_watched_from_its_start() -> None:
    """Every record fetched of a partition lost before delivery: no record ever told the
    guard where it starts, so nothing revealed the hole (the seek-and-resume test's stall
    under load: position 39, committed none, nothing processed). Watched from where it
    starts, it is sought back once it stays silent past that."""
    guard = OffsetGuard()
    guard.watch({"a": 0, "b": 5}, now=10.0)
    positions = {"a": 39, "b": 5}
    assert guard.stalled(positions, now=11.9) == {}  # records may still be on their way
    assert guard.stalled(positions, now=12.0) == {"a": 0}  # b fetched nothing: fine
    guard.watch({"a": 7}, now=13.0)  # known already: kept
    assert guard.expected["a"] == 0
    result = guard.check(events(("a", 0)), now=13.0)
    assert offsets(result.process) == [("a", 0)]
