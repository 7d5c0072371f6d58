"""Profile J activity rules no vector shows (profile-j.md §2-§3, §5.6-§5.7, §6 "Dedupe"),
after upstream's ``analytics_client_tests.rs``: thread-context drops per site, plugin
metadata without a local id or a summary, the plugin_used dedupe fallbacks, product ids,
and the payloads the contract refuses.

Thread context is seeded in the Profile J tables directly (an ``initialize`` and a
``ThreadJ``), so that these rules are tested apart from the session rules that set it.
"""

from __future__ import annotations

from typing import Any

import pytest

from codex_analytics.contract import DecodeError, DecodeReason, fact_from_json
from codex_analytics.contract.versions import CONTRACT_J
from streams.reducer import DropReason
from streams.reducer.profile_j.state import ThreadJ, ThreadMetadataJ
from tests.factories import JInstance, tracking_j

from .j_tool_facts import thread_start_payload
from .reducer_harness import ReducerHarness

LINEAGE = ThreadMetadataJ(
    session_id="session-1",
    thread_source="subagent",
    initialization_mode="resumed",
    subagent_source="review",
    parent_thread_id="parent-1",
)


class Harness(ReducerHarness):
    """One Profile J instance and its fact builder."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.i = JInstance()

    def with_thread(
        self,
        thread_id: str = "thread-1",
        *,
        conn: int | None = 7,
        initialize: bool = True,
        metadata: ThreadMetadataJ | None = LINEAGE,
        originator: str | None = None,
    ) -> Harness:
        """A thread as the session rules leave it (each part may be missing)."""
        if initialize:
            self.feed(self.i.initialize(7, product_client_id="codex-tui"))
        else:  # the instance's first fact sets its contract and creates its tables
            self.feed(self.i.fact("hook_run", hook_run()))
        assert self.state.j is not None
        self.state.j.threads[thread_id] = ThreadJ(
            touched_ms=self.state.watermark_ms,
            connection_id=conn,
            metadata=metadata,
            originator=originator,
        )
        return self


@pytest.fixture
def h() -> Harness:
    return Harness()


def tracking(turn_id: str = "turn-1", product_client_id: str = "codex_work_desktop") -> Any:
    return tracking_j("thread-1", turn_id, product_client_id)


def hook_run(event_name: str = "PreToolUse") -> dict[str, Any]:
    return {
        "tracking": tracking(),
        "hook": {"event_name": event_name, "hook_source": "user", "status": "completed"},
    }


SUMMARY = {
    "config_name": "sample@test",
    "display_name": "sample",
    "plugin_namespace": None,
    "description": None,
    "has_skills": True,
    "mcp_server_names": ["mcp-1", "mcp-2"],
    "app_connector_ids": ["calendar", "drive"],
}


def plugin(
    plugin_id: str | None = "sample@test",
    remote_plugin_id: str | None = None,
    summary: Any = SUMMARY,
) -> dict[str, Any]:
    return {
        "plugin_id": plugin_id,
        "remote_plugin_id": remote_plugin_id,
        "capability_summary": summary,
    }


def plugin_used(turn_id: str = "turn-1", **kw: Any) -> dict[str, Any]:
    return {"tracking": tracking(turn_id), "plugin": plugin(**kw)}


def guardian(thread_id: str = "thread-1", **extra: Any) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "turn_id": "turn-1",
        "review_id": "review-1",
        "target_item_id": "item-1",
        "approval_request_source": "delegated_subagent",
        "reviewed_action": {"type": "network_access", "protocol": "https", "port": 443},
        "reviewed_action_truncated": False,
        "decision": "approved",
        "terminal_status": "approved",
        "failure_reason": None,
        "attempt_count": 2,
        "risk_level": "low",
        "user_authorization": "high",
        "outcome": "allow",
        "guardian_thread_id": None,
        "guardian_session_kind": "ephemeral_forked",
        "guardian_model": None,
        "guardian_reasoning_effort": None,
        "guardian_default_review_model_id": None,
        "guardian_catalog_contains_auto_review": None,
        "guardian_review_model_overridden": None,
        "guardian_review_model_override": None,
        "guardian_model_provider_id": None,
        "had_prior_review_context": None,
        "review_timeout_ms": 90000,
        "tool_call_count": None,
        "time_to_first_token_ms": None,
        "completion_latency_ms": 40,
        "started_at": 1716000000,
        "completed_at": None,
        "input_tokens": None,
        "cached_input_tokens": None,
        "cache_write_input_tokens": None,
        "output_tokens": None,
        "reasoning_output_tokens": None,
        "total_tokens": None,
        **extra,
    }


def compaction(thread_id: str = "thread-1", **changes: Any) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "turn_id": "turn-c",
        "trigger": "auto",
        "reason": "comp_hash_changed",
        "implementation": "responses_compaction_v2",
        "phase": "mid_turn",
        "strategy": "prefix_compaction",
        "status": "completed",
        "codex_error_kind": None,
        "codex_error_http_status_code": 503,
        "active_context_tokens_before": 120000,
        "active_context_tokens_after": 30000,
        "retained_image_count": 2,
        "compaction_summary_tokens": 800,
        "cached_input_tokens": 100,
        "cache_write_input_tokens": 5,
        "started_at": 100,
        "completed_at": 101,
        "duration_ms": 900,
        **changes,
    }


def goal(thread_id: str = "thread-1", **changes: Any) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "turn_id": "turn-1",
        "goal_id": "goal-1",
        "event_kind": "status_changed",
        "goal_status": "budget_limited",
        "has_token_budget": True,
        "cumulative_tokens_accounted": 7,
        "cumulative_time_accounted_seconds": 3,
        **changes,
    }


CONTEXT_KINDS = {"guardian_review": guardian, "compaction": compaction, "goal": goal}
SITES = {"guardian_review": "guardian", "compaction": "compaction", "goal": "goal"}

# -- thread context (§5.7) -------------------------------------------------------------------


@pytest.mark.parametrize("kind", CONTEXT_KINDS)
@pytest.mark.parametrize(
    ("thread", "missing"),
    [
        ({"thread_id": "other-thread"}, "thread_connection"),
        ({"conn": None}, "thread_connection"),
        ({"initialize": False}, "connection"),
        ({"metadata": None}, "thread_metadata"),
    ],
    ids=["no-thread", "no-thread-connection", "unknown-connection", "no-metadata"],
)
def test_event_without_thread_context_is_dropped_with_its_site(
    h: Harness, kind: str, thread: dict[str, Any], missing: str
) -> None:
    h.with_thread(**thread)
    assert h.feed(h.i.fact(kind, CONTEXT_KINDS[kind]())) == []
    ((reason, ids),) = h.drops()
    assert reason is DropReason.MISSING_CONTEXT
    assert (ids["site"], ids["missing_context"], ids["thread_id"]) == (
        SITES[kind],
        missing,
        "thread-1",
    )
    assert ("connection_id" in ids) is (missing == "connection")


@pytest.mark.parametrize("kind", CONTEXT_KINDS)
def test_a_dropped_event_is_not_replayed_when_the_context_appears(h: Harness, kind: str) -> None:
    h.with_thread(metadata=None)
    assert h.feed(h.i.fact(kind, CONTEXT_KINDS[kind]())) == []
    assert h.state.j is not None
    h.state.j.threads["thread-1"].metadata = LINEAGE
    (event,) = h.feed(h.i.fact(kind, CONTEXT_KINDS[kind]()))
    assert event["event_params"]["thread_id"] == "thread-1"


@pytest.mark.parametrize("kind", CONTEXT_KINDS)
def test_context_events_carry_session_lineage_and_the_thread_originator(
    h: Harness, kind: str
) -> None:
    h.with_thread(originator="codex_exec")
    (event,) = h.feed(h.i.fact(kind, CONTEXT_KINDS[kind]()))
    params = event["event_params"]
    assert params["session_id"] == "session-1"
    assert params["app_server_client"]["product_client_id"] == "codex_exec"
    assert params["runtime"]["codex_rs_version"] == "0.99.0"  # the connection's runtime
    if kind != "guardian_review":  # guardian events carry no lineage
        assert (
            params["thread_source"],
            params["subagent_source"],
            params["parent_thread_id"],
        ) == ("subagent", "review", "parent-1")


def test_without_a_thread_originator_the_connection_client_is_used(h: Harness) -> None:
    h.with_thread()
    (event,) = h.feed(h.i.fact("goal", goal()))
    assert event["event_params"]["app_server_client"]["product_client_id"] == "codex-tui"


def test_guardian_params_take_upstreams_struct_order_and_no_other_key(h: Harness) -> None:
    h.with_thread()
    payload = guardian(upstream_added_later="dropped", session_id="forged")
    action = payload["reviewed_action"]
    # The producer's order is not the event's: upstream serializes its typed struct.
    shuffled = dict(reversed(list(payload.items())))
    shuffled["reviewed_action"] = {"extra": 1, **dict(reversed(list(action.items())))}
    (event,) = h.feed(h.i.fact("guardian_review", shuffled))
    params = event["event_params"]
    expected_keys = [k for k in payload if k not in ("upstream_added_later", "session_id")]
    assert list(params) == ["session_id", "app_server_client", "runtime", *expected_keys]
    assert params["session_id"] != "forged"
    assert params["reviewed_action"] == action
    assert list(params["reviewed_action"]) == list(action)


def test_compaction_and_goal_pass_new_keys_and_enum_values_through(h: Harness) -> None:
    h.with_thread()
    compacted, goal_event = h.feed(
        h.i.fact("compaction", compaction()), h.i.fact("goal", goal(turn_id=None))
    )
    params = compacted["event_params"]
    assert "error" not in params
    assert (params["reason"], params["implementation"]) == (
        "comp_hash_changed",
        "responses_compaction_v2",
    )
    assert (params["codex_error_http_status_code"], params["retained_image_count"]) == (503, 2)
    assert goal_event["event_params"]["turn_id"] is None
    assert goal_event["event_params"]["goal_status"] == "budget_limited"


# -- with the session rules setting the context ------------------------------------------------


def thread_start(i: JInstance, originator: str | None) -> dict[str, Any]:
    return i.fact("client_response", thread_start_payload(originator=originator), conn=7)


def subagent_started(i: JInstance, parent: str | None) -> dict[str, Any]:
    payload = {
        "session_id": "session-root",
        "thread_id": "thread-sub",
        "parent_thread_id": parent,
        "forked_from_thread_id": None,
        "product_client_id": "sub-client",
        "client_name": "sub",
        "client_version": "2.0.0",
        "model": "gpt-5",
        "ephemeral": False,
        "subagent_source": "compact",
        "created_at": 5,
    }
    return i.fact("subagent_thread_started", payload)


def test_a_thread_originator_from_its_response_names_the_client(h: Harness) -> None:
    h.feed(h.i.initialize(7, product_client_id="codex-tui"), thread_start(h.i, "codex_exec"))
    (event,) = h.feed(h.i.fact("goal", goal()))
    params = event["event_params"]
    assert params["app_server_client"]["product_client_id"] == "codex_exec"
    assert (params["session_id"], params["thread_source"]) == ("session-thread-1", "user")


def test_a_subagent_thread_reports_on_its_parents_connection(h: Harness) -> None:
    h.feed(h.i.initialize(7), thread_start(h.i, None), subagent_started(h.i, "thread-1"))
    (event,) = h.feed(h.i.fact("compaction", compaction("thread-sub")))
    params = event["event_params"]
    assert params["session_id"] == "session-root"
    assert params["app_server_client"]["client_name"] == "codex-tui"  # the parent's connection
    assert params["app_server_client"]["product_client_id"] == "sub-client"
    assert (params["thread_source"], params["subagent_source"], params["parent_thread_id"]) == (
        "subagent",
        "compact",
        "thread-1",
    )


def test_a_subagent_thread_without_a_known_parent_has_no_connection(h: Harness) -> None:
    h.feed(h.i.initialize(7), subagent_started(h.i, None))
    assert h.feed(h.i.fact("guardian_review", guardian("thread-sub"))) == []
    assert [(r, ids["missing_context"]) for r, ids in h.drops()] == [
        (DropReason.MISSING_CONTEXT, "thread_connection")
    ]


# -- plugins: metadata (§2, §4.1) ------------------------------------------------------------


def test_plugin_state_event_without_local_id_or_summary_has_nulls(h: Harness) -> None:
    (event,) = h.feed(
        h.i.fact(
            "plugin_state_changed",
            {"plugin": plugin(None, "plugins~Plugin_x", summary=None), "state": "disabled"},
        )
    )
    assert event == {
        "event_type": "codex_plugin_disabled",
        "event_params": {
            "plugin_id": None,
            "remote_plugin_id": "plugins~Plugin_x",
            "plugin_name": None,
            "marketplace_name": None,
            "has_skills": None,
            "mcp_server_count": None,
            "connector_ids": None,
            "product_client_id": "codex_cli_rs",
        },
    }


def test_plugin_id_stays_local_when_a_remote_id_exists(h: Harness) -> None:
    (event,) = h.feed(
        h.i.fact(
            "plugin_state_changed",
            {"plugin": plugin("my.tool@market@place", "plugins~Plugin_r"), "state": "enabled"},
        )
    )
    params = event["event_params"]
    assert (params["plugin_id"], params["remote_plugin_id"]) == (
        "my.tool@market@place",
        "plugins~Plugin_r",
    )
    # Split at the last "@": the plugin-name half may hold dots and "@".
    assert (params["plugin_name"], params["marketplace_name"]) == ("my.tool@market", "place")


def test_plugin_used_without_summary_and_product_id_from_tracking(h: Harness) -> None:
    (event,) = h.feed(h.i.fact("plugin_used", plugin_used(summary=None)))
    params = event["event_params"]
    assert params["product_client_id"] == "codex_work_desktop"
    assert [params[k] for k in ("has_skills", "mcp_server_count", "mcp_server_names")] == [
        None,
        None,
        None,
    ]
    assert list(params)[8:] == ["mcp_server_names", "thread_id", "turn_id", "model_slug"]


def test_install_requested_takes_the_originator_not_tracking(h: Harness) -> None:
    request = {
        "suggestion_id": "request_plugin_install_call-1",
        "plugins": [
            {
                "plugin_id": "calendar@openai-curated-remote",
                "remote_plugin_id": "plugin_calendar",
                "plugin_name": "Calendar",
                "connector_ids": ["connector_calendar"],
            },
            {
                "plugin_id": "github@openai-curated-remote",
                "remote_plugin_id": None,
                "plugin_name": "GitHub",
                "connector_ids": [],
            },
        ],
        "source": "endpoint_recommendation",
    }
    (event,) = h.feed(
        h.i.fact("plugin_install_requested", {"tracking": tracking(), "request": request})
    )
    assert event == {
        "event_type": "codex_plugin_install_requested",
        "event_params": {
            **request,
            "thread_id": "thread-1",
            "turn_id": "turn-1",
            "model_slug": "gpt-5",
            "product_client_id": "codex_cli_rs",
        },
    }


def test_install_failed_with_local_plugin_and_sub_error(h: Harness) -> None:
    (event,) = h.feed(
        h.i.fact(
            "plugin_install_failed",
            {
                "plugin": plugin(),
                "source": "external_agent_migration",
                "error_type": "invalid_plugin",
                "sub_error_type": "failed_to_copy_plugin_file",
            },
        )
    )
    assert list(event["event_params"].items())[:4] == [
        ("plugin_id", "sample@test"),
        ("remote_plugin_id", None),
        ("plugin_name", "sample"),
        ("marketplace_name", "test"),
    ]
    assert list(event["event_params"].items())[7:] == [
        ("product_client_id", "codex_cli_rs"),
        ("source", "external_agent_migration"),
        ("error_type", "invalid_plugin"),
        ("sub_error_type", "failed_to_copy_plugin_file"),
    ]


# -- plugins and apps: dedupe (§6) --------------------------------------------------------------


def test_plugin_used_dedupe_is_keyed_by_turn_and_local_id(h: Harness) -> None:
    events = h.feed(
        h.i.fact("plugin_used", plugin_used("turn-1")),
        # The same local id with another remote id is the same plugin.
        h.i.fact("plugin_used", plugin_used("turn-1", remote_plugin_id="plugins~Plugin_s")),
        h.i.fact("plugin_used", plugin_used("turn-2")),
    )
    assert [e["event_params"]["turn_id"] for e in events] == ["turn-1", "turn-2"]
    assert [reason for reason, _ in h.drops()] == [DropReason.DEDUPE_REPEAT]


def test_plugin_used_without_local_id_is_deduped_by_its_remote_id(h: Harness) -> None:
    remote_only = plugin_used(plugin_id=None, remote_plugin_id="plugins~Plugin_a")
    events = h.feed(
        h.i.fact("plugin_used", remote_only),
        h.i.fact("plugin_used", remote_only),
        h.i.fact("plugin_used", plugin_used(plugin_id=None, remote_plugin_id="plugins~Plugin_b")),
    )
    assert [e["event_params"]["remote_plugin_id"] for e in events] == [
        "plugins~Plugin_a",
        "plugins~Plugin_b",
    ]


def test_plugin_used_with_neither_id_is_always_emitted(h: Harness) -> None:
    anonymous = plugin_used(plugin_id=None, remote_plugin_id=None, summary=None)
    assert len(h.feed(*(h.i.fact("plugin_used", anonymous) for _ in range(3)))) == 3
    assert h.drops() == []


def test_plugin_used_dedupe_off_emits_every_use() -> None:
    h = Harness(dedupe=False)
    assert len(h.feed(*(h.i.fact("plugin_used", plugin_used()) for _ in range(2)))) == 2


def test_app_used_dedupes_by_connector_and_takes_tracking_product_id(h: Harness) -> None:
    def used(connector: str | None) -> dict[str, Any]:
        app = {"connector_id": connector, "app_name": "Drive", "invocation_type": "explicit"}
        return h.i.fact("app_used", {"tracking": tracking(), "app": app})

    events = h.feed(used("drive"), used("drive"), used(None), used(None))
    assert [e["event_params"]["connector_id"] for e in events] == ["drive", None, None]
    assert {e["event_params"]["product_client_id"] for e in events} == {"codex_work_desktop"}


def test_app_mentioned_emits_one_event_per_mention(h: Harness) -> None:
    mentions = [
        {"connector_id": c, "app_name": None, "invocation_type": None} for c in ("a", "a", "b")
    ]
    events = h.feed(h.i.fact("app_mentioned", {"tracking": tracking(), "mentions": mentions}))
    assert [e["event_params"]["connector_id"] for e in events] == ["a", "a", "b"]


# -- payloads the contract refuses ---------------------------------------------------------------


def decode_error(kind: str, payload: dict[str, Any], contract: str | None = CONTRACT_J) -> Any:
    fact = JInstance().fact(kind, payload)
    if contract is None:
        del fact["source"]["contract"]
    with pytest.raises(DecodeError) as caught:
        fact_from_json(fact)
    return caught.value.reason, caught.value.path


@pytest.mark.parametrize(
    ("kind", "payload", "path"),
    [
        ("hook_run", hook_run("SessionStop"), "payload.hook.event_name"),
        ("compaction", compaction(reason="too_big"), "payload.reason"),
        ("compaction", compaction(codex_error_kind="gremlins"), "payload.codex_error_kind"),
        ("goal", goal(goal_status="done"), "payload.goal_status"),
        ("goal", goal(event_kind="deleted"), "payload.event_kind"),
        (
            "guardian_review",
            guardian(reviewed_action={"type": "rm_rf"}),
            "payload.reviewed_action.type",
        ),
        ("guardian_review", guardian(terminal_status="maybe"), "payload.terminal_status"),
        (
            "plugin_install_failed",
            {"plugin": plugin(), "source": "catalog", "error_type": "x", "sub_error_type": None},
            "payload.source",
        ),
        (
            "plugin_install_requested",
            {
                "tracking": tracking(),
                "request": {"suggestion_id": "s", "plugins": [], "source": "ads"},
            },
            "payload.request.source",
        ),
    ],
)
def test_unknown_enum_values_are_refused(kind: str, payload: dict[str, Any], path: str) -> None:
    assert decode_error(kind, payload) == (DecodeReason.UNKNOWN_ENUM_VALUE, path)


def test_session_end_is_a_profile_j_hook_only() -> None:
    fact = JInstance().fact("hook_run", hook_run("SessionEnd"))
    assert fact_from_json(fact).payload.hook.event_name == "SessionEnd"
    s_payload = {"tracking": tracking(), "hook": hook_run("SessionEnd")["hook"]}
    assert decode_error("hook_run", s_payload, contract=None) == (
        DecodeReason.UNKNOWN_ENUM_VALUE,
        "payload.hook.event_name",
    )


def test_j_only_kinds_are_unknown_to_profile_s() -> None:
    assert decode_error("goal", goal(), contract=None) == (DecodeReason.UNKNOWN_KIND, "kind")


@pytest.mark.parametrize(
    ("kind", "payload", "reason", "path"),
    [
        (
            "plugin_used",
            plugin_used(plugin_id="no-marketplace"),
            DecodeReason.INVALID_VALUE,
            "payload.plugin.plugin_id",
        ),
        (
            "plugin_used",
            plugin_used(plugin_id="@market"),
            DecodeReason.INVALID_VALUE,
            "payload.plugin.plugin_id",
        ),
        (
            "plugin_used",
            {"tracking": {**tracking(), "product_client_id": None}, "plugin": plugin()},
            DecodeReason.WRONG_TYPE,
            "payload.tracking.product_client_id",
        ),
        (
            "compaction",
            compaction(codex_error_http_status_code=70000),
            DecodeReason.INVALID_VALUE,
            "payload.codex_error_http_status_code",
        ),
        (
            "guardian_review",
            {k: v for k, v in guardian().items() if k != "cache_write_input_tokens"},
            DecodeReason.MISSING_KEY,
            "payload.cache_write_input_tokens",
        ),
        (
            "guardian_review",
            guardian(reviewed_action={"type": "network_access", "protocol": "https"}),
            DecodeReason.MISSING_KEY,
            "payload.reviewed_action.port",
        ),
        (
            "external_agent_config_import_completed",
            {
                "import_id": "i",
                "source": "app_server",
                "provider_id": "p",
                "item_type": "PLUGINS",
                "success_count": -1,
                "failed_count": 0,
            },
            DecodeReason.INVALID_VALUE,
            "payload.success_count",
        ),
    ],
)
def test_malformed_payloads_are_refused(
    kind: str, payload: dict[str, Any], reason: DecodeReason, path: str
) -> None:
    assert decode_error(kind, payload) == (reason, path)
