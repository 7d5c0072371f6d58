"""``python -m tests.integration.stream_slow_recovery stream worker``: the stream worker
as it runs with a large changelog on a slow broker: every changelog record reaches the
table :data:`DELAY_S` late, so reading a few thousand back takes seconds.

A test-only seam (it lives in tests/ and is a separate entry point: nothing in the
package can turn it on). The delay is an ``asyncio.sleep`` on Faust's loop, between
records, as a slow fetch would be: the loop keeps running (the heartbeat publishes
``recovering`` meanwhile), only the recovery is slow.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from faust.tables.manager import TableManager

from codex_analytics.cli.main import main

#: How late each changelog record reaches the table.
DELAY_S = 0.001

_changelog_queue = TableManager.changelog_queue


def _slow_changelog_queue(self: TableManager) -> Any:
    queue = _changelog_queue.fget(self)  # type: ignore[attr-defined]
    if not getattr(queue, "_codex_slowed", False):
        get = queue.get

        async def slow_get() -> Any:
            event = await get()
            await asyncio.sleep(DELAY_S)
            return event

        queue.get = slow_get
        queue._codex_slowed = True
    return queue


if __name__ == "__main__":
    TableManager.changelog_queue = property(_slow_changelog_queue)  # type: ignore[assignment,method-assign]
    sys.exit(main(sys.argv[1:]))
