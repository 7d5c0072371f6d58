"""``code_mode_tool_call`` facts (profile-j.md §5.3.2; upstream
``ingest_code_mode_tool_call``): cells, their child calls, the responses that called them,
and the code-mode calls that completed (a held ``codex_dynamic_tool_call_event`` each)."""

from __future__ import annotations

from codex_analytics.contract.profile_j import tool_events as ev
from codex_analytics.contract.profile_j import tool_facts as tf

from ..derive import observed_duration_ms
from ..fact_context import FactContext
from .context import tables, thread_context
from .held_events import (
    MAX_TOOL_RESPONSE_ENTRIES,
    record_tool_event,
    release_subsequent,
    responses_for,
    thread_cells,
)
from .state import CodeModeCellJ, TurnJ
from .tool_items import count, tool_item_base

_TERMINAL_STATUS = {"completed": "completed", "failed": "failed", "interrupted": "interrupted"}


def has_thread_context(ctx: FactContext, thread_id: str) -> bool:
    """Metadata, a connection, and that connection known: without all three a code-mode
    fact is ignored, silently (only ``completed`` warns, below)."""
    thread = tables(ctx).threads.get(thread_id)
    return (
        thread is not None
        and thread.metadata is not None
        and thread.connection_id is not None
        and thread.connection_id in ctx.state.connections
    )


def code_mode_tool_call(ctx: FactContext, payload: tf.CodeModeToolCallPayload) -> None:
    if not has_thread_context(ctx, payload.thread_id):
        return
    body = payload.body
    if isinstance(body, tf.CodeModeCallStarted):
        if payload.variant == "cell_started":
            cell_started(ctx, body)
        else:
            child_started(ctx, body)
    elif isinstance(body, tf.CodeModeCellClosed):
        cell = tables(ctx).code_mode_cells.get((body.thread_id, body.cell_id))
        if cell is not None:
            cell.closed_in_turn_id = body.turn_id
            cell.touched_ms = ctx.now_ms
    elif isinstance(body, tf.CodeModeSamplingResponseCompleted):
        sampling_response_completed(ctx, body)
    elif isinstance(body, tf.CodeModeCallCompleted):
        call_completed(ctx, body)


def cell_started(ctx: FactContext, body: tf.CodeModeCallStarted) -> None:
    """A cell began: its parent call and, if already known, the response that called it
    (at most 256 cells per thread; an existing cell may be started again)."""
    cells = tables(ctx).code_mode_cells
    key = (body.thread_id, body.cell_id)
    if key not in cells:
        in_thread = sum(1 for _ in thread_cells(ctx, body.thread_id))
        if in_thread >= MAX_TOOL_RESPONSE_ENTRIES:
            return
        if not ctx.has_room("code_mode_cells", cells, key, ctx.limits.code_mode_cells):
            return
    responses = tables(ctx).tool_responses.get((body.thread_id, body.turn_id))
    origin = None if responses is None else responses.response_ids.get(body.call_id)
    cells[key] = CodeModeCellJ(ctx.now_ms, body.call_id, origin)


def child_started(ctx: FactContext, body: tf.CodeModeCallStarted) -> None:
    """A call made from within a known cell: remembered for its turn (at most 256)."""
    if (body.thread_id, body.cell_id) not in tables(ctx).code_mode_cells:
        return
    responses = responses_for(ctx, (body.thread_id, body.turn_id))
    if responses is None:
        return
    children = responses.child_cells
    if body.call_id in children or len(children) < MAX_TOOL_RESPONSE_ENTRIES:
        children[body.call_id] = body.cell_id


def sampling_response_completed(
    ctx: FactContext, body: tf.CodeModeSamplingResponseCompleted
) -> None:
    """A model response completed, naming the tool calls it made: they (and the cells
    they started) originate from it; held events another response originated are
    released now."""
    responses = responses_for(ctx, (body.thread_id, body.turn_id))
    if responses is None:
        return
    response_ids = responses.response_ids
    for call_id in body.tool_call_ids:
        if call_id in response_ids or len(response_ids) < MAX_TOOL_RESPONSE_ENTRIES:
            response_ids[call_id] = body.response_id
    for _cell_id, cell in thread_cells(ctx, body.thread_id):
        if cell.originating_response_id is None:
            origin = response_ids.get(cell.parent_call_id)
            if origin is not None:
                cell.originating_response_id = origin
                cell.touched_ms = ctx.now_ms
    release_subsequent(ctx, responses, body.response_id)


def call_completed(ctx: FactContext, body: tf.CodeModeCallCompleted) -> None:
    """A code-mode tool call completed: counted on its turn (created if need be) as a
    dynamic tool call, and its event held."""
    context = thread_context(
        ctx, body.thread_id, "code mode tool", turn_id=body.turn_id, item_id=body.call_id
    )
    if context is None:
        return
    turn = ctx.entry("turns", tables(ctx).turns, body.turn_id, ctx.limits.turns, TurnJ)
    if turn is None:
        return
    count(turn.tool_counts, "dynamic_tool_call")
    outcome = (_TERMINAL_STATUS[body.status], "tool_error" if body.status == "failed" else None)
    base = tool_item_base(
        context,
        body.turn_id,
        body.call_id,
        body.tool_name,
        outcome,
        observed_duration_ms(body.started_at_ms, body.completed_at_ms),
        body.started_at_ms,
        body.completed_at_ms,
        None,
    )
    base["cell_id"] = body.cell_id
    event = ev.DynamicToolCallEvent(
        event_params=ev.DynamicToolCallEventParams(
            **base,
            dynamic_tool_name=body.tool_name,
            success=body.status == "completed",
            output_content_item_count=None,
            output_text_item_count=None,
            output_image_item_count=None,
            output_audio_item_count=None,
        )
    )
    record_tool_event(ctx, event, always_hold=True)
