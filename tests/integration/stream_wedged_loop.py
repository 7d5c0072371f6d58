"""``python -m tests.integration.stream_wedged_loop stream worker``: the stream worker
whose event loop gets stuck in a blocking call (a wedged store, a hung file system)
for :data:`WEDGED_S` once a file appears next to its data directory: the path of
``ANALYTICS_STREAM_DATA_DIR`` plus :data:`MARKER_SUFFIX`.

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
#: The marker's path is the data directory's with this appended.
MARKER_SUFFIX = ".wedge"

_readiness = StreamWorker.readiness


def _readiness_that_may_wedge(self: StreamWorker) -> Readiness:
    marker = self.settings.data_dir + MARKER_SUFFIX
    if os.path.exists(marker):
        os.remove(marker)
        time.sleep(WEDGED_S)  # blocks the event loop, on purpose
    return _readiness(self)


if __name__ == "__main__":
    StreamWorker.readiness = _readiness_that_may_wedge  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
