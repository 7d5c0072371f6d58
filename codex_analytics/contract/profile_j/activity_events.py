"""Profile J events of the activity domain (profile-j.md §4): field order is key order.

Where upstream flattens one struct into another (``#[serde(flatten)]``), the outer model
extends the inner one: a dataclass lists its base's fields first, which is the flattened
key order. The app events keep their Profile S shape and reuse its models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, Union

from ..events import (
    GUARDIAN_EVENT_HEAD,
    AppMentionedEvent,
    AppServerClientMetadata,
    AppUsedEvent,
    HookStatus,
    InvokeType,
    decode_flattened_head,
)
from ..facts import RuntimeMetadata
from ..schema import U64, wrong_type

# -- event_params -----------------------------------------------------------------------


@dataclass(slots=True)
class SkillInvocationEventParamsJ:
    product_client_id: str
    skill_scope: str
    plugin_id: str | None
    remote_plugin_id: str | None
    repo_url: str | None
    thread_id: str
    turn_id: str
    invoke_type: InvokeType
    model_slug: str


@dataclass(slots=True)
class HookRunEventParamsJ:
    thread_id: str
    turn_id: str
    product_client_id: str
    model_slug: str
    hook_name: str
    hook_source: str
    status: HookStatus


@dataclass(slots=True)
class CompactionEventParamsJ:
    thread_id: str
    session_id: str
    turn_id: str
    app_server_client: AppServerClientMetadata
    runtime: RuntimeMetadata
    thread_source: str | None
    subagent_source: str | None
    parent_thread_id: str | None
    trigger: str
    reason: str
    implementation: str
    phase: str
    strategy: str
    status: str
    codex_error_kind: str | None
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


@dataclass(slots=True)
class GoalEventParams:
    thread_id: str
    session_id: str
    turn_id: str | None
    app_server_client: AppServerClientMetadata
    runtime: RuntimeMetadata
    thread_source: str | None
    subagent_source: str | None
    parent_thread_id: str | None
    goal_id: str
    event_kind: str
    goal_status: str
    has_token_budget: bool
    cumulative_tokens_accounted: int | None
    cumulative_time_accounted_seconds: int | None


@dataclass(slots=True)
class PluginEventParamsJ:
    """``codex_plugin_metadata`` after PR #29495: the params of the four plugin state
    events, and the head of the plugin used / install failed params. ``plugin_id`` is the
    local key (never the remote id); name and marketplace are null without it."""

    plugin_id: str | None
    remote_plugin_id: str | None
    plugin_name: str | None
    marketplace_name: str | None
    has_skills: bool | None
    mcp_server_count: U64 | None
    connector_ids: list[str] | None
    product_client_id: str


@dataclass(slots=True)
class PluginUsedEventParamsJ(PluginEventParamsJ):
    mcp_server_names: list[str] | None
    thread_id: str
    turn_id: str
    model_slug: str


@dataclass(slots=True)
class PluginInstallFailedEventParams(PluginEventParamsJ):
    source: str
    error_type: str
    sub_error_type: str | None


@dataclass(slots=True)
class PluginInstallRequestedPluginParams:
    plugin_id: str
    remote_plugin_id: str | None
    plugin_name: str
    connector_ids: list[str]


@dataclass(slots=True)
class PluginInstallRequestedEventParams:
    suggestion_id: str
    plugins: list[PluginInstallRequestedPluginParams]
    source: str
    thread_id: str
    turn_id: str
    model_slug: str
    product_client_id: str


@dataclass(slots=True)
class ExternalAgentImportCompleteEventParams:
    import_id: str
    source: str
    provider_id: str
    #: The fact's ``item_type``.
    type: str
    success_count: U64
    failed_count: U64
    product_client_id: str


@dataclass(slots=True)
class ExternalAgentImportFailureEventParams:
    import_id: str
    source: str
    provider_id: str
    #: The fact's ``item_type``.
    type: str
    failure_stage: str
    error_type: str
    sub_error_type: str | None
    product_client_id: str


# -- events -------------------------------------------------------------------------------
# ``event_type`` is keyword-only with a default, as in Profile S: first key, never spelt.


@dataclass(slots=True, kw_only=True)
class SkillInvocationEventJ:
    event_type: Literal["skill_invocation"] = "skill_invocation"
    skill_id: str
    skill_name: str
    event_params: SkillInvocationEventParamsJ


def _session_id(value: Any) -> str:
    if type(value) is not str:
        raise wrong_type("string", value)
    return value


#: Profile J's guardian event puts the session id first, then S's two keys.
_GUARDIAN_HEAD_J = (("session_id", _session_id), *GUARDIAN_EVENT_HEAD)


@dataclass(slots=True, kw_only=True)
class GuardianReviewEventJ:
    """``event_params`` = ``{session_id, app_server_client, runtime, **guardian params}``
    (the params flattened, in the fact's order)."""

    event_type: Literal["codex_guardian_review"] = "codex_guardian_review"
    event_params: dict[str, Any]

    def _post_decode(self) -> None:
        self.event_params = decode_flattened_head(self.event_params, _GUARDIAN_HEAD_J)


@dataclass(slots=True, kw_only=True)
class HookRunEventJ:
    event_type: Literal["codex_hook_run"] = "codex_hook_run"
    event_params: HookRunEventParamsJ


@dataclass(slots=True, kw_only=True)
class CompactionEventJ:
    event_type: Literal["codex_compaction_event"] = "codex_compaction_event"
    event_params: CompactionEventParamsJ


@dataclass(slots=True, kw_only=True)
class GoalEvent:
    event_type: Literal["codex_goal_event"] = "codex_goal_event"
    event_params: GoalEventParams


@dataclass(slots=True, kw_only=True)
class PluginUsedEventJ:
    event_type: Literal["codex_plugin_used"] = "codex_plugin_used"
    event_params: PluginUsedEventParamsJ


@dataclass(slots=True, kw_only=True)
class PluginInstalledEventJ:
    event_type: Literal["codex_plugin_installed"] = "codex_plugin_installed"
    event_params: PluginEventParamsJ


@dataclass(slots=True, kw_only=True)
class PluginUninstalledEventJ:
    event_type: Literal["codex_plugin_uninstalled"] = "codex_plugin_uninstalled"
    event_params: PluginEventParamsJ


@dataclass(slots=True, kw_only=True)
class PluginEnabledEventJ:
    event_type: Literal["codex_plugin_enabled"] = "codex_plugin_enabled"
    event_params: PluginEventParamsJ


@dataclass(slots=True, kw_only=True)
class PluginDisabledEventJ:
    event_type: Literal["codex_plugin_disabled"] = "codex_plugin_disabled"
    event_params: PluginEventParamsJ


@dataclass(slots=True, kw_only=True)
class PluginInstallRequestedEvent:
    event_type: Literal["codex_plugin_install_requested"] = "codex_plugin_install_requested"
    event_params: PluginInstallRequestedEventParams


@dataclass(slots=True, kw_only=True)
class PluginInstallFailedEvent:
    event_type: Literal["codex_plugin_install_failed"] = "codex_plugin_install_failed"
    event_params: PluginInstallFailedEventParams


@dataclass(slots=True, kw_only=True)
class ExternalAgentImportCompleteEvent:
    event_type: Literal["codex_onboarding_external_agent_import_complete"] = (
        "codex_onboarding_external_agent_import_complete"
    )
    event_params: ExternalAgentImportCompleteEventParams


@dataclass(slots=True, kw_only=True)
class ExternalAgentImportFailureEvent:
    event_type: Literal["codex_onboarding_external_agent_import_failure"] = (
        "codex_onboarding_external_agent_import_failure"
    )
    event_params: ExternalAgentImportFailureEventParams


#: The union of this module's event models.
Event: TypeAlias = Union[  # noqa: UP007 (a runtime alias, like the package's TrackEventJ)
    SkillInvocationEventJ,
    GuardianReviewEventJ,
    AppMentionedEvent,
    AppUsedEvent,
    HookRunEventJ,
    CompactionEventJ,
    GoalEvent,
    PluginUsedEventJ,
    PluginInstalledEventJ,
    PluginUninstalledEventJ,
    PluginEnabledEventJ,
    PluginDisabledEventJ,
    PluginInstallRequestedEvent,
    PluginInstallFailedEvent,
    ExternalAgentImportCompleteEvent,
    ExternalAgentImportFailureEvent,
]
#: event_type -> event model.
EVENTS: dict[str, type[Any]] = {
    "skill_invocation": SkillInvocationEventJ,
    "codex_guardian_review": GuardianReviewEventJ,
    "codex_app_mentioned": AppMentionedEvent,
    "codex_app_used": AppUsedEvent,
    "codex_hook_run": HookRunEventJ,
    "codex_compaction_event": CompactionEventJ,
    "codex_goal_event": GoalEvent,
    "codex_plugin_used": PluginUsedEventJ,
    "codex_plugin_installed": PluginInstalledEventJ,
    "codex_plugin_uninstalled": PluginUninstalledEventJ,
    "codex_plugin_enabled": PluginEnabledEventJ,
    "codex_plugin_disabled": PluginDisabledEventJ,
    "codex_plugin_install_requested": PluginInstallRequestedEvent,
    "codex_plugin_install_failed": PluginInstallFailedEvent,
    "codex_onboarding_external_agent_import_complete": ExternalAgentImportCompleteEvent,
    "codex_onboarding_external_agent_import_failure": ExternalAgentImportFailureEvent,
}
#: The plugin state -> its event model.
PLUGIN_STATE_EVENTS_J: dict[str, type[Any]] = {
    "installed": PluginInstalledEventJ,
    "uninstalled": PluginUninstalledEventJ,
    "enabled": PluginEnabledEventJ,
    "disabled": PluginDisabledEventJ,
}
