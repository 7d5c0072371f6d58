"""The sink's memory while it drains a backlog is bounded by its settings, not by the
backlog (issue #16: bounded memory per process).

``codex-analytics sink worker`` (a process) starts on an events topic that already
holds ~40k events (~33 MB of JSON, far more than its settings let it hold) and
delivers them to the recording receiver; its peak resident memory (``VmHWM``) must
stay under the bound ``docs/sink.md`` gives for its settings
(:func:`sinks.memory.resident_bound_bytes`). The old sink's peak grew
with the backlog (116 MiB at 30k events, 138 at 60k, 222 with a small
``ANALYTICS_SINK_MAX_BUFFERED``): every record set it prefetched for a partition it
then paused, and every request body it sent, waited for the cyclic garbage collector
in a reference cycle (aiokafka's ``PartitionRecords`` and its generator, httpx's
``Response`` and its bound stream).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codex_analytics.devtools.receiver import Receiver
from sinks.memory import resident_bound_bytes
from tests.integration.sink_helpers import SinkRun, event_json, event_records

from .system import stop_all, wait_delivered

pytestmark = pytest.mark.chaos

PARTITIONS = 4
MAX_BUFFERED = 400
BATCH_MAX_EVENTS = 200


def peak_rss_mib(pid: int) -> float:
    """The process's resident high-water mark (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


async def test_draining_a_backlog_stays_under_the_bound_of_the_settings(
    fresh_broker: str, tmp_path: Path, receiver: Receiver
) -> None:
    sink = SinkRun(
        bootstrap=fresh_broker,
        prefix="sink-memory",
        tmp=tmp_path,
        base_url=receiver.base_url,
        partitions=PARTITIONS,
        env_overrides={
            "ANALYTICS_SINK_MAX_BUFFERED": str(MAX_BUFFERED),
            "ANALYTICS_BATCH_MAX_EVENTS": str(BATCH_MAX_EVENTS),
        },
    )
    records = [r for r in event_records(110_000, accounts=3, seed=7) if r.route.account_id]
    for account in {r.route.account_id for r in records}:
        sink.add_account(account or "")
    expected = [event_json(r) for r in records]
    await sink.create_topics()
    await sink.publish(records)  # the whole backlog waits before the sink starts

    with sink.process() as proc:
        verdict = await wait_delivered(receiver, expected, within=60)
        peak = peak_rss_mib(proc.pid)
        exits = await stop_all(proc)
    assert not verdict.missing, verdict.summary()
    assert not verdict.unexpected, verdict.summary()
    assert exits == {proc.pid: 0}, sink.log_text()

    bound = (
        resident_bound_bytes(
            partitions=PARTITIONS,
            max_buffered_records=MAX_BUFFERED,
            batch_max_bytes=BATCH_MAX_EVENTS * max(map(len, expected)),
            event_bytes=sum(map(len, expected)) // len(expected),
        )
        / 2**20
    )
    print(
        f"sink memory: {len(expected)} events ({sum(map(len, expected)) / 2**20:.0f} MiB) "
        f"drained with a peak RSS of {peak:.0f} MiB; bound {bound:.0f} MiB"
    )
    assert peak < bound, f"the sink's peak RSS {peak:.0f} MiB passed its bound {bound:.0f} MiB"
