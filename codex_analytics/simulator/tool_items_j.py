"""App-server v2 payloads of the tool domain for the 2026-08 generator: the items of the
seven tracked tool kinds (and ``subAgentActivity``), the actions a guardian reviews, and
the params of an approval request. Shapes follow upstream's app-server protocol
(``app-server-protocol/src/protocol/v2/item.rs``, ``ext/items``)."""

from __future__ import annotations

from typing import Any

#: The ``reviewed_action`` variants of a guardian review (tag ``type``), profile-j.md §2.
REVIEWED_ACTIONS: dict[str, dict[str, Any]] = {
    "shell": {
        "type": "shell",
        "sandbox_permissions": "use_default",
        "additional_permissions": None,
    },
    "unified_exec": {
        "type": "unified_exec",
        "sandbox_permissions": "require_escalated",
        "additional_permissions": None,
        "tty": True,
    },
    "execve": {
        "type": "execve",
        "source": "shell",
        "program": "/usr/bin/git",
        "additional_permissions": None,
    },
    "apply_patch": {"type": "apply_patch"},
    "network_access": {"type": "network_access", "protocol": "https", "port": 443},
    "mcp_tool_call": {
        "type": "mcp_tool_call",
        "server": "linear",
        "tool_name": "create_issue",
        "connector_id": "connector_linear",
        "connector_name": "Linear",
        "tool_title": "Create issue",
    },
    "request_permissions": {"type": "request_permissions"},
}
#: The actions of a guardian ``item/autoApprovalReview/completed`` notification (tag
#: ``type``, upstream ``GuardianApprovalReviewAction``).
GUARDIAN_ACTIONS: dict[str, dict[str, Any]] = {
    "command": {"type": "command", "source": "shell", "command": "cargo test", "cwd": "/work"},
    "execve": {
        "type": "execve",
        "source": "unifiedExec",
        "program": "/usr/bin/git",
        "argv": ["git", "status"],
        "cwd": "/work",
    },
    "applyPatch": {"type": "applyPatch", "cwd": "/work", "files": ["/work/src/lib.rs"]},
    "networkAccess": {
        "type": "networkAccess",
        "target": "https://pypi.org",
        "host": "pypi.org",
        "protocol": "https",
        "port": 443,
    },
    "mcpToolCall": {
        "type": "mcpToolCall",
        "server": "linear",
        "toolName": "create_issue",
        "connectorId": "connector_linear",
        "connectorName": "Linear",
        "toolTitle": "Create issue",
    },
    "requestPermissions": {
        "type": "requestPermissions",
        "reason": "needs network",
        "permissions": {"network": {"enabled": True}, "fileSystem": None},
    },
}
#: The tracked tool item kinds (profile-j.md §5.3) and ``subAgentActivity``.
TOOL_ITEM_KINDS = (
    "commandExecution",
    "fileChange",
    "mcpToolCall",
    "dynamicToolCall",
    "collabAgentToolCall",
    "webSearch",
    "imageGeneration",
)


def tool_item(kind: str, item_id: str, status: str, variant: int = 0) -> dict[str, Any]:
    """An app-server v2 ``ThreadItem`` of a tracked tool ``kind`` (or
    ``subAgentActivity``) in ``status`` (v2 spelling: ``inProgress``, ``completed``,
    ``failed``, ``declined``); ``variant`` picks among realistic shapes."""
    done = status != "inProgress"
    if kind == "commandExecution":
        plugin_script = variant % 3 == 1
        sources = ["agent", "userShell", "unifiedExecStartup", "unifiedExecInteraction"]
        return {
            "type": kind,
            "id": item_id,
            "pluginId": "sample@openai-curated" if plugin_script else None,
            "scriptPath": "scripts/run.py" if plugin_script else None,
            "command": "rg TODO && cargo test",
            "cwd": "/work",
            "processId": f"pid-{variant}",
            "source": sources[variant % len(sources)],
            "status": status,
            "commandActions": [
                {"type": "search", "command": "rg TODO", "query": "TODO", "path": None},
                {"type": "unknown", "command": "cargo test"},
            ][: variant % 3],
            "aggregatedOutput": "ok" if done else None,
            "exitCode": (0 if status == "completed" else 1) if done else None,
            "durationMs": 40 + variant if done else None,
        }
    if kind == "fileChange":
        kinds: list[dict[str, Any]] = [
            {"type": "add"},
            {"type": "update", "move_path": None},
            {"type": "update", "move_path": "src/new_name.rs"},
            {"type": "delete"},
        ]
        return {
            "type": kind,
            "id": item_id,
            "changes": [
                {"path": f"src/f{i}.rs", "kind": kinds[(variant + i) % 4], "diff": "@@ -1 +1 @@"}
                for i in range(1 + variant % 3)
            ],
            "status": status,
        }
    if kind == "mcpToolCall":
        with_app = variant % 2 == 0
        return {
            "type": kind,
            "id": item_id,
            "server": "linear",
            "tool": "create_issue",
            "status": status,
            "arguments": {"title": "bug"},
            "appContext": {
                "connectorId": "connector_linear",
                "linkId": None,
                "resourceUri": None,
                "appName": "Linear",
                "actionName": None,
            }
            if with_app
            else None,
            "pluginId": "linear@openai-curated" if with_app else None,
            "readOnlyHint": False,
            "result": None,
            "error": {"message": "upstream 500"} if status == "failed" else None,
            "durationMs": 300 + variant if done else None,
        }
    if kind == "dynamicToolCall":
        return {
            "type": kind,
            "id": item_id,
            "namespace": None,
            "tool": "lookup_ticket",
            "arguments": {"id": 42},
            "status": status,
            "contentItems": [
                {"type": "inputText", "text": "ticket 42"},
                {"type": "inputImage", "imageUrl": "https://x/img.png"},
            ]
            if done and variant % 2 == 0
            else None,
            "success": status == "completed" if done else None,
            "durationMs": 25 + variant if done else None,
        }
    if kind == "collabAgentToolCall":
        tools = ["spawnAgent", "sendInput", "resumeAgent", "wait", "closeAgent"]
        receivers = [f"{item_id}-agent-{i}" for i in range(1 + variant % 2)]
        states = ["completed", "running", "errored", "shutdown", "notFound"]
        return {
            "type": kind,
            "id": item_id,
            "tool": tools[variant % len(tools)],
            "status": status,
            "senderThreadId": f"{item_id}-sender",
            "receiverThreadIds": receivers,
            "prompt": "look into the failing test",
            "model": "gpt-5-codex" if variant % 2 == 0 else None,
            "reasoningEffort": "medium" if variant % 2 == 0 else None,
            "agentsStates": {
                r: {"status": states[(variant + i) % len(states)], "message": None}
                for i, r in enumerate(receivers)
            },
        }
    if kind == "webSearch":
        actions: list[dict[str, Any] | None] = [
            {"type": "search", "query": "faust rocksdb", "queries": ["faust", "rocksdb"]},
            {"type": "search", "query": "aiokafka"},
            {"type": "openPage", "url": "https://docs.python.org"},
            {"type": "findInPage", "url": "https://docs.python.org", "pattern": "asyncio"},
            {"type": "other"},
            None,
        ]
        return {
            "type": kind,
            "id": item_id,
            "query": "" if variant % 6 == 5 else "faust rocksdb",
            "action": actions[variant % len(actions)],
            "results": None,
        }
    if kind == "imageGeneration":
        item: dict[str, Any] = {
            "type": kind,
            "id": item_id,
            "status": "generating"
            if not done
            else ("failed" if status == "failed" else "completed"),
            "revisedPrompt": "a lighthouse at dusk" if variant % 2 == 0 else None,
            "result": "" if not done else "aW1hZ2U=",
            "transparentBackground": None,
        }
        if done and variant % 2 == 0:
            item["savedPath"] = "/work/out/lighthouse.png"
        return item
    if kind == "subAgentActivity":
        return {
            "type": kind,
            "id": item_id,
            "kind": "started",
            "agentThreadId": f"{item_id}-agent",
            "agentPath": "root/explorer",
        }
    raise ValueError(f"not a tool item kind: {kind}")


def command_approval_params(
    thread_id: str, turn_id: str, item_id: str, started: int, variant: int
) -> dict[str, Any]:
    """``item/commandExecution/requestApproval`` params; ``variant`` picks the trigger
    (initial, execve intercept, network context, network amendment, sandbox denial)."""
    return {
        "threadId": thread_id,
        "turnId": turn_id,
        "itemId": item_id,
        "startedAtMs": started,
        "approvalId": "3f1c9e1e-approval" if variant == 1 else None,
        "environmentId": None,
        "reason": None,
        "networkApprovalContext": {"host": "pypi.org", "protocol": "https"}
        if variant == 2
        else None,
        "command": "pip install orjson",
        "cwd": "/work",
        "commandActions": None,
        "additionalPermissions": {"network": None, "fileSystem": {"read": None, "write": ["/tmp"]}}
        if variant == 4
        else None,
        "proposedExecpolicyAmendment": None,
        "proposedNetworkPolicyAmendments": [{"host": "pypi.org", "action": "allow"}]
        if variant == 3
        else None,
        "availableDecisions": None,
    }
