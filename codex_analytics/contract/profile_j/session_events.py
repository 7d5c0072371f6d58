"""Profile J events of the session domain (profile-j.md §4): field order is key order.

Threads (``codex_thread_initialized``, ``codex_thread_archive_event``), turns
(``codex_turn_event``, ``codex_turn_steer_event``) and a turn's accepted lines
(``codex_accepted_line_fingerprints``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, Union

from ..events import AppServerClientMetadata, InitializationMode, RejectionReason, SteerResult
from ..facts import RuntimeMetadata
from ..schema import U64, JsonValue
from .session_facts import CodexErrKind, ImagePreparationMetadata

SandboxPolicyName = Literal["full_access", "read_only", "workspace_write", "external_sandbox"]
TurnStatusName = Literal["completed", "failed", "interrupted"]
ThreadArchiveAction = Literal["archived", "unarchived"]

# -- event_params -----------------------------------------------------------------------


@dataclass(slots=True)
class ThreadInitializedEventParamsJ:
    thread_id: str
    session_id: str
    app_server_client: AppServerClientMetadata
    runtime: RuntimeMetadata
    model: str
    ephemeral: bool
    #: Upstream ``ThreadSource``: ``user``, ``subagent``, ``memory_consolidation`` or a
    #: feature's name, as the thread said it.
    thread_source: str | None
    initialization_mode: InitializationMode
    subagent_source: str | None
    parent_thread_id: str | None
    forked_from_thread_id: str | None
    created_at: U64


@dataclass(slots=True)
class TurnEventParamsJ:
    """The 57 keys of the Profile J turn event."""

    thread_id: str
    session_id: str
    turn_id: str
    submission_type: str | None
    app_server_client: AppServerClientMetadata
    runtime: RuntimeMetadata
    ephemeral: bool
    thread_source: str | None
    initialization_mode: InitializationMode
    subagent_source: str | None
    parent_thread_id: str | None
    model: str
    model_provider: str
    sandbox_policy: SandboxPolicyName
    reasoning_effort: str | None
    reasoning_summary: str | None
    service_tier: str
    approval_policy: str
    approvals_reviewer: str
    sandbox_network_access: bool
    collaboration_mode: Literal["plan", "default"]
    personality: str | None
    workspace_kind: str | None
    num_input_images: U64
    image_preparations: list[ImagePreparationMetadata]
    is_first_turn: bool
    status: TurnStatusName | None
    explicit_client_interrupt_requested_at_ms: U64 | None
    turn_error: JsonValue
    codex_error_kind: CodexErrKind | None
    codex_error_http_status_code: U64 | None
    steer_count: U64
    total_tool_call_count: U64
    shell_command_count: U64
    file_change_count: U64
    mcp_tool_call_count: U64
    dynamic_tool_call_count: U64
    subagent_tool_call_count: U64
    web_search_count: U64
    image_generation_count: U64
    input_tokens: int | None
    cached_input_tokens: int | None
    cache_write_input_tokens: int | None
    output_tokens: int | None
    reasoning_output_tokens: int | None
    total_tokens: int | None
    before_first_sampling_ms: U64
    sampling_ms: U64
    compaction_ms: U64
    between_sampling_overhead_ms: U64
    tool_blocking_ms: U64
    after_last_sampling_ms: U64
    sampling_request_count: U64
    sampling_retry_count: U64
    duration_ms: U64 | None
    started_at: U64 | None
    completed_at: U64


@dataclass(slots=True)
class TurnSteerEventParamsJ:
    thread_id: str
    session_id: str
    expected_turn_id: str
    accepted_turn_id: str | None
    app_server_client: AppServerClientMetadata
    runtime: RuntimeMetadata
    thread_source: str | None
    subagent_source: str | None
    parent_thread_id: str | None
    num_input_images: U64
    result: SteerResult
    rejection_reason: RejectionReason | None
    created_at: U64


@dataclass(slots=True)
class AcceptedLineFingerprint:
    """Upstream's per-line hashes; computed upstream but never uploaded (always ``[]``)."""

    path_hash: str
    line_hash: str


@dataclass(slots=True)
class AcceptedLineFingerprintsEventParams:
    #: The upstream analytics name of the event (dotted), repeated in its params.
    event_type: Literal["codex.accepted_line_fingerprints"]
    turn_id: str
    thread_id: str
    product_surface: str | None
    model_slug: str | None
    completed_at: U64
    repo_hash: str | None
    accepted_added_lines: U64
    accepted_deleted_lines: U64
    line_fingerprints: list[AcceptedLineFingerprint]


@dataclass(slots=True)
class ThreadArchiveEventParams:
    thread_id: str
    action: ThreadArchiveAction
    occurred_at_ms: U64


# -- events -------------------------------------------------------------------------------
# ``event_type`` is keyword-only with a default so that it stays the first key.


@dataclass(slots=True, kw_only=True)
class ThreadInitializedEventJ:
    event_type: Literal["codex_thread_initialized"] = "codex_thread_initialized"
    event_params: ThreadInitializedEventParamsJ


@dataclass(slots=True, kw_only=True)
class TurnEventJ:
    event_type: Literal["codex_turn_event"] = "codex_turn_event"
    event_params: TurnEventParamsJ


@dataclass(slots=True, kw_only=True)
class TurnSteerEventJ:
    event_type: Literal["codex_turn_steer_event"] = "codex_turn_steer_event"
    event_params: TurnSteerEventParamsJ


@dataclass(slots=True, kw_only=True)
class AcceptedLineFingerprintsEvent:
    """Sent in a request of its own (``codec.ISOLATED_EVENT_TYPES`` keys on this
    ``event_type``, not on the dotted name inside ``event_params``)."""

    event_type: Literal["codex_accepted_line_fingerprints"] = "codex_accepted_line_fingerprints"
    event_params: AcceptedLineFingerprintsEventParams


@dataclass(slots=True, kw_only=True)
class ThreadArchiveEvent:
    event_type: Literal["codex_thread_archive_event"] = "codex_thread_archive_event"
    event_params: ThreadArchiveEventParams


#: The union of this module's event models.
Event: TypeAlias = Union[  # noqa: UP007
    ThreadInitializedEventJ,
    TurnEventJ,
    TurnSteerEventJ,
    AcceptedLineFingerprintsEvent,
    ThreadArchiveEvent,
]
#: event_type -> event model.
EVENTS: dict[str, type[Any]] = {
    "codex_thread_initialized": ThreadInitializedEventJ,
    "codex_turn_event": TurnEventJ,
    "codex_turn_steer_event": TurnSteerEventJ,
    "codex_accepted_line_fingerprints": AcceptedLineFingerprintsEvent,
    "codex_thread_archive_event": ThreadArchiveEvent,
}
