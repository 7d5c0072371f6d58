"""What a forked child's client becomes (the reset itself, called directly; real forks
are in tests/chaos/test_client_fork.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os

from codex_analytics.contract import MAX_ID_CHARS
from producers import AnalyticsClient, ClientSettings, ProducerIdentity, SyncAnalyticsClient
from producers.client.forks import forked_instance_id
from tests.producer_helpers import MemoryTransport


def test_a_forked_instance_id_names_the_child_and_stays_within_the_limit() -> None:
    child = forked_instance_id("host/pid-1/boot-a")
    assert child.startswith(f"host/pid-1/boot-a/fork-{os.getpid()}-")
    assert forked_instance_id("host/pid-1/boot-a") != child
    longest = forked_instance_id("x" * MAX_ID_CHARS)
    assert len(longest) == MAX_ID_CHARS
    assert "/fork-" in longest


def test_the_child_is_a_new_instance_with_nothing_of_the_parent_queued() -> None:
    client = AnalyticsClient(
        ClientSettings(contract="2026-06"), identity=ProducerIdentity(instance_id="host/p/b")
    )
    for _ in range(3):
        client.track_notification("turn/started", {})
    client.after_fork_in_child()
    assert client.instance_id.startswith("host/p/b/fork-")
    assert client.identity.instance_id == client.instance_id
    assert client._tracker.pending() == 0
    assert client.stats.queued == 0
    client.track_notification("turn/started", {})
    (fact,) = client._tracker.take()
    assert fact["seq"] == 1
    assert fact["source"]["instance_id"] == client.instance_id
    # A grandchild's id derives from the built id, so ids do not grow fork after fork.
    client.after_fork_in_child()
    assert client.instance_id.count("/fork-") == 1


def stop_parent_copy(client: SyncAnalyticsClient) -> None:
    """In these tests the "parent" lives on in this process: stop its sender and loop."""
    _transport, loop, sender, _wakeup = client._client._inherited[0]  # type: ignore[misc]

    async def cancel() -> None:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender

    asyncio.run_coroutine_threadsafe(cancel(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)


def test_a_forked_sync_client_starts_its_own_loop_on_its_first_fact_and_closes() -> None:
    transport = MemoryTransport()
    client = SyncAnalyticsClient(transport=transport, contract="2026-06")
    parent_thread = client._thread
    assert parent_thread is not None
    client.after_fork_in_child()  # as in the child: the parent's thread is not ours
    assert client._thread is None
    assert client.flush(timeout=1)  # nothing queued, nothing started
    assert client.track_notification("turn/started", {})
    assert client._thread is not None
    assert client._thread is not parent_thread
    assert client.close(timeout=2)
    assert [f["seq"] for f in transport.facts()] == [1]
    # The parent's loop (here in the same process) is left alone: it is the parent's.
    assert parent_thread.is_alive()
    stop_parent_copy(client)
    parent_thread.join(timeout=5)


def test_a_forked_sync_client_that_sends_nothing_closes_at_once() -> None:
    client = SyncAnalyticsClient(transport=MemoryTransport(), contract="2026-06")
    client.after_fork_in_child()
    assert client.close(timeout=2)
    assert client._thread is None
    stop_parent_copy(client)
