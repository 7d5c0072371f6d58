"""``python -m tests.chaos.stream_slow_resume stream worker``: the stream worker as a
loaded machine sometimes runs it: Faust resumes its flow control 1 s after each seek of
the stream partitions to their committed offsets, and the agent takes each record from
Faust's stream buffer 20 ms late.

A test-only seam (it lives in tests/ and is a separate entry point: nothing in the
package can turn it on). Faust ends every recovery with ``perform_seek`` and then
``flow_control.resume()``, which clears the stream buffers: here anything the consumer
fetches and delivers after the seek is still in those buffers when they are cleared.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

from codex_analytics.cli.main import main
from streams.faust_adapter.transport import Consumer
from streams.worker import Ack, StreamWorker

#: How long after its seek Faust resumes the flow (and clears the stream buffers).
RESUME_DELAY_S = 1.0
#: How late the agent takes each record from the stream buffer.
TAKE_DELAY_S = 0.02

_perform_seek = Consumer.perform_seek
_agent = StreamWorker._agent


async def _perform_seek_then_wait(self: Consumer) -> None:
    await _perform_seek(self)
    await asyncio.sleep(RESUME_DELAY_S)


async def _slow_agent(self: StreamWorker, events: AsyncIterator[Any], ack: Ack) -> None:
    async def late() -> AsyncIterator[Any]:
        async for event in events:
            yield event
            await asyncio.sleep(TAKE_DELAY_S)

    await _agent(self, late(), ack)


if __name__ == "__main__":
    Consumer.perform_seek = _perform_seek_then_wait  # type: ignore[method-assign]
    StreamWorker._agent = _slow_agent  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
