"""Where the offset guard starts a partition the group never committed: the first offset
a fetch from 0 is served at, not the broker's ListOffsets(earliest).

The embedded broker sometimes answers ListOffsets(earliest) too high after producers
race on a partition's first writes, while the records below it are still served. A
guard started there took those records for repeats (acked, never reduced): the latency
bench lost an instance's first facts, and every later fact of it with them."""

from __future__ import annotations

from collections.abc import Collection, Hashable
from types import SimpleNamespace
from typing import Any

from streams.faust_adapter.consumer import GroupConsumer
from streams.offsets import OffsetGuard

TP7 = ("facts", 7)
TP3 = ("facts", 3)
TP1 = ("facts", 1)


class _FaustConsumer:
    """What start_offsets reads of Faust's consumer."""

    def __init__(self, committed: dict[Hashable, int], earliest: dict[Hashable, int]) -> None:
        self._committed_offset = committed
        self._earliest = earliest
        self.asked_earliest: list[Hashable] = []

    async def earliest_offsets(self, *partitions: Hashable) -> dict[Hashable, int]:
        self.asked_earliest += partitions
        return {tp: self._earliest[tp] for tp in partitions}


def _group(
    *, committed: dict[Hashable, int], earliest: dict[Hashable, int], first: dict[Hashable, int]
) -> tuple[GroupConsumer, _FaustConsumer, list[list[Hashable]]]:
    faust_consumer = _FaustConsumer(committed, earliest)
    probed: list[list[Hashable]] = []

    async def first_offsets(partitions: Collection[Hashable]) -> dict[Hashable, int]:
        probed.append(list(partitions))
        return {tp: first[tp] for tp in partitions if tp in first}

    group = GroupConsumer(
        SimpleNamespace(consumer=faust_consumer), "unused:9092", first=first_offsets
    )

    async def nothing_committed(partitions: Collection[Hashable]) -> dict[Hashable, int | None]:
        return dict.fromkeys(partitions)

    group.committed_offsets = nothing_committed  # type: ignore[method-assign]
    return group, faust_consumer, probed


def _event(tp: tuple[str, int], offset: int) -> Any:
    return SimpleNamespace(tp=tp, offset=offset)


async def test_a_partition_never_committed_starts_at_its_first_offset_not_the_reported_earliest() -> (
    None
):
    group, faust_consumer, probed = _group(
        committed={TP3: 40}, earliest={TP7: 2, TP1: 0}, first={TP7: 0}
    )

    starts = await group.start_offsets([TP7, TP3])

    assert starts == {TP7: 0, TP3: 40}
    assert probed == [[TP7]], "only partitions never committed are probed"
    assert faust_consumer.asked_earliest == []


async def test_records_the_consumer_skipped_below_a_too_high_earliest_are_a_hole_not_repeats() -> (
    None
):
    # Faust's consumer reset to the broker's earliest (2) and delivers 2, 3 first.
    group, _, _ = _group(committed={}, earliest={TP7: 2}, first={TP7: 0})
    guard = OffsetGuard()
    for tp, offset in (await group.start_offsets([TP7])).items():
        guard.start(tp, offset)

    held = guard.check([_event(TP7, 2), _event(TP7, 3)], now=0.0)

    assert held.process == []
    assert held.ack == [], "nothing past the hole is acked"
    assert held.seek == {TP7: 0}
    again = guard.check([_event(TP7, o) for o in range(4)], now=0.5)
    assert [r.offset for r in again.process] == [0, 1, 2, 3]


async def test_a_partition_the_probe_left_unanswered_falls_back_to_the_earliest_offset() -> None:
    group, faust_consumer, _ = _group(committed={}, earliest={TP7: 2, TP1: 5}, first={TP7: 0})

    assert await group.start_offsets([TP7, TP1]) == {TP7: 0, TP1: 5}
    assert faust_consumer.asked_earliest == [TP1]
