"""``python -m tests.chaos.stream_losing_tail stream worker``: the stream worker that
loses the first delivery of the last record of each facts partition, after the consumer
fetched it, as Faust did when it cleared its stream buffers after a seek.

A test-only seam (it lives in tests/ and is a separate entry point: nothing in the
package can turn it on). No later record arrives to show the hole; only the fetch
position does. Read again, the record comes through.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Hashable
from typing import Any

from codex_analytics.cli.main import main
from streams.worker import Ack, StreamWorker

_agent = StreamWorker._agent


async def _agent_losing_the_tail(self: StreamWorker, events: AsyncIterator[Any], ack: Ack) -> None:
    lost: set[Hashable] = set()

    async def seen() -> AsyncIterator[Any]:
        async for event in events:
            tp = event.message.tp
            last = event.message.offset == self.consumer.highwater(tp) - 1
            if last and tp not in lost:
                lost.add(tp)
                self.consumer.release([event])  # as if never delivered
                continue
            yield event

    await _agent(self, seen(), ack)


if __name__ == "__main__":
    StreamWorker._agent = _agent_losing_the_tail  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
