"""Profile J facts of the activity domain (profile-j.md §2-§3): payload models.

Guardian reviews, compaction and goals (reported with thread context), and the stateless
facts: skills, apps, hooks, plugins and the external-agent onboarding import. A payload
whose shape Profile J leaves unchanged reuses the Profile S model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import DecodeError, DecodeReason
from ..facts import (
    AppInvocation,
    CompactionImplementation,
    CompactionPhase,
    CompactionReason,
    CompactionStatus,
    CompactionStrategy,
    CompactionTrigger,
    HookRunStatus,
    HookSource,
    InvocationType,
    PluginState,
    ResolvedSkillPath,
    SkillScope,
    TrackingContext,
    split_plugin_key,
)
from ..limits import Id, Name
from ..schema import U64, JsonObject, derived
from .session_facts import CodexErrKind

# -- enums (closed sets: an unknown value is rejected) -----------------------------------

#: Upstream ``HookEventName`` (profile-j.md §2): Profile S's list plus ``SessionEnd``.
HookEventNameJ = Literal[
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "PreCompact",
    "PostCompact",
    "SessionStart",
    "SessionEnd",
    "UserPromptSubmit",
    "SubagentStart",
    "SubagentStop",
    "Stop",
]
GoalEventKind = Literal["created", "usage_accounted", "status_changed", "cleared"]
#: ``codex_state::ThreadGoalStatus`` (snake_case), passed through to the event.
GoalStatus = Literal["active", "paused", "blocked", "usage_limited", "budget_limited", "complete"]
PluginInstallRequestSource = Literal["endpoint_recommendation", "legacy_discovery"]
PluginInstallSource = Literal["manual", "external_agent_migration"]
# GuardianReviewEventParams' enums (events.rs and protocol approvals.rs).
GuardianApprovalRequestSource = Literal["main_turn", "delegated_subagent"]
GuardianReviewedActionType = Literal[
    "shell",
    "unified_exec",
    "execve",
    "apply_patch",
    "network_access",
    "mcp_tool_call",
    "request_permissions",
]
GuardianReviewDecision = Literal["approved", "denied", "aborted"]
GuardianReviewTerminalStatus = Literal[
    "approved", "denied", "aborted", "timed_out", "failed_closed"
]
GuardianReviewFailureReason = Literal[
    "timeout", "cancelled", "prompt_build_error", "session_error", "parse_error"
]
GuardianRiskLevel = Literal["low", "medium", "high", "critical"]
GuardianUserAuthorization = Literal["unknown", "low", "medium", "high"]
GuardianAssessmentOutcome = Literal["allow", "deny"]
GuardianReviewSessionKind = Literal["trunk_new", "trunk_reused", "ephemeral_forked"]

_U16_MAX = 0xFFFF


def _check_http_status(value: int | None, key: str) -> None:
    """Upstream carries HTTP status codes as ``u16``."""
    if value is not None and not 0 <= value <= _U16_MAX:
        raise DecodeError(
            DecodeReason.INVALID_VALUE, key, "expected an HTTP status code (0 to 65535)"
        )


# -- shared objects ----------------------------------------------------------------------


@dataclass(slots=True)
class TrackingContextJ(TrackingContext):
    """Upstream ``TrackEventsContext``: S's context and ``product_client_id``, new in
    Profile J; the events that read "product id from tracking" take it (not
    ``source.originator``)."""

    product_client_id: Id


@dataclass(slots=True)
class PluginCapabilitySummaryJ:
    config_name: Name
    display_name: Name
    #: New upstream; no event reads it.
    plugin_namespace: Name | None
    description: str | None
    has_skills: bool
    mcp_server_names: list[Name]
    app_connector_ids: list[Id]


@dataclass(slots=True)
class PluginTelemetryMetadataJ:
    """``codex_plugin::PluginTelemetryMetadata`` after PR #29495: the local key
    ``name@marketplace`` is nullable (an install that failed before its details were
    resolved has only the backend id). The key parses as in Profile S."""

    plugin_id: Id | None
    remote_plugin_id: Id | None
    capability_summary: PluginCapabilitySummaryJ | None
    #: The halves of ``plugin_id``; None without a local id.
    plugin_name: str | None = derived()
    marketplace_name: str | None = derived()

    def _post_decode(self) -> None:
        if self.plugin_id is None:
            return
        parts = split_plugin_key(self.plugin_id)
        if parts is None:
            raise DecodeError(
                DecodeReason.INVALID_VALUE,
                "plugin_id",
                "expected '<plugin_name>@<marketplace_name>' with both parts non-empty, or null",
            )
        self.plugin_name, self.marketplace_name = parts


@dataclass(slots=True)
class SkillInvocationJ:
    """Profile S's invocation (with the PROPOSAL ``resolved`` block) plus the plugin ids
    of a plugin's skill, as given (never parsed)."""

    skill_name: Name
    skill_scope: SkillScope
    skill_path: Name
    plugin_id: Id | None
    remote_plugin_id: Id | None
    invocation_type: InvocationType
    resolved: ResolvedSkillPath


# -- guardian review ---------------------------------------------------------------------


#: Each reviewed action's keys after its ``type``, in upstream's order (``events.rs``
#: ``GuardianReviewedAction``; an ``Option`` is written as null, never left out).
GUARDIAN_ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "shell": ("sandbox_permissions", "additional_permissions"),
    "unified_exec": ("sandbox_permissions", "additional_permissions", "tty"),
    "execve": ("source", "program", "additional_permissions"),
    "apply_patch": (),
    "network_access": ("protocol", "port"),
    "mcp_tool_call": ("server", "tool_name", "connector_id", "connector_name", "tool_title"),
    "request_permissions": (),
}


@dataclass(slots=True)
class GuardianReviewedAction:
    """``GuardianReviewedAction`` (tag ``type``): its variant is checked and its keys are
    taken in upstream's order; their values travel unchanged, other keys are dropped (as
    upstream's typed struct would)."""

    __protocol_object__ = True
    raw: JsonObject
    type: GuardianReviewedActionType
    #: The action as upstream serializes it: ``type``, then the variant's keys.
    wire: JsonObject = derived()

    def _post_decode(self) -> None:
        wire: JsonObject = {"type": self.type}
        for key in GUARDIAN_ACTION_KEYS[self.type]:
            if key not in self.raw:
                raise DecodeError(DecodeReason.MISSING_KEY, key, "required key is missing")
            wire[key] = self.raw[key]
        self.wire = wire


@dataclass(slots=True)
class GuardianReviewPayloadJ:
    """Upstream ``GuardianReviewEventParams``: every key checked. The event takes them in
    upstream's struct order whatever the payload's order, and no other key (upstream
    serializes its typed struct; profile-j.md §2 passed the payload through as sent)."""

    __protocol_object__ = True
    raw: JsonObject
    thread_id: Id
    turn_id: Id
    review_id: Id
    target_item_id: Id | None
    approval_request_source: GuardianApprovalRequestSource
    reviewed_action: GuardianReviewedAction
    reviewed_action_truncated: bool
    decision: GuardianReviewDecision
    terminal_status: GuardianReviewTerminalStatus
    failure_reason: GuardianReviewFailureReason | None
    attempt_count: int
    risk_level: GuardianRiskLevel | None
    user_authorization: GuardianUserAuthorization | None
    outcome: GuardianAssessmentOutcome | None
    guardian_thread_id: Id | None
    guardian_session_kind: GuardianReviewSessionKind | None
    guardian_model: Name | None
    guardian_reasoning_effort: Name | None
    guardian_default_review_model_id: Name | None
    guardian_catalog_contains_auto_review: bool | None
    guardian_review_model_overridden: bool | None
    guardian_review_model_override: Name | None
    guardian_model_provider_id: Name | None
    had_prior_review_context: bool | None
    review_timeout_ms: U64
    #: Always null upstream (a TODO there); passed through as sent.
    tool_call_count: U64 | None
    time_to_first_token_ms: U64 | None
    completion_latency_ms: U64 | None
    started_at: U64
    completed_at: U64 | None
    input_tokens: int | None
    cached_input_tokens: int | None
    cache_write_input_tokens: int | None
    output_tokens: int | None
    reasoning_output_tokens: int | None
    total_tokens: int | None

    #: The params as the event flattens them: upstream's keys in its order.
    event_params: JsonObject = derived()

    def _post_decode(self) -> None:
        raw = self.raw
        params = {key: raw[key] for key in _GUARDIAN_PARAM_KEYS}
        params["reviewed_action"] = self.reviewed_action.wire
        self.event_params = params


#: ``GuardianReviewEventParams``' keys in order: the payload's wire fields as declared.
_GUARDIAN_PARAM_KEYS = tuple(
    f.name
    for f in dataclasses.fields(GuardianReviewPayloadJ)
    if f.name != "raw" and f.metadata.get("wire", True) is not False
)


# -- compaction and goals ----------------------------------------------------------------


@dataclass(slots=True)
class CompactionPayloadJ:
    """Upstream ``CodexCompactionEvent``: no ``error``; the error kind, the status code
    and four token/image counts are new."""

    thread_id: Id
    turn_id: Id
    trigger: CompactionTrigger
    reason: CompactionReason
    implementation: CompactionImplementation
    phase: CompactionPhase
    strategy: CompactionStrategy
    status: CompactionStatus
    codex_error_kind: CodexErrKind | None
    codex_error_http_status_code: int | None
    active_context_tokens_before: int
    active_context_tokens_after: int
    retained_image_count: U64 | None
    compaction_summary_tokens: int | None
    cached_input_tokens: int | None
    cache_write_input_tokens: int | None
    started_at: U64
    completed_at: U64
    duration_ms: U64 | None

    def _post_decode(self) -> None:
        _check_http_status(self.codex_error_http_status_code, "codex_error_http_status_code")


@dataclass(slots=True)
class GoalPayload:
    """Upstream ``CodexGoalEvent``."""

    thread_id: Id
    turn_id: Id | None
    goal_id: Id
    event_kind: GoalEventKind
    goal_status: GoalStatus
    has_token_budget: bool
    cumulative_tokens_accounted: int | None
    cumulative_time_accounted_seconds: int | None


# -- skills, apps, hooks -----------------------------------------------------------------


@dataclass(slots=True)
class SkillInvokedPayloadJ:
    tracking: TrackingContextJ
    invocations: list[SkillInvocationJ]


@dataclass(slots=True)
class AppMentionedPayloadJ:
    tracking: TrackingContextJ
    mentions: list[AppInvocation]


@dataclass(slots=True)
class AppUsedPayloadJ:
    tracking: TrackingContextJ
    app: AppInvocation


@dataclass(slots=True)
class HookRunFactJ:
    event_name: HookEventNameJ
    hook_source: HookSource
    status: HookRunStatus


@dataclass(slots=True)
class HookRunPayloadJ:
    tracking: TrackingContextJ
    hook: HookRunFactJ


# -- plugins -----------------------------------------------------------------------------


@dataclass(slots=True)
class PluginUsedPayloadJ:
    tracking: TrackingContextJ
    plugin: PluginTelemetryMetadataJ


@dataclass(slots=True)
class PluginStateChangedPayloadJ:
    plugin: PluginTelemetryMetadataJ
    state: PluginState


@dataclass(slots=True)
class PluginInstallRequestedPlugin:
    """One suggested plugin: ids as given (the local id is not parsed here upstream)."""

    plugin_id: Id
    remote_plugin_id: Id | None
    plugin_name: Name
    connector_ids: list[Id]


@dataclass(slots=True)
class PluginInstallRequest:
    """Upstream ``PluginInstallRequested``."""

    suggestion_id: Id
    plugins: list[PluginInstallRequestedPlugin]
    source: PluginInstallRequestSource


@dataclass(slots=True)
class PluginInstallRequestedPayload:
    tracking: TrackingContextJ
    request: PluginInstallRequest


@dataclass(slots=True)
class PluginInstallFailedPayload:
    """Upstream ``PluginInstallFailedInput``."""

    plugin: PluginTelemetryMetadataJ
    source: PluginInstallSource
    error_type: Name
    sub_error_type: Name | None


# -- external-agent config import (onboarding) --------------------------------------------


@dataclass(slots=True)
class ExternalAgentConfigImportCompletedPayload:
    """Upstream ``ExternalAgentConfigImportCompletedInput``."""

    import_id: Id
    source: Name
    provider_id: Id
    item_type: Name
    success_count: U64
    failed_count: U64


@dataclass(slots=True)
class ExternalAgentConfigImportFailurePayload:
    """Upstream ``ExternalAgentConfigImportFailureInput``."""

    import_id: Id
    source: Name
    provider_id: Id
    item_type: Name
    failure_stage: Name
    error_type: Name
    sub_error_type: Name | None


#: kind -> payload model.
PAYLOADS: dict[str, type[Any]] = {
    "guardian_review": GuardianReviewPayloadJ,
    "compaction": CompactionPayloadJ,
    "goal": GoalPayload,
    "skill_invoked": SkillInvokedPayloadJ,
    "app_mentioned": AppMentionedPayloadJ,
    "app_used": AppUsedPayloadJ,
    "hook_run": HookRunPayloadJ,
    "plugin_used": PluginUsedPayloadJ,
    "plugin_state_changed": PluginStateChangedPayloadJ,
    "plugin_install_requested": PluginInstallRequestedPayload,
    "plugin_install_failed": PluginInstallFailedPayload,
    "external_agent_config_import_completed": ExternalAgentConfigImportCompletedPayload,
    "external_agent_config_import_failure": ExternalAgentConfigImportFailurePayload,
}
