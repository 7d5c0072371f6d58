"""Fact models: the envelope on ``analytics.facts`` and the 16 Profile S fact kinds.

Spec: ``shared/spec/facts.md``. Our own payloads (the custom facts) are fully typed.
Upstream app-server objects (initialize params, request params, response results,
notification params, guardian review params) are *protocol objects*: they keep the
whole object in ``raw`` (unknown keys are tolerated and passed on unchanged, as upstream
serde does) and extract, validated, only the fields the reducer reads.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal, get_args

from .errors import DecodeError, DecodeReason
from .limits import MAX_NAME_CHARS, Id, Name
from .schema import (
    U64,
    JsonObject,
    JsonValue,
    absent_ok,
    decode_within,
    derived,
    too_long,
    wire_key,
    wrong_type,
)
from .versions import DEFAULT_CONTRACT, ContractId

# -- enums (closed sets: an unknown value is rejected) -----------------------------------

FactKind = Literal[
    "initialize",
    "client_request",
    "client_response",
    "error_response",
    "server_notification",
    "subagent_thread_started",
    "guardian_review",
    "compaction",
    "turn_resolved_config",
    "turn_token_usage",
    "skill_invoked",
    "app_mentioned",
    "app_used",
    "hook_run",
    "plugin_used",
    "plugin_state_changed",
]
FACT_KINDS: tuple[str, ...] = get_args(FactKind)
#: Kinds whose ``connection_id`` is an integer; every other kind has ``null``.
CONNECTION_SCOPED_KINDS = frozenset(
    {"initialize", "client_request", "client_response", "error_response"}
)

#: The login kinds a route may name (design.md §6; the last three are Profile J's, §6).
AuthKind = Literal[
    "chatgpt",
    "chatgpt_tokens",
    "agent_identity",
    "api_key",
    "headers",
    "personal_access_token",
    "bedrock_api_key",
]
RpcTransport = Literal["stdio", "websocket", "in_process"]
InvocationType = Literal["explicit", "implicit"]
SkillScope = Literal["user", "repo", "system", "admin"]
# Hook enums: seed-era values plus the June additions, so newer clients keep working.
HookEventName = Literal[
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "SessionStart",
    "UserPromptSubmit",
    "Stop",
    "PreCompact",
    "PostCompact",
    "SubagentStart",
    "SubagentStop",
]
HookSource = Literal[
    "system",
    "user",
    "project",
    "mdm",
    "session_flags",
    "legacy_managed_config_file",
    "legacy_managed_config_mdm",
    "unknown",
    "plugin",
    "cloud_requirements",
    "cloud_managed_config",
]
HookRunStatus = Literal["running", "completed", "failed", "blocked", "stopped"]
PluginState = Literal["installed", "uninstalled", "enabled", "disabled"]
CompactionTrigger = Literal["manual", "auto"]
CompactionReason = Literal[
    "user_requested", "context_limit", "model_downshift", "comp_hash_changed"
]
CompactionImplementation = Literal["responses", "responses_compact", "responses_compaction_v2"]
CompactionPhase = Literal["standalone_turn", "pre_turn", "mid_turn"]
CompactionStrategy = Literal["memento", "prefix_compaction"]
CompactionStatus = Literal["completed", "failed", "interrupted"]
ApprovalPolicy = Literal["untrusted", "on-failure", "on-request", "never", "granular"]
ApprovalsReviewer = Literal["user", "guardian_subagent"]
CollaborationMode = Literal["default", "plan", "pair_programming", "execute"]
SubmissionType = Literal["default", "queued"]
SandboxPolicyType = Literal[
    "danger-full-access", "read-only", "workspace-write", "external-sandbox"
]
TurnStatus = Literal["completed", "interrupted", "failed", "inProgress"]
TurnSteerRejection = Literal[
    "no_active_turn", "expected_turn_mismatch", "non_steerable_review", "non_steerable_compact"
]
InputError = Literal["empty", "too_large"]

#: Methods whose params / results the reducer reads (and the decoder validates).
TURN_REQUEST_METHODS = frozenset({"turn/start", "turn/steer"})
THREAD_LIFECYCLE_METHODS = {
    "thread/start": "new",
    "thread/resume": "resumed",
    "thread/fork": "forked",
}

# -- shared objects ----------------------------------------------------------------------


@dataclass(slots=True)
class RuntimeMetadata:
    codex_rs_version: Name
    runtime_os: Name
    runtime_os_version: Name
    runtime_arch: Name


@dataclass(slots=True)
class AuthRoute:
    """Non-secret delivery route (design.md §6). Absent keys mean unknown."""

    kind: AuthKind | None = absent_ok(None)
    account_id: Id | None = absent_ok(None)
    is_fedramp: bool = absent_ok(False)


@dataclass(slots=True)
class Source:
    instance_id: Id
    originator: Name
    runtime: RuntimeMetadata
    auth: AuthRoute | None = absent_ok(None)
    #: The contract this producer speaks (profile-j.md §1); absent or null = ``2026-06``.
    contract: ContractId | None = absent_ok(None)

    @property
    def contract_id(self) -> ContractId:
        return DEFAULT_CONTRACT if self.contract is None else self.contract

    def _post_decode(self) -> None:
        # An empty instance id would merge unrelated processes into one reducer state.
        if not self.instance_id:
            raise DecodeError(DecodeReason.INVALID_VALUE, "instance_id", "must not be empty")


@dataclass(slots=True)
class TrackingContext:
    model_slug: Name
    thread_id: Id
    turn_id: Id


@dataclass(slots=True)
class AppInvocation:
    connector_id: Id | None
    app_name: Name | None
    invocation_type: InvocationType | None


@dataclass(slots=True)
class ResolvedSkillPath:
    """PROPOSAL (facts.md §2.4): filesystem facts the producer resolves on its machine."""

    canonical_skill_path: Name
    repo_root: Name | None
    repo_url: Name | None


@dataclass(slots=True)
class SkillInvocation:
    skill_name: Name
    skill_scope: SkillScope
    skill_path: Name
    invocation_type: InvocationType
    resolved: ResolvedSkillPath


@dataclass(slots=True)
class PluginCapabilitySummary:
    config_name: Name
    display_name: Name
    description: str | None
    has_skills: bool
    mcp_server_names: list[Name]
    app_connector_ids: list[Id]


def split_plugin_key(key: str) -> tuple[str, str] | None:
    """``name@marketplace`` split at the last ``@``; None unless both halves are non-empty."""
    name, sep, marketplace = key.rpartition("@")
    if not sep or not name or not marketplace:
        return None
    return name, marketplace


@dataclass(slots=True)
class PluginTelemetryMetadata:
    plugin_id: Id
    remote_plugin_id: Id | None
    capability_summary: PluginCapabilitySummary | None
    plugin_name: str = derived("")
    marketplace_name: str = derived("")

    def _post_decode(self) -> None:
        parts = split_plugin_key(self.plugin_id)
        if parts is None:
            raise DecodeError(
                DecodeReason.INVALID_VALUE,
                "plugin_id",
                "expected '<plugin_name>@<marketplace_name>' with both parts non-empty",
            )
        self.plugin_name, self.marketplace_name = parts


@dataclass(slots=True)
class TokenUsage:
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_output_tokens: int
    total_tokens: int


# -- SubAgentSource (core enum, snake_case) ------------------------------------------------

_UNIT_SUBAGENT_SOURCES = frozenset({"review", "compact", "memory_consolidation"})


def _canonical_thread_id(value: str, tag: str) -> str:
    """Upstream ``ThreadId`` is a UUID, printed lowercase and hyphenated whatever the input."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise DecodeError(
            DecodeReason.INVALID_VALUE, "parent_thread_id", "expected a UUID thread id"
        ).within(tag) from None


def parse_subagent_source(value: JsonValue) -> tuple[str, str | None]:
    """SubAgentSource -> (name, thread_spawn parent id); reducer.md §4.4."""
    if type(value) is str:
        if value in _UNIT_SUBAGENT_SOURCES:
            return value, None
        raise DecodeError(
            DecodeReason.UNKNOWN_ENUM_VALUE,
            "",
            f"{value[:64]!r} is not one of 'review', 'compact', 'memory_consolidation'",
        )
    if type(value) is dict and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "thread_spawn":
            if type(inner) is not dict:
                raise wrong_type("object", inner).within(tag)
            parent = inner.get("parent_thread_id", None)
            if "parent_thread_id" not in inner:
                raise DecodeError(
                    DecodeReason.MISSING_KEY, "parent_thread_id", "required key is missing"
                ).within(tag)
            if type(parent) is not str:
                raise wrong_type("string", parent).within("parent_thread_id").within(tag)
            return "thread_spawn", _canonical_thread_id(parent, tag)
        if tag == "other":
            if type(inner) is not str:
                raise wrong_type("string", inner).within(tag)
            if len(inner) > MAX_NAME_CHARS:  # it becomes the events' subagent_source
                raise too_long(len(inner), MAX_NAME_CHARS).within(tag)
            return inner, None
        # The tag is the caller's text: quoted short in the detail, never the path.
        raise DecodeError(
            DecodeReason.UNKNOWN_ENUM_VALUE, "", f"{tag[:64]!r} is not 'thread_spawn' or 'other'"
        )
    raise wrong_type("SubAgentSource (string or single-key object)", value)


def thread_subagent(source: JsonValue) -> tuple[str, str | None] | None:
    """The sub-agent kind's name and spawn parent of a thread whose ``source`` is
    ``{"subAgent": …}``; None for any other source."""
    if type(source) is not dict or len(source) != 1 or "subAgent" not in source:
        return None
    try:
        return parse_subagent_source(source["subAgent"])
    except DecodeError as err:
        raise err.within("subAgent").within("source") from None


# -- app-server protocol objects (raw kept, read fields validated) ----------------------


@dataclass(slots=True)
class ClientInfo:
    __protocol_object__ = True
    raw: JsonObject
    name: Name
    version: Name


@dataclass(slots=True)
class ClientCapabilities:
    __protocol_object__ = True
    raw: JsonObject
    experimental_api: bool = absent_ok(False, key="experimentalApi")


@dataclass(slots=True)
class InitializeParams:
    __protocol_object__ = True
    raw: JsonObject
    client_info: ClientInfo = wire_key("clientInfo")
    capabilities: ClientCapabilities | None = absent_ok(None)


@dataclass(slots=True)
class UserInput:
    __protocol_object__ = True
    raw: JsonObject
    type: str

    @property
    def is_image(self) -> bool:
        return self.type == "image" or self.type == "localImage"


@dataclass(slots=True)
class TurnStartParams:
    __protocol_object__ = True
    raw: JsonObject
    thread_id: Id = wire_key("threadId")
    input: list[UserInput] = wire_key("input")


@dataclass(slots=True)
class TurnSteerParams:
    __protocol_object__ = True
    raw: JsonObject
    thread_id: Id = wire_key("threadId")
    expected_turn_id: Id = wire_key("expectedTurnId")
    input: list[UserInput] = wire_key("input")


@dataclass(slots=True)
class Thread:
    __protocol_object__ = True
    raw: JsonObject
    id: Id
    ephemeral: bool
    created_at: int = wire_key("createdAt")
    source: JsonValue = absent_ok(None)
    # Derived from ``source`` (reducer.md §4.3-4.4).
    thread_source: str | None = derived()
    subagent_source: str | None = derived()
    parent_thread_id: str | None = derived()

    def _post_decode(self) -> None:
        source = self.source
        if type(source) is str:
            self.thread_source = "user" if source in ("cli", "vscode", "exec") else None
        else:
            subagent = thread_subagent(source)
            if subagent is not None:
                self.thread_source = "subagent"
                self.subagent_source, self.parent_thread_id = subagent
        # ``{"custom": …}``, "appServer", "unknown" and anything else: all null.


@dataclass(slots=True)
class ThreadLifecycleResult:
    __protocol_object__ = True
    raw: JsonObject
    thread: Thread
    model: Name


@dataclass(slots=True)
class ResultTurn:
    __protocol_object__ = True
    raw: JsonObject
    id: Id


@dataclass(slots=True)
class TurnStartResult:
    __protocol_object__ = True
    raw: JsonObject
    turn: ResultTurn


@dataclass(slots=True)
class TurnSteerResult:
    __protocol_object__ = True
    raw: JsonObject
    turn_id: Id = wire_key("turnId")


@dataclass(slots=True)
class StartedTurn:
    __protocol_object__ = True
    raw: JsonObject
    id: Id
    started_at: int | None = absent_ok(None, key="startedAt")


@dataclass(slots=True)
class TurnStartedParams:
    __protocol_object__ = True
    raw: JsonObject
    turn: StartedTurn


@dataclass(slots=True)
class TurnErrorInfo:
    __protocol_object__ = True
    raw: JsonObject
    codex_error_info: JsonValue = absent_ok(None, key="codexErrorInfo")


@dataclass(slots=True)
class CompletedTurn:
    __protocol_object__ = True
    raw: JsonObject
    id: Id
    status: TurnStatus
    error: TurnErrorInfo | None = absent_ok(None)
    completed_at: int | None = absent_ok(None, key="completedAt")
    duration_ms: int | None = absent_ok(None, key="durationMs")


@dataclass(slots=True)
class TurnCompletedParams:
    __protocol_object__ = True
    raw: JsonObject
    turn: CompletedTurn


@dataclass(slots=True)
class SandboxPolicy:
    __protocol_object__ = True
    raw: JsonObject
    type: SandboxPolicyType


@dataclass(slots=True)
class GuardianReviewPayload:
    """``GuardianReviewEventParams``: passed through whole (flattened into the event)."""

    __protocol_object__ = True
    raw: JsonObject
    thread_id: Id
    turn_id: Id
    review_id: Id


# -- payloads of the 16 kinds -------------------------------------------------------------


@dataclass(slots=True)
class InitializePayload:
    params: InitializeParams
    product_client_id: Id
    runtime: RuntimeMetadata
    rpc_transport: RpcTransport


@dataclass(slots=True)
class ClientRequestPayload:
    request_id: int | Id
    method: Name
    params: JsonObject
    #: Set for ``turn/start`` and ``turn/steer``, the only requests the reducer reads.
    turn_start: TurnStartParams | None = derived()
    turn_steer: TurnSteerParams | None = derived()

    def _post_decode(self) -> None:
        if self.method == "turn/start":
            self.turn_start = decode_within(TurnStartParams, self.params, "params")
        elif self.method == "turn/steer":
            self.turn_steer = decode_within(TurnSteerParams, self.params, "params")


def response_turn_id(method: str, result: JsonObject) -> str | None:
    """The turn a ``client_response`` result names: ``result.turn.id`` of ``turn/start``,
    ``result.turnId`` of ``turn/steer``; None for any other method."""
    if method == "turn/start":
        return decode_within(TurnStartResult, result, "result").turn.id
    if method == "turn/steer":
        return decode_within(TurnSteerResult, result, "result").turn_id
    return None


@dataclass(slots=True)
class ClientResponsePayload:
    request_id: int | Id
    method: Name
    result: JsonObject
    #: Set for ``thread/start``, ``thread/resume`` and ``thread/fork``.
    thread_lifecycle: ThreadLifecycleResult | None = derived()
    #: The turn id of a ``turn/start`` (``result.turn.id``) or ``turn/steer`` (``result.turnId``).
    turn_id: str | None = derived()

    def _post_decode(self) -> None:
        method = self.method
        if method in THREAD_LIFECYCLE_METHODS:
            self.thread_lifecycle = decode_within(ThreadLifecycleResult, self.result, "result")
        else:
            self.turn_id = response_turn_id(method, self.result)


@dataclass(slots=True)
class JsonRpcError:
    __protocol_object__ = True
    raw: JsonObject
    code: int
    message: str


_INPUT_REJECTIONS = {"empty": "empty_input", "too_large": "input_too_large"}
_TURN_STEER_REJECTIONS: tuple[str, ...] = get_args(TurnSteerRejection)
_INPUT_ERRORS: tuple[str, ...] = get_args(InputError)


@dataclass(slots=True)
class ErrorResponsePayload:
    request_id: int | Id
    error: JsonRpcError
    #: null, ``{"turn_steer": R}`` or ``{"input": I}`` (PROPOSAL encoding, facts.md §3.4).
    error_type: JsonValue
    #: ``error_type`` mapped to the steer event's ``rejection_reason`` (reducer.md §3.9).
    rejection_reason: str | None = derived()

    def _post_decode(self) -> None:
        value = self.error_type
        if value is None:
            return
        if type(value) is not dict or len(value) != 1:
            raise wrong_type("null or a single-key object", value).within("error_type")
        ((tag, inner),) = value.items()
        if tag == "turn_steer":
            allowed = _TURN_STEER_REJECTIONS
            mapped = inner
        elif tag == "input":
            allowed = _INPUT_ERRORS
            mapped = _INPUT_REJECTIONS.get(inner) if type(inner) is str else None
        else:
            raise DecodeError(
                DecodeReason.UNKNOWN_ENUM_VALUE,
                "error_type",
                f"{tag[:64]!r} is not 'turn_steer' or 'input'",
            )
        if type(inner) is not str:
            raise wrong_type("string", inner).within(tag).within("error_type")
        if inner not in allowed:
            raise (
                DecodeError(
                    DecodeReason.UNKNOWN_ENUM_VALUE, "", f"{inner[:64]!r} is not one of {allowed}"
                )
                .within(tag)
                .within("error_type")
            )
        self.rejection_reason = mapped


@dataclass(slots=True)
class ServerNotificationPayload:
    method: Name
    params: JsonObject
    turn_started: TurnStartedParams | None = derived()
    turn_completed: TurnCompletedParams | None = derived()

    def _post_decode(self) -> None:
        if self.method == "turn/started":
            self.turn_started = decode_within(TurnStartedParams, self.params, "params")
        elif self.method == "turn/completed":
            self.turn_completed = decode_within(TurnCompletedParams, self.params, "params")


@dataclass(slots=True)
class SubagentThreadStartedPayload:
    thread_id: Id
    parent_thread_id: Id | None
    product_client_id: Id
    client_name: Name
    client_version: Name
    model: Name
    ephemeral: bool
    subagent_source: JsonValue
    created_at: U64
    subagent_name: str = derived("")
    spawn_parent_thread_id: str | None = derived()

    def _post_decode(self) -> None:
        try:
            self.subagent_name, self.spawn_parent_thread_id = parse_subagent_source(
                self.subagent_source
            )
        except DecodeError as err:
            raise err.within("subagent_source") from None


@dataclass(slots=True)
class CompactionPayload:
    thread_id: Id
    turn_id: Id
    trigger: CompactionTrigger
    reason: CompactionReason
    implementation: CompactionImplementation
    phase: CompactionPhase
    strategy: CompactionStrategy
    status: CompactionStatus
    error: str | None
    active_context_tokens_before: int
    active_context_tokens_after: int
    started_at: U64
    completed_at: U64
    duration_ms: U64 | None


@dataclass(slots=True)
class TurnResolvedConfigPayload:
    turn_id: Id
    thread_id: Id
    num_input_images: U64
    submission_type: SubmissionType | None
    ephemeral: bool
    session_source: JsonValue
    model: Name
    model_provider: Name
    sandbox_policy: SandboxPolicy
    reasoning_effort: Name | None
    reasoning_summary: Name | None
    service_tier: Name | None
    approval_policy: ApprovalPolicy
    approvals_reviewer: ApprovalsReviewer
    sandbox_network_access: bool
    collaboration_mode: CollaborationMode
    personality: Name | None
    is_first_turn: bool


@dataclass(slots=True)
class TurnTokenUsagePayload:
    turn_id: Id
    thread_id: Id
    token_usage: TokenUsage


@dataclass(slots=True)
class SkillInvokedPayload:
    tracking: TrackingContext
    invocations: list[SkillInvocation]


@dataclass(slots=True)
class AppMentionedPayload:
    tracking: TrackingContext
    mentions: list[AppInvocation]


@dataclass(slots=True)
class AppUsedPayload:
    tracking: TrackingContext
    app: AppInvocation


@dataclass(slots=True)
class HookRunFact:
    event_name: HookEventName
    hook_source: HookSource
    status: HookRunStatus


@dataclass(slots=True)
class HookRunPayload:
    tracking: TrackingContext
    hook: HookRunFact


@dataclass(slots=True)
class PluginUsedPayload:
    tracking: TrackingContext
    plugin: PluginTelemetryMetadata


@dataclass(slots=True)
class PluginStateChangedPayload:
    plugin: PluginTelemetryMetadata
    state: PluginState


Payload = (
    InitializePayload
    | ClientRequestPayload
    | ClientResponsePayload
    | ErrorResponsePayload
    | ServerNotificationPayload
    | SubagentThreadStartedPayload
    | GuardianReviewPayload
    | CompactionPayload
    | TurnResolvedConfigPayload
    | TurnTokenUsagePayload
    | SkillInvokedPayload
    | AppMentionedPayload
    | AppUsedPayload
    | HookRunPayload
    | PluginUsedPayload
    | PluginStateChangedPayload
)

#: kind -> payload model.
PAYLOAD_TYPES: dict[str, type[Any]] = {
    "initialize": InitializePayload,
    "client_request": ClientRequestPayload,
    "client_response": ClientResponsePayload,
    "error_response": ErrorResponsePayload,
    "server_notification": ServerNotificationPayload,
    "subagent_thread_started": SubagentThreadStartedPayload,
    "guardian_review": GuardianReviewPayload,
    "compaction": CompactionPayload,
    "turn_resolved_config": TurnResolvedConfigPayload,
    "turn_token_usage": TurnTokenUsagePayload,
    "skill_invoked": SkillInvokedPayload,
    "app_mentioned": AppMentionedPayload,
    "app_used": AppUsedPayload,
    "hook_run": HookRunPayload,
    "plugin_used": PluginUsedPayload,
    "plugin_state_changed": PluginStateChangedPayload,
}
assert set(PAYLOAD_TYPES) == set(FACT_KINDS)

ENVELOPE_VERSION = 1


@dataclass(slots=True)
class FactEnvelope:
    """One fact as published on ``analytics.facts`` (PROPOSAL envelope, facts.md §1)."""

    envelope_version: int
    fact_id: Id
    source: Source
    seq: U64
    observed_at_ms: U64
    kind: FactKind
    connection_id: U64 | None
    payload: Payload

    @property
    def instance_id(self) -> str:
        return self.source.instance_id

    @property
    def contract(self) -> ContractId:
        """The contract the fact is decoded and reduced by (``source.contract``)."""
        return self.source.contract_id
