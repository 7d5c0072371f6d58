"""``python -m tests.integration.stream_wedged_loop stream worker``: the stream worker
whose event loop gets stuck in a blocking call (a wedged store, a hung file system)
for :data:`WEDGED_S` once the file named by ``CODEX_TEST_WEDGE_FILE`` appears.

A test-only seam (it lives in tests/ and is a separate entry point: nothing in the
package can turn it on). The block happens in the readiness check, which the heartbeat
runs on the worker's loop every 0.5 s: the whole loop stops, as it would for real.
"""

from __future__ import annotations

import os
import sys
import time

from codex_analytics.cli.main import main
from codex_analytics.runtime.health import Readiness
from streams.worker import StreamWorker

#: How long the loop stays blocked.
WEDGED_S = 3.0

_readiness = StreamWorker.readiness


def _readiness_that_may_wedge(self: StreamWorker) -> Readiness:
    marker = os.environ["CODEX_TEST_WEDGE_FILE"]
    if os.path.exists(marker):
        os.remove(marker)
        time.sleep(WEDGED_S)  # blocks the event loop, on purpose
    return _readiness(self)


if __name__ == "__main__":
    StreamWorker.readiness = _readiness_that_may_wedge  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
