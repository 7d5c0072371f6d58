"""Profile J sessions (profile-j.md §5.1-§5.3, §5.5-§5.7): the rules no vector shows.

Built from the page's rules and upstream's ``analytics_client_tests.rs`` (reference
commit): each test feeds wire-form ``2026-08`` facts through the codec and the reducer.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from codex_analytics.contract import DecodeError, fact_from_json
from streams.reducer import DropReason, InstanceState, state_packing
from streams.reducer.profile_j.accepted_lines import count_accepted_lines
from streams.reducer.state import StateLimits
from tests.factories import JInstance

from .j_tool_facts import resolved_config_payload
from .reducer_harness import ReducerHarness as Harness

RUNTIME = {
    "codex_rs_version": "0.1.0",
    "runtime_os": "macos",
    "runtime_os_version": "15.3.1",
    "runtime_arch": "aarch64",
}
PARENT = "44444444-4444-4444-4444-444444444444"


class JFacts(JInstance):
    """One ``2026-08`` producer: the session facts, numbered, one second apart."""

    def initialize(self, conn: int = 7, product_client_id: str = "codex-tui") -> dict[str, Any]:
        params = {"clientInfo": {"name": "codex-tui", "version": "1.0.0"}, "capabilities": None}
        payload = {
            "params": params,
            "product_client_id": product_client_id,
            "runtime": RUNTIME,
            "rpc_transport": "stdio",
        }
        return self.fact("initialize", payload, conn=conn)

    def answer(
        self, conn: int, rid: int, method: str, result: dict[str, Any], originator: Any = None
    ) -> dict[str, Any]:
        """A ``client_response`` whose ``thread_originator`` may be ``"absent"``."""
        payload = {"request_id": rid, "method": method, "result": result}
        if originator != "absent":
            payload["thread_originator"] = originator
        return self.fact("client_response", payload, conn=conn)

    def thread(
        self,
        conn: int = 7,
        thread_id: str = "thread-1",
        *,
        method: str = "thread/start",
        originator: Any = None,
        **fields: Any,
    ) -> dict[str, Any]:
        thread = {
            "id": thread_id,
            "sessionId": f"session-{thread_id}",
            "ephemeral": False,
            "createdAt": 1,
            "source": "exec",
            "threadSource": "user",
            **fields,
        }
        result = {"thread": thread, "model": "gpt-5"}
        return self.answer(conn, 100, method, result, originator)

    def turn_start(
        self, conn: int = 7, rid: int = 1, thread_id: str = "thread-1"
    ) -> dict[str, Any]:
        params = {"threadId": thread_id, "input": [{"type": "image", "url": "u"}]}
        payload = {"request_id": rid, "method": "turn/start", "params": params}
        return self.fact("client_request", payload, conn=conn)

    def turn_started_response(
        self, conn: int = 7, rid: int = 1, turn_id: str = "turn-1"
    ) -> dict[str, Any]:
        return self.answer(conn, rid, "turn/start", {"turn": {"id": turn_id}})

    def steer(self, conn: int = 7, rid: int = 2, thread_id: str = "thread-1") -> dict[str, Any]:
        params = {"threadId": thread_id, "expectedTurnId": "turn-1", "input": []}
        payload = {"request_id": rid, "method": "turn/steer", "params": params}
        return self.fact("client_request", payload, conn=conn)

    def interrupt(
        self, rid: int, at_ms: int, conn: int = 7, turn_id: str = "turn-1"
    ) -> dict[str, Any]:
        return self.turn_interrupt_request(conn, rid, turn_id, requested_at_ms=at_ms)

    def error(self, rid: int, conn: int = 7, error_type: Any = None) -> dict[str, Any]:
        payload = {
            "request_id": rid,
            "error": {"code": -32600, "message": "rejected"},
            "error_type": error_type,
        }
        return self.fact("error_response", payload, conn=conn)

    def config(
        self, turn_id: str = "turn-1", thread_id: str = "thread-1", **kw: Any
    ) -> dict[str, Any]:
        return self.fact("turn_resolved_config", resolved_config_payload(turn_id, thread_id, **kw))

    def usage(self, turn_id: str = "turn-1", thread_id: str = "thread-1") -> dict[str, Any]:
        usage = {
            "input_tokens": 10,
            "cached_input_tokens": 2,
            "output_tokens": 5,
            "reasoning_output_tokens": 1,
            "total_tokens": 15,
        }
        payload = {"turn_id": turn_id, "thread_id": thread_id, "token_usage": usage}
        return self.fact("turn_token_usage", payload)

    def codex_error(self, turn_id: str = "turn-1", thread_id: str = "thread-1") -> dict[str, Any]:
        return self.turn_codex_error(turn_id, thread_id, "tool_collision", 409)

    def image(self, item_id: str, turn_id: str = "turn-1") -> dict[str, Any]:
        metadata = {
            "message_role": None,
            "item_id": item_id,
            "effective_detail": "high",
            "source_width": 800,
            "source_height": 600,
            "prepared_width": 400,
            "prepared_height": 300,
        }
        return self.fact("image_preparation", {"turn_id": turn_id, "metadata": metadata})

    def started(self, turn_id: str = "turn-1", started_at: int | None = 455) -> dict[str, Any]:
        turn = {"id": turn_id, "startedAt": started_at}
        return self.notification("turn/started", {"threadId": "thread-1", "turn": turn})

    def completed(self, turn_id: str = "turn-1", thread_id: str = "thread-1") -> dict[str, Any]:
        turn = {"id": turn_id, "status": "completed", "error": None, "completedAt": 456}
        return self.notification("turn/completed", {"threadId": thread_id, "turn": turn})

    def diff(self, diff: str, turn_id: str = "turn-1") -> dict[str, Any]:
        return self.turn_diff_updated("thread-1", turn_id, diff)

    def subagent(
        self, thread_id: str, parent: str | None, product_client_id: str = "sub-client"
    ) -> dict[str, Any]:
        payload = {
            "session_id": "session-root",
            "thread_id": thread_id,
            "parent_thread_id": parent,
            "forked_from_thread_id": None,
            "product_client_id": product_client_id,
            "client_name": "sub",
            "client_version": "2.0.0",
            "model": "gpt-5",
            "ephemeral": False,
            "subagent_source": "review",
            "created_at": 5,
        }
        return self.fact("subagent_thread_started", payload)


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def f() -> JFacts:
    return JFacts()


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events]


def turn_facts(
    f: JFacts, turn_id: str = "turn-1", thread_id: str = "thread-1"
) -> list[dict[str, Any]]:
    """A turn started by a request on connection 7, complete but for its profile."""
    return [
        f.turn_start(7, 1, thread_id),
        f.turn_started_response(7, 1, turn_id),
        f.config(turn_id, thread_id),
        f.completed(turn_id, thread_id),
    ]


# -- turn emission ----------------------------------------------------------------------------


def test_the_turn_event_waits_for_the_turn_profile(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(), f.thread())
    assert h.feed(*turn_facts(f)) == []
    (event,) = h.feed(f.turn_profile())
    params = event["event_params"]
    assert event["event_type"] == "codex_turn_event"
    assert params["sampling_request_count"] == 2
    assert params["input_tokens"] is None
    assert params["cache_write_input_tokens"] is None
    assert "turn-1" not in h.j.turns  # forgotten once emitted


def test_codex_error_and_image_preparations_wait_for_the_turn_event(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(), f.thread(), *turn_facts(f)[:3])
    assert h.feed(f.codex_error(), f.image("img-b"), f.image("img-a"), f.usage()) == []
    (event,) = h.feed(f.completed(), f.turn_profile())
    params = event["event_params"]
    assert (params["codex_error_kind"], params["codex_error_http_status_code"]) == (
        "tool_collision",
        409,
    )
    assert [p["item_id"] for p in params["image_preparations"]] == ["img-b", "img-a"]
    assert params["cache_write_input_tokens"] == 0  # absent in the fact: 0


def test_a_codex_error_sets_the_turn_thread_only_when_unset(h: Harness, f: JFacts) -> None:
    h.feed(f.config("turn-1", "thread-1"), f.codex_error("turn-1", "thread-other"))
    assert h.j.turns["turn-1"].thread_id == "thread-1"
    h.feed(f.codex_error("turn-2", "thread-2"))
    assert h.j.turns["turn-2"].thread_id == "thread-2"


def test_the_turn_event_reads_the_tool_counts_of_the_turn(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(), f.thread(), *turn_facts(f)[:3])
    counts = h.j.turns["turn-1"].tool_counts
    counts.total, counts.shell_command, counts.web_search = 3, 2, 1
    (event,) = h.feed(f.turn_profile(), f.completed())
    params = event["event_params"]
    assert (params["total_tool_call_count"], params["shell_command_count"]) == (3, 2)
    assert (params["web_search_count"], params["file_change_count"]) == (1, 0)


def test_a_negative_turn_start_time_is_null(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(), f.thread(), f.started(started_at=-5))
    (event,) = h.feed(*turn_facts(f), f.turn_profile())
    assert event["event_params"]["started_at"] is None


def test_guardian_subagent_reviewer_is_reported_as_auto_review(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(), f.thread(), *turn_facts(f)[:2])
    h.feed(f.config(approvals_reviewer="guardian_subagent"))
    (event,) = h.feed(f.turn_profile(), f.completed())
    assert event["event_params"]["approvals_reviewer"] == "auto_review"


@pytest.mark.parametrize(
    ("policy", "shown"),
    [
        ("untrusted", "untrusted"),
        ("on-request", "on-request"),
        ("on-failure", "on-request"),  # upstream's serde alias of OnRequest
        ("never", "never"),
        (
            {"granular": {"sandbox_approval": True, "rules": False, "mcp_elicitations": True}},
            "granular",
        ),
    ],
)
def test_the_approval_policy_is_upstreams_display_name(
    h: Harness, f: JFacts, policy: Any, shown: str
) -> None:
    h.feed(f.initialize(), f.thread(), *turn_facts(f)[:2])
    h.feed(f.config(approval_policy=policy))
    (event,) = h.feed(f.turn_profile(), f.completed())
    assert event["event_params"]["approval_policy"] == shown


@pytest.mark.parametrize("policy", ["on-whim", {"granular": True}, {"other": {}}, None])
def test_an_unknown_approval_policy_is_refused_at_its_field(f: JFacts, policy: Any) -> None:
    with pytest.raises(DecodeError) as caught:
        fact_from_json(f.config(approval_policy=policy))
    assert caught.value.path == "payload.approval_policy"


# -- the turn's connection and the three drop warnings (§5.7) ----------------------------------


def missing(h: Harness) -> list[tuple[str | None, str | None]]:
    return [
        (ids.get("site"), ids.get("missing_context"))
        for reason, ids in h.drops()
        if reason is DropReason.MISSING_CONTEXT
    ]


def test_a_turn_without_a_start_response_uses_its_threads_connection(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(7, "conn-client"), f.thread(7))
    (event,) = h.feed(f.config(), f.turn_profile(), f.completed())
    assert event["event_params"]["app_server_client"]["product_client_id"] == "conn-client"


def test_turn_without_any_connection_warns_and_keeps_its_state(h: Harness, f: JFacts) -> None:
    assert h.feed(f.config(), f.turn_profile(), f.completed()) == []
    assert missing(h) == [("turn", "thread_connection")]
    assert "turn-1" in h.j.turns
    h.feed(f.initialize(), f.thread())
    (event,) = h.feed(f.usage())  # the next turn fact finds the context: emitted then
    assert event["event_params"]["input_tokens"] == 10


def test_turn_on_an_unknown_connection_warns_with_its_id(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(7), f.thread(7), f.turn_start(9, 1), f.turn_started_response(9, 1))
    assert h.feed(f.config(), f.turn_profile(), f.completed()) == []
    ((reason, ids),) = h.drops()
    assert reason is DropReason.MISSING_CONTEXT
    assert (ids["site"], ids["missing_context"], ids["connection_id"]) == ("turn", "connection", 9)
    assert "turn-1" in h.j.turns


def test_turn_without_thread_metadata_warns(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(7), *turn_facts(f))
    assert h.feed(f.turn_profile()) == []
    assert missing(h) == [("turn", "thread_metadata")]
    assert DropReason.MISSING_CONTEXT.logged


# -- interrupts --------------------------------------------------------------------------------


def test_a_rejected_interrupt_is_discarded(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(), f.thread(), f.interrupt(4, 111), f.error(4))
    assert (7, 4) not in h.j.requests
    (event,) = h.feed(*turn_facts(f), f.turn_profile())
    assert event["event_params"]["explicit_client_interrupt_requested_at_ms"] is None


def test_an_interrupt_response_for_another_request_kind_discards_it(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(), f.thread(), f.turn_start(7, 1))
    assert h.feed(f.turn_interrupt_response(7, 1)) == []
    assert (7, 1) not in h.j.requests  # removed whatever its kind, as upstream
    h.feed(f.turn_started_response(7, 1))
    reasons = [reason for reason, _ in h.drops()]
    assert reasons == [DropReason.RESPONSE_WITHOUT_PENDING_REQUEST] * 2
    assert "turn-1" not in h.j.turns


def test_an_interrupt_answered_after_the_turn_event_opens_a_new_turn_state(
    h: Harness, f: JFacts
) -> None:
    h.feed(f.initialize(), f.thread(), f.interrupt(4, 900), *turn_facts(f))
    (event,) = h.feed(f.turn_profile())
    assert event["event_params"]["explicit_client_interrupt_requested_at_ms"] is None
    assert h.feed(f.turn_interrupt_response(7, 4)) == []
    assert h.j.turns["turn-1"].explicit_client_interrupt_requested_at_ms == 900


def test_an_error_for_a_pending_turn_start_discards_it(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(), f.thread(), f.turn_start(7, 1), f.error(1))
    assert h.feed(f.turn_started_response(7, 1)) == []
    assert "turn-1" not in h.j.turns


# -- steer (§5.6) ------------------------------------------------------------------------------


def test_an_accepted_steer_carries_session_id_and_counts_on_the_turn(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(), f.thread(originator="work-app"), *turn_facts(f)[:2])
    (steer,) = h.feed(f.steer(), f.turn_steer_response())
    params = steer["event_params"]
    assert steer["event_type"] == "codex_turn_steer_event"
    assert params["session_id"] == "session-thread-1"
    assert params["app_server_client"]["product_client_id"] == "work-app"
    assert (params["result"], params["accepted_turn_id"]) == ("accepted", "turn-1")
    assert params["created_at"] == (f.now_ms - 1000) // 1000  # the request fact's second
    assert h.j.turns["turn-1"].steer_count == 1


def test_a_rejected_steer_maps_its_error_type(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(), f.thread())
    (steer,) = h.feed(f.steer(), f.error(2, error_type={"input": "too_large"}))
    assert (steer["event_params"]["result"], steer["event_params"]["rejection_reason"]) == (
        "rejected",
        "input_too_large",
    )


def test_a_steer_without_thread_metadata_warns(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize())
    assert h.feed(f.steer(), f.turn_steer_response()) == []
    assert missing(h) == [("turn steer", "thread_metadata")]


def test_a_steer_on_an_unknown_connection_is_dropped_silently(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(7), f.thread(7))
    assert h.feed(f.steer(conn=9), f.turn_steer_response(conn=9)) == []
    ((reason, _),) = h.drops()
    assert reason is DropReason.STEER_UNKNOWN_CONNECTION
    assert not reason.logged  # upstream warns about none (§9)


# -- threads, originators and sub-agents ----------------------------------------------------------


def test_thread_originator_is_per_thread_and_a_null_keeps_it(h: Harness, f: JFacts) -> None:
    events = h.feed(
        f.initialize(7, "shared-client"),
        f.thread(7, "thread-work", originator="work-app"),
        f.thread(7, "thread-default", originator="absent"),
        f.thread(7, "thread-work", method="thread/resume", originator=None),
    )
    clients = [e["event_params"]["app_server_client"]["product_client_id"] for e in events]
    assert clients == ["work-app", "shared-client", "work-app"]
    assert events[2]["event_params"]["initialization_mode"] == "resumed"


def test_a_lifecycle_response_on_an_unknown_connection_stores_nothing(
    h: Harness, f: JFacts
) -> None:
    assert h.feed(f.thread(7)) == []
    assert not h.j.threads
    ((reason, _),) = h.drops()
    assert reason is DropReason.THREAD_RESPONSE_UNKNOWN_CONNECTION


def test_thread_lineage_comes_from_the_thread_fields_only(h: Harness, f: JFacts) -> None:
    sub = {"subAgent": {"thread_spawn": {"parent_thread_id": PARENT, "depth": 1}}}
    (event,) = h.feed(
        f.initialize(),
        f.thread(source=sub, threadSource="my_feature", createdAt=-3, forkedFromId="t-0"),
    )
    params = event["event_params"]
    assert (params["thread_source"], params["subagent_source"]) == ("my_feature", "thread_spawn")
    assert params["parent_thread_id"] is None  # no fallback to the thread_spawn parent
    assert (params["forked_from_thread_id"], params["created_at"]) == ("t-0", 0)


def test_a_subagent_thread_inherits_its_parents_connection(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(7, "parent-client"), f.thread(7, PARENT))
    (started,) = h.feed(f.subagent("thread-sub", PARENT, "sub-client"))
    assert started["event_params"]["app_server_client"]["rpc_transport"] == "in_process"
    thread = h.j.threads["thread-sub"]
    assert (thread.connection_id, thread.originator) == (7, "sub-client")
    (turn,) = h.feed(*turn_facts(f, "turn-sub", "thread-sub")[2:], f.turn_profile("turn-sub"))
    params = turn["event_params"]
    assert params["app_server_client"]["product_client_id"] == "sub-client"
    assert params["app_server_client"]["client_name"] == "codex-tui"  # the connection's
    assert (params["session_id"], params["thread_source"]) == ("session-root", "subagent")
    assert (params["subagent_source"], params["parent_thread_id"]) == ("review", PARENT)


def test_a_subagent_start_keeps_what_the_thread_already_has(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(7, "conn-client"), f.thread(7, "thread-1", originator="app-1"))
    (event,) = h.feed(f.subagent("thread-1", None, "sub-client"))
    assert event["event_params"]["session_id"] == "session-root"  # the event: from the fact
    thread = h.j.threads["thread-1"]
    assert (thread.connection_id, thread.originator) == (7, "app-1")
    assert thread.metadata.session_id == "session-thread-1"


def test_a_subagent_of_an_unknown_parent_has_no_connection(h: Harness, f: JFacts) -> None:
    h.feed(f.subagent("thread-sub", PARENT))
    assert h.j.threads["thread-sub"].connection_id is None
    h.feed(f.config("turn-1", "thread-sub"), f.turn_profile(), f.completed("turn-1", "thread-sub"))
    assert missing(h) == [("turn", "thread_connection")]


def test_thread_archive_needs_no_context(h: Harness, f: JFacts) -> None:
    (event,) = h.feed(f.notification("thread/archived", {"threadId": "thread-x"}))
    assert event["event_params"] == {
        "thread_id": "thread-x",
        "action": "archived",
        "occurred_at_ms": f.now_ms,
    }


# -- accepted lines (§5.5) -----------------------------------------------------------------------

HEADER = "diff --git a/x b/x\nindex 1..2\n--- a/x\n+++ b/x\n"


@pytest.mark.parametrize(
    ("diff", "added", "deleted"),
    [
        (HEADER + "@@ -1 +1 @@\n-a\n+b\n context\n", 1, 1),
        # Inside a hunk, lines that look like file headers are lines.
        (HEADER + "@@ -1,2 +1,2 @@\n--- old\n+++ new\n", 1, 1),
        # A new file: "--- /dev/null" is a header.
        (
            "diff --git a/n b/n\nnew file mode 100644\n--- /dev/null\n+++ b/n\n@@ -0,0 +1 @@\n+x\n",
            1,
            0,
        ),
        # Headers again after the next "diff --git" line.
        (HEADER + "@@ -1 +1 @@\n+a\n" + HEADER + "@@ -1 +1 @@\n-b\n", 1, 1),
        # Without a "diff --git" line between files, the hunk goes on: headers count.
        ("--- a/x\n+++ b/x\n@@ -1 +1 @@\n+a\n--- a/y\n+++ b/y\n@@ -1 +1 @@\n+b\n", 3, 1),
        # Only "+++ "/"--- " (with the space) are headers; "@@" needs its space too.
        ("diff --git a/x b/x\n+++x\n---y\n@@-1 +1 @@\n+++ z\n", 1, 1),
        # Lines end at "\n" only (U+2028 is inside a line); "\r\n" ends one.
        (HEADER + "@@ -1 +1 @@\r\n+a\u2028+b\r\n-c\r\n", 1, 1),
        ("", 0, 0),
    ],
)
def test_accepted_lines_are_counted_as_upstream(diff: str, added: int, deleted: int) -> None:
    counts = count_accepted_lines(diff)
    assert (counts.added, counts.deleted) == (added, deleted)


def test_a_diff_without_changed_lines_gives_no_accepted_lines_event(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(), f.thread(), f.diff(HEADER + "@@ -1 +1 @@\n+a\n"))
    h.feed(f.diff(HEADER + "@@ -1 +1 @@\n context\n"))  # only the latest diff counts
    assert types(h.feed(*turn_facts(f), f.turn_profile())) == ["codex_turn_event"]


def test_accepted_lines_follow_the_turn_event(h: Harness, f: JFacts) -> None:
    h.feed(f.initialize(), f.thread(), f.diff(HEADER + "@@ -1,2 +1 @@\n-a\n-b\n+c\n"))
    turn, lines = h.feed(*turn_facts(f), f.turn_profile())
    assert turn["event_type"] == "codex_turn_event"
    assert lines["event_type"] == "codex_accepted_line_fingerprints"
    params = lines["event_params"]
    assert (params["accepted_added_lines"], params["accepted_deleted_lines"]) == (1, 2)
    assert (params["repo_hash"], params["model_slug"]) == ("repo-1", "gpt-5")
    assert params["completed_at"] == f.now_ms // 1000  # the triggering (profile) fact
    assert params["line_fingerprints"] == []


# -- state: bytes, expiry, limits ---------------------------------------------------------------


def half_done(f: JFacts) -> list[dict[str, Any]]:
    """Facts that leave every Profile J session table with entries."""
    return [
        f.initialize(),
        f.thread(originator="app-1"),
        f.subagent("thread-sub", "thread-1"),
        f.steer(7, 2),
        f.interrupt(4, 123),
        *turn_facts(f)[:3],
        f.usage(),
        f.codex_error(),
        f.image("img-1"),
        f.started(),
        f.diff(HEADER + "@@ -1 +1 @@\n+a\n"),
        f.completed("turn-2"),
    ]


def test_j_tables_survive_the_state_bytes(f: JFacts) -> None:
    h = Harness()
    h.feed(*half_done(f))
    assert (len(h.j.requests), len(h.j.threads), len(h.j.turns)) == (2, 2, 2)
    data = h.state.to_bytes()
    # The compact format 5 is for Profile S states: a compact Profile J state is its
    # format 4, packed (format 6).
    assert state_packing.unpack(h.state.to_bytes(compact=True)) == data
    assert InstanceState.from_bytes(h.state.to_bytes(compact=True)).to_bytes() == data
    restored = InstanceState.from_bytes(data)
    assert restored.to_bytes() == data
    assert restored.contract == "2026-08"
    # The restored state goes on exactly as the original does.
    rest = [
        f.turn_steer_response(7, 2),
        f.turn_interrupt_response(7, 4),
        f.completed(),
        f.turn_profile(),
    ]
    twin = Harness()
    twin.state = restored
    assert twin.feed(*rest) == h.feed(*rest)


def test_j_tables_expire(f: JFacts) -> None:
    h = Harness(horizon_ms=60_000)
    h.feed(*half_done(f))
    f.now_ms += 3_600_000
    h.feed(f.initialize(8))
    assert h.j.is_empty
    expired = h.reducer.stats.expired
    assert (expired["requests"], expired["threads"], expired["turns"]) == (2, 2, 2)


@pytest.mark.parametrize(
    ("table", "fill", "one_more"),
    [
        ("requests", lambda f: [f.turn_start(7, 1)], lambda f: f.interrupt(2, 5)),
        (
            "threads",
            lambda f: [f.initialize(), f.thread(7, "t-1")],
            lambda f: f.subagent("t-2", None),
        ),
        ("turns", lambda f: [f.turn_profile("turn-a")], lambda f: f.started("turn-b")),
    ],
)
def test_full_j_tables_refuse_a_new_entry(table: str, fill: Any, one_more: Any) -> None:
    f = JFacts()
    h = Harness(limits=StateLimits(requests=1, threads=1, turns=1))
    h.feed(*fill(f))
    before = h.state.to_bytes()
    assert h.feed(one_more(f)) == []
    ((reason, ids),) = h.drops()
    assert reason is DropReason.INSTANCE_STATE_FULL
    assert reason.dead_letters
    assert (ids["table"], ids["limit"]) == (table, 1)
    assert orjson.loads(h.state.to_bytes())["j"] == orjson.loads(before)["j"]


def test_image_preparations_of_one_turn_are_bounded(f: JFacts) -> None:
    h = Harness(limits=StateLimits(image_preparations_per_turn=2))
    h.feed(f.image("a"), f.image("b"), f.image("c"))
    assert [p.item_id for p in h.j.turns["turn-1"].image_preparations] == ["a", "b"]
    ((reason, ids),) = h.drops()
    assert (reason, ids["table"]) == (DropReason.INSTANCE_STATE_FULL, "image_preparations")
