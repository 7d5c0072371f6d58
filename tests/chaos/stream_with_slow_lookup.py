"""``python -m tests.chaos.stream_with_slow_lookup stream worker``: the stream worker
whose own committed-offset lookup gets its answer after ``LOOKUP_DELAY_S``, and whose
Faust copy of the committed offsets comes in ``FAUST_COPY_DELAY_S`` after Faust's seek.

A test-only seam (it lives in tests/ and is a separate entry point: nothing in the
package can turn it on) that makes a race deterministic: the first records of an
assignment can reach the worker before Faust's seek to the committed offsets has filled
its copy, and the worker then asks the broker itself; here the broker is slow to answer.
Only the worker's lookup is slowed: the same call made by Faust's own seek (through
aiokafka's ``seek_to_committed``) answers at once, so the start stays fast.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiokafka
from faust.transport.consumer import Consumer

from codex_analytics.cli.main import main

LOOKUP_DELAY_S = 6.0
FAUST_COPY_DELAY_S = 8.0

_committed = aiokafka.AIOKafkaConsumer.committed
_perform_seek = Consumer.perform_seek


async def _slow_for_the_worker(self: aiokafka.AIOKafkaConsumer, partition: Any) -> Any:
    caller = sys._getframe(1).f_code.co_name
    if caller != "seek_to_committed":
        await asyncio.sleep(LOOKUP_DELAY_S)
    return await _committed(self, partition)


async def _late_copy(self: Consumer) -> None:
    copy = self._committed_offset
    before = dict(copy)
    await _perform_seek(self)
    late = {tp: offset for tp, offset in copy.items() if before.get(tp) != offset}
    for tp in late:
        del copy[tp]
    asyncio.get_running_loop().call_later(FAUST_COPY_DELAY_S, copy.update, late)


if __name__ == "__main__":
    aiokafka.AIOKafkaConsumer.committed = _slow_for_the_worker  # type: ignore[method-assign]
    Consumer.perform_seek = _late_copy  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
