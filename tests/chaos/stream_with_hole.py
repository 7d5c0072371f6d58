"""``python -m tests.chaos.stream_with_hole stream worker``: the stream worker that
never sees offset 1 of any facts partition while its first assignment lasts, as if
Faust had skipped that record every time.

A test-only seam (it lives in tests/ and is a separate entry point: nothing in the
package can turn it on). It holds an offset hole open for as long as a test needs: the
worker's guard holds back everything past offset 1 and asks for a seek back every 2 s,
and each re-read loses offset 1 again. A new assignment ends the fault.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

from codex_analytics.cli.main import main
from streams.worker import Ack, StreamWorker

#: The offset the worker never sees in its first assignment.
MISSING_OFFSET = 1

_agent = StreamWorker._agent


async def _agent_missing_one_offset(
    self: StreamWorker, events: AsyncIterator[Any], ack: Ack
) -> None:
    first_generation: int | None = None

    async def seen() -> AsyncIterator[Any]:
        nonlocal first_generation
        async for event in events:
            generation = self.consumer.generation
            if first_generation is None:
                first_generation = generation
            if generation == first_generation and event.message.offset == MISSING_OFFSET:
                self.consumer.release([event])  # as if never delivered
                continue
            yield event

    await _agent(self, seen(), ack)


if __name__ == "__main__":
    StreamWorker._agent = _agent_missing_one_offset  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
