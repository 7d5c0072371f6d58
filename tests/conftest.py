"""Settings shared by every test, and the order the test workers take tests in."""

from __future__ import annotations

import pytest
from hypothesis import settings

# Property tests check behaviour, not speed: Hypothesis' default 200 ms deadline per
# example fails them on a loaded 2-core machine (4 test workers beside brokers and
# services) without saying anything about the code. Speed is measured in bench/.
settings.register_profile("pipeline", deadline=None)
settings.load_profile("pipeline")

#: Modules with tests of 10-70 s each (worker processes, group joins, outages, the
#: benchmarks' smoke runs), slowest first, as `--durations` measured them. They are
#: handed out first, one test at a time (`--maxschedchunk 1` in pyproject.toml), so the
#: four test workers finish together instead of one of them starting a long test while
#: the others sit idle at the end. Only the order changes: every test still runs.
SLOW_MODULES_FIRST = (
    "tests/chaos/test_system_endpoint_outage.py",
    "tests/unit/test_bench_smoke.py",
    "tests/chaos/test_stream_faults.py",
    "tests/chaos/test_system_kill9.py",
    "tests/integration/test_dead_letters.py",
    "tests/integration/test_stream.py",
    "tests/integration/test_compose.py",
    "tests/chaos/test_system_fuzz.py",
    "tests/chaos/test_system_broker_outage.py",
    "tests/integration/test_sink_process.py",
    "tests/integration/test_smoke.py",
    "tests/chaos/test_sink_memory.py",
    "tests/integration/test_contracts_end_to_end.py",
    "tests/integration/test_demo.py",
    "tests/integration/test_gateway.py",
    "tests/integration/test_kafka_security.py",
    "tests/integration/test_startup.py",
    "tests/integration/test_replay.py",
    "tests/chaos/test_sink_faults.py",
    "tests/integration/test_logs.py",
    "tests/chaos/test_stream_poison.py",
    "tests/chaos/test_gateway.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(SLOW_MODULES_FIRST)}
    # A stable sort: inside a module, and among all other modules, the order stays.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
