"""``python -m tests.chaos.stream_losing_tail stream worker``: the stream worker that
loses the first delivery of the last record of each facts partition, after the consumer
fetched it, as Faust did when it cleared its stream buffers after a seek.

A test-only seam (it lives in tests/ and is a separate entry point: nothing in the
package can turn it on). No later record arrives to show the hole; only the fetch
position does. Read again, the record comes through.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable
from typing import Any

from codex_analytics.cli.main import main
from streams.worker import StreamWorker

_deliver = StreamWorker.deliver
_lost: set[Hashable] = set()


async def _deliver_losing_the_tail(self: StreamWorker, tp: Any, records: list[Any]) -> None:
    last = self.consumer.highwater(tp) - 1
    if tp not in _lost and any(r.offset == last for r in records):
        _lost.add(tp)
        records = [r for r in records if r.offset != last]  # as if never fetched
    await _deliver(self, tp, records)


if __name__ == "__main__":
    StreamWorker.deliver = _deliver_losing_the_tail  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
