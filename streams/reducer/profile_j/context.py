"""Thread context (profile-j.md §5.7): what most Profile J events need before they can be
emitted, looked up in one place with upstream's drop warnings."""

from __future__ import annotations

from dataclasses import dataclass, replace

from codex_analytics.contract.events import AppServerClientMetadata
from codex_analytics.contract.facts import RuntimeMetadata

from ..drops import DropReason
from ..fact_context import FactContext
from .state import JTables, ThreadJ, ThreadMetadataJ


@dataclass(slots=True)
class ThreadContext:
    """A thread with a known connection and lifecycle metadata."""

    thread_id: str
    thread: ThreadJ
    metadata: ThreadMetadataJ
    #: The connection's client, with the thread's originator as ``product_client_id``
    #: when the thread has one (profile-j.md §4, "per-thread originator").
    client: AppServerClientMetadata
    runtime: RuntimeMetadata


def tables(ctx: FactContext) -> JTables:
    """The Profile J tables of the fact's instance (the reducer creates them)."""
    j = ctx.state.j
    assert j is not None, "a 2026-08 instance always has its Profile J tables"
    return j


def client_for(client: AppServerClientMetadata, thread: ThreadJ) -> AppServerClientMetadata:
    """``app_server_client`` of an event of ``thread``: the per-thread originator wins."""
    if thread.originator is None or thread.originator == client.product_client_id:
        return client
    return replace(client, product_client_id=thread.originator)


def thread_context(
    ctx: FactContext, thread_id: str, site: str, **ids: str | int | None
) -> ThreadContext | None:
    """The thread's context, or None after dropping the event with upstream's warning
    (``dropping {site} analytics event: missing analytics context``, naming ``ids``
    beside the thread, as upstream's warning names the turn or review). Touches what it
    finds, so that a thread in use does not expire."""
    thread = tables(ctx).threads.get(thread_id)
    if thread is None or thread.connection_id is None:
        ctx.drop(
            DropReason.MISSING_CONTEXT,
            site=site,
            missing_context="thread_connection",
            thread_id=thread_id,
            **ids,
        )
        return None
    connection = ctx.state.connections.get(thread.connection_id)
    if connection is None:
        ctx.drop(
            DropReason.MISSING_CONTEXT,
            site=site,
            missing_context="connection",
            connection_id=thread.connection_id,
            thread_id=thread_id,
            **ids,
        )
        return None
    if thread.metadata is None:
        ctx.drop(
            DropReason.MISSING_CONTEXT,
            site=site,
            missing_context="thread_metadata",
            thread_id=thread_id,
            **ids,
        )
        return None
    connection.touched_ms = thread.touched_ms = ctx.now_ms
    return ThreadContext(
        thread_id,
        thread,
        thread.metadata,
        client_for(connection.client, thread),
        connection.runtime,
    )
