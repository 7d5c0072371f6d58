"""The chaos suite (issue #16): hostile input and faults, through the public commands
and the public client API, against a real broker and a real HTTP server.

It reuses the integration fixtures (a fresh embedded broker per module or per test, a
recording receiver on 127.0.0.1, unique topics and groups per test); every test here is
marked ``chaos`` so ``./dev test -m chaos`` runs the suite alone.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import (  # noqa: F401  (fixtures, registered by import)
    fresh_broker,
    kafka_bootstrap,
    new_sink_run,
    receiver,
    stream_run,
    unique_name,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chaos/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.chaos)
