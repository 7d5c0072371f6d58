"""The stream worker's committed-offset lookup (issue #16, item 11): a slow or failing
lookup is waited for and asked again within a deadline, never read as "no committed
offset" (which restarted the partitions from their first record)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from types import SimpleNamespace
from typing import Any

import pytest

from streams.faust_adapter import consumer as consumer_module
from streams.faust_adapter.consumer import AssignmentChanged, GroupConsumer, OffsetLookupError


class _Client:
    """aiokafka's consumer as the lookup uses it: ``committed(tp)``."""

    def __init__(self, answers: dict[Hashable, int | None], *, delay_s: float = 0.0) -> None:
        self.answers = answers
        self.delay_s = delay_s
        self.failures = 0
        self.asked = 0

    async def committed(self, tp: Hashable) -> int | None:
        self.asked += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("coordinator went away")
        await asyncio.sleep(self.delay_s)
        return self.answers[tp]


class _Thread:
    def __init__(self, client: _Client) -> None:
        self.client = client

    def _ensure_consumer(self) -> _Client:
        return self.client

    async def call_thread(self, fun: Callable[[], Awaitable[Any]]) -> Any:
        return await fun()


def group_of(client: _Client, faust_copy: dict[Hashable, int] | None = None) -> GroupConsumer:
    faust_consumer = SimpleNamespace(
        _thread=_Thread(client), _committed_offset=faust_copy if faust_copy is not None else {}
    )
    app = SimpleNamespace(consumer=faust_consumer, consumer_generation_id=1, rebalancing=False)
    return GroupConsumer(app, "unused:9092")


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_module, "COMMITTED_TICK_S", 0.02)
    monkeypatch.setattr(consumer_module, "COMMITTED_NOTICE_S", 0.05)
    monkeypatch.setattr(consumer_module, "COMMITTED_RETRY_S", 0.01)


async def test_a_slow_answer_is_waited_for_not_taken_for_never_committed() -> None:
    client = _Client({"a": 40, "b": None}, delay_s=0.2)  # four notices long
    assert await group_of(client).committed_offsets(["a", "b"], within_s=5) == {
        "a": 40,
        "b": None,
    }


async def test_a_failed_lookup_is_asked_again() -> None:
    client = _Client({"a": 7})
    client.failures = 2
    assert await group_of(client).committed_offsets(["a"], within_s=5) == {"a": 7}
    assert client.asked == 3


async def test_no_answer_within_the_deadline_is_an_error_not_a_start_from_zero() -> None:
    client = _Client({"a": 7}, delay_s=10)
    with pytest.raises(OffsetLookupError, match="within"):
        await group_of(client).committed_offsets(["a"], within_s=0.2)


async def test_a_lookup_failing_until_the_deadline_is_an_error() -> None:
    client = _Client({"a": 7})
    client.failures = 10**6
    with pytest.raises(OffsetLookupError, match="ConnectionError"):
        await group_of(client).committed_offsets(["a"], within_s=0.2)


async def test_faust_copy_arriving_meanwhile_ends_the_wait() -> None:
    faust_copy: dict[Hashable, int] = {}
    client = _Client({"a": 7}, delay_s=10)
    group = group_of(client, faust_copy)
    asyncio.get_running_loop().call_later(0.1, faust_copy.update, {"a": 7})
    assert await group.committed_offsets(["a"], within_s=5) == {"a": 7}


async def test_a_rebalance_ends_the_wait() -> None:
    """Faust's revocation waits for the events the batch loop holds while it waits."""
    group = group_of(_Client({"a": 7}, delay_s=10))
    asyncio.get_running_loop().call_later(0.1, setattr, group._app, "rebalancing", True)
    with pytest.raises(AssignmentChanged):
        await group.committed_offsets(["a"], within_s=5)
