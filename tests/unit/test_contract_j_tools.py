"""Profile J tool-domain contract (profile-j.md §3, §4.2): the payloads of server requests
and their answers, code-mode tool calls and ``flush``; the views of tool items, guardian
reviews and closed threads; what each refuses, and where."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from codex_analytics.contract import decode_fact, fact_to_json
from codex_analytics.contract.errors import DecodeError, DecodeReason
from codex_analytics.contract.profile_j import tool_facts

from .j_tool_facts import JInstance, command_item

COMMAND = "item/commandExecution/requestApproval"
FILE_CHANGE = "item/fileChange/requestApproval"
PERMISSIONS = "item/permissions/requestApproval"
APPROVAL_BASE = {"threadId": "t", "turnId": "u", "itemId": "i", "startedAtMs": 5}


def roundtrip(fact: Any) -> Any:
    """The fact's payload, after checking that its wire form re-encodes unchanged."""
    wire = orjson.dumps(fact_to_json(fact))
    assert orjson.dumps(fact_to_json(decode_fact(wire))) == wire
    return fact.payload


def refused(kind: str, payload: Any) -> DecodeError:
    envelope = fact_to_json(JInstance().fact("flush", {}))
    envelope["kind"] = kind
    envelope["payload"] = payload
    envelope["connection_id"] = 7 if kind == "server_request" else None
    with pytest.raises(DecodeError) as caught:
        decode_fact(orjson.dumps(envelope))
    return caught.value


def test_approval_requests_decode_their_params_by_method() -> None:
    j = JInstance()
    command = roundtrip(
        j.server_request(
            41,
            COMMAND,
            {
                **APPROVAL_BASE,
                "approvalId": "a",
                "networkApprovalContext": {"host": "x"},
                "additionalPermissions": {"network": {"enabled": True}, "fileSystem": None},
                "proposedNetworkPolicyAmendments": [],
                "extra": 1,
            },
        )
    )
    assert isinstance(command.approval, tool_facts.CommandExecutionApprovalParams)
    assert command.approval.approval_id == "a"
    assert command.approval.additional_permissions.requests_network
    file_change = roundtrip(
        j.server_request("r-2", FILE_CHANGE, {**APPROVAL_BASE, "grantRoot": "/"})
    )
    assert file_change.approval.grant_root == "/"
    permissions = roundtrip(
        j.server_request(3, PERMISSIONS, {**APPROVAL_BASE, "permissions": {"fileSystem": {}}})
    )
    assert permissions.approval.permissions.file_system == {}
    assert not permissions.approval.permissions.requests_network
    other = roundtrip(j.server_request(4, "item/tool/call", {"anything": True}))
    assert other.approval is None


def test_an_approval_request_without_its_started_time_is_refused() -> None:
    params = {k: v for k, v in APPROVAL_BASE.items() if k != "startedAtMs"}
    err = refused("server_request", {"request_id": 1, "method": COMMAND, "params": params})
    assert (err.reason, err.path) == (DecodeReason.MISSING_KEY, "payload.params.startedAtMs")


@pytest.mark.parametrize(
    ("method", "decision", "name", "action"),
    [
        (COMMAND, "accept", "accept", None),
        (COMMAND, "acceptForSession", "acceptForSession", None),
        (
            COMMAND,
            {"acceptWithExecpolicyAmendment": {"execpolicy_amendment": ["ls"]}},
            "acceptWithExecpolicyAmendment",
            None,
        ),
        (
            COMMAND,
            {
                "applyNetworkPolicyAmendment": {
                    "network_policy_amendment": {"host": "example.com", "action": "deny"}
                }
            },
            "applyNetworkPolicyAmendment",
            "deny",
        ),
        (COMMAND, "decline", "decline", None),
        (FILE_CHANGE, "cancel", "cancel", None),
    ],
)
def test_server_response_decisions(
    method: str, decision: Any, name: str, action: str | None
) -> None:
    payload = roundtrip(JInstance().server_response(41, method, decision))
    assert (payload.decision.name, payload.decision.network_action) == (name, action)


@pytest.mark.parametrize(
    ("method", "decision", "reason", "path"),
    [
        (COMMAND, "maybe", DecodeReason.UNKNOWN_ENUM_VALUE, "payload.result.decision"),
        (
            FILE_CHANGE,
            {"acceptWithExecpolicyAmendment": {}},
            DecodeReason.UNKNOWN_ENUM_VALUE,
            "payload.result.decision",
        ),
        (
            COMMAND,
            "applyNetworkPolicyAmendment",
            DecodeReason.WRONG_TYPE,
            "payload.result.decision",
        ),
        (
            COMMAND,
            {"applyNetworkPolicyAmendment": {"network_policy_amendment": {"action": "ok"}}},
            DecodeReason.UNKNOWN_ENUM_VALUE,
            "payload.result.decision.applyNetworkPolicyAmendment.network_policy_amendment.action",
        ),
    ],
)
def test_bad_decisions_are_refused_where_they_are(
    method: str, decision: Any, reason: DecodeReason, path: str
) -> None:
    payload = {
        "completed_at_ms": 1,
        "request_id": 1,
        "method": method,
        "result": {"decision": decision},
    }
    err = refused("server_response", payload)
    assert (err.reason, err.path) == (reason, path)


def test_a_response_to_another_method_is_kept_unread() -> None:
    payload = roundtrip(JInstance().server_response(1, "item/tool/call", {"whatever": 1}))
    assert payload.decision is None


def test_permissions_response_and_abort() -> None:
    j = JInstance()
    granted = roundtrip(
        j.permissions_response(3, {"network": {"enabled": True}, "file_system": None}, "session")
    )
    assert not granted.response.permissions.is_empty
    assert granted.response.scope == "session"
    empty = roundtrip(j.permissions_response(3, {"network": None, "file_system": None}, "turn"))
    assert empty.response.permissions.is_empty
    assert roundtrip(j.aborted("r-9")).request_id == "r-9"
    err = refused(
        "effective_permissions_approval_response",
        {
            "completed_at_ms": 1,
            "request_id": 1,
            "response": {"permissions": {}, "scope": "forever"},
        },
    )
    assert (err.reason, err.path) == (DecodeReason.UNKNOWN_ENUM_VALUE, "payload.response.scope")


def test_code_mode_tool_calls_are_externally_tagged() -> None:
    j = JInstance()
    ids = {"thread_id": "t", "turn_id": "u"}
    variants = {
        "cell_started": {**ids, "call_id": "c", "cell_id": "cell"},
        "child_started": {**ids, "call_id": "c2", "cell_id": "cell"},
        "cell_closed": {**ids, "cell_id": "cell"},
        "sampling_response_completed": {**ids, "response_id": "r", "tool_call_ids": ["c"]},
        "completed": {
            **ids,
            "call_id": "c2",
            "cell_id": None,
            "tool_name": "read_file",
            "started_at_ms": 1,
            "completed_at_ms": 2,
            "status": "interrupted",
        },
    }
    for name, body in variants.items():
        payload = roundtrip(j.code_mode(name, **body))
        assert payload.variant == name
        assert payload.thread_id == "t"
        assert fact_to_json(j.code_mode(name, **body))["payload"] == {name: body}


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {
            "cell_closed": {"thread_id": "t", "turn_id": "u", "cell_id": "c"},
            "cell_started": {"thread_id": "t", "turn_id": "u", "call_id": "c", "cell_id": "c"},
        },
        {"cell_opened": {"thread_id": "t"}},
    ],
    ids=["none", "two", "unknown"],
)
def test_a_code_mode_fact_needs_exactly_one_known_variant(payload: Any) -> None:
    err = refused("code_mode_tool_call", payload)
    assert (err.reason, err.path) == (DecodeReason.INVALID_VALUE, "payload")


def test_code_mode_completed_status_is_closed() -> None:
    body = {
        "thread_id": "t",
        "turn_id": "u",
        "call_id": "c",
        "cell_id": None,
        "tool_name": "x",
        "started_at_ms": 1,
        "completed_at_ms": 2,
        "status": "cancelled",
    }
    err = refused("code_mode_tool_call", {"completed": body})
    assert (err.reason, err.path) == (DecodeReason.UNKNOWN_ENUM_VALUE, "payload.completed.status")


def test_flush_is_an_empty_object() -> None:
    flush = JInstance().flush()
    roundtrip(flush)
    assert fact_to_json(flush)["payload"] == {}


def test_item_views_decode_tool_items_and_ignore_other_types() -> None:
    j = JInstance()
    completed = j.item_completed(command_item(source="userShell"))
    item = completed.payload.view.item
    assert isinstance(item.detail, tool_facts.CommandExecutionItem)
    assert item.detail.source == "userShell"
    message = j.item_completed({"type": "agentMessage", "id": "m", "text": "hi"})
    assert message.payload.view.item.detail is None
    started = j.item_started({"type": "mcpToolCall", "id": "m"})
    assert started.payload.view.item.id == "m"
    ignored = j.notification("item/autoApprovalReview/started", {"anything": 1})
    assert ignored.payload.view is None


@pytest.mark.parametrize(
    ("item", "path"),
    [
        (command_item(status="done"), "payload.params.item.status"),
        (command_item(source="robot"), "payload.params.item.source"),
        (
            command_item(commandActions=[{"type": "write"}]),
            "payload.params.item.commandActions[0].type",
        ),
        (
            {
                "type": "collabAgentToolCall",
                "id": "c",
                "tool": "spawnAgent",
                "status": "completed",
                "senderThreadId": "s",
                "receiverThreadIds": [],
                "agentsStates": {"a": {"status": "lost"}},
            },
            "payload.params.item.agentsStates.a.status",
        ),
        (
            # Any action name is read (an unknown one as "other"), but it is a name.
            {"type": "webSearch", "id": "w", "query": "q", "action": {"type": 7}},
            "payload.params.item.action.type",
        ),
        (
            {
                "type": "fileChange",
                "id": "f",
                "changes": [{"path": "a", "kind": {"type": "rename"}, "diff": ""}],
                "status": "completed",
            },
            "payload.params.item.changes[0].kind.type",
        ),
    ],
    ids=["status", "source", "action", "agent", "web-action", "patch-kind"],
)
def test_a_bad_tool_item_is_refused_at_its_field(item: dict[str, Any], path: str) -> None:
    params = {"threadId": "t", "turnId": "u", "completedAtMs": 1, "item": item}
    err = refused("server_notification", {"method": "item/completed", "params": params})
    assert err.path == path


def test_guardian_review_views() -> None:
    j = JInstance()
    view = j.guardian_completed(
        {"type": "mcpToolCall", "server": "s", "toolName": "lookup"}, "timedOut"
    ).payload.view
    assert (view.review.status, view.action.type, view.action.tool_name) == (
        "timedOut",
        "mcpToolCall",
        "lookup",
    )
    params = fact_to_json(j.guardian_completed({"type": "command"}))["payload"]["params"]
    params["action"] = {"type": "requestPermissions", "reason": None}
    err = refused(
        "server_notification", {"method": "item/autoApprovalReview/completed", "params": params}
    )
    assert err.path == "payload.params.action.permissions"


def test_thread_closed_view() -> None:
    assert (
        JInstance().notification("thread/closed", {"threadId": "t"}).payload.view.thread_id == "t"
    )


def test_the_j_only_kinds_are_unknown_to_profile_s() -> None:
    envelope = fact_to_json(JInstance().flush())
    del envelope["source"]["contract"]
    with pytest.raises(DecodeError) as caught:
        decode_fact(orjson.dumps(envelope))
    assert caught.value.reason is DecodeReason.UNKNOWN_KIND
