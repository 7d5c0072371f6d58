"""Tool items (profile-j.md §5.3 tool counts, §5.3.1, §4.2 "Tool value rules"): the turn's
tool counters, and one tool event per completed tool item."""

from __future__ import annotations

from typing import Any

from codex_analytics.contract.profile_j import tool_events as ev
from codex_analytics.contract.profile_j import tool_facts as tf

from ..derive import non_negative, observed_duration_ms
from ..drops import DropReason
from ..fact_context import FactContext
from .context import ThreadContext, tables, thread_context
from .held_events import record_tool_event
from .state import ItemReviewSummaryJ, ToolCounts, ToolItemStartedJ

#: ThreadItem type -> the turn counter it increments (with ``total``). A collab agent
#: tool call counts as a sub-agent tool call, as upstream's ``TurnToolCounts::record``.
COUNTERS = {
    "commandExecution": "shell_command",
    "fileChange": "file_change",
    "mcpToolCall": "mcp_tool_call",
    "dynamicToolCall": "dynamic_tool_call",
    "collabAgentToolCall": "subagent_tool_call",
    tf.SUBAGENT_ACTIVITY: "subagent_tool_call",
    "webSearch": "web_search",
    "imageGeneration": "image_generation",
}


def count(counts: ToolCounts, counter: str) -> None:
    setattr(counts, counter, getattr(counts, counter) + 1)
    counts.total += 1


def item_started(ctx: FactContext, view: tf.ItemStartedParams) -> None:
    """``item/started`` of a tool item: when it started (negative: ignored)."""
    if view.item.type not in tf.TOOL_ITEM_MODELS or view.started_at_ms < 0:
        return
    table = tables(ctx).tool_items_started
    key = (view.thread_id, view.turn_id, view.item.id)
    if ctx.has_room("tool_items_started", table, key, ctx.limits.tool_items_started):
        table[key] = ToolItemStartedJ(ctx.now_ms, view.started_at_ms)


def item_completed(ctx: FactContext, view: tf.ItemCompletedParams) -> None:
    """``item/completed`` (upstream ``ingest_notification``, ``ItemCompleted``): count the
    tool call on its turn, then emit (or hold) its event."""
    item = view.item
    counter = COUNTERS.get(item.type)
    if counter is None:
        return
    j = tables(ctx)
    turn = j.turns.get(view.turn_id)
    ids = {"thread_id": view.thread_id, "turn_id": view.turn_id}
    if item.type == tf.SUBAGENT_ACTIVITY:
        if turn is None:
            ctx.drop(DropReason.SUBAGENT_COUNT_MISSING_TURN, **ids)
            return
        count(turn.tool_counts, counter)
        turn.touched_ms = ctx.now_ms
        return
    if turn is None:
        ctx.drop(DropReason.TOOL_COUNT_MISSING_TURN, **ids, item_id=item.id)
        return
    count(turn.tool_counts, counter)
    turn.touched_ms = ctx.now_ms
    key = (view.thread_id, view.turn_id, item.id)
    started = j.tool_items_started.pop(key, None)
    if started is None:
        ctx.drop(DropReason.TOOL_ITEM_MISSING_STARTED, **ids, item_id=item.id)
        return
    if view.completed_at_ms < 0:
        return  # silently, as upstream
    context = thread_context(
        ctx, view.thread_id, "tool item", turn_id=view.turn_id, item_id=item.id
    )
    if context is None:
        return
    assert item.detail is not None  # every counted type but sub-agent activity has one
    event = tool_item_event(
        context,
        view.turn_id,
        item.id,
        item.detail,
        started.started_at_ms,
        view.completed_at_ms,
        j.item_review_summaries.get(key),
    )
    if event is not None:
        record_tool_event(ctx, event, always_hold=False)
    j.item_review_summaries.pop(key, None)


# -- the events ---------------------------------------------------------------------------------

#: Item status -> (terminal_status, failure_kind); ``inProgress`` makes no event.
_OUTCOMES: dict[str, tuple[str, str | None]] = {
    "completed": ("completed", None),
    "failed": ("failed", "tool_error"),
    "declined": ("rejected", "approval_denied"),
}
COMMAND_TOOL_NAMES = {
    "agent": "shell",
    "userShell": "user_shell",
    "unifiedExecStartup": "unified_exec",
    "unifiedExecInteraction": "unified_exec",
}
COLLAB_TOOL_NAMES = {
    "spawnAgent": "spawn_agent",
    "sendInput": "send_input",
    "resumeAgent": "resume_agent",
    "wait": "wait_agent",
    "closeAgent": "close_agent",
}
#: What Rust's ``str::trim`` strips (Unicode White_Space): Python's ``str.strip()`` also
#: strips U+001C..U+001F, which would make a query of those characters blank here and
#: not upstream.
_RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def is_blank(text: str) -> bool:
    """``text.trim().is_empty()`` as upstream computes it."""
    return not text.strip(_RUST_WHITESPACE)


WEB_SEARCH_ACTIONS = {
    "search": "search",
    "openPage": "open_page",
    "findInPage": "find_in_page",
    "other": "other",
}


def tool_item_base(
    context: ThreadContext,
    turn_id: str,
    item_id: str,
    tool_name: str,
    outcome: tuple[str, str | None],
    execution_duration_ms: int | None,
    started_at_ms: int,
    completed_at_ms: int,
    summary: ItemReviewSummaryJ | None,
) -> dict[str, Any]:
    """The 26 base keys (upstream ``tool_item_base``), as keyword arguments."""
    metadata = context.metadata
    return {
        "thread_id": context.thread_id,
        "session_id": metadata.session_id,
        "turn_id": turn_id,
        "item_id": item_id,
        "cell_id": None,
        "parent_call_id": None,
        "originating_response_id": None,
        "subsequent_response_id": None,
        **context.client_and_lineage(),
        "tool_name": tool_name,
        "started_at_ms": started_at_ms,
        "completed_at_ms": completed_at_ms,
        "duration_ms": observed_duration_ms(started_at_ms, completed_at_ms),
        "execution_duration_ms": execution_duration_ms,
        "review_count": 0 if summary is None else summary.review_count,
        "guardian_review_count": 0 if summary is None else summary.guardian_review_count,
        "user_review_count": 0 if summary is None else summary.user_review_count,
        "final_approval_outcome": (
            "unknown"
            if summary is None or summary.final_approval_outcome is None
            else summary.final_approval_outcome
        ),
        "terminal_status": outcome[0],
        "failure_kind": outcome[1],
        "requested_additional_permissions": (
            False if summary is None else summary.requested_additional_permissions
        ),
        "requested_network_access": False if summary is None else summary.requested_network_access,
    }


def is_safe_plugin_relative_path(path: str) -> bool:
    """A non-empty relative ``/``-separated path without ``\\``, empty, ``.`` or ``..``
    components, nor a component that starts with a drive letter and ``:``."""
    return (
        path != ""
        and not path.startswith("/")
        and "\\" not in path
        and all(
            part not in ("", ".", "..")
            and not (len(part) >= 2 and part[1] == ":" and part[0].isascii() and part[0].isalpha())
            for part in path.split("/")
        )
    )


def safe_script_path(plugin_id: str | None, script_path: str | None) -> str | None:
    """The item's ``scriptPath``, only for a plugin's script and only when safe."""
    if plugin_id is None or script_path is None or not is_safe_plugin_relative_path(script_path):
        return None
    return script_path


def web_search_query_count(item: tf.WebSearchItem) -> int | None:
    action = item.action
    if action is None:
        return None if is_blank(item.query) else 1
    if action.type != "search":
        return None
    if action.queries is not None:
        return len(action.queries)
    return 1 if action.query is not None else None


def tool_item_event(
    context: ThreadContext,
    turn_id: str,
    item_id: str,
    item: tf.ToolItemDetail,
    started_at_ms: int,
    completed_at_ms: int,
    summary: ItemReviewSummaryJ | None,
) -> ev.ToolEvent | None:
    """The tool event of a completed item (upstream ``tool_item_event``); None for an
    item still in progress."""

    def base(
        tool_name: str, outcome: tuple[str, str | None], execution_ms: int | None
    ) -> dict[str, Any]:
        return tool_item_base(
            context,
            turn_id,
            item_id,
            tool_name,
            outcome,
            execution_ms,
            started_at_ms,
            completed_at_ms,
            summary,
        )

    if isinstance(item, tf.ImageGenerationItem):
        failed = item.status in ("failed", "error")
        image_outcome: tuple[str, str | None] = (
            ("failed", "tool_error") if failed else ("completed", None)
        )
        return ev.ImageGenerationEvent(
            event_params=ev.ImageGenerationEventParams(
                **base("image_generation", image_outcome, None),
                revised_prompt_present=item.revised_prompt is not None,
                saved_path_present=item.saved_path is not None,
            )
        )
    if isinstance(item, tf.WebSearchItem):
        return ev.WebSearchEvent(
            event_params=ev.WebSearchEventParams(
                **base("web_search", ("completed", None), None),
                web_search_action=None
                if item.action is None
                else WEB_SEARCH_ACTIONS.get(item.action.type, "other"),  # type: ignore[arg-type]
                query_present=not is_blank(item.query),
                query_count=web_search_query_count(item),
            )
        )
    found = _OUTCOMES.get(item.status)
    if found is None:  # inProgress
        return None
    outcome = found
    if isinstance(item, tf.CommandExecutionItem):
        actions = [action.type for action in item.command_actions]
        source = "agent" if item.source is None else item.source
        return ev.CommandExecutionEvent(
            event_params=ev.CommandExecutionEventParams(
                **base(COMMAND_TOOL_NAMES[source], outcome, non_negative(item.duration_ms)),
                plugin_id=item.plugin_id,
                script_path=safe_script_path(item.plugin_id, item.script_path),
                command_execution_source=source,
                exit_code=item.exit_code,
                command_total_action_count=len(actions),
                command_read_action_count=actions.count("read"),
                command_list_files_action_count=actions.count("listFiles"),
                command_search_action_count=actions.count("search"),
                command_unknown_action_count=actions.count("unknown"),
            )
        )
    if isinstance(item, tf.FileChangeItem):
        kinds = [
            "move"
            if change.kind.type == "update" and change.kind.move_path is not None
            else change.kind.type
            for change in item.changes
        ]
        return ev.FileChangeEvent(
            event_params=ev.FileChangeEventParams(
                **base("apply_patch", outcome, None),
                file_change_count=len(kinds),
                file_add_count=kinds.count("add"),
                file_update_count=kinds.count("update"),
                file_delete_count=kinds.count("delete"),
                file_move_count=kinds.count("move"),
            )
        )
    if isinstance(item, tf.McpToolCallItem):
        return ev.McpToolCallEvent(
            event_params=ev.McpToolCallEventParams(
                **base(item.tool, outcome, non_negative(item.duration_ms)),
                mcp_server_name=item.server,
                mcp_tool_name=item.tool,
                mcp_error_present=item.error is not None,
                plugin_id=item.plugin_id,
                connector_id=None if item.app_context is None else item.app_context.connector_id,
            )
        )
    if isinstance(item, tf.DynamicToolCallItem):
        contents = None if item.content_items is None else [c.type for c in item.content_items]
        return ev.DynamicToolCallEvent(
            event_params=ev.DynamicToolCallEventParams(
                **base(item.tool, outcome, non_negative(item.duration_ms)),
                dynamic_tool_name=item.tool,
                success=item.success,
                output_content_item_count=None if contents is None else len(contents),
                output_text_item_count=None if contents is None else contents.count("inputText"),
                output_image_item_count=None if contents is None else contents.count("inputImage"),
                output_audio_item_count=None if contents is None else contents.count("inputAudio"),
            )
        )
    # A collab agent tool call: the last tracked type.
    return ev.CollabAgentToolCallEvent(
        event_params=ev.CollabAgentToolCallEventParams(
            **base(COLLAB_TOOL_NAMES[item.tool], outcome, None),
            sender_thread_id=item.sender_thread_id,
            receiver_thread_count=len(item.receiver_thread_ids),
            receiver_thread_ids=list(item.receiver_thread_ids),
            requested_model=item.model,
            requested_reasoning_effort=item.reasoning_effort,
            agent_state_count=len(item.agents_states),
            completed_agent_count=item.completed_agent_count,
            failed_agent_count=item.failed_agent_count,
        )
    )
