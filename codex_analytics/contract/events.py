"""Track event models: the 14 Profile S event types (``shared/spec/events.md``).

Field declaration order **is** the upstream key order: orjson serializes slotted
dataclasses in declaration order, so ``orjson.dumps(event)`` is the exact upstream JSON
(every key present, ``null`` for unset values, no extra keys).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, Union, get_args

from .errors import DecodeError, DecodeReason
from .facts import RpcTransport, RuntimeMetadata
from .schema import U64, JsonValue, decoder_for

if TYPE_CHECKING:
    from .profile_j import TrackEventJ

EventType = Literal[
    "skill_invocation",
    "codex_thread_initialized",
    "codex_guardian_review",
    "codex_app_mentioned",
    "codex_app_used",
    "codex_hook_run",
    "codex_compaction_event",
    "codex_turn_event",
    "codex_turn_steer_event",
    "codex_plugin_used",
    "codex_plugin_installed",
    "codex_plugin_uninstalled",
    "codex_plugin_enabled",
    "codex_plugin_disabled",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

ThreadSource = Literal["user", "subagent"]
InitializationMode = Literal["new", "forked", "resumed"]
InvokeType = Literal["explicit", "implicit"]
HookStatus = Literal["completed", "failed", "blocked", "stopped"]
SandboxPolicyName = Literal["full_access", "read_only", "workspace_write", "external_sandbox"]
SteerResult = Literal["accepted", "rejected"]
RejectionReason = Literal[
    "no_active_turn",
    "expected_turn_mismatch",
    "non_steerable_review",
    "non_steerable_compact",
    "empty_input",
    "input_too_large",
]


@dataclass(slots=True)
class AppServerClientMetadata:
    product_client_id: str
    client_name: str | None
    client_version: str | None
    rpc_transport: RpcTransport
    experimental_api_enabled: bool | None


# -- event_params -----------------------------------------------------------------------


@dataclass(slots=True)
class SkillInvocationEventParams:
    product_client_id: str
    skill_scope: str
    repo_url: str | None
    thread_id: str
    invoke_type: InvokeType
    model_slug: str


@dataclass(slots=True)
class ThreadInitializedEventParams:
    thread_id: str
    app_server_client: AppServerClientMetadata
    runtime: RuntimeMetadata
    model: str
    ephemeral: bool
    thread_source: ThreadSource | None
    initialization_mode: InitializationMode
    subagent_source: str | None
    parent_thread_id: str | None
    created_at: U64


@dataclass(slots=True)
class AppEventParams:
    connector_id: str | None
    thread_id: str
    turn_id: str
    app_name: str | None
    product_client_id: str
    invoke_type: InvokeType | None
    model_slug: str


@dataclass(slots=True)
class HookRunEventParams:
    thread_id: str
    turn_id: str
    model_slug: str
    hook_name: str
    hook_source: str
    status: HookStatus


@dataclass(slots=True)
class CompactionEventParams:
    thread_id: str
    turn_id: str
    app_server_client: AppServerClientMetadata
    runtime: RuntimeMetadata
    thread_source: ThreadSource | None
    subagent_source: str | None
    parent_thread_id: str | None
    trigger: str
    reason: str
    implementation: str
    phase: str
    strategy: str
    status: str
    error: str | None
    active_context_tokens_before: int
    active_context_tokens_after: int
    started_at: U64
    completed_at: U64
    duration_ms: U64 | None


@dataclass(slots=True)
class TurnEventParams:
    thread_id: str
    turn_id: str
    submission_type: str | None
    app_server_client: AppServerClientMetadata
    runtime: RuntimeMetadata
    ephemeral: bool
    thread_source: ThreadSource | None
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
    num_input_images: U64
    is_first_turn: bool
    status: Literal["completed", "failed", "interrupted"] | None
    turn_error: JsonValue
    steer_count: U64
    # Reserved by the schema; always null in Profile S.
    total_tool_call_count: None
    shell_command_count: None
    file_change_count: None
    mcp_tool_call_count: None
    dynamic_tool_call_count: None
    subagent_tool_call_count: None
    web_search_count: None
    image_generation_count: None
    input_tokens: int | None
    cached_input_tokens: int | None
    output_tokens: int | None
    reasoning_output_tokens: int | None
    total_tokens: int | None
    duration_ms: U64 | None
    started_at: U64 | None
    completed_at: U64


@dataclass(slots=True)
class TurnSteerEventParams:
    thread_id: str
    expected_turn_id: str
    accepted_turn_id: str | None
    app_server_client: AppServerClientMetadata
    runtime: RuntimeMetadata
    thread_source: ThreadSource | None
    subagent_source: str | None
    parent_thread_id: str | None
    num_input_images: U64
    result: SteerResult
    rejection_reason: RejectionReason | None
    created_at: U64


@dataclass(slots=True)
class PluginEventParams:
    """``codex_plugin_metadata``: the params of the four plugin state events."""

    plugin_id: str
    plugin_name: str
    marketplace_name: str
    has_skills: bool | None
    mcp_server_count: U64 | None
    connector_ids: list[str] | None
    product_client_id: str


@dataclass(slots=True)
class PluginUsedEventParams:
    plugin_id: str
    plugin_name: str
    marketplace_name: str
    has_skills: bool | None
    mcp_server_count: U64 | None
    connector_ids: list[str] | None
    product_client_id: str
    mcp_server_names: list[str] | None
    thread_id: str
    turn_id: str
    model_slug: str


# -- events -------------------------------------------------------------------------------
# ``event_type`` is a keyword-only field with a default so that it can stay first (it is
# the first key upstream) while the reducer never has to spell it.


@dataclass(slots=True, kw_only=True)
class SkillInvocationEvent:
    event_type: Literal["skill_invocation"] = "skill_invocation"
    skill_id: str
    skill_name: str
    event_params: SkillInvocationEventParams


@dataclass(slots=True, kw_only=True)
class ThreadInitializedEvent:
    event_type: Literal["codex_thread_initialized"] = "codex_thread_initialized"
    event_params: ThreadInitializedEventParams


def decode_flattened_head(
    params: dict[str, Any], head: tuple[tuple[str, Callable[[Any], Any]], ...]
) -> dict[str, Any]:
    """A copy of flattened ``event_params`` (a guardian review's) with the event's own
    keys, ``head``, decoded (the copy: decoding must not rewrite the caller's parsed
    JSON); the flattened params pass through as they are."""
    params = dict(params)
    for key, decode in head:
        if key not in params:
            raise DecodeError(DecodeReason.MISSING_KEY, key, "required key is missing").within(
                "event_params"
            )
        try:
            params[key] = decode(params[key])
        except DecodeError as err:
            raise err.within(key).within("event_params") from None
    return params


#: The keys a guardian review event puts before its flattened params, and their decoders.
GUARDIAN_EVENT_HEAD: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("app_server_client", decoder_for(AppServerClientMetadata)),
    ("runtime", decoder_for(RuntimeMetadata)),
)


@dataclass(slots=True, kw_only=True)
class GuardianReviewEvent:
    """``event_params`` = ``{app_server_client, runtime, **guardian params}`` (flattened)."""

    event_type: Literal["codex_guardian_review"] = "codex_guardian_review"
    event_params: dict[str, Any]

    def _post_decode(self) -> None:
        self.event_params = decode_flattened_head(self.event_params, GUARDIAN_EVENT_HEAD)


@dataclass(slots=True, kw_only=True)
class AppMentionedEvent:
    event_type: Literal["codex_app_mentioned"] = "codex_app_mentioned"
    event_params: AppEventParams


@dataclass(slots=True, kw_only=True)
class AppUsedEvent:
    event_type: Literal["codex_app_used"] = "codex_app_used"
    event_params: AppEventParams


@dataclass(slots=True, kw_only=True)
class HookRunEvent:
    event_type: Literal["codex_hook_run"] = "codex_hook_run"
    event_params: HookRunEventParams


@dataclass(slots=True, kw_only=True)
class CompactionEvent:
    event_type: Literal["codex_compaction_event"] = "codex_compaction_event"
    event_params: CompactionEventParams


@dataclass(slots=True, kw_only=True)
class TurnEvent:
    event_type: Literal["codex_turn_event"] = "codex_turn_event"
    event_params: TurnEventParams


@dataclass(slots=True, kw_only=True)
class TurnSteerEvent:
    event_type: Literal["codex_turn_steer_event"] = "codex_turn_steer_event"
    event_params: TurnSteerEventParams


@dataclass(slots=True, kw_only=True)
class PluginUsedEvent:
    event_type: Literal["codex_plugin_used"] = "codex_plugin_used"
    event_params: PluginUsedEventParams


@dataclass(slots=True, kw_only=True)
class PluginInstalledEvent:
    event_type: Literal["codex_plugin_installed"] = "codex_plugin_installed"
    event_params: PluginEventParams


@dataclass(slots=True, kw_only=True)
class PluginUninstalledEvent:
    event_type: Literal["codex_plugin_uninstalled"] = "codex_plugin_uninstalled"
    event_params: PluginEventParams


@dataclass(slots=True, kw_only=True)
class PluginEnabledEvent:
    event_type: Literal["codex_plugin_enabled"] = "codex_plugin_enabled"
    event_params: PluginEventParams


@dataclass(slots=True, kw_only=True)
class PluginDisabledEvent:
    event_type: Literal["codex_plugin_disabled"] = "codex_plugin_disabled"
    event_params: PluginEventParams


TrackEventS = (
    SkillInvocationEvent
    | ThreadInitializedEvent
    | GuardianReviewEvent
    | AppMentionedEvent
    | AppUsedEvent
    | HookRunEvent
    | CompactionEvent
    | TurnEvent
    | TurnSteerEvent
    | PluginUsedEvent
    | PluginInstalledEvent
    | PluginUninstalledEvent
    | PluginEnabledEvent
    | PluginDisabledEvent
)
#: Any event the reducer emits: a Profile S event, or a Profile J one (``profile_j``).
TrackEvent: TypeAlias = Union[TrackEventS, "TrackEventJ"]

#: event_type -> event model.
EVENT_MODELS: dict[str, type[Any]] = {
    "skill_invocation": SkillInvocationEvent,
    "codex_thread_initialized": ThreadInitializedEvent,
    "codex_guardian_review": GuardianReviewEvent,
    "codex_app_mentioned": AppMentionedEvent,
    "codex_app_used": AppUsedEvent,
    "codex_hook_run": HookRunEvent,
    "codex_compaction_event": CompactionEvent,
    "codex_turn_event": TurnEvent,
    "codex_turn_steer_event": TurnSteerEvent,
    "codex_plugin_used": PluginUsedEvent,
    "codex_plugin_installed": PluginInstalledEvent,
    "codex_plugin_uninstalled": PluginUninstalledEvent,
    "codex_plugin_enabled": PluginEnabledEvent,
    "codex_plugin_disabled": PluginDisabledEvent,
}
assert set(EVENT_MODELS) == set(EVENT_TYPES)

#: The plugin state -> plugin state event model.
PLUGIN_STATE_EVENTS: dict[str, type[Any]] = {
    "installed": PluginInstalledEvent,
    "uninstalled": PluginUninstalledEvent,
    "enabled": PluginEnabledEvent,
    "disabled": PluginDisabledEvent,
}
