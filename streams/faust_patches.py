"""Narrow patches to Faust 0.15.x internals, each for a measured fault or cost.

Applied once per process by :func:`apply` (idempotent). Each one replaces a single
method and keeps its contract; each is covered by the stream worker's integration tests
(kill -9, rebalance, replay) and measured by ``python -m bench stream``.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from typing import Any

from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

#: Faust hard-codes 1500 ms, and brokers hold a fetch open for most of it.
FETCH_MAX_WAIT_MS = 100


def apply() -> None:
    _shorter_fetch_wait()
    _no_read_offset_filter()
    _deliver_without_tasks()
    _short_backpressure_pause()


def _once(owner: Any, name: str, replacement: Any) -> None:
    if getattr(getattr(owner, name), "_codex_patched", False):
        return
    replacement._codex_patched = True
    setattr(owner, name, replacement)


def _shorter_fetch_wait() -> None:
    """100 ms instead of 1500: a p99 near 250 ms instead of seconds end to end."""
    original = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    _once(faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer", create_worker_consumer)


class _NeverRead(dict):  # type: ignore[type-arg]
    """Faust's consumer drops every record below the highest offset it has *handed on*,
    and hands records on (or abandons them during a rebalance) concurrently with its own
    seeks: records get skipped. Reading every offset as unknown turns that filter, and
    the "gap" bookkeeping that goes with it, off; the worker's ``OffsetGuard`` decides
    instead what is new, what is a repeat and where to re-read."""

    def __getitem__(self, key: Any) -> None:
        return None


def _no_read_offset_filter() -> None:
    original = faust_consumer.Consumer.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._read_offset = _NeverRead()

    _once(faust_consumer.Consumer, "__init__", init)


def _deliver_without_tasks() -> None:
    """Faust hands every consumed record to its streams through
    ``wait_first(callback(message), suspend_flow.wait())``: four tasks and an
    ``asyncio.wait`` per record, so that a delivery blocked on a full stream buffer
    cannot hold up a rebalance. The profile of the worker put 20% of its time there.

    The callback almost never blocks (it puts the event into a buffer with room). So run
    it inline first; only if it does block, finish it in a task raced against the flow
    suspension exactly as before. The consumer calls ``wait_first`` nowhere else; any
    other call shape goes to the original."""
    original = faust_consumer.Consumer.wait_first

    async def wait_first(self: Any, *coros: Any, timeout: Any = None) -> Any:  # noqa: ASYNC109 (the signature Faust calls)
        if (
            timeout is not None
            or len(coros) != 2
            or not isinstance(coros[0], types.CoroutineType)
            or self.suspend_flow.is_set()
            or self.should_stop
        ):
            return await original(self, *coros, timeout=timeout)
        delivery, suspended = coros
        suspended.close()  # never awaited on the fast path
        try:
            blocked_on = delivery.send(None)
        except StopIteration as done:
            return WaitResults([delivery], [done.value], False)
        # It blocked: let a task finish it, raced against suspension as Faust does.
        rest = asyncio.ensure_future(_resume(delivery, blocked_on))
        return await original(self, rest, self.suspend_flow.wait())

    _once(faust_consumer.Consumer, "wait_first", wait_first)


async def _resume(coro: Any, blocked_on: Any) -> Any:
    """Drive a coroutine that was started by hand and is suspended on ``blocked_on``
    (what its first ``send`` yielded) to its end, as a task would."""
    while True:
        try:
            if blocked_on is None:  # a bare yield (``sleep(0)``)
                await asyncio.sleep(0)
            else:
                # As a task does on taking a future over: without this, awaiting it
                # again raises "await wasn't used with future".
                blocked_on._asyncio_future_blocking = False
                await blocked_on
        except BaseException as exc:  # cancelled, or the awaited future failed
            try:
                blocked_on = coro.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            blocked_on = coro.send(None)
        except StopIteration as done:
            return done.value


#: Set while the consumer's fetcher task is inside ``_wait_next_records``.
_IN_FETCH_WAIT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "codex_in_fetch_wait", default=False
)
#: How often a fetcher held back by full stream buffers looks again.
BACKPRESSURE_POLL_S = 0.01


def _short_backpressure_pause() -> None:
    """When every assigned partition's stream buffer is full, Faust's fetcher sleeps a
    whole second before it looks again, however soon the buffers drain. Under load that
    happens every couple of seconds: the profile showed the batch loop idle ~0.9 s at a
    time, a third of the run, and the same pauses as latency spikes. Look again every
    10 ms instead; only that sleep, in that task, changes (a context variable marks it)."""
    original_wait = faust_consumer.Consumer._wait_next_records
    original_sleep = faust_consumer.Consumer.sleep

    async def wait_next_records(self: Any, timeout: float) -> Any:  # noqa: ASYNC109
        if self._buffered_partitions:
            # Some partitions are held back: a fetch of the others alone must not wait a
            # whole second for them while the held ones drain.
            timeout = min(timeout, BACKPRESSURE_POLL_S)
        token = _IN_FETCH_WAIT.set(True)
        try:
            return await original_wait(self, timeout)
        finally:
            _IN_FETCH_WAIT.reset(token)

    async def sleep(self: Any, n: Any) -> None:
        if _IN_FETCH_WAIT.get() and self._buffered_partitions:
            n = BACKPRESSURE_POLL_S
        await original_sleep(self, n)

    _once(faust_consumer.Consumer, "_wait_next_records", wait_next_records)
    _once(faust_consumer.Consumer, "sleep", sleep)
