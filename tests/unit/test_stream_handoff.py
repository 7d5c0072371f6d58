"""The stream worker's hand-off buffer and the Faust delivery patch's coroutine driver."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from types import SimpleNamespace

import orjson
import pytest

from codex_analytics.contract import dumps_kept
from streams.faust_adapter.transport import _resume
from streams.handoff import Handoff
from streams.intake import Intake
from streams.metrics import PendingTimestamps


async def test_take_returns_everything_buffered_in_order() -> None:
    handoff: Handoff[int] = Handoff(10)
    for n in range(4):
        await handoff.put(n)
    assert await handoff.take() == [0, 1, 2, 3]
    assert len(handoff) == 0


async def test_take_waits_for_the_first_item() -> None:
    handoff: Handoff[str] = Handoff(10)
    taker = asyncio.ensure_future(handoff.take())
    await asyncio.sleep(0.01)
    assert not taker.done()
    await handoff.put("a")
    assert await asyncio.wait_for(taker, 1) == ["a"]


async def test_take_with_wait_s_returns_empty_when_nothing_comes() -> None:
    handoff: Handoff[str] = Handoff(10, linger_s=5.0)
    assert await handoff.take(wait_s=0.01) == []
    await handoff.put("a")
    # Something buffered: wait_s is about waiting for a first item, not the linger.
    taker = asyncio.ensure_future(handoff.take(wait_s=0.01))
    await asyncio.sleep(0.05)
    assert not taker.done()
    for n in range(9):
        await handoff.put(str(n))
    assert len(await asyncio.wait_for(taker, 1)) == 10


async def test_put_waits_while_full_and_resumes_after_a_take() -> None:
    handoff: Handoff[int] = Handoff(3)
    for n in range(3):
        await handoff.put(n)
    blocked = asyncio.ensure_future(handoff.put(3))
    await asyncio.sleep(0.01)
    assert not blocked.done(), "a full buffer must push back"
    assert await handoff.take() == [0, 1, 2]
    await asyncio.wait_for(blocked, 1)
    assert await handoff.take() == [3]


async def test_linger_waits_for_a_partial_batch_but_not_for_a_full_one() -> None:
    handoff: Handoff[int] = Handoff(3, linger_s=0.2)
    await handoff.put(1)
    started = time.monotonic()
    assert await handoff.take() == [1]
    assert time.monotonic() - started >= 0.15
    for n in range(3):
        await handoff.put(n)
    started = time.monotonic()
    assert await handoff.take() == [0, 1, 2]
    assert time.monotonic() - started < 0.1


async def test_linger_counts_from_the_first_item_not_from_the_take() -> None:
    handoff: Handoff[int] = Handoff(100, linger_s=0.1)
    await handoff.put(1)
    await asyncio.sleep(0.15)  # the batch loop was busy meanwhile
    started = time.monotonic()
    assert await handoff.take() == [1]
    assert time.monotonic() - started < 0.05


def test_max_items_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Handoff(0)


async def test_resume_finishes_a_coroutine_blocked_on_a_future() -> None:
    """A delivery that blocks (a full queue) is started by hand, then finished in a
    task: the driver must hand the future over as a task does (the C future refuses
    to be awaited twice otherwise)."""
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    queue.put_nowait(0)

    async def deliver() -> str:
        waiter = asyncio.ensure_future(queue.put(1))
        await asyncio.wait([waiter])  # a future inside a future, as Faust's conductor does
        return "delivered"

    coro = deliver()
    blocked_on = coro.send(None)
    task = asyncio.ensure_future(_resume(coro, blocked_on))
    await asyncio.sleep(0.01)
    assert not task.done()
    assert queue.get_nowait() == 0
    assert await asyncio.wait_for(task, 1) == "delivered"
    assert queue.get_nowait() == 1


def _resumed_on(gate: asyncio.Future[None]) -> asyncio.Future[None]:
    """A coroutine blocked on ``gate``, started by hand and driven on by ``_resume``."""

    async def deliver() -> None:
        await gate

    coro = deliver()
    return asyncio.ensure_future(_resume(coro, coro.send(None)))


async def test_resume_passes_failures_and_cancellation_through() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = _resumed_on(gate)
    await asyncio.sleep(0)
    gate.set_exception(RuntimeError("broken"))
    with pytest.raises(RuntimeError, match="broken"):
        await task

    task2 = _resumed_on(asyncio.get_running_loop().create_future())
    await asyncio.sleep(0)
    task2.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task2


def test_dumps_kept_is_the_same_json_without_the_spare_buffer() -> None:
    obj = {"v": 1, "last_seq": 42, "threads": {"t": {"model": "gpt-5"}}}
    assert dumps_kept(obj) == orjson.dumps(obj)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        kept = [dumps_kept({"n": n, "pad": "x" * 100}) for n in range(1000)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # ~150 bytes each; a bare orjson 3.12+ result holds 4 KiB.
    assert grown / len(kept) < 1024


async def test_put_many_adds_a_whole_fetch_and_take_returns_at_most_max_items() -> None:
    handoff: Handoff[int] = Handoff(4)
    adding = asyncio.ensure_future(handoff.put_many(list(range(6))))
    await asyncio.sleep(0.01)
    assert not adding.done(), "past its bound the buffer pushes back"
    assert len(handoff) == 6, "a fetch is never split"
    assert await handoff.take() == [0, 1, 2, 3]
    await asyncio.wait_for(adding, 1)
    assert await handoff.take() == [4, 5]
    await handoff.put_many([])
    assert len(handoff) == 0


async def test_the_intake_counts_records_until_the_batch_loop_is_done_with_them() -> None:
    fetched: dict[int, int] = {}
    pending = PendingTimestamps()
    intake = Intake(100, 0.0, fetched, pending)
    fetch = [SimpleNamespace(offset=o, key=b"k", value=b"v", timestamp=1_000 + o) for o in (7, 8)]

    await intake.deliver("facts", 3, ("facts", 3), fetch)

    assert fetched == {3: 2}
    assert pending.oldest_ms(3) == 1_007
    assert intake.outstanding() == 2
    records = await intake.take()
    assert [(r.tp, r.partition, r.offset, r.timestamp_ms) for r in records] == [
        (("facts", 3), 3, 7, 1_007),
        (("facts", 3), 3, 8, 1_008),
    ]
    waiter = asyncio.ensure_future(intake.settled(5.0))
    await asyncio.sleep(0.01)
    assert not waiter.done(), "a revocation waits while records are outstanding"
    intake.done(2)
    await asyncio.wait_for(waiter, 1)
    assert intake.outstanding() == 0
