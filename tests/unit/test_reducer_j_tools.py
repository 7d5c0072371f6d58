"""Profile J reducer, tools domain (profile-j.md §5.3-§5.4, §9; upstream ``reducer.rs`` and
``analytics_client_tests.rs``): reviews, tool counts and tool-item events, code mode and
the events it holds, their release, their state.

Each test starts from an instance with one connection (``initialize``), a thread with
its lifecycle metadata and an open turn, seeded in the state the session rules own, so
that these rules are tested on their own.
"""

from __future__ import annotations

from typing import Any

import pytest

from codex_analytics.contract import encode_event
from codex_analytics.contract.facts import FactEnvelope
from streams.reducer.core import Reducer
from streams.reducer.drops import DropReason
from streams.reducer.fact_context import Reduction
from streams.reducer.profile_j.state import ThreadJ, ThreadMetadataJ, TurnJ
from streams.reducer.state import InstanceState, StateLimits

from .j_tool_facts import CONNECTION, JInstance, command_item
from .reducer_harness import ReducerHarness

COMMAND = "item/commandExecution/requestApproval"
FILE_CHANGE = "item/fileChange/requestApproval"
PERMISSIONS = "item/permissions/requestApproval"
IDS = {"threadId": "thread-1", "turnId": "turn-1", "itemId": "item-1", "startedAtMs": 1000}


class Harness(ReducerHarness):
    """One instance with a connection, a thread and an open turn; ``apply`` one fact at a
    time, ``last`` its reduction."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.facts = JInstance()
        self.apply(self.facts.initialize())
        self.seed_thread("thread-1")
        self.seed_turn("turn-1", "thread-1")

    @property
    def last(self) -> Reduction:
        return self.reductions[-1]

    def seed_thread(self, thread_id: str) -> None:
        metadata = ThreadMetadataJ(f"session-{thread_id}", "user", "new", None, None)
        self.j.threads[thread_id] = ThreadJ(self.facts.now_ms, CONNECTION, metadata)

    def seed_turn(self, turn_id: str, thread_id: str) -> None:
        self.j.turns[turn_id] = TurnJ(self.facts.now_ms, thread_id=thread_id)

    def apply(self, fact: FactEnvelope) -> list[dict[str, Any]]:
        return self.feed(fact)

    def drops(self) -> list[tuple[DropReason, dict[str, Any]]]:
        """The drops of the last fact."""
        return [(drop.reason, dict(drop.ids)) for drop in self.last.drops]

    def params(self, fact: FactEnvelope) -> dict[str, Any]:
        """The ``event_params`` of the one event the fact emits."""
        (event,) = self.apply(fact)
        params: dict[str, Any] = event["event_params"]
        return params

    def tool_event(self, item: dict[str, Any], **completed: Any) -> dict[str, Any]:
        """Start and complete ``item``; the ``event_params`` of its tool event."""
        assert self.apply(self.facts.item_started(item)) == []
        return self.params(self.facts.item_completed(item, **completed))

    def release_turn(self, thread_id: str, turn_id: str) -> list[dict[str, Any]]:
        """``turn/completed``: the turn's held events first (its turn event needs more
        than the seeded turn has, so they are all it emits here)."""
        return self.apply(self.facts.turn_completed(thread_id, turn_id))


# -- reviews (§5.4) -----------------------------------------------------------------------------


def test_a_user_review_emits_its_event_and_sums_up_on_the_tool_item() -> None:
    h = Harness()
    assert h.apply(h.facts.server_request(41, COMMAND, IDS)) == []
    review = h.params(h.facts.server_response(41, COMMAND, "acceptForSession", at_ms=1042))
    assert review == {
        "thread_id": "thread-1",
        "turn_id": "turn-1",
        "item_id": "item-1",
        "review_id": "user:41",
        "app_server_client": review["app_server_client"],
        "runtime": review["runtime"],
        "thread_source": "user",
        "subagent_source": None,
        "parent_thread_id": None,
        "subject_kind": "command_execution",
        "subject_name": "command_execution",
        "reviewer": "user",
        "trigger": "initial",
        "status": "approved",
        "resolution": "session_approval",
        "started_at_ms": 1000,
        "completed_at_ms": 1042,
        "duration_ms": 42,
    }
    assert review["app_server_client"]["client_name"] == "codex-tui"
    event = h.tool_event(command_item())
    assert (event["review_count"], event["user_review_count"], event["guardian_review_count"]) == (
        1,
        1,
        0,
    )
    assert event["final_approval_outcome"] == "user_approved_for_session"
    assert h.j.item_review_summaries == {}  # forgotten with its item


@pytest.mark.parametrize(
    ("method", "params", "subject", "trigger", "additional", "network"),
    [
        (COMMAND, {}, "command_execution", "initial", False, False),
        (
            COMMAND,
            {"approvalId": "a-1", "networkApprovalContext": {"host": "h"}},
            "network_access",
            "execve_intercept",
            False,
            True,
        ),
        (
            COMMAND,
            {"networkApprovalContext": {"host": "h", "protocol": "https"}},
            "network_access",
            "network_policy_denial",
            False,
            True,
        ),
        (
            COMMAND,
            {"proposedNetworkPolicyAmendments": [{"host": "h", "action": "allow"}]},
            "command_execution",
            "network_policy_denial",
            False,
            True,
        ),
        (
            COMMAND,
            {"proposedNetworkPolicyAmendments": []},
            "command_execution",
            "initial",
            False,
            False,
        ),
        (
            COMMAND,
            {"additionalPermissions": {"network": {"enabled": True}, "fileSystem": None}},
            "command_execution",
            "network_policy_denial",
            True,
            True,
        ),
        (
            COMMAND,
            {"additionalPermissions": {"network": {"enabled": False}, "fileSystem": {}}},
            "command_execution",
            "sandbox_denial",
            True,
            False,
        ),
        (FILE_CHANGE, {"grantRoot": "/repo"}, "file_change", "sandbox_denial", True, False),
        (FILE_CHANGE, {"grantRoot": None}, "file_change", "initial", False, False),
        (
            PERMISSIONS,
            {"permissions": {"network": {"enabled": True}, "fileSystem": None}},
            "permissions",
            "network_policy_denial",
            True,
            True,
        ),
        (
            PERMISSIONS,
            {"permissions": {"network": None, "fileSystem": {"read": []}}},
            "permissions",
            "sandbox_denial",
            True,
            False,
        ),
        (
            PERMISSIONS,
            {"permissions": {"network": None, "fileSystem": None}},
            "permissions",
            "initial",
            False,
            False,
        ),
    ],
)
def test_review_subjects_and_triggers_per_request(
    method: str, params: dict[str, Any], subject: str, trigger: str, additional: bool, network: bool
) -> None:
    h = Harness()
    h.apply(h.facts.server_request(7, method, {**IDS, **params}))
    pending = h.j.pending_reviews[7]
    names = {"file_change": "apply_patch"}
    assert (pending.subject_kind, pending.subject_name) == (subject, names.get(subject, subject))
    assert pending.trigger == trigger
    assert (pending.requested_additional_permissions, pending.requested_network_access) == (
        additional,
        network,
    )
    review = h.params(h.facts.aborted(7))
    assert (review["subject_kind"], review["trigger"], review["status"]) == (
        subject,
        trigger,
        "aborted",
    )


@pytest.mark.parametrize(
    ("method", "decision", "status", "resolution", "outcome"),
    [
        (COMMAND, "accept", "approved", "none", "user_approved"),
        (COMMAND, "acceptForSession", "approved", "session_approval", "user_approved_for_session"),
        (
            COMMAND,
            {"acceptWithExecpolicyAmendment": {"execpolicy_amendment": ["ls"]}},
            "approved",
            "exec_policy_amendment",
            "user_approved",
        ),
        (
            COMMAND,
            {
                "applyNetworkPolicyAmendment": {
                    "network_policy_amendment": {"host": "h", "action": "allow"}
                }
            },
            "approved",
            "network_policy_amendment",
            "user_approved",
        ),
        (
            COMMAND,
            {
                "applyNetworkPolicyAmendment": {
                    "network_policy_amendment": {"host": "h", "action": "deny"}
                }
            },
            "denied",
            "network_policy_amendment",
            "user_denied",
        ),
        (COMMAND, "decline", "denied", "none", "user_denied"),
        (COMMAND, "cancel", "aborted", "none", "user_aborted"),
        (FILE_CHANGE, "accept", "approved", "none", "user_approved"),
        (
            FILE_CHANGE,
            "acceptForSession",
            "approved",
            "session_approval",
            "user_approved_for_session",
        ),
        (FILE_CHANGE, "decline", "denied", "none", "user_denied"),
        (FILE_CHANGE, "cancel", "aborted", "none", "user_aborted"),
    ],
)
def test_user_review_resolutions_per_decision(
    method: str, decision: Any, status: str, resolution: str, outcome: str
) -> None:
    h = Harness()
    h.apply(h.facts.server_request("r-1", method, IDS))
    review = h.params(h.facts.server_response("r-1", method, decision))
    assert (review["review_id"], review["status"], review["resolution"]) == (
        "user:r-1",
        status,
        resolution,
    )
    assert (
        h.j.item_review_summaries[("thread-1", "turn-1", "item-1")].final_approval_outcome
        == outcome
    )


@pytest.mark.parametrize(
    ("permissions", "scope", "status", "resolution"),
    [
        ({"network": None, "file_system": None}, "session", "denied", "none"),
        ({"network": {"enabled": True}, "file_system": None}, "turn", "approved", "none"),
        (
            {"network": None, "file_system": {"write": ["/tmp"]}},
            "session",
            "approved",
            "session_approval",
        ),
    ],
)
def test_permissions_reviews_resolve_by_the_effective_grant(
    permissions: dict[str, Any], scope: str, status: str, resolution: str
) -> None:
    h = Harness()
    h.apply(
        h.facts.server_request(
            3, PERMISSIONS, {**IDS, "permissions": {"network": {"enabled": True}}}
        )
    )
    review = h.params(h.facts.permissions_response(3, permissions, scope))
    assert (review["subject_kind"], review["status"], review["resolution"]) == (
        "permissions",
        status,
        resolution,
    )
    assert h.j.item_review_summaries == {}  # a permissions review sums up on no item


def test_a_close_without_an_open_review_emits_nothing() -> None:
    h = Harness()
    h.apply(h.facts.server_request(9, COMMAND, IDS))
    assert len(h.apply(h.facts.aborted(9))) == 1
    assert h.apply(h.facts.aborted(9)) == []  # a second abort
    assert h.apply(h.facts.server_response(9, COMMAND, "accept")) == []
    assert h.apply(h.facts.server_response(10, FILE_CHANGE, "accept")) == []
    assert h.last.drops == []


def test_requests_the_reducer_does_not_read_open_nothing() -> None:
    h = Harness()
    h.apply(h.facts.server_request(1, "item/tool/requestUserInput", {"questions": []}))
    h.apply(h.facts.server_request(2, COMMAND, {**IDS, "startedAtMs": -1}))
    assert h.j.pending_reviews == {}


def test_a_review_without_thread_context_is_dropped_but_still_sums_up() -> None:
    h = Harness()
    h.apply(h.facts.server_request(5, COMMAND, {**IDS, "threadId": "thread-x"}))
    assert h.apply(h.facts.server_response(5, COMMAND, "decline")) == []
    assert h.drops() == [
        (
            DropReason.MISSING_CONTEXT,
            {
                "site": "review",
                "missing_context": "thread_connection",
                "thread_id": "thread-x",
                "turn_id": "turn-1",
                "review_id": "user:5",
                "item_id": "item-1",
            },
        )
    ]
    assert h.j.item_review_summaries[("thread-x", "turn-1", "item-1")].user_review_count == 1


def test_a_negative_review_duration_is_null() -> None:
    h = Harness()
    h.apply(h.facts.server_request(5, COMMAND, IDS))
    assert h.params(h.facts.aborted(5, at_ms=999))["duration_ms"] is None


# -- guardian reviews (§5.4, §9) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "subject", "name", "trigger"),
    [
        (
            {"type": "command", "source": "shell", "command": "ls", "cwd": "/"},
            "command_execution",
            "command_execution",
            "initial",
        ),
        (
            {"type": "execve", "source": "shell", "program": "ls", "argv": [], "cwd": "/"},
            "command_execution",
            "command_execution",
            "execve_intercept",
        ),
        (
            {"type": "applyPatch", "cwd": "/", "files": []},
            "file_change",
            "apply_patch",
            "sandbox_denial",
        ),
        (
            {"type": "networkAccess", "target": "t", "host": "h", "protocol": "https", "port": 443},
            "network_access",
            "network_access",
            "network_policy_denial",
        ),
        (
            {"type": "mcpToolCall", "server": "s", "toolName": "lookup", "connectorId": None},
            "mcp_tool_call",
            "lookup",
            "initial",
        ),
        (
            {
                "type": "requestPermissions",
                "reason": None,
                "permissions": {"network": {"enabled": True}},
            },
            "permissions",
            "permissions",
            "network_policy_denial",
        ),
        (
            {"type": "requestPermissions", "reason": None, "permissions": {"fileSystem": {}}},
            "permissions",
            "permissions",
            "sandbox_denial",
        ),
        (
            {"type": "requestPermissions", "reason": None, "permissions": {}},
            "permissions",
            "permissions",
            "initial",
        ),
    ],
)
def test_guardian_review_subjects(
    action: dict[str, Any], subject: str, name: str, trigger: str
) -> None:
    h = Harness()
    review = h.params(h.facts.guardian_completed(action, "denied"))
    assert (review["subject_kind"], review["subject_name"], review["trigger"]) == (
        subject,
        name,
        trigger,
    )
    assert (review["reviewer"], review["status"], review["resolution"]) == (
        "guardian",
        "denied",
        "none",
    )
    assert (review["review_id"], review["item_id"], review["duration_ms"]) == (
        "guardian-1",
        "item-1",
        30,
    )


@pytest.mark.parametrize(
    ("status", "event_status", "outcome"),
    [
        ("approved", "approved", "guardian_approved"),
        ("denied", "denied", "guardian_denied"),
        ("timedOut", "timed_out", "guardian_aborted"),
        ("aborted", "aborted", "guardian_aborted"),
    ],
)
def test_guardian_statuses_and_the_item_outcome(
    status: str, event_status: str, outcome: str
) -> None:
    h = Harness()
    patch = {"type": "applyPatch", "cwd": "/", "files": []}
    assert h.params(h.facts.guardian_completed(patch, status))["status"] == event_status
    item = {"type": "fileChange", "id": "item-1", "changes": [], "status": "completed"}
    event = h.tool_event(item)
    assert (event["final_approval_outcome"], event["guardian_review_count"]) == (outcome, 1)
    # applyPatch asks for additional permissions (upstream, §9), not for the network.
    assert (event["requested_additional_permissions"], event["requested_network_access"]) == (
        True,
        False,
    )


def test_guardian_reviews_ignored() -> None:
    h = Harness()
    command = {"type": "command", "source": "shell", "command": "ls", "cwd": "/"}
    assert h.apply(h.facts.guardian_completed(command, "inProgress")) == []
    assert h.apply(h.facts.guardian_completed(command, started_at_ms=-1)) == []
    assert h.apply(h.facts.guardian_completed(command, completed_at_ms=-1)) == []
    assert h.apply(h.facts.notification("item/autoApprovalReview/started", {"x": 1})) == []
    assert h.last.drops == []
    assert h.j.item_review_summaries == {}


def test_a_guardian_review_without_a_target_item_sums_up_nothing() -> None:
    h = Harness()
    command = {"type": "command", "source": "shell", "command": "ls", "cwd": "/"}
    assert h.params(h.facts.guardian_completed(command, target_item_id=None))["item_id"] is None
    assert h.j.item_review_summaries == {}


# -- tool items (§5.3, §5.3.1, value rules) -------------------------------------------------


def test_the_command_execution_event() -> None:
    h = Harness()
    actions = [
        {"type": "read", "command": "cat a", "name": "a", "path": "/a"},
        {"type": "search", "command": "rg"},
    ]
    event = h.tool_event(
        command_item(
            pluginId="p@m", scriptPath="scripts/run.py", commandActions=actions, exitCode=3
        )
    )
    assert event["tool_name"] == "shell"
    assert (event["plugin_id"], event["script_path"], event["exit_code"]) == (
        "p@m",
        "scripts/run.py",
        3,
    )
    assert (event["command_execution_source"], event["command_total_action_count"]) == ("agent", 2)
    assert (event["command_read_action_count"], event["command_search_action_count"]) == (1, 1)
    assert (event["command_list_files_action_count"], event["command_unknown_action_count"]) == (
        0,
        0,
    )
    assert (event["duration_ms"], event["execution_duration_ms"]) == (45, 42)
    assert (event["terminal_status"], event["failure_kind"]) == ("completed", None)
    assert (event["final_approval_outcome"], event["review_count"]) == ("unknown", 0)
    assert list(event)[:4] == ["thread_id", "session_id", "turn_id", "item_id"]
    assert event["session_id"] == "session-thread-1"


@pytest.mark.parametrize(
    ("source", "tool_name", "wire_source"),
    [
        ("agent", "shell", "agent"),
        ("userShell", "user_shell", "userShell"),
        ("unifiedExecStartup", "unified_exec", "unifiedExecStartup"),
        ("unifiedExecInteraction", "unified_exec", "unifiedExecInteraction"),
        (None, "shell", "agent"),
    ],
)
def test_command_tool_names_by_source(source: str | None, tool_name: str, wire_source: str) -> None:
    h = Harness()
    item = command_item()
    if source is None:
        del item["source"]
    else:
        item["source"] = source
    event = h.tool_event(item)
    assert (event["tool_name"], event["command_execution_source"]) == (tool_name, wire_source)


@pytest.mark.parametrize(
    ("plugin_id", "script_path", "expected"),
    [
        ("p@m", "scripts/run.py", "scripts/run.py"),
        (None, "scripts/run.py", None),
        ("p@m", None, None),
        ("p@m", "/home/u/.codex/plugins/run.py", None),
        ("p@m", "", None),
        ("p@m", "scripts\\run.py", None),
        ("p@m", "scripts//run.py", None),
        ("p@m", "./run.py", None),
        ("p@m", "scripts/../run.py", None),
        ("p@m", "C:/run.py", None),
        ("p@m", "scripts/c:x", None),
        ("p@m", "1:/run.py", "1:/run.py"),
    ],
)
def test_script_path_only_for_a_plugin_and_only_when_safe(
    plugin_id: str | None, script_path: str | None, expected: str | None
) -> None:
    h = Harness()
    event = h.tool_event(command_item(pluginId=plugin_id, scriptPath=script_path))
    assert event["script_path"] == expected


@pytest.mark.parametrize(
    ("status", "terminal", "failure"),
    [
        ("completed", "completed", None),
        ("failed", "failed", "tool_error"),
        ("declined", "rejected", "approval_denied"),
    ],
)
def test_command_and_file_statuses(status: str, terminal: str, failure: str | None) -> None:
    h = Harness()
    command = h.tool_event(command_item(status=status, durationMs=-5))
    assert (
        command["terminal_status"],
        command["failure_kind"],
        command["execution_duration_ms"],
    ) == (terminal, failure, None)
    item = {"type": "fileChange", "id": "f-1", "changes": [], "status": status}
    change = h.tool_event(item)
    assert (change["terminal_status"], change["failure_kind"]) == (terminal, failure)


def test_an_item_in_progress_is_counted_without_an_event() -> None:
    h = Harness()
    h.apply(h.facts.item_started(command_item()))
    assert h.apply(h.facts.item_completed(command_item(status="inProgress"))) == []
    assert h.j.turns["turn-1"].tool_counts.shell_command == 1
    assert h.j.tool_items_started == {}


def test_the_file_change_event_counts_changes_by_kind() -> None:
    h = Harness()
    kinds = [
        {"type": "add"},
        {"type": "delete"},
        {"type": "update", "move_path": None},
        {"type": "update", "move_path": "b"},
        {"type": "add"},
    ]
    item = {
        "type": "fileChange",
        "id": "f",
        "changes": [{"path": "a", "kind": k, "diff": ""} for k in kinds],
        "status": "completed",
    }
    event = h.tool_event(item)
    assert (event["tool_name"], event["execution_duration_ms"]) == ("apply_patch", None)
    counts = [
        event[k]
        for k in (
            "file_change_count",
            "file_add_count",
            "file_update_count",
            "file_delete_count",
            "file_move_count",
        )
    ]
    assert counts == [5, 2, 1, 1, 1]


def test_the_mcp_tool_call_event() -> None:
    h = Harness()
    item = {
        "type": "mcpToolCall",
        "id": "m",
        "server": "docs",
        "tool": "search",
        "status": "failed",
        "arguments": {},
        "appContext": {"connectorId": "conn-1", "linkId": None},
        "pluginId": "p@m",
        "readOnlyHint": None,
        "result": None,
        "error": {"message": "boom"},
        "durationMs": 7,
    }
    event = h.tool_event(item)
    assert (event["tool_name"], event["mcp_server_name"], event["mcp_tool_name"]) == (
        "search",
        "docs",
        "search",
    )
    assert (event["mcp_error_present"], event["plugin_id"], event["connector_id"]) == (
        True,
        "p@m",
        "conn-1",
    )
    assert (event["terminal_status"], event["failure_kind"], event["execution_duration_ms"]) == (
        "failed",
        "tool_error",
        7,
    )
    item.update(appContext=None, error=None, status="completed", pluginId=None)
    event = h.tool_event(item)
    assert (event["mcp_error_present"], event["connector_id"], event["plugin_id"]) == (
        False,
        None,
        None,
    )


def test_the_dynamic_tool_call_event_counts_its_content() -> None:
    h = Harness()
    contents = [
        {"type": "inputText", "text": "ok"},
        {"type": "inputImage", "imageUrl": "u"},
        {"type": "inputAudio", "audioUrl": "a"},
        {"type": "inputText", "text": "2"},
    ]
    item = {
        "type": "dynamicToolCall",
        "id": "d",
        "namespace": None,
        "tool": "lookup",
        "arguments": {},
        "status": "completed",
        "contentItems": contents,
        "success": False,
        "durationMs": 3,
    }
    event = h.tool_event(item)
    assert (event["tool_name"], event["dynamic_tool_name"], event["success"]) == (
        "lookup",
        "lookup",
        False,
    )
    counts = [
        event[k]
        for k in (
            "output_content_item_count",
            "output_text_item_count",
            "output_image_item_count",
            "output_audio_item_count",
        )
    ]
    assert counts == [4, 2, 1, 1]
    item.update(contentItems=None, success=None)
    event = h.tool_event(item)
    assert [
        event[k] for k in ("output_content_item_count", "output_text_item_count", "success")
    ] == [None, None, None]


@pytest.mark.parametrize(
    ("tool", "name"),
    [
        ("spawnAgent", "spawn_agent"),
        ("sendInput", "send_input"),
        ("resumeAgent", "resume_agent"),
        ("wait", "wait_agent"),
        ("closeAgent", "close_agent"),
    ],
)
def test_the_collab_agent_tool_call_event(tool: str, name: str) -> None:
    h = Harness()
    states = {
        s: {"status": s, "message": None}
        for s in ("completed", "errored", "shutdown", "notFound", "running", "pendingInit")
    }
    item = {
        "type": "collabAgentToolCall",
        "id": "c",
        "tool": tool,
        "status": "completed",
        "senderThreadId": "thread-1",
        "receiverThreadIds": ["a", "b"],
        "prompt": None,
        "model": "gpt-5",
        "reasoningEffort": "high",
        "agentsStates": states,
    }
    event = h.tool_event(item)
    assert event["tool_name"] == name
    assert (
        event["sender_thread_id"],
        event["receiver_thread_count"],
        event["receiver_thread_ids"],
    ) == ("thread-1", 2, ["a", "b"])
    assert (event["requested_model"], event["requested_reasoning_effort"]) == ("gpt-5", "high")
    assert (
        event["agent_state_count"],
        event["completed_agent_count"],
        event["failed_agent_count"],
    ) == (6, 1, 3)
    counts = h.j.turns["turn-1"].tool_counts
    assert (counts.subagent_tool_call, counts.total) == (1, 1)


@pytest.mark.parametrize(
    ("query", "action", "kind", "present", "count"),
    [
        (
            "rust",
            {"type": "search", "query": "rust", "queries": ["a", "b", "c"]},
            "search",
            True,
            3,
        ),
        ("rust", {"type": "search", "query": "rust", "queries": None}, "search", True, 1),
        ("  ", {"type": "search", "query": None, "queries": None}, "search", False, None),
        ("x", {"type": "openPage", "url": "u"}, "open_page", True, None),
        ("x", {"type": "findInPage", "url": "u", "pattern": "p"}, "find_in_page", True, None),
        ("x", {"type": "other"}, "other", True, None),
        # Upstream reads an action type it does not know as Other (serde(other)).
        ("x", {"type": "imageQuery"}, "other", True, None),
        ("rust", None, None, True, 1),
        (" ", None, None, False, None),
        # Rust's trim() keeps U+001F (not Unicode White_Space); Python's strip() would not.
        ("\x1f", None, None, True, 1),
        ("\u3000\t", None, None, False, None),
    ],
)
def test_the_web_search_event(
    query: str, action: dict[str, Any] | None, kind: str | None, present: bool, count: int | None
) -> None:
    h = Harness()
    event = h.tool_event(
        {"type": "webSearch", "id": "w", "query": query, "action": action, "results": None}
    )
    assert (event["web_search_action"], event["query_present"], event["query_count"]) == (
        kind,
        present,
        count,
    )
    assert (event["tool_name"], event["terminal_status"], event["execution_duration_ms"]) == (
        "web_search",
        "completed",
        None,
    )


@pytest.mark.parametrize(
    ("status", "terminal", "failure"),
    [
        ("failed", "failed", "tool_error"),
        ("error", "failed", "tool_error"),
        ("completed", "completed", None),
        ("generating", "completed", None),
    ],
)
def test_the_image_generation_event(status: str, terminal: str, failure: str | None) -> None:
    h = Harness()
    item = {
        "type": "imageGeneration",
        "id": "g",
        "status": status,
        "revisedPrompt": "a cat",
        "result": "",
    }
    event = h.tool_event(item)
    assert (event["terminal_status"], event["failure_kind"], event["tool_name"]) == (
        terminal,
        failure,
        "image_generation",
    )
    assert (event["revised_prompt_present"], event["saved_path_present"]) == (True, False)


def test_a_negative_observed_duration_is_null() -> None:
    h = Harness()
    assert h.tool_event(command_item(), at_ms=999)["duration_ms"] is None


def test_tool_counts_need_the_turn_state() -> None:
    h = Harness()
    h.apply(h.facts.item_started(command_item(), turn_id="turn-x"))
    assert h.apply(h.facts.item_completed(command_item(), turn_id="turn-x")) == []
    assert h.drops() == [
        (
            DropReason.TOOL_COUNT_MISSING_TURN,
            {"thread_id": "thread-1", "turn_id": "turn-x", "item_id": "item-1"},
        )
    ]
    assert "turn-x" not in h.j.turns
    activity = {
        "type": "subAgentActivity",
        "id": "s",
        "kind": "started",
        "agentThreadId": "a",
        "agentPath": "p",
    }
    assert h.apply(h.facts.item_completed(activity, turn_id="turn-x")) == []
    assert h.drops() == [
        (DropReason.SUBAGENT_COUNT_MISSING_TURN, {"thread_id": "thread-1", "turn_id": "turn-x"})
    ]
    assert h.apply(h.facts.item_completed(activity)) == []
    assert h.last.drops == []
    counts = h.j.turns["turn-1"].tool_counts
    assert (counts.subagent_tool_call, counts.total) == (1, 1)


def test_every_tracked_item_counts_on_its_kind() -> None:
    h = Harness()
    items = [
        command_item("c"),
        {"type": "fileChange", "id": "f", "changes": [], "status": "completed"},
        {"type": "mcpToolCall", "id": "m", "server": "s", "tool": "t", "status": "completed"},
        {"type": "dynamicToolCall", "id": "d", "tool": "t", "status": "completed"},
        {"type": "webSearch", "id": "w", "query": "q"},
        {"type": "imageGeneration", "id": "g", "status": "completed", "result": ""},
        {"type": "agentMessage", "id": "a", "text": "not a tool"},
    ]
    for item in items:
        h.apply(h.facts.item_completed(item))
    counts = h.j.turns["turn-1"].tool_counts
    assert (
        counts.shell_command,
        counts.file_change,
        counts.mcp_tool_call,
        counts.dynamic_tool_call,
    ) == (1, 1, 1, 1)
    assert (counts.web_search, counts.image_generation, counts.total) == (1, 1, 6)


def test_an_item_without_its_start_is_counted_and_dropped() -> None:
    h = Harness()
    assert h.apply(h.facts.item_completed(command_item())) == []
    assert h.drops() == [
        (
            DropReason.TOOL_ITEM_MISSING_STARTED,
            {"thread_id": "thread-1", "turn_id": "turn-1", "item_id": "item-1"},
        )
    ]
    assert h.j.turns["turn-1"].tool_counts.shell_command == 1
    # A negative start is not recorded: its completion finds none.
    h.apply(h.facts.item_started(command_item("i-2"), at_ms=-1))
    h.apply(h.facts.item_completed(command_item("i-2")))
    assert [reason for reason, _ in h.drops()] == [DropReason.TOOL_ITEM_MISSING_STARTED]
    # Non-tool items are not recorded either.
    h.apply(h.facts.item_started({"type": "agentMessage", "id": "a", "text": ""}))
    assert h.j.tool_items_started == {}


def test_a_negative_completion_time_is_dropped_silently() -> None:
    h = Harness()
    h.apply(h.facts.item_started(command_item()))
    assert h.apply(h.facts.item_completed(command_item(), at_ms=-1)) == []
    assert h.last.drops == []
    assert h.j.tool_items_started == {}


def test_a_tool_item_without_thread_context_is_dropped() -> None:
    h = Harness()
    h.j.threads["thread-1"].metadata = None
    h.apply(h.facts.item_started(command_item()))
    assert h.apply(h.facts.item_completed(command_item())) == []
    assert h.drops() == [
        (
            DropReason.MISSING_CONTEXT,
            {
                "site": "tool item",
                "missing_context": "thread_metadata",
                "thread_id": "thread-1",
                "turn_id": "turn-1",
                "item_id": "item-1",
            },
        )
    ]


# -- code mode and held events (§5.3.2) -------------------------------------------------------

T = {"thread_id": "thread-1", "turn_id": "turn-1"}


def completed_call(
    call_id: str, cell_id: str | None = None, status: str = "completed", turn_id: str = "turn-1"
) -> dict[str, Any]:
    return {
        "thread_id": "thread-1",
        "turn_id": turn_id,
        "call_id": call_id,
        "cell_id": cell_id,
        "tool_name": "read_file",
        "started_at_ms": 2000,
        "completed_at_ms": 2050,
        "status": status,
    }


def test_a_code_mode_call_is_held_counted_and_released_with_its_turn() -> None:
    h = Harness()
    assert (
        h.apply(h.facts.code_mode("cell_started", **T, call_id="call-exec", cell_id="cell-1")) == []
    )
    assert h.apply(h.facts.sampling_response("resp-1", ["call-exec"])) == []
    assert (
        h.apply(h.facts.code_mode("child_started", **T, call_id="call-child", cell_id="cell-1"))
        == []
    )
    assert h.apply(h.facts.code_mode("completed", **completed_call("call-child"))) == []
    counts = h.j.turns["turn-1"].tool_counts
    assert (counts.dynamic_tool_call, counts.total) == (1, 1)
    h.apply(h.facts.code_mode("cell_closed", **T, cell_id="cell-1"))
    (event,) = h.release_turn("thread-1", "turn-1")
    params = event["event_params"]
    assert event["event_type"] == "codex_dynamic_tool_call_event"
    assert (params["item_id"], params["cell_id"], params["parent_call_id"]) == (
        "call-child",
        "cell-1",
        "call-exec",
    )
    assert (params["originating_response_id"], params["subsequent_response_id"]) == ("resp-1", None)
    assert (params["duration_ms"], params["execution_duration_ms"], params["success"]) == (
        50,
        50,
        True,
    )
    assert params["output_content_item_count"] is None
    assert h.j.tool_responses == {}
    assert h.j.code_mode_cells == {}


@pytest.mark.parametrize(
    ("status", "terminal", "failure", "success"),
    [
        ("completed", "completed", None, True),
        ("failed", "failed", "tool_error", False),
        ("interrupted", "interrupted", None, False),
    ],
)
def test_code_mode_call_statuses(
    status: str, terminal: str, failure: str | None, success: bool
) -> None:
    h = Harness()
    h.apply(h.facts.code_mode("completed", **completed_call("c", status=status)))
    (event,) = h.apply(h.facts.flush())
    params = event["event_params"]
    assert (params["terminal_status"], params["failure_kind"], params["success"]) == (
        terminal,
        failure,
        success,
    )
    assert (params["cell_id"], params["parent_call_id"], params["originating_response_id"]) == (
        None,
        None,
        None,
    )


def test_a_code_mode_call_creates_its_turn_state() -> None:
    h = Harness()
    h.apply(h.facts.code_mode("completed", **completed_call("c", turn_id="turn-new")))
    assert h.j.turns["turn-new"].tool_counts.dynamic_tool_call == 1


def test_code_mode_facts_need_thread_context() -> None:
    h = Harness()
    h.j.threads["thread-1"].connection_id = 99  # an unknown connection
    h.apply(h.facts.code_mode("cell_started", **T, call_id="c", cell_id="cell-1"))
    h.apply(h.facts.sampling_response("r", ["c"]))
    assert h.apply(h.facts.code_mode("completed", **completed_call("c"))) == []
    assert h.last.drops == []  # silently, even for completed
    assert h.j.code_mode_cells == {}
    assert h.j.tool_responses == {}
    assert h.j.turns["turn-1"].tool_counts.total == 0


def test_a_child_of_an_unknown_cell_is_not_recorded() -> None:
    h = Harness()
    h.apply(h.facts.code_mode("child_started", **T, call_id="c", cell_id="cell-x"))
    assert h.j.tool_responses == {}


def test_a_later_response_releases_held_events_it_did_not_originate() -> None:
    h = Harness()
    h.apply(h.facts.code_mode("cell_started", **T, call_id="call-exec", cell_id="cell-1"))
    h.apply(h.facts.code_mode("child_started", **T, call_id="call-child", cell_id="cell-1"))
    h.apply(h.facts.code_mode("completed", **completed_call("call-child")))
    held = h.j.tool_responses[("thread-1", "turn-1")].held[0].event_params
    assert (held.cell_id, held.parent_call_id, held.originating_response_id) == (
        "cell-1",
        "call-exec",
        None,
    )
    # The response that made the exec call: the held event now originates from it, stays.
    assert h.apply(h.facts.sampling_response("resp-1", ["call-exec"])) == []
    assert h.j.code_mode_cells[("thread-1", "cell-1")].originating_response_id == "resp-1"
    # A later response: the event is released now, naming it.
    (event,) = h.apply(h.facts.sampling_response("resp-2", ["call-next"]))
    params = event["event_params"]
    assert (params["originating_response_id"], params["subsequent_response_id"]) == (
        "resp-1",
        "resp-2",
    )
    assert h.release_turn("thread-1", "turn-1") == []


def test_a_correlated_tool_item_is_held_and_an_uncorrelated_one_is_not() -> None:
    h = Harness()
    h.apply(h.facts.code_mode("cell_started", **T, call_id="call-exec", cell_id="cell-1"))
    h.apply(h.facts.code_mode("child_started", **T, call_id="item-1", cell_id="cell-1"))
    h.apply(h.facts.item_started(command_item("item-1")))
    assert h.apply(h.facts.item_completed(command_item("item-1"))) == []
    assert len(h.tool_event(command_item("item-2"))) > 0  # emitted at once
    (event,) = h.release_turn("thread-1", "turn-1")
    assert event["event_type"] == "codex_command_execution_event"
    assert (event["event_params"]["cell_id"], event["event_params"]["parent_call_id"]) == (
        "cell-1",
        "call-exec",
    )


def test_an_item_that_is_the_cells_own_call_has_no_parent() -> None:
    h = Harness()
    h.apply(h.facts.code_mode("cell_started", **T, call_id="item-1", cell_id="cell-1"))
    h.apply(h.facts.code_mode("completed", **completed_call("item-1", cell_id="cell-1")))
    (event,) = h.release_turn("thread-1", "turn-1")
    assert (event["event_params"]["cell_id"], event["event_params"]["parent_call_id"]) == (
        "cell-1",
        None,
    )


def test_release_order_and_scope() -> None:
    h = Harness()
    h.seed_turn("turn-2", "thread-1")
    for call, turn in (("a", "turn-1"), ("b", "turn-2"), ("c", "turn-1"), ("d", "turn-1")):
        h.apply(h.facts.code_mode("completed", **completed_call(call, turn_id=turn)))
    assert [e["event_params"]["item_id"] for e in h.release_turn("thread-1", "turn-1")] == [
        "a",
        "c",
        "d",
    ]
    assert [e["event_params"]["item_id"] for e in h.release_turn("thread-1", "turn-2")] == ["b"]


def test_turn_release_drops_only_the_cells_closed_in_that_turn() -> None:
    h = Harness()
    h.apply(h.facts.code_mode("cell_started", **T, call_id="x", cell_id="closed"))
    h.apply(h.facts.code_mode("cell_started", **T, call_id="y", cell_id="open"))
    h.apply(h.facts.code_mode("cell_closed", **T, cell_id="closed"))
    h.release_turn("thread-1", "turn-1")
    assert list(h.j.code_mode_cells) == [("thread-1", "open")]


def test_thread_closed_releases_every_turn_of_the_thread() -> None:
    h = Harness()
    h.seed_thread("thread-2")
    h.apply(h.facts.code_mode("cell_started", **T, call_id="x", cell_id="cell-1"))
    h.apply(h.facts.code_mode("completed", **completed_call("a")))
    h.apply(h.facts.code_mode("completed", **completed_call("b", turn_id="turn-2")))
    other = {**completed_call("z"), "thread_id": "thread-2"}
    h.apply(h.facts.code_mode("completed", **other))
    events = h.apply(h.facts.notification("thread/closed", {"threadId": "thread-1"}))
    assert [e["event_params"]["item_id"] for e in events] == ["a", "b"]
    assert list(h.j.tool_responses) == [("thread-2", "turn-1")]
    assert h.j.code_mode_cells == {}


def test_flush_releases_everything_and_keeps_the_correlation() -> None:
    h = Harness()
    h.seed_thread("thread-2")
    h.apply(h.facts.sampling_response("r", ["a"]))
    h.apply(h.facts.code_mode("completed", **completed_call("a")))
    h.apply(h.facts.code_mode("completed", **{**completed_call("z"), "thread_id": "thread-2"}))
    events = h.apply(h.facts.flush())
    assert [e["event_params"]["item_id"] for e in events] == ["a", "z"]
    assert events[0]["event_params"]["originating_response_id"] == "r"
    assert h.j.tool_responses[("thread-1", "turn-1")].response_ids == {"a": "r"}
    assert h.apply(h.facts.flush()) == []


def test_a_turn_holds_at_most_256_events_and_releases_the_oldest_past_it() -> None:
    h = Harness()
    for n in range(256):
        assert h.apply(h.facts.code_mode("completed", **completed_call(f"c{n}"))) == []
    (oldest,) = h.apply(h.facts.code_mode("completed", **completed_call("c256")))
    assert oldest["event_params"]["item_id"] == "c0"
    released = h.release_turn("thread-1", "turn-1")
    assert [e["event_params"]["item_id"] for e in released] == [f"c{n}" for n in range(1, 257)]


def test_the_instance_limit_on_held_events_releases_early_too() -> None:
    h = Harness(limits=StateLimits(held_tool_events=2))
    h.seed_turn("turn-2", "thread-1")
    h.apply(h.facts.code_mode("completed", **completed_call("a")))
    h.apply(h.facts.code_mode("completed", **completed_call("b", turn_id="turn-2")))
    (event,) = h.apply(h.facts.code_mode("completed", **completed_call("c")))
    assert event["event_params"]["item_id"] == "a"  # the oldest of its own turn
    # A turn holding nothing releases its own event at once.
    h.seed_turn("turn-3", "thread-1")
    (event,) = h.apply(h.facts.code_mode("completed", **completed_call("d", turn_id="turn-3")))
    assert event["event_params"]["item_id"] == "d"
    assert h.last.drops == []


def test_a_thread_holds_at_most_256_cells() -> None:
    h = Harness()
    for n in range(257):
        h.apply(h.facts.code_mode("cell_started", **T, call_id=f"c{n}", cell_id=f"cell-{n}"))
    assert len(h.j.code_mode_cells) == 256
    h.apply(h.facts.code_mode("cell_started", **T, call_id="again", cell_id="cell-0"))
    assert h.j.code_mode_cells[("thread-1", "cell-0")].parent_call_id == "again"  # restarted


def test_response_ids_and_child_cells_hold_at_most_256_calls() -> None:
    h = Harness()
    ids = [f"c{n}" for n in range(300)]
    h.apply(h.facts.sampling_response("r", ids))
    assert len(h.j.tool_responses[("thread-1", "turn-1")].response_ids) == 256
    h.apply(h.facts.code_mode("cell_started", **T, call_id="x", cell_id="cell"))
    for n in range(257):
        h.apply(h.facts.code_mode("child_started", **T, call_id=f"k{n}", cell_id="cell"))
    assert len(h.j.tool_responses[("thread-1", "turn-1")].child_cells) == 256


# -- state: bytes, expiry, limits ----------------------------------------------------------------


def test_the_tool_tables_survive_the_state_bytes() -> None:
    h = Harness()
    h.apply(h.facts.server_request(41, COMMAND, IDS))
    h.apply(h.facts.server_request("r-2", FILE_CHANGE, IDS))
    h.apply(h.facts.guardian_completed({"type": "applyPatch", "cwd": "/", "files": []}))
    h.apply(h.facts.item_started(command_item("item-9")))
    h.apply(h.facts.code_mode("cell_started", **T, call_id="call-exec", cell_id="cell-1"))
    h.apply(h.facts.sampling_response("resp-1", ["call-exec"]))
    h.apply(h.facts.code_mode("child_started", **T, call_id="call-child", cell_id="cell-1"))
    h.apply(h.facts.code_mode("completed", **completed_call("call-child")))
    h.apply(h.facts.code_mode("completed", **completed_call("other", status="failed")))
    data = h.state.to_bytes()
    restored = InstanceState.from_bytes(data)
    assert restored.to_bytes() == data
    assert restored.j is not None
    sizes = restored.j.sizes()
    assert {
        k: sizes[k]
        for k in (
            "tool_items_started",
            "pending_reviews",
            "item_review_summaries",
            "tool_responses",
            "code_mode_cells",
        )
    } == {
        "tool_items_started": 1,
        "pending_reviews": 2,
        "item_review_summaries": 1,
        "tool_responses": 1,
        "code_mode_cells": 1,
    }
    assert list(restored.j.pending_reviews) == [41, "r-2"]  # an integer id stays one
    flush = h.facts.flush()
    before = [encode_event(e) for e in h.reducer.apply(h.state, flush).events]
    after = [encode_event(e) for e in Reducer().apply(restored, flush).events]
    assert len(before) == 2
    assert after == before


def test_the_tool_tables_expire_with_event_time() -> None:
    h = Harness(horizon_ms=60_000)
    h.apply(h.facts.server_request(41, COMMAND, IDS))
    h.apply(h.facts.item_started(command_item()))
    h.apply(h.facts.code_mode("cell_started", **T, call_id="x", cell_id="cell-1"))
    h.apply(h.facts.code_mode("completed", **completed_call("a")))
    h.apply(
        h.facts.guardian_completed(
            {"type": "command", "source": "shell", "command": "ls", "cwd": "/"}
        )
    )
    assert not h.j.is_empty
    h.apply(h.facts.fact("flush", {}, step_ms=10 * 60_000))
    assert h.j.sizes() == dict.fromkeys(h.j.sizes(), 0)
    # The held code-mode event went with its turn's record: counted, not silent.
    assert h.reducer.stats.expired["held_tool_events"] == 1


def test_full_tool_tables_refuse_new_entries() -> None:
    limits = StateLimits(
        pending_reviews=1,
        tool_items_started=1,
        code_mode_cells=1,
        tool_responses=1,
        item_review_summaries=1,
    )
    h = Harness(limits=limits)
    h.apply(h.facts.server_request(1, COMMAND, IDS))
    h.apply(h.facts.server_request(2, COMMAND, IDS))
    assert h.drops() == [(DropReason.INSTANCE_STATE_FULL, {"table": "pending_reviews", "limit": 1})]
    h.apply(h.facts.item_started(command_item("a")))
    h.apply(h.facts.item_started(command_item("b")))
    assert h.drops() == [
        (DropReason.INSTANCE_STATE_FULL, {"table": "tool_items_started", "limit": 1})
    ]
    h.apply(h.facts.code_mode("cell_started", **T, call_id="x", cell_id="cell-1"))
    h.apply(h.facts.code_mode("cell_started", **T, call_id="y", cell_id="cell-2"))
    assert h.drops() == [(DropReason.INSTANCE_STATE_FULL, {"table": "code_mode_cells", "limit": 1})]
    h.apply(h.facts.sampling_response("r", ["x"]))
    h.apply(h.facts.sampling_response("r", ["x"], turn_id="turn-2"))
    assert h.drops() == [(DropReason.INSTANCE_STATE_FULL, {"table": "tool_responses", "limit": 1})]
    # A held event with no room for its turn is released at once rather than lost.
    (event,) = h.apply(h.facts.code_mode("completed", **completed_call("c", turn_id="turn-2")))
    assert event["event_params"]["item_id"] == "c"
    # A review whose item summary has no room changes nothing, and stays open.
    h.apply(h.facts.aborted(1))  # sums up on item-1
    h.apply(h.facts.server_request(1, COMMAND, {**IDS, "itemId": "item-2"}))
    assert h.apply(h.facts.aborted(1)) == []
    assert h.drops() == [
        (DropReason.INSTANCE_STATE_FULL, {"table": "item_review_summaries", "limit": 1})
    ]
    assert 1 in h.j.pending_reviews


def test_exec_wait_and_child_events_share_cell_and_response_ids() -> None:
    """Upstream ``code_mode_exec_wait_and_child_events_share_cell_and_response_ids``: an
    exec cell, its child tool item and a later turn's wait call on the same cell."""
    h = Harness()
    h.seed_turn("turn-2", "thread-1")

    def response(turn_id: str, response_id: str, calls: list[str]) -> FactEnvelope:
        return h.facts.sampling_response(response_id, calls, turn_id=turn_id)

    def completed(turn_id: str, call_id: str) -> FactEnvelope:
        return h.facts.code_mode("completed", **completed_call(call_id, "cell-1", turn_id=turn_id))

    events = h.apply(response("turn-1", "resp-a", ["exec-1"]))
    events += h.apply(h.facts.code_mode("cell_started", **T, call_id="exec-1", cell_id="cell-1"))
    events += h.apply(h.facts.code_mode("child_started", **T, call_id="child-1", cell_id="cell-1"))
    events += h.apply(completed("turn-1", "exec-1"))
    events += h.apply(h.facts.item_started(command_item("child-1")))
    events += h.apply(h.facts.item_completed(command_item("child-1")))
    assert events == []
    for fact in (
        response("turn-1", "resp-b", []),
        response("turn-2", "resp-c", ["wait-1"]),
        completed("turn-2", "wait-1"),
        response("turn-2", "resp-d", []),
    ):
        events += h.apply(fact)
    keys = (
        "item_id",
        "cell_id",
        "parent_call_id",
        "originating_response_id",
        "subsequent_response_id",
    )
    assert [tuple(e["event_params"][k] for k in keys) for e in events] == [
        ("exec-1", "cell-1", None, "resp-a", "resp-b"),
        ("child-1", "cell-1", "exec-1", "resp-a", "resp-b"),
        ("wait-1", "cell-1", "exec-1", "resp-c", "resp-d"),
    ]


def test_item_review_summaries_do_not_cross_threads_with_reused_item_ids() -> None:
    h = Harness()
    h.seed_thread("thread-2")
    h.apply(h.facts.server_request(72, COMMAND, IDS))
    h.apply(h.facts.server_response(72, COMMAND, "accept"))
    h.apply(h.facts.item_started(command_item("item-1"), thread_id="thread-2"))
    event = h.params(h.facts.item_completed(command_item("item-1"), thread_id="thread-2"))
    assert (event["thread_id"], event["review_count"], event["final_approval_outcome"]) == (
        "thread-2",
        0,
        "unknown",
    )
