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
from typing import Any

from codex_analytics.cli.main import main
from streams.worker import StreamWorker

#: The offset the worker never sees in its first assignment.
MISSING_OFFSET = 1

_deliver = StreamWorker.deliver


async def _deliver_missing_one_offset(self: StreamWorker, tp: Any, records: list[Any]) -> None:
    first = getattr(self, "_chaos_first_generation", None)
    if first is None:
        first = self._chaos_first_generation = self.consumer.generation  # type: ignore[attr-defined]
    if self.consumer.generation == first:
        # As if never fetched: not handed over, so nothing waits for it either.
        records = [r for r in records if r.offset != MISSING_OFFSET]
    await _deliver(self, tp, records)


if __name__ == "__main__":
    StreamWorker.deliver = _deliver_missing_one_offset  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
