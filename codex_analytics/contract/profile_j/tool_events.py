"""Profile J events of the tool domain (profile-j.md §4.2): field order is key order.

The seven tool events share upstream's ``CodexToolItemEventBase`` (flattened into their
``event_params``): here a base dataclass whose fields come first in each subclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, Union

from ..events import AppServerClientMetadata
from ..facts import RuntimeMetadata
from ..schema import U64

FinalApprovalOutcome = Literal[
    "unknown",
    "not_needed",
    "config_allowed",
    "policy_forbidden",
    "guardian_approved",
    "guardian_denied",
    "guardian_aborted",
    "user_approved",
    "user_approved_for_session",
    "user_denied",
    "user_aborted",
]
ToolItemTerminalStatus = Literal["completed", "failed", "rejected", "interrupted"]
ToolItemFailureKind = Literal[
    "tool_error", "approval_denied", "approval_aborted", "sandbox_denied", "policy_forbidden"
]
ReviewSubjectKind = Literal[
    "command_execution", "file_change", "mcp_tool_call", "permissions", "network_access"
]
Reviewer = Literal["guardian", "user"]
ReviewTrigger = Literal["initial", "sandbox_denial", "network_policy_denial", "execve_intercept"]
ReviewStatus = Literal["approved", "denied", "aborted", "timed_out"]
ReviewResolution = Literal[
    "none", "session_approval", "exec_policy_amendment", "network_policy_amendment"
]
WebSearchActionKind = Literal["search", "open_page", "find_in_page", "other"]
CommandExecutionSourceName = Literal[
    "agent", "userShell", "unifiedExecStartup", "unifiedExecInteraction"
]


@dataclass(slots=True)
class ToolItemEventBase:
    """``CodexToolItemEventBase``: the first 26 keys of every tool event."""

    thread_id: str
    session_id: str
    turn_id: str
    item_id: str
    cell_id: str | None
    parent_call_id: str | None
    originating_response_id: str | None
    subsequent_response_id: str | None
    app_server_client: AppServerClientMetadata
    runtime: RuntimeMetadata
    thread_source: str | None
    subagent_source: str | None
    parent_thread_id: str | None
    tool_name: str
    started_at_ms: U64
    completed_at_ms: U64
    duration_ms: U64 | None
    execution_duration_ms: U64 | None
    review_count: U64
    guardian_review_count: U64
    user_review_count: U64
    final_approval_outcome: FinalApprovalOutcome
    terminal_status: ToolItemTerminalStatus
    failure_kind: ToolItemFailureKind | None
    requested_additional_permissions: bool
    requested_network_access: bool


@dataclass(slots=True)
class CommandExecutionEventParams(ToolItemEventBase):
    plugin_id: str | None
    script_path: str | None
    command_execution_source: CommandExecutionSourceName
    exit_code: int | None
    command_total_action_count: U64
    command_read_action_count: U64
    command_list_files_action_count: U64
    command_search_action_count: U64
    command_unknown_action_count: U64


@dataclass(slots=True)
class FileChangeEventParams(ToolItemEventBase):
    file_change_count: U64
    file_add_count: U64
    file_update_count: U64
    file_delete_count: U64
    file_move_count: U64


@dataclass(slots=True)
class McpToolCallEventParams(ToolItemEventBase):
    mcp_server_name: str
    mcp_tool_name: str
    mcp_error_present: bool
    plugin_id: str | None
    connector_id: str | None


@dataclass(slots=True)
class DynamicToolCallEventParams(ToolItemEventBase):
    dynamic_tool_name: str
    success: bool | None
    output_content_item_count: U64 | None
    output_text_item_count: U64 | None
    output_image_item_count: U64 | None
    output_audio_item_count: U64 | None


@dataclass(slots=True)
class CollabAgentToolCallEventParams(ToolItemEventBase):
    sender_thread_id: str
    receiver_thread_count: U64
    receiver_thread_ids: list[str] | None
    requested_model: str | None
    requested_reasoning_effort: str | None
    agent_state_count: U64 | None
    completed_agent_count: U64 | None
    failed_agent_count: U64 | None


@dataclass(slots=True)
class WebSearchEventParams(ToolItemEventBase):
    web_search_action: WebSearchActionKind | None
    query_present: bool
    query_count: U64 | None


@dataclass(slots=True)
class ImageGenerationEventParams(ToolItemEventBase):
    revised_prompt_present: bool
    saved_path_present: bool


@dataclass(slots=True)
class ReviewEventParams:
    thread_id: str
    turn_id: str
    item_id: str | None
    review_id: str
    app_server_client: AppServerClientMetadata
    runtime: RuntimeMetadata
    thread_source: str | None
    subagent_source: str | None
    parent_thread_id: str | None
    subject_kind: ReviewSubjectKind
    subject_name: str
    reviewer: Reviewer
    trigger: ReviewTrigger
    status: ReviewStatus
    resolution: ReviewResolution
    started_at_ms: U64
    completed_at_ms: U64
    duration_ms: U64 | None


# -- events ---------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class CommandExecutionEvent:
    event_type: Literal["codex_command_execution_event"] = "codex_command_execution_event"
    event_params: CommandExecutionEventParams


@dataclass(slots=True, kw_only=True)
class FileChangeEvent:
    event_type: Literal["codex_file_change_event"] = "codex_file_change_event"
    event_params: FileChangeEventParams


@dataclass(slots=True, kw_only=True)
class McpToolCallEvent:
    event_type: Literal["codex_mcp_tool_call_event"] = "codex_mcp_tool_call_event"
    event_params: McpToolCallEventParams


@dataclass(slots=True, kw_only=True)
class DynamicToolCallEvent:
    event_type: Literal["codex_dynamic_tool_call_event"] = "codex_dynamic_tool_call_event"
    event_params: DynamicToolCallEventParams


@dataclass(slots=True, kw_only=True)
class CollabAgentToolCallEvent:
    event_type: Literal["codex_collab_agent_tool_call_event"] = "codex_collab_agent_tool_call_event"
    event_params: CollabAgentToolCallEventParams


@dataclass(slots=True, kw_only=True)
class WebSearchEvent:
    event_type: Literal["codex_web_search_event"] = "codex_web_search_event"
    event_params: WebSearchEventParams


@dataclass(slots=True, kw_only=True)
class ImageGenerationEvent:
    event_type: Literal["codex_image_generation_event"] = "codex_image_generation_event"
    event_params: ImageGenerationEventParams


@dataclass(slots=True, kw_only=True)
class ReviewEvent:
    event_type: Literal["codex_review_event"] = "codex_review_event"
    event_params: ReviewEventParams


#: A tool event: what code mode may hold back (profile-j.md §5.3.2).
ToolEvent: TypeAlias = Union[  # noqa: UP007
    CommandExecutionEvent,
    FileChangeEvent,
    McpToolCallEvent,
    DynamicToolCallEvent,
    CollabAgentToolCallEvent,
    WebSearchEvent,
    ImageGenerationEvent,
]
#: The union of this module's event models.
Event: TypeAlias = Union[ToolEvent, ReviewEvent]  # noqa: UP007

#: The tool events' types -> model.
TOOL_EVENTS: dict[str, type[Any]] = {
    "codex_command_execution_event": CommandExecutionEvent,
    "codex_file_change_event": FileChangeEvent,
    "codex_mcp_tool_call_event": McpToolCallEvent,
    "codex_dynamic_tool_call_event": DynamicToolCallEvent,
    "codex_collab_agent_tool_call_event": CollabAgentToolCallEvent,
    "codex_web_search_event": WebSearchEvent,
    "codex_image_generation_event": ImageGenerationEvent,
}
#: event_type -> event model.
EVENTS: dict[str, type[Any]] = {**TOOL_EVENTS, "codex_review_event": ReviewEvent}
