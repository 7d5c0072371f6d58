"""Profile J facts of the tool domain (profile-j.md §2-§3): payload models.

Server requests and their answers (the user reviews of §5.4), code-mode tool calls and the
``flush`` barrier; and the views of the notifications the tool rules read: tool items
started and completed, guardian reviews completed, threads closed.

Requests, responses and notifications carry app-server protocol JSON (camelCase): their
objects are protocol objects that keep ``raw`` and validate only what the reducer reads.
The custom facts (``code_mode_tool_call``, the ``completed_at_ms`` wrappers) are
upstream's input structs in serde's default rendering (snake_case).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..errors import DecodeError, DecodeReason
from ..limits import Id, Name
from ..schema import (
    U64,
    JsonObject,
    JsonValue,
    absent_ok,
    decode_within,
    decoder_for,
    derived,
    wire_key,
    wrong_type,
)

# -- server requests (approval reviews, §5.4) --------------------------------------------------


@dataclass(slots=True)
class NetworkPermissions:
    """``AdditionalNetworkPermissions``: ``enabled`` is what a request asks for."""

    __protocol_object__ = True
    raw: JsonObject
    enabled: bool | None = absent_ok(None)


@dataclass(slots=True)
class PermissionProfile:
    """``AdditionalPermissionProfile`` / ``RequestPermissionProfile`` (camelCase): the
    network and file-system permissions a request asks for."""

    __protocol_object__ = True
    raw: JsonObject
    network: NetworkPermissions | None = absent_ok(None)
    file_system: JsonValue = absent_ok(None, key="fileSystem")

    @property
    def requests_network(self) -> bool:
        return self.network is not None and self.network.enabled is True


@dataclass(slots=True)
class CommandExecutionApprovalParams:
    """``item/commandExecution/requestApproval`` params."""

    __protocol_object__ = True
    raw: JsonObject
    thread_id: Id = wire_key("threadId")
    turn_id: Id = wire_key("turnId")
    item_id: Id = wire_key("itemId")
    started_at_ms: int = wire_key("startedAtMs")
    approval_id: Id | None = absent_ok(None, key="approvalId")
    network_approval_context: JsonValue = absent_ok(None, key="networkApprovalContext")
    additional_permissions: PermissionProfile | None = absent_ok(None, key="additionalPermissions")
    proposed_network_policy_amendments: list[JsonValue] | None = absent_ok(
        None, key="proposedNetworkPolicyAmendments"
    )


@dataclass(slots=True)
class FileChangeApprovalParams:
    """``item/fileChange/requestApproval`` params."""

    __protocol_object__ = True
    raw: JsonObject
    thread_id: Id = wire_key("threadId")
    turn_id: Id = wire_key("turnId")
    item_id: Id = wire_key("itemId")
    started_at_ms: int = wire_key("startedAtMs")
    grant_root: JsonValue = absent_ok(None, key="grantRoot")


@dataclass(slots=True)
class PermissionsApprovalParams:
    """``item/permissions/requestApproval`` params."""

    __protocol_object__ = True
    raw: JsonObject
    thread_id: Id = wire_key("threadId")
    turn_id: Id = wire_key("turnId")
    item_id: Id = wire_key("itemId")
    started_at_ms: int = wire_key("startedAtMs")
    permissions: PermissionProfile = wire_key("permissions")


ApprovalParams = (
    CommandExecutionApprovalParams | FileChangeApprovalParams | PermissionsApprovalParams
)

#: Server request methods the reducer reads -> their params' model.
APPROVAL_REQUEST_PARAMS: dict[str, type[Any]] = {
    "item/commandExecution/requestApproval": CommandExecutionApprovalParams,
    "item/fileChange/requestApproval": FileChangeApprovalParams,
    "item/permissions/requestApproval": PermissionsApprovalParams,
}


@dataclass(slots=True)
class ServerRequestPayload:
    """``AnalyticsFact::ServerRequest``: a request of the app-server to its client."""

    request_id: int | Id
    method: Name
    params: JsonObject
    #: The decoded params of an approval request (the methods the reducer reads), else None.
    approval: ApprovalParams | None = derived()

    def _post_decode(self) -> None:
        model = APPROVAL_REQUEST_PARAMS.get(self.method)
        if model is not None:
            self.approval = decode_within(model, self.params, "params")


# -- answers to server requests ----------------------------------------------------------------

ApprovalDecisionName = Literal[
    "accept",
    "acceptForSession",
    "acceptWithExecpolicyAmendment",
    "applyNetworkPolicyAmendment",
    "decline",
    "cancel",
]
#: ``FileChangeApprovalDecision`` is the unit-variant subset.
FILE_CHANGE_DECISIONS = frozenset({"accept", "acceptForSession", "decline", "cancel"})
_COMMAND_DECISIONS: tuple[str, ...] = get_args(ApprovalDecisionName)
_DECISION_METHODS = {
    "item/commandExecution/requestApproval": frozenset(_COMMAND_DECISIONS),
    "item/fileChange/requestApproval": FILE_CHANGE_DECISIONS,
}
NetworkRuleAction = Literal["allow", "deny"]


@dataclass(slots=True)
class NetworkPolicyAmendment:
    __protocol_object__ = True
    raw: JsonObject
    action: NetworkRuleAction


@dataclass(slots=True)
class NetworkPolicyAmendmentDecision:
    """The body of ``{"applyNetworkPolicyAmendment": {...}}`` (serde: snake_case field)."""

    __protocol_object__ = True
    raw: JsonObject
    network_policy_amendment: NetworkPolicyAmendment


@dataclass(slots=True)
class ApprovalDecision:
    """A ``CommandExecutionApprovalDecision`` / ``FileChangeApprovalDecision``: a unit
    variant as a string, a data variant as a single-key object."""

    name: str
    #: For ``applyNetworkPolicyAmendment``: the amendment's ``allow`` / ``deny``.
    network_action: str | None = None


def parse_approval_decision(value: Any, allowed: frozenset[str]) -> ApprovalDecision:
    shown = ", ".join(sorted(allowed))
    if type(value) is str:
        name = value
        body: Any = None
    elif type(value) is dict and len(value) == 1:
        ((name, body),) = value.items()
    else:
        raise wrong_type("a decision (string or single-key object)", value)
    if name not in allowed:
        raise DecodeError(
            DecodeReason.UNKNOWN_ENUM_VALUE, "", f"{name[:64]!r} is not one of {shown}"
        )
    data_variant = name in ("acceptWithExecpolicyAmendment", "applyNetworkPolicyAmendment")
    if data_variant != (type(value) is dict):
        raise wrong_type("an object" if data_variant else "a string", value)
    if name == "applyNetworkPolicyAmendment":
        amendment = decode_within(NetworkPolicyAmendmentDecision, body, name)
        return ApprovalDecision(name, amendment.network_policy_amendment.action)
    return ApprovalDecision(name)


@dataclass(slots=True)
class ServerResponsePayload:
    """``AnalyticsFact::ServerResponse``: the client's answer to a server request."""

    completed_at_ms: U64
    request_id: int | Id
    method: Name
    result: JsonObject
    #: ``result.decision`` of an approval response (the methods the reducer reads).
    decision: ApprovalDecision | None = derived()

    def _post_decode(self) -> None:
        allowed = _DECISION_METHODS.get(self.method)
        if allowed is None:
            return
        if "decision" not in self.result:
            raise DecodeError(
                DecodeReason.MISSING_KEY, "decision", "required key is missing"
            ).within("result")
        try:
            self.decision = parse_approval_decision(self.result["decision"], allowed)
        except DecodeError as err:
            raise err.within("decision").within("result") from None


@dataclass(slots=True)
class CorePermissionProfile:
    """Core ``RequestPermissionProfile`` (snake_case): empty when neither is set."""

    __protocol_object__ = True
    raw: JsonObject
    network: JsonValue = absent_ok(None)
    file_system: JsonValue = absent_ok(None)

    @property
    def is_empty(self) -> bool:
        return self.network is None and self.file_system is None


@dataclass(slots=True)
class RequestPermissionsResponse:
    """Core ``RequestPermissionsResponse``; ``scope`` defaults to ``turn`` (serde)."""

    __protocol_object__ = True
    raw: JsonObject
    permissions: CorePermissionProfile
    scope: Literal["turn", "session"] | None = absent_ok(None)


@dataclass(slots=True)
class EffectivePermissionsApprovalResponsePayload:
    completed_at_ms: U64
    request_id: int | Id
    response: RequestPermissionsResponse


@dataclass(slots=True)
class ServerRequestAbortedPayload:
    completed_at_ms: U64
    request_id: int | Id


# -- code mode (§5.3.2) -------------------------------------------------------------------------

CodeModeToolCallStatus = Literal["completed", "failed", "interrupted"]


@dataclass(slots=True)
class CodeModeCallStarted:
    """``cell_started`` / ``child_started``: a call of a code-mode cell began."""

    thread_id: Id
    turn_id: Id
    call_id: Id
    cell_id: Id


@dataclass(slots=True)
class CodeModeCellClosed:
    thread_id: Id
    turn_id: Id
    cell_id: Id


@dataclass(slots=True)
class CodeModeSamplingResponseCompleted:
    thread_id: Id
    turn_id: Id
    response_id: Id
    tool_call_ids: list[Id]


@dataclass(slots=True)
class CodeModeCallCompleted:
    thread_id: Id
    turn_id: Id
    call_id: Id
    cell_id: Id | None
    tool_name: Name
    started_at_ms: U64
    completed_at_ms: U64
    status: CodeModeToolCallStatus


CodeModeVariant = (
    CodeModeCallStarted
    | CodeModeCellClosed
    | CodeModeSamplingResponseCompleted
    | CodeModeCallCompleted
)


@dataclass(slots=True)
class CodeModeToolCallPayload:
    """``CodeModeToolCallFact``, externally tagged: exactly one of its five keys."""

    cell_started: CodeModeCallStarted | None = absent_ok(None)
    child_started: CodeModeCallStarted | None = absent_ok(None)
    cell_closed: CodeModeCellClosed | None = absent_ok(None)
    sampling_response_completed: CodeModeSamplingResponseCompleted | None = absent_ok(None)
    completed: CodeModeCallCompleted | None = absent_ok(None)
    #: The variant's name (its key) and its body.
    variant: str = derived("")
    body: CodeModeVariant | None = derived()

    def _post_decode(self) -> None:
        present = [
            (name, value)
            for name, value in (
                ("cell_started", self.cell_started),
                ("child_started", self.child_started),
                ("cell_closed", self.cell_closed),
                ("sampling_response_completed", self.sampling_response_completed),
                ("completed", self.completed),
            )
            if value is not None
        ]
        if len(present) != 1:
            raise DecodeError(
                DecodeReason.INVALID_VALUE,
                "",
                "expected exactly one of cell_started, child_started, cell_closed, "
                "sampling_response_completed, completed",
            )
        ((self.variant, self.body),) = present

    @property
    def thread_id(self) -> str:
        assert self.body is not None
        return self.body.thread_id


@dataclass(slots=True)
class FlushPayload:
    """``flush`` (PROPOSAL): the producer's barrier; ``{}``."""


# -- notifications: tool items (§5.3.1) -------------------------------------------------------

CommandExecutionSource = Literal[
    "agent", "userShell", "unifiedExecStartup", "unifiedExecInteraction"
]
CommandExecutionStatus = Literal["inProgress", "completed", "failed", "declined"]
ToolCallStatus = Literal["inProgress", "completed", "failed"]
CollabAgentTool = Literal["spawnAgent", "sendInput", "resumeAgent", "wait", "closeAgent"]
CollabAgentStatus = Literal[
    "pendingInit", "running", "interrupted", "completed", "errored", "shutdown", "notFound"
]
_COLLAB_AGENT_STATUSES = frozenset(get_args(CollabAgentStatus))
_FAILED_AGENT_STATUSES = frozenset({"errored", "shutdown", "notFound"})


@dataclass(slots=True)
class CommandAction:
    __protocol_object__ = True
    raw: JsonObject
    type: Literal["read", "listFiles", "search", "unknown"]


@dataclass(slots=True)
class CommandExecutionItem:
    __protocol_object__ = True
    raw: JsonObject
    status: CommandExecutionStatus
    command_actions: list[CommandAction] = wire_key("commandActions")
    plugin_id: Id | None = absent_ok(None, key="pluginId")
    script_path: Name | None = absent_ok(None, key="scriptPath")
    #: Missing means ``agent`` (serde default).
    source: CommandExecutionSource | None = absent_ok(None)
    exit_code: int | None = absent_ok(None, key="exitCode")
    duration_ms: int | None = absent_ok(None, key="durationMs")


@dataclass(slots=True)
class PatchChangeKind:
    __protocol_object__ = True
    raw: JsonObject
    type: Literal["add", "delete", "update"]
    move_path: JsonValue = absent_ok(None)


@dataclass(slots=True)
class FileUpdateChange:
    __protocol_object__ = True
    raw: JsonObject
    kind: PatchChangeKind


@dataclass(slots=True)
class FileChangeItem:
    __protocol_object__ = True
    raw: JsonObject
    changes: list[FileUpdateChange]
    status: CommandExecutionStatus


@dataclass(slots=True)
class McpToolCallAppContext:
    __protocol_object__ = True
    raw: JsonObject
    connector_id: Id = wire_key("connectorId")


@dataclass(slots=True)
class McpToolCallItem:
    __protocol_object__ = True
    raw: JsonObject
    server: Name
    tool: Name
    status: ToolCallStatus
    error: JsonValue = absent_ok(None)
    duration_ms: int | None = absent_ok(None, key="durationMs")
    plugin_id: Id | None = absent_ok(None, key="pluginId")
    app_context: McpToolCallAppContext | None = absent_ok(None, key="appContext")


@dataclass(slots=True)
class DynamicToolCallContentItem:
    __protocol_object__ = True
    raw: JsonObject
    type: Literal["inputText", "inputImage", "inputAudio"]


@dataclass(slots=True)
class DynamicToolCallItem:
    __protocol_object__ = True
    raw: JsonObject
    tool: Name
    status: ToolCallStatus
    content_items: list[DynamicToolCallContentItem] | None = absent_ok(None, key="contentItems")
    success: bool | None = absent_ok(None)
    duration_ms: int | None = absent_ok(None, key="durationMs")


@dataclass(slots=True)
class CollabAgentToolCallItem:
    __protocol_object__ = True
    raw: JsonObject
    tool: CollabAgentTool
    status: ToolCallStatus
    sender_thread_id: Id = wire_key("senderThreadId")
    receiver_thread_ids: list[Id] = wire_key("receiverThreadIds")
    agents_states: JsonObject = wire_key("agentsStates")
    model: Name | None = absent_ok(None)
    reasoning_effort: Name | None = absent_ok(None, key="reasoningEffort")
    #: How many of ``agentsStates`` are completed, and failed (errored, shut down, not found).
    completed_agent_count: int = derived(0)
    failed_agent_count: int = derived(0)

    def _post_decode(self) -> None:
        for agent, state in self.agents_states.items():
            status = state.get("status") if type(state) is dict else None
            if status not in _COLLAB_AGENT_STATUSES:
                raise (
                    DecodeError(
                        DecodeReason.UNKNOWN_ENUM_VALUE
                        if type(status) is str
                        else DecodeReason.WRONG_TYPE,
                        "status",
                        "expected a collab agent status",
                    )
                    .within(agent)
                    .within("agentsStates")
                )
            if status == "completed":
                self.completed_agent_count += 1
            elif status in _FAILED_AGENT_STATUSES:
                self.failed_agent_count += 1


@dataclass(slots=True)
class WebSearchAction:
    __protocol_object__ = True
    raw: JsonObject
    #: Any string: upstream's ``WebSearchAction`` reads a type it does not know as
    #: ``Other`` (``#[serde(other)]``), so a newer client's action is not refused.
    type: Name
    query: str | None = absent_ok(None)
    queries: list[str] | None = absent_ok(None)


@dataclass(slots=True)
class WebSearchItem:
    __protocol_object__ = True
    raw: JsonObject
    query: str
    action: WebSearchAction | None = absent_ok(None)


@dataclass(slots=True)
class ImageGenerationItem:
    __protocol_object__ = True
    raw: JsonObject
    status: str
    revised_prompt: JsonValue = absent_ok(None, key="revisedPrompt")
    saved_path: JsonValue = absent_ok(None, key="savedPath")


ToolItemDetail = (
    CommandExecutionItem
    | FileChangeItem
    | McpToolCallItem
    | DynamicToolCallItem
    | CollabAgentToolCallItem
    | WebSearchItem
    | ImageGenerationItem
)

#: ``ThreadItem`` types that make a tool event -> the model of what the event reads.
TOOL_ITEM_MODELS: dict[str, type[Any]] = {
    "commandExecution": CommandExecutionItem,
    "fileChange": FileChangeItem,
    "mcpToolCall": McpToolCallItem,
    "dynamicToolCall": DynamicToolCallItem,
    "collabAgentToolCall": CollabAgentToolCallItem,
    "webSearch": WebSearchItem,
    "imageGeneration": ImageGenerationItem,
}
#: Counted on the turn (as a sub-agent tool call) but without an event of its own.
SUBAGENT_ACTIVITY = "subAgentActivity"


@dataclass(slots=True)
class ThreadItemRef:
    """A ``ThreadItem``: its type and id (all an ``item/started`` needs)."""

    __protocol_object__ = True
    raw: JsonObject
    type: Name
    id: Id


@dataclass(slots=True)
class ThreadItem:
    """A completed ``ThreadItem``; a tool item's fields the event reads are in ``detail``
    (None for the types without a tool event)."""

    __protocol_object__ = True
    raw: JsonObject
    type: Name
    id: Id
    detail: ToolItemDetail | None = derived()

    def _post_decode(self) -> None:
        model = TOOL_ITEM_MODELS.get(self.type)
        if model is not None:
            self.detail = decoder_for(model)(self.raw)


@dataclass(slots=True)
class ItemStartedParams:
    __protocol_object__ = True
    raw: JsonObject
    item: ThreadItemRef
    thread_id: Id = wire_key("threadId")
    turn_id: Id = wire_key("turnId")
    started_at_ms: int = wire_key("startedAtMs")


@dataclass(slots=True)
class ItemCompletedParams:
    __protocol_object__ = True
    raw: JsonObject
    item: ThreadItem
    thread_id: Id = wire_key("threadId")
    turn_id: Id = wire_key("turnId")
    completed_at_ms: int = wire_key("completedAtMs")


# -- notifications: guardian reviews, closed threads ------------------------------------------

GuardianReviewStatus = Literal["inProgress", "approved", "denied", "timedOut", "aborted"]
GuardianActionType = Literal[
    "command", "execve", "applyPatch", "networkAccess", "mcpToolCall", "requestPermissions"
]


@dataclass(slots=True)
class GuardianApprovalReview:
    __protocol_object__ = True
    raw: JsonObject
    status: GuardianReviewStatus


@dataclass(slots=True)
class GuardianReviewAction:
    """``GuardianApprovalReviewAction`` (tag ``type``): what the review is about."""

    __protocol_object__ = True
    raw: JsonObject
    type: GuardianActionType
    tool_name: Name | None = absent_ok(None, key="toolName")
    permissions: PermissionProfile | None = absent_ok(None)

    def _post_decode(self) -> None:
        if self.type == "mcpToolCall" and self.tool_name is None:
            raise DecodeError(DecodeReason.MISSING_KEY, "toolName", "required key is missing")
        if self.type == "requestPermissions" and self.permissions is None:
            raise DecodeError(DecodeReason.MISSING_KEY, "permissions", "required key is missing")


@dataclass(slots=True)
class GuardianReviewCompletedParams:
    """``item/autoApprovalReview/completed`` params."""

    __protocol_object__ = True
    raw: JsonObject
    review: GuardianApprovalReview
    action: GuardianReviewAction
    thread_id: Id = wire_key("threadId")
    turn_id: Id = wire_key("turnId")
    review_id: Id = wire_key("reviewId")
    started_at_ms: int = wire_key("startedAtMs")
    completed_at_ms: int = wire_key("completedAtMs")
    target_item_id: Id | None = absent_ok(None, key="targetItemId")


@dataclass(slots=True)
class ThreadClosedParams:
    __protocol_object__ = True
    raw: JsonObject
    thread_id: Id = wire_key("threadId")


#: kind -> payload model.
PAYLOADS: dict[str, type[Any]] = {
    "server_request": ServerRequestPayload,
    "server_response": ServerResponsePayload,
    "effective_permissions_approval_response": EffectivePermissionsApprovalResponsePayload,
    "server_request_aborted": ServerRequestAbortedPayload,
    "code_mode_tool_call": CodeModeToolCallPayload,
    "flush": FlushPayload,
}
#: server_notification method -> view model of its ``params``. ``item/autoApprovalReview/
#: started`` is accepted and ignored (no view), as any method without one.
NOTIFICATION_VIEWS: dict[str, type[Any]] = {
    "item/started": ItemStartedParams,
    "item/completed": ItemCompletedParams,
    "item/autoApprovalReview/completed": GuardianReviewCompletedParams,
    "thread/closed": ThreadClosedParams,
}
