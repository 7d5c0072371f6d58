"""The stream worker's Faust consumer (streams.faust_adapter.transport), built the way
Faust builds it: from the transport the broker URL's scheme names. Nothing is started
and no broker is needed."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import faust
import pytest
from faust.types import TP

from streams.faust_adapter import transport
from streams.faust_adapter.transport import (
    BACKPRESSURE_POLL_S,
    FETCH_MAX_WAIT_MS,
    SCHEME,
    Consumer,
    ConsumerThread,
)


@pytest.fixture
async def consumer() -> Any:
    # Async: Faust builds the consumer on the running loop.
    app = faust.App("transport-test", broker=f"{SCHEME}://localhost:1", web_enabled=False)
    app.topic("facts")
    return app.consumer


def test_the_scheme_names_our_consumer_and_thread(consumer: Any) -> None:
    assert type(consumer) is Consumer
    assert type(consumer._thread) is ConsumerThread


def test_no_offset_reads_as_already_read(consumer: Any) -> None:
    tp = TP("facts", 0)
    consumer._read_offset[tp] = 41  # what Faust's drain loop records
    assert consumer._read_offset[tp] is None


async def test_the_fetch_wait_is_100_ms(consumer: Any) -> None:
    client = consumer._thread._create_worker_consumer(consumer.transport)
    try:
        assert client._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100
    finally:
        await client.stop()


async def test_a_delivery_that_does_not_block_runs_inline(consumer: Any) -> None:
    ran_in: list[asyncio.Task[Any] | None] = []

    async def deliver() -> str:
        ran_in.append(asyncio.current_task())
        return "delivered"

    result = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
    assert result.results == ["delivered"]
    assert not result.stopped
    assert ran_in == [asyncio.current_task()], "no task of its own"


async def test_a_delivery_that_blocks_is_finished_in_a_task(consumer: Any) -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def deliver() -> str:
        return await gate

    waiting = asyncio.ensure_future(consumer.wait_first(deliver(), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    gate.set_result("delivered")
    result = await asyncio.wait_for(waiting, 1)
    assert result.results == ["delivered"]


async def test_the_fetcher_looks_again_soon_while_partitions_are_held_back(
    consumer: Any,
) -> None:
    # No active partition: Faust's fetch wait sleeps (1 s); held-back partitions make
    # that sleep the short poll.
    consumer._buffered_partitions.add(TP("facts", 0))
    started = time.monotonic()
    assert await consumer._wait_next_records(1.0) == ({}, set())
    assert time.monotonic() - started < 50 * BACKPRESSURE_POLL_S


async def test_other_sleeps_are_left_alone(consumer: Any) -> None:
    consumer._buffered_partitions.add(TP("facts", 0))
    started = time.monotonic()
    await consumer.sleep(0.2)
    assert time.monotonic() - started >= 0.19


async def test_the_seek_to_committed_offsets_stops_the_flow_first(
    consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records fetched after the seek must not reach the stream buffers that Faust's
    resume clears next: the flow is stopped before the seek, and stays stopped until
    Faust resumes it."""
    flow_at_seek: list[bool] = []

    async def seek_to_committed() -> dict[Any, int]:
        flow_at_seek.append(consumer.flow_active)
        return {TP("facts", 0): 5}

    monkeypatch.setattr(consumer, "seek_to_committed", seek_to_committed)
    consumer.resume_flow()
    await consumer.perform_seek()
    assert flow_at_seek == [False]
    assert not consumer.flow_active
    assert consumer.suspend_flow.is_set()
    assert consumer._committed_offset[TP("facts", 0)] == 5
    consumer.resume_flow()  # what Faust does once the buffers are cleared
    assert consumer.flow_active


async def test_a_seek_runs_on_the_consumer_s_thread(
    consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiokafka's seek drops the partition's fetched records; from the app's thread it
    # raced the consumer's thread going through them (a KeyError crashed the fetcher).
    calls: list[tuple[Any, ...]] = []

    def seek(tp: TP, offset: int) -> None:
        calls.append((tp, offset, threading.get_ident()))

    thread_loop = asyncio.new_event_loop()
    runner = threading.Thread(target=thread_loop.run_forever, daemon=True)
    runner.start()
    try:
        monkeypatch.setattr(consumer._thread, "seek", seek)
        monkeypatch.setattr(consumer._thread, "thread_loop", thread_loop)
        await consumer.seek(TP("facts", 0), 41)
    finally:
        thread_loop.call_soon_threadsafe(thread_loop.stop)
        runner.join(5)
        thread_loop.close()
    assert calls == [(TP("facts", 0), 41, runner.ident)]


# The seek's coroutine is handed to a loop that never runs: it is never awaited.
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
async def test_a_seek_the_thread_does_not_take_times_out(
    consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled = asyncio.new_event_loop()  # never run: the seek never happens
    monkeypatch.setattr(consumer._thread, "thread_loop", stalled)
    monkeypatch.setattr(transport, "SEEK_TIMEOUT_S", 0.01)
    try:
        with pytest.raises(TimeoutError):
            await consumer.seek(TP("facts", 0), 41)
    finally:
        stalled.close()
