"""The consumer's batch route (``streams.faust_adapter.transport``): what it hands on,
what it holds back, and how its bulk ack meets Faust's commit bookkeeping. Units on a
stand-in consumer with the attributes the methods read (the integration tests run the
real one: kill -9, rebalances, replay)."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.transport import consumer as faust_consumer
from faust.types import TP
from intervaltree import IntervalTree

from streams.faust_adapter.transport import Consumer

FACTS = "analytics.facts"
P0, P1, P2 = TP(FACTS, 0), TP(FACTS, 1), TP(FACTS, 2)


def bookkeeping(committed: dict[TP, int] | None = None) -> Any:
    """A consumer's ack and commit bookkeeping, as Faust's ``Consumer.__init__`` sets it up."""
    stand_in = SimpleNamespace(
        _acked=defaultdict(list),
        _acked_index=defaultdict(set),
        _committed_offset=defaultdict(lambda: None),
        _gap=defaultdict(IntervalTree),
        _n_acked=0,
    )
    stand_in._committed_offset.update(committed or {})
    return stand_in


def test_a_bulk_ack_lets_faust_commit_the_first_run_of_acked_offsets() -> None:
    consumer = bookkeeping({P0: 10})

    assert Consumer.ack_offsets(consumer, P0, [10, 11, 12, 14]) == 4
    assert consumer._n_acked == 4

    assert faust_consumer.Consumer._new_offset(consumer, P0) == 13, "never past the hole at 13"


def test_a_bulk_ack_leaves_out_offsets_below_the_committed_one_and_repeats() -> None:
    consumer = bookkeeping({P0: 10})
    Consumer.ack_offsets(consumer, P0, [10, 11])

    assert Consumer.ack_offsets(consumer, P0, [8, 9, 10, 11, 12]) == 1
    assert consumer._acked[P0] == [10, 11, 12]
    assert faust_consumer.Consumer._new_offset(consumer, P0) == 13


def test_a_bulk_ack_takes_an_offset_repeated_in_it_once() -> None:
    # Two seeks back to one hole can bring two copies of a record into one batch: both
    # are acked as read again. Faust's commit stopped at the repeat, one offset a commit.
    consumer = bookkeeping({P0: 100})

    assert Consumer.ack_offsets(consumer, P0, [*range(100, 110), *range(100, 120)]) == 20
    assert consumer._acked[P0] == list(range(100, 120))
    assert faust_consumer.Consumer._new_offset(consumer, P0) == 120


def test_a_partition_never_committed_takes_every_offset() -> None:
    consumer = bookkeeping()
    assert Consumer.ack_offsets(consumer, P1, [0, 1, 2]) == 3
    assert faust_consumer.Consumer._new_offset(consumer, P1) == 3


class Route:
    topic = FACTS

    def __init__(self, consumer: Any, rebalance_after: int | None = None) -> None:
        self.consumer = consumer
        self.delivered: list[tuple[TP, list[int]]] = []
        self.rebalance_after = rebalance_after

    async def deliver(self, tp: TP, records: list[Any]) -> None:
        self.delivered.append((tp, [r.offset for r in records]))
        if self.rebalance_after is not None and len(self.delivered) == self.rebalance_after:
            self.consumer.app.consumer_generation_id += 1


def fetching(*, flow: bool = True, stopping: bool = False) -> Any:
    return SimpleNamespace(
        flow_active=flow,
        should_stop=stopping,
        app=SimpleNamespace(consumer_generation_id=7),
    )


def fetched(*offsets: int) -> list[Any]:
    return [SimpleNamespace(offset=o) for o in offsets]


async def test_each_active_partition_is_handed_over_as_one_list() -> None:
    consumer = fetching()
    route = Route(consumer)
    routed = {P0: fetched(3, 4, 5), P1: fetched(9), P2: fetched(1, 2)}

    await Consumer._hand_to_route(consumer, route, routed, {P0, P1})

    assert route.delivered == [(P0, [3, 4, 5]), (P1, [9])], "P2 is paused: not handed over"


async def test_nothing_is_handed_over_once_the_generation_changed() -> None:
    consumer = fetching()
    route = Route(consumer, rebalance_after=1)

    await Consumer._hand_to_route(consumer, route, {P0: fetched(1), P1: fetched(2)}, None)

    assert route.delivered == [(P0, [1])], "the rest is read again after the rebalance's seek"


async def test_nothing_is_handed_over_while_the_flow_is_stopped_or_stopping() -> None:
    for consumer in (fetching(flow=False), fetching(stopping=True)):
        route = Route(consumer)
        await Consumer._hand_to_route(consumer, route, {P0: fetched(1)}, None)
        assert route.delivered == []
