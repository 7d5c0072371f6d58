"""Profile J facts of the session domain (profile-j.md §2-§3): payload models.

Connections, requests, threads, sub-agents and turns. Kinds whose shape Profile J keeps
reuse the Profile S model; the others are declared here in upstream's key order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import DecodeError, DecodeReason
from ..facts import (
    THREAD_LIFECYCLE_METHODS,
    ClientRequestPayload,
    CompletedTurn,
    ErrorResponsePayload,
    InitializePayload,
    StartedTurn,
    parse_subagent_source,
    response_turn_id,
    thread_subagent,
)
from ..limits import Id, Name
from ..schema import (
    U64,
    JsonObject,
    JsonValue,
    absent_ok,
    decode_within,
    derived,
    wire_key,
    wrong_type,
)

# -- enums (closed sets: an unknown value is rejected) -----------------------------------

#: Upstream ``ApprovalsReviewer``: ``guardian_subagent`` is a deserialization alias of
#: ``auto_review`` (the turn event says ``auto_review`` for both).
ApprovalsReviewerJ = Literal["user", "auto_review", "guardian_subagent"]
#: Upstream ``ModeKind`` as serialized.
CollaborationModeJ = Literal["plan", "default"]
SubmissionTypeJ = Literal["default", "queued"]
#: Upstream ``AskForApproval`` as serde writes it: a kebab-case name, ``on-failure``
#: (read as an alias of ``on-request``), or ``{"granular": {...}}``.
_APPROVAL_POLICY_NAMES = {
    "untrusted": "untrusted",
    "on-request": "on-request",
    "on-failure": "on-request",
    "never": "never",
}


def approval_policy_name(value: JsonValue) -> str:
    """The turn event's ``approval_policy``: the policy's display name (upstream
    ``approval_policy.to_string()``). Raises DecodeError for anything else."""
    if type(value) is str:
        name = _APPROVAL_POLICY_NAMES.get(value)
        if name is not None:
            return name
        raise DecodeError(
            DecodeReason.UNKNOWN_ENUM_VALUE,
            "",
            f"{value[:64]!r} is not one of {tuple(_APPROVAL_POLICY_NAMES)} or {{'granular': …}}",
        )
    if type(value) is dict and len(value) == 1 and type(value.get("granular")) is dict:
        return "granular"
    raise wrong_type("an approval policy name or {'granular': {...}}", value)


#: ``resolved.sandbox_policy`` (PROPOSAL): what the producer derives from the permission
#: profile (profile-j.md §5.6), as the turn event spells it.
ResolvedSandboxPolicy = Literal["full_access", "read_only", "workspace_write", "external_sandbox"]
#: Upstream ``CodexErrKind`` (``protocol/src/error.rs``), snake_case.
CodexErrKind = Literal[
    "turn_aborted",
    "session_budget_exceeded",
    "stream",
    "context_window_exceeded",
    "thread_not_found",
    "agent_limit_reached",
    "session_configured_not_first_event",
    "timeout",
    "request_timeout",
    "spawn",
    "interrupted",
    "unexpected_status",
    "invalid_request",
    "tool_collision",
    "invalid_image_request",
    "usage_limit_reached",
    "server_overloaded",
    "cyber_policy",
    "response_stream_failed",
    "connection_failed",
    "quota_exceeded",
    "usage_not_included",
    "internal_server_error",
    "retry_limit",
    "internal_agent_died",
    "sandbox",
    "landlock_sandbox_executable_not_provided",
    "unsupported_operation",
    "refresh_token_failed",
    "fatal",
    "io",
    "json",
    "landlock_ruleset",
    "landlock_path_fd",
    "tokio_join",
    "env_var",
]
ImageDetailSetting = Literal["high", "original"]

#: The ``client_response`` methods the Profile J reducer reads besides the thread
#: lifecycle ones.
TURN_RESPONSE_METHODS = frozenset({"turn/start", "turn/steer", "turn/interrupt"})


# -- app-server protocol objects (raw kept, read fields validated) ----------------------


@dataclass(slots=True)
class AppServerThreadJ:
    """The app-server ``Thread`` as Profile J reads it (profile-j.md §2, §4.1)."""

    __protocol_object__ = True
    raw: JsonObject
    id: Id
    session_id: Id = wire_key("sessionId")
    ephemeral: bool = wire_key("ephemeral")
    created_at: int = wire_key("createdAt")
    source: JsonValue = absent_ok(None)
    #: ``ThreadSource`` as sent (``user``, ``subagent``, ``memory_consolidation`` or a
    #: feature's name), passed through: no mapping from ``source``.
    thread_source: Name | None = absent_ok(None, key="threadSource")
    parent_thread_id: Id | None = absent_ok(None, key="parentThreadId")
    forked_from_id: Id | None = absent_ok(None, key="forkedFromId")
    #: The sub-agent kind's name when ``source`` is ``{"subAgent": …}``, else None.
    subagent_source: str | None = derived()

    def _post_decode(self) -> None:
        subagent = thread_subagent(self.source)
        if subagent is not None:
            self.subagent_source, _ = subagent


@dataclass(slots=True)
class ThreadLifecycleResultJ:
    __protocol_object__ = True
    raw: JsonObject
    thread: AppServerThreadJ
    model: Name


@dataclass(slots=True)
class ClientResponsePayloadJ:
    """``client_response`` under Profile J: S's payload plus ``thread_originator``.

    Kept whole (a protocol object) so that an absent ``thread_originator`` re-encodes
    absent and a null one null: both mean "no originator" (profile-j.md §2)."""

    __protocol_object__ = True
    raw: JsonObject
    request_id: int | Id
    method: Name
    result: JsonObject
    thread_originator: Id | None = absent_ok(None)
    #: Set for ``thread/start``, ``thread/resume`` and ``thread/fork``.
    thread_lifecycle: ThreadLifecycleResultJ | None = derived()
    #: The turn id of a ``turn/start`` (``result.turn.id``) or ``turn/steer``
    #: (``result.turnId``); a ``turn/interrupt`` result (``{}``) carries none.
    turn_id: str | None = derived()

    def _post_decode(self) -> None:
        method = self.method
        if method in THREAD_LIFECYCLE_METHODS:
            self.thread_lifecycle = decode_within(ThreadLifecycleResultJ, self.result, "result")
        else:
            self.turn_id = response_turn_id(method, self.result)


# -- custom facts ------------------------------------------------------------------------


@dataclass(slots=True)
class ExplicitClientInterruptRequestPayload:
    """A ``turn/interrupt`` request (upstream ``ExplicitClientInterruptRequest``)."""

    request_id: int | Id
    turn_id: Id
    requested_at_ms: U64


@dataclass(slots=True)
class SubagentThreadStartedPayloadJ:
    """Upstream ``SubAgentThreadStartedInput``."""

    session_id: Id
    thread_id: Id
    parent_thread_id: Id | None
    forked_from_thread_id: Id | None
    product_client_id: Id
    client_name: Name
    client_version: Name
    model: Name
    ephemeral: bool
    subagent_source: JsonValue
    created_at: U64
    #: The kind's name (``review``, ``compact``, ``memory_consolidation``,
    #: ``thread_spawn``, or an ``other`` label).
    subagent_name: str = derived("")

    def _post_decode(self) -> None:
        try:
            self.subagent_name, _ = parse_subagent_source(self.subagent_source)
        except DecodeError as err:
            raise err.within("subagent_source") from None


@dataclass(slots=True)
class ResolvedTurnConfig:
    """PROPOSAL (profile-j.md §2, §5.6): what upstream derives from the producer's
    filesystem and git, resolved by the producer."""

    sandbox_policy: ResolvedSandboxPolicy
    repo_hash: Id | None


@dataclass(slots=True)
class TurnResolvedConfigPayloadJ:
    """Upstream ``TurnResolvedConfigFact`` plus ``resolved``."""

    turn_id: Id
    thread_id: Id
    num_input_images: U64
    submission_type: SubmissionTypeJ | None
    ephemeral: bool
    session_source: JsonValue
    model: Name
    model_provider: Name
    #: Upstream ``PermissionProfile`` (informational: ``resolved`` carries what it gives).
    permission_profile: JsonValue
    permission_profile_cwd: Name
    reasoning_effort: Name | None
    reasoning_summary: Name | None
    service_tier: Name | None
    #: Upstream ``AskForApproval`` as serde writes it (see ``approval_policy_name``).
    approval_policy: JsonValue
    approvals_reviewer: ApprovalsReviewerJ
    sandbox_network_access: bool
    collaboration_mode: CollaborationModeJ
    personality: Name | None
    workspace_kind: Name | None
    is_first_turn: bool
    resolved: ResolvedTurnConfig
    #: The turn event's ``approval_policy`` (upstream's display name of the policy).
    approval_policy_name: str = derived("")

    def _post_decode(self) -> None:
        try:
            self.approval_policy_name = approval_policy_name(self.approval_policy)
        except DecodeError as err:
            raise err.within("approval_policy") from None


@dataclass(slots=True, kw_only=True)
class TokenUsageJ:
    """Upstream ``TokenUsage`` (keyword-only: a field with a default sits mid-order)."""

    input_tokens: int
    cached_input_tokens: int
    #: New in Profile J; a producer that does not know it sends none (then 0).
    cache_write_input_tokens: int = absent_ok(0)
    output_tokens: int
    reasoning_output_tokens: int
    total_tokens: int


@dataclass(slots=True)
class TurnTokenUsagePayloadJ:
    turn_id: Id
    thread_id: Id
    token_usage: TokenUsageJ


@dataclass(slots=True)
class TurnProfile:
    """Upstream ``TurnProfile``: where a turn's time went."""

    before_first_sampling_ms: U64
    sampling_ms: U64
    compaction_ms: U64
    between_sampling_overhead_ms: U64
    tool_blocking_ms: U64
    after_last_sampling_ms: U64
    sampling_request_count: U64
    sampling_retry_count: U64


@dataclass(slots=True)
class TurnProfilePayload:
    turn_id: Id
    profile: TurnProfile


@dataclass(slots=True)
class TurnCodexError:
    kind: CodexErrKind
    http_status_code: U64 | None


@dataclass(slots=True)
class TurnCodexErrorPayload:
    turn_id: Id
    thread_id: Id
    error: TurnCodexError


@dataclass(slots=True)
class ImagePreparationMetadata:
    """Upstream ``ImagePreparationMetadata``: one image as prepared for the history."""

    message_role: Name | None
    item_id: Id | None
    effective_detail: ImageDetailSetting
    source_width: U64
    source_height: U64
    prepared_width: U64
    prepared_height: U64


@dataclass(slots=True)
class ImagePreparationPayload:
    turn_id: Id
    metadata: ImagePreparationMetadata


# -- server_notification views -------------------------------------------------------------


@dataclass(slots=True)
class TurnStartedView:
    __protocol_object__ = True
    raw: JsonObject
    thread_id: Id = wire_key("threadId")
    turn: StartedTurn = wire_key("turn")


@dataclass(slots=True)
class TurnCompletedView:
    __protocol_object__ = True
    raw: JsonObject
    thread_id: Id = wire_key("threadId")
    turn: CompletedTurn = wire_key("turn")


@dataclass(slots=True)
class TurnDiffUpdatedView:
    __protocol_object__ = True
    raw: JsonObject
    thread_id: Id = wire_key("threadId")
    turn_id: Id = wire_key("turnId")
    diff: str = wire_key("diff")


@dataclass(slots=True)
class ThreadArchiveView:
    """``thread/archived`` and ``thread/unarchived``."""

    __protocol_object__ = True
    raw: JsonObject
    thread_id: Id = wire_key("threadId")


#: kind -> payload model.
PAYLOADS: dict[str, type[Any]] = {
    # Unchanged in Profile J.
    "initialize": InitializePayload,
    "client_request": ClientRequestPayload,
    "error_response": ErrorResponsePayload,
    # Changed or new in Profile J.
    "client_response": ClientResponsePayloadJ,
    "explicit_client_interrupt_request": ExplicitClientInterruptRequestPayload,
    "subagent_thread_started": SubagentThreadStartedPayloadJ,
    "turn_resolved_config": TurnResolvedConfigPayloadJ,
    "turn_token_usage": TurnTokenUsagePayloadJ,
    "turn_profile": TurnProfilePayload,
    "turn_codex_error": TurnCodexErrorPayload,
    "image_preparation": ImagePreparationPayload,
}
#: server_notification method -> view model of its ``params``.
NOTIFICATION_VIEWS: dict[str, type[Any]] = {
    "turn/started": TurnStartedView,
    "turn/completed": TurnCompletedView,
    "turn/diff/updated": TurnDiffUpdatedView,
    "thread/archived": ThreadArchiveView,
    "thread/unarchived": ThreadArchiveView,
}
