"""``python -m tests.chaos.stream_slow_resume stream worker``: the stream worker as a
loaded machine sometimes runs it: Faust resumes its flow control 1 s after each seek of
the stream partitions to their committed offsets, and each fetched record is handed to
the batch loop 20 ms late.

A test-only seam (it lives in tests/ and is a separate entry point: nothing in the
package can turn it on). Faust ends every recovery with ``perform_seek`` and then
``flow_control.resume()``, which clears the stream buffers: here anything the consumer
fetches and delivers after the seek is still in those buffers when they are cleared.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from codex_analytics.cli.main import main
from streams.faust_adapter.transport import Consumer
from streams.worker import StreamWorker

#: How long after its seek Faust resumes the flow (and clears the stream buffers).
RESUME_DELAY_S = 1.0
#: How late each record is handed to the batch loop.
TAKE_DELAY_S = 0.02

_perform_seek = Consumer.perform_seek
_deliver = StreamWorker.deliver


async def _perform_seek_then_wait(self: Consumer) -> None:
    await _perform_seek(self)
    await asyncio.sleep(RESUME_DELAY_S)


async def _slow_deliver(self: StreamWorker, tp: Any, records: list[Any]) -> None:
    for record in records:
        await asyncio.sleep(TAKE_DELAY_S)
        await _deliver(self, tp, [record])


if __name__ == "__main__":
    Consumer.perform_seek = _perform_seek_then_wait  # type: ignore[method-assign]
    StreamWorker.deliver = _slow_deliver  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
