"""Seeking back a partition with an offset hole, when a rebalance may have revoked it
(issue #16, item 5: the re-seek hit a partition the worker no longer owned, and the
worker exited 70 during scale-out)."""

from __future__ import annotations

from collections.abc import Hashable
from types import SimpleNamespace
from typing import Any

from aiokafka.errors import IllegalStateError

from streams.faust_adapter.consumer import GroupConsumer


class _FaustConsumer:
    def __init__(self, assigned: set[Hashable], *, revoked_meanwhile: bool = False) -> None:
        self.assigned = assigned
        self.revoked_meanwhile = revoked_meanwhile
        self._gap: dict[Hashable, list[int]] = {}
        self._unacked_messages: set[Any] = set()
        self.seeks: list[tuple[Hashable, int]] = []

    def assignment(self) -> set[Hashable]:
        return self.assigned

    async def seek(self, tp: Hashable, offset: int) -> None:
        if self.revoked_meanwhile:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        self.seeks.append((tp, offset))


def group_of(faust_consumer: _FaustConsumer) -> GroupConsumer:
    return GroupConsumer(SimpleNamespace(consumer=faust_consumer), "unused:9092")


async def test_an_assigned_partition_is_sought_back() -> None:
    faust_consumer = _FaustConsumer({"a"})
    faust_consumer._gap["a"] = [11]
    assert await group_of(faust_consumer).seek_back("a", 10)
    assert faust_consumer.seeks == [("a", 10)]
    assert "a" not in faust_consumer._gap


async def test_a_revoked_partition_is_not_sought() -> None:
    faust_consumer = _FaustConsumer({"b"})
    assert not await group_of(faust_consumer).seek_back("a", 10)
    assert faust_consumer.seeks == []


async def test_a_partition_revoked_during_the_seek_is_not_an_error() -> None:
    faust_consumer = _FaustConsumer({"a"}, revoked_meanwhile=True)
    assert not await group_of(faust_consumer).seek_back("a", 10)
