"""Thread context (profile-j.md §5.7): what most Profile J events need before they can be
emitted, looked up in one place with upstream's drop warnings."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypedDict

from codex_analytics.contract.events import AppServerClientMetadata
from codex_analytics.contract.facts import RuntimeMetadata

from ..drops import DropReason
from ..fact_context import FactContext
from .state import JTables, ThreadJ, ThreadMetadataJ


class ClientAndLineage(TypedDict):
    """The keys every event of a thread with context carries beside its ids: who the
    client is, where it runs, and where the thread comes from (keyword arguments of the
    event's params; the params model orders its keys)."""

    app_server_client: AppServerClientMetadata
    runtime: RuntimeMetadata
    thread_source: str | None
    subagent_source: str | None
    parent_thread_id: str | None


def client_and_lineage(
    client: AppServerClientMetadata, runtime: RuntimeMetadata, metadata: ThreadMetadataJ
) -> ClientAndLineage:
    return ClientAndLineage(
        app_server_client=client,
        runtime=runtime,
        thread_source=metadata.thread_source,
        subagent_source=metadata.subagent_source,
        parent_thread_id=metadata.parent_thread_id,
    )


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

    def client_and_lineage(self) -> ClientAndLineage:
        return client_and_lineage(self.client, self.runtime, self.metadata)


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
    ctx: FactContext,
    thread_id: str,
    site: str,
    *,
    connection_id: int | None = None,
    **ids: str | int | None,
) -> ThreadContext | None:
    """The thread's context, or None after dropping the event with upstream's warning
    (``dropping {site} analytics event: missing analytics context``, naming ``ids``
    beside the thread, as upstream's warning names the turn or review). The connection
    is ``connection_id`` when given (a turn's own, from its ``turn/start`` response),
    else the thread's. Touches what it finds, so that a thread in use does not expire."""

    def missing(what: str, **more: str | int | None) -> None:
        ctx.drop(
            DropReason.MISSING_CONTEXT,
            site=site,
            missing_context=what,
            **more,
            thread_id=thread_id,
            **ids,
        )

    thread = tables(ctx).threads.get(thread_id)
    if connection_id is None and thread is not None:
        connection_id = thread.connection_id
    if connection_id is None:
        missing("thread_connection")
        return None
    connection = ctx.state.connections.get(connection_id)
    if connection is None:
        missing("connection", connection_id=connection_id)
        return None
    if thread is None or thread.metadata is None:
        missing("thread_metadata")
        return None
    connection.touched_ms = thread.touched_ms = ctx.now_ms
    return ThreadContext(
        thread_id,
        thread,
        thread.metadata,
        client_for(connection.client, thread),
        connection.runtime,
    )
