"""Code-mode correlation of tool events, and the events it holds (profile-j.md §5.3.2).

A tool event is enriched with its code-mode cell, the cell's parent call and the response
that called it. An event correlated with code mode (a cell or an originating response) is
held in the state until its turn completes, its thread closes or the producer flushes;
a later response of the same turn releases it early, naming itself as the subsequent
response. Released events keep their order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from codex_analytics.contract.profile_j.tool_events import ToolEvent, ToolItemEventBase

from ..fact_context import FactContext
from .context import tables
from .state import CodeModeCellJ, ToolResponsesJ, TurnKey

#: Upstream's cap (``MAX_TOOL_RESPONSE_ENTRIES``) on each map of a turn's correlation,
#: on the cells of a thread, and on the events held for a turn.
MAX_TOOL_RESPONSE_ENTRIES = 256


def responses_for(ctx: FactContext, key: TurnKey) -> ToolResponsesJ | None:
    """The turn's correlation record, created (and touched) on demand; None when the table
    is full (the fact is then dropped as ``instance_state_full``)."""
    return ctx.entry(
        "tool_responses", tables(ctx).tool_responses, key, ctx.limits.tool_responses, ToolResponsesJ
    )


def thread_cells(ctx: FactContext, thread_id: str) -> Iterator[tuple[str, CodeModeCellJ]]:
    """The code-mode cells of a thread: ``(cell_id, cell)``."""
    for (cell_thread, cell_id), cell in tables(ctx).code_mode_cells.items():
        if cell_thread == thread_id:
            yield cell_id, cell


def enrich(ctx: FactContext, params: ToolItemEventBase, responses: ToolResponsesJ | None) -> None:
    """Fill the event's code-mode fields from what is known now (upstream
    ``enrich_tool_response_event``): a child call's cell, the cell's parent call (unless
    the event is that call), and the originating response, the call's own else the
    cell's. An unknown cell clears ``cell_id`` and ``parent_call_id``."""
    item_id = params.item_id
    if params.cell_id is None and responses is not None:
        params.cell_id = responses.child_cells.get(item_id)
    cell = None
    if params.cell_id is not None:
        cell = tables(ctx).code_mode_cells.get((params.thread_id, params.cell_id))
    if cell is None:
        params.cell_id = params.parent_call_id = None
    else:
        params.parent_call_id = None if cell.parent_call_id == item_id else cell.parent_call_id
    response_id = None if responses is None else responses.response_ids.get(item_id)
    if response_id is None and cell is not None:
        response_id = cell.originating_response_id
    params.originating_response_id = response_id


def record_tool_event(ctx: FactContext, event: ToolEvent, *, always_hold: bool) -> None:
    """Emit or hold one tool event (upstream ``record_tool_event``): a tool item's event
    is held only when correlated with code mode; a code-mode call's always is."""
    params = event.event_params
    key = (params.thread_id, params.turn_id)
    existing = tables(ctx).tool_responses.get(key)
    enrich(ctx, params, existing)
    correlated = params.cell_id is not None or params.originating_response_id is not None
    if not always_hold and not correlated:
        ctx.emit(event)
        return
    responses = existing
    if responses is None:
        table = tables(ctx).tool_responses
        if len(table) >= ctx.limits.tool_responses:
            # Nowhere to hold it: released at once rather than lost (PROPOSAL).
            ctx.emit(event)
            return
        responses = table[key] = ToolResponsesJ(ctx.now_ms)
    responses.touched_ms = ctx.now_ms
    if len(responses.held) >= MAX_TOOL_RESPONSE_ENTRIES or (
        held_count(ctx) >= ctx.limits.held_tool_events
    ):
        # Upstream releases the turn's oldest past its cap; past the instance's limit,
        # so do we (or this event itself when the turn holds none).
        if not responses.held:
            ctx.emit(event)
            return
        ctx.emit(responses.held.pop(0))
    responses.held.append(event)


def held_count(ctx: FactContext) -> int:
    return sum(len(record.held) for record in tables(ctx).tool_responses.values())


def release_subsequent(ctx: FactContext, responses: ToolResponsesJ, response_id: str) -> None:
    """A response of the turn completed: re-enrich each held event, and release the ones
    that a *different* response originated, naming this one as their subsequent
    response (upstream ``ingest_sampling_response_completed``)."""
    remaining: list[Any] = []
    for event in responses.held:
        params = event.event_params
        enrich(ctx, params, responses)
        origin = params.originating_response_id
        if origin is not None and origin != response_id:
            params.subsequent_response_id = response_id
            ctx.emit(event)
        else:
            remaining.append(event)
    responses.held = remaining


def release_turn(ctx: FactContext, thread_id: str, turn_id: str) -> None:
    """The turn completed: release its held events and forget its correlation; the
    thread's cells closed in that turn go too (upstream ``flush_pending_tool_events``)."""
    j = tables(ctx)
    responses = j.tool_responses.pop((thread_id, turn_id), None)
    if responses is not None:
        for event in responses.held:
            ctx.emit(event)
    closed = [
        (thread_id, cell_id)
        for cell_id, cell in thread_cells(ctx, thread_id)
        if cell.closed_in_turn_id == turn_id
    ]
    for key in closed:
        del j.code_mode_cells[key]


def release_thread(ctx: FactContext, thread_id: str) -> None:
    """The thread closed: release the held events of all its turns and forget its
    correlation and its cells."""
    j = tables(ctx)
    for key in [key for key in j.tool_responses if key[0] == thread_id]:
        for event in j.tool_responses.pop(key).held:
            ctx.emit(event)
    for key in [key for key in j.code_mode_cells if key[0] == thread_id]:
        del j.code_mode_cells[key]


def release_all(ctx: FactContext) -> None:
    """``flush``: release every held event, of every turn; the correlation stays
    (upstream ``AnalyticsReducer::flush``)."""
    for responses in tables(ctx).tool_responses.values():
        for event in responses.held:
            ctx.emit(event)
        responses.held = []
