"""Every rule of shared/spec/reducer.md, one behaviour per test (beyond the vectors)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from streams.reducer import DropReason, InstanceState
from tests.factories import Instance, app, skill

from .reducer_harness import ReducerHarness as Harness


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def inst() -> Instance:
    return Instance()


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events]


def open_thread(
    h: Harness, i: Instance, conn: int = 7, thread_id: str = "thread-1", **kw: Any
) -> None:
    h.feed(i.initialize(conn), i.thread_response(conn, thread_id, **kw))


def full_turn(
    i: Instance,
    conn: int = 7,
    turn_id: str = "turn-1",
    thread_id: str = "thread-1",
    rid: int | str = 1,
) -> list[dict[str, Any]]:
    return [
        i.turn_start_request(conn, rid, thread_id, images=2),
        i.turn_start_response(conn, rid, turn_id),
        i.resolved_config(turn_id, thread_id),
        i.token_usage(turn_id, thread_id),
        i.turn_started(turn_id, thread_id),
        i.turn_completed(turn_id, thread_id),
    ]


# -- 3.1 initialize ---------------------------------------------------------------------------


def test_initialize_emits_nothing_and_later_initialize_replaces_connection(
    h: Harness, inst: Instance
) -> None:
    assert h.feed(inst.initialize(7, client_name="first")) == []
    h.feed(inst.initialize(7, client_name="second", rpc_transport="websocket"))
    (event,) = h.feed(inst.thread_response(7, "thread-1"))
    client = event["event_params"]["app_server_client"]
    assert client["client_name"] == "second"
    assert client["rpc_transport"] == "websocket"


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        ("absent", None),
        (None, None),
        ({}, False),
        ({"experimentalApi": True}, True),
        ({"experimentalApi": False, "optOutNotificationMethods": ["x"]}, False),
    ],
)
def test_experimental_api_enabled_follows_capabilities(
    h: Harness, inst: Instance, capabilities: Any, expected: bool | None
) -> None:
    h.feed(inst.initialize(7, capabilities=capabilities))
    (event,) = h.feed(inst.thread_response(7))
    assert event["event_params"]["app_server_client"]["experimental_api_enabled"] is expected


# -- 3.3 thread lifecycle responses -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "mode"),
    [("thread/start", "new"), ("thread/resume", "resumed"), ("thread/fork", "forked")],
)
def test_thread_lifecycle_methods_map_to_initialization_mode(
    h: Harness, inst: Instance, method: str, mode: str
) -> None:
    h.feed(inst.initialize(7))
    (event,) = h.feed(inst.thread_response(7, "t", method=method))
    assert event["event_type"] == "codex_thread_initialized"
    assert event["event_params"]["initialization_mode"] == mode


def test_thread_response_on_unknown_connection_emits_and_records_nothing(
    h: Harness, inst: Instance
) -> None:
    assert h.feed(inst.thread_response(9, "thread-1")) == []
    assert h.drop_reasons() == [DropReason.THREAD_RESPONSE_UNKNOWN_CONNECTION]
    # Nothing was recorded: a guardian review for that thread is still dropped.
    h.feed(inst.initialize(9))
    assert h.feed(inst.guardian_review("thread-1")) == []
    assert h.drop_reasons()[-1] is DropReason.GUARDIAN_MISSING_THREAD_CONNECTION


@pytest.mark.parametrize(
    ("source", "thread_source", "subagent_source", "parent"),
    [
        ("cli", "user", None, None),
        ("vscode", "user", None, None),
        ("exec", "user", None, None),
        ("appServer", None, None, None),
        ("unknown", None, None, None),
        ({"custom": "my-ide"}, None, None, None),
        ("somethingNew", None, None, None),
        ({"subAgent": "review"}, "subagent", "review", None),
        ({"subAgent": "compact"}, "subagent", "compact", None),
        ({"subAgent": "memory_consolidation"}, "subagent", "memory_consolidation", None),
        ({"subAgent": {"other": "guardian"}}, "subagent", "guardian", None),
        (
            {
                "subAgent": {
                    "thread_spawn": {
                        "parent_thread_id": "22222222-2222-2222-2222-222222222222",
                        "depth": 1,
                        "agent_path": None,
                        "agent_nickname": None,
                        "agent_role": None,
                    }
                }
            },
            "subagent",
            "thread_spawn",
            "22222222-2222-2222-2222-222222222222",
        ),
        (
            # Upstream's ThreadId is a UUID: printed lowercase and hyphenated.
            {
                "subAgent": {
                    "thread_spawn": {
                        "parent_thread_id": "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE",
                        "depth": 1,
                    }
                }
            },
            "subagent",
            "thread_spawn",
            "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        ),
    ],
)
def test_thread_source_mapping(
    h: Harness,
    inst: Instance,
    source: Any,
    thread_source: str | None,
    subagent_source: str | None,
    parent: str | None,
) -> None:
    h.feed(inst.initialize(7))
    (event,) = h.feed(inst.thread_response(7, source=source))
    params = event["event_params"]
    assert (params["thread_source"], params["subagent_source"], params["parent_thread_id"]) == (
        thread_source,
        subagent_source,
        parent,
    )


def test_negative_thread_created_at_becomes_zero(h: Harness, inst: Instance) -> None:
    h.feed(inst.initialize(7))
    (event,) = h.feed(inst.thread_response(7, created_at=-5))
    assert event["event_params"]["created_at"] == 0


def test_thread_event_carries_model_and_ephemeral_from_response(h: Harness, inst: Instance) -> None:
    h.feed(inst.initialize(7))
    (event,) = h.feed(inst.thread_response(7, model="o3", ephemeral=True, created_at=77))
    params = event["event_params"]
    assert (params["model"], params["ephemeral"], params["created_at"]) == ("o3", True, 77)
    assert params["runtime"]["runtime_os"] == "linux"  # the connection's runtime, not the source's


# -- 3.3 / 3.8 turn lifecycle ------------------------------------------------------------------


def test_turn_event_fires_once_all_parts_are_there_and_state_is_deleted(
    h: Harness, inst: Instance
) -> None:
    open_thread(h, inst)
    events = h.feed(*full_turn(inst))
    assert types(events) == ["codex_turn_event"]
    params = events[0]["event_params"]
    assert params["num_input_images"] == 1  # resolved config overwrites the request's count
    assert params["input_tokens"] == 123
    assert params["started_at"] == 455
    assert params["completed_at"] == 456
    assert "product_client_id" not in params
    assert h.state.turns == {}


def test_turn_event_fires_on_whichever_trigger_completes_it(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    assert (
        h.feed(
            inst.turn_start_request(7, 1),
            inst.resolved_config("turn-1"),
            inst.turn_completed("turn-1"),
        )
        == []
    )
    # The turn/start response is the last missing part: it emits.
    assert types(h.feed(inst.turn_start_response(7, 1, "turn-1"))) == ["codex_turn_event"]


def test_token_usage_and_started_are_optional(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    (event,) = h.feed(
        inst.turn_start_request(7, 1),
        inst.turn_start_response(7, 1, "turn-1"),
        inst.resolved_config("turn-1"),
        inst.turn_completed("turn-1"),
    )
    params = event["event_params"]
    for key in (
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_output_tokens",
        "total_tokens",
        "started_at",
    ):
        assert params[key] is None


def test_turn_started_does_not_trigger_emission(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    h.feed(
        inst.turn_start_request(7, 1), inst.resolved_config("turn-1"), inst.turn_completed("turn-1")
    )
    # Completed before the response: no connection yet, so the state waits silently.
    assert h.drop_reasons() == []
    assert h.feed(inst.turn_started("turn-1")) == []
    assert types(h.feed(inst.turn_start_response(7, 1, "turn-1"))) == ["codex_turn_event"]


def test_last_token_usage_wins(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    h.feed(
        inst.turn_start_request(7, 1),
        inst.turn_start_response(7, 1, "turn-1"),
        inst.token_usage(total=1),
        inst.token_usage(total=2),
    )
    (event,) = h.feed(inst.resolved_config("turn-1"), inst.turn_completed("turn-1"))
    assert event["event_params"]["total_tokens"] == 2


def test_turn_fact_after_emission_creates_a_state_that_never_emits(
    h: Harness, inst: Instance
) -> None:
    open_thread(h, inst)
    h.feed(*full_turn(inst))
    assert h.feed(inst.token_usage("turn-1"), inst.turn_completed("turn-1")) == []
    assert set(h.state.turns) == {"turn-1"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("completed", "completed"),
        ("failed", "failed"),
        ("interrupted", "interrupted"),
        ("inProgress", None),
    ],
)
def test_turn_status_mapping(h: Harness, inst: Instance, status: str, expected: str | None) -> None:
    open_thread(h, inst)
    events = h.feed(*full_turn(inst)[:-1], inst.turn_completed("turn-1", status=status))
    assert events[0]["event_params"]["status"] == expected


@pytest.mark.parametrize(
    ("error_info", "expected"),
    [
        ("no-error", None),
        (None, None),
        ("badRequest", "badRequest"),
        (
            {"httpConnectionFailed": {"httpStatusCode": 502}},
            {"httpConnectionFailed": {"httpStatusCode": 502}},
        ),
    ],
)
def test_turn_error_is_codex_error_info_copied_exactly(
    h: Harness, inst: Instance, error_info: Any, expected: Any
) -> None:
    open_thread(h, inst)
    events = h.feed(
        *full_turn(inst)[:-1], inst.turn_completed("turn-1", status="failed", error_info=error_info)
    )
    assert events[0]["event_params"]["turn_error"] == expected


@pytest.mark.parametrize(
    ("completed_at", "duration_ms", "started_at", "want"),
    [
        ("absent", "absent", "absent", (0, None, None)),
        (-1, -1, -1, (0, None, None)),
        (None, None, None, (0, None, None)),
        (10, 20, 5, (10, 20, 5)),
    ],
)
def test_turn_timestamps_missing_or_negative(
    h: Harness,
    inst: Instance,
    completed_at: Any,
    duration_ms: Any,
    started_at: Any,
    want: tuple[Any, ...],
) -> None:
    open_thread(h, inst)
    h.feed(
        inst.turn_start_request(7, 1),
        inst.turn_start_response(7, 1, "turn-1"),
        inst.resolved_config("turn-1"),
        inst.turn_started("turn-1", started_at=started_at),
    )
    (event,) = h.feed(
        inst.turn_completed("turn-1", completed_at=completed_at, duration_ms=duration_ms)
    )
    params = event["event_params"]
    assert (params["completed_at"], params["duration_ms"], params["started_at"]) == want


def test_turn_started_overwrites_earlier_value_even_with_null(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    h.feed(inst.turn_started("turn-1", started_at=5), inst.turn_started("turn-1", started_at=-3))
    events = h.feed(
        inst.turn_start_request(7, 1),
        inst.turn_start_response(7, 1, "turn-1"),
        inst.resolved_config("turn-1"),
        inst.turn_completed("turn-1"),
    )
    assert events[0]["event_params"]["started_at"] is None


@pytest.mark.parametrize(
    ("field", "value", "expected_key", "expected"),
    [
        ("sandbox_policy", {"type": "danger-full-access"}, "sandbox_policy", "full_access"),
        ("sandbox_policy", {"type": "read-only", "extra": 1}, "sandbox_policy", "read_only"),
        (
            "sandbox_policy",
            {"type": "workspace-write", "writable_roots": []},
            "sandbox_policy",
            "workspace_write",
        ),
        ("sandbox_policy", {"type": "external-sandbox"}, "sandbox_policy", "external_sandbox"),
        ("collaboration_mode", "plan", "collaboration_mode", "plan"),
        ("collaboration_mode", "default", "collaboration_mode", "default"),
        ("collaboration_mode", "pair_programming", "collaboration_mode", "default"),
        ("collaboration_mode", "execute", "collaboration_mode", "default"),
        ("reasoning_summary", "none", "reasoning_summary", None),
        ("reasoning_summary", "detailed", "reasoning_summary", "detailed"),
        ("personality", "none", "personality", None),
        ("personality", "friendly", "personality", "friendly"),
        ("service_tier", None, "service_tier", "default"),
        ("service_tier", "flex", "service_tier", "flex"),
        ("reasoning_effort", "xhigh", "reasoning_effort", "xhigh"),
        ("approval_policy", "never", "approval_policy", "never"),
        ("submission_type", "queued", "submission_type", "queued"),
    ],
)
def test_turn_config_mappings(
    h: Harness, inst: Instance, field: str, value: Any, expected_key: str, expected: Any
) -> None:
    open_thread(h, inst)
    (event,) = h.feed(
        inst.turn_start_request(7, 1),
        inst.turn_start_response(7, 1, "turn-1"),
        inst.resolved_config("turn-1", **{field: value}),
        inst.turn_completed("turn-1"),
    )
    assert event["event_params"][expected_key] == expected


def test_turn_uses_connection_of_turn_start_and_thread_metadata_of_its_thread(
    h: Harness, inst: Instance
) -> None:
    h.feed(inst.initialize(1, client_name="one"), inst.initialize(2, client_name="two"))
    h.feed(inst.thread_response(1, "thread-a", source={"subAgent": "review"}, method="thread/fork"))
    events = h.feed(*full_turn(inst, conn=2, thread_id="thread-a"))
    params = events[0]["event_params"]
    assert params["app_server_client"]["client_name"] == "two"
    assert (params["thread_source"], params["initialization_mode"], params["subagent_source"]) == (
        "subagent",
        "forked",
        "review",
    )


def test_turn_without_initialized_connection_keeps_state_and_warns(
    h: Harness, inst: Instance
) -> None:
    h.feed(inst.initialize(1), inst.thread_response(1, "thread-1"))
    assert h.feed(*full_turn(inst, conn=7)) == []
    assert DropReason.TURN_MISSING_CONNECTION_METADATA in h.drop_reasons()
    assert "turn-1" in h.state.turns
    # The missing context appears, and another triggering fact follows: now it emits.
    h.feed(inst.initialize(7))
    assert types(h.feed(inst.token_usage("turn-1"))) == ["codex_turn_event"]


def test_turn_without_thread_metadata_keeps_state_and_warns(h: Harness, inst: Instance) -> None:
    h.feed(inst.initialize(7))
    assert h.feed(*full_turn(inst)) == []
    assert h.drop_reasons()[-1] is DropReason.TURN_MISSING_THREAD_METADATA
    h.feed(inst.thread_response(7, "thread-1"))
    assert types(h.feed(inst.token_usage("turn-1"))) == ["codex_turn_event"]


def test_turn_start_response_without_pending_request_creates_no_turn(
    h: Harness, inst: Instance
) -> None:
    open_thread(h, inst)
    assert h.feed(inst.turn_start_response(7, 1, "turn-1")) == []
    assert h.state.turns == {}
    assert h.drop_reasons() == [DropReason.RESPONSE_WITHOUT_PENDING_REQUEST]


def test_request_ids_keep_their_json_type(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    h.feed(inst.turn_start_request(7, 3))
    # "3" is another request: no pending entry matches, and 3 stays pending.
    assert h.feed(inst.turn_start_response(7, "3", "turn-1")) == []
    assert (7, 3) in h.state.requests
    # Connection ids scope request ids too.
    assert h.feed(inst.turn_start_response(8, 3, "turn-1")) == []
    assert (7, 3) in h.state.requests


def test_response_of_the_other_kind_discards_the_pending_entry(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    h.feed(inst.turn_start_request(7, 5))
    assert h.feed(inst.turn_steer_response(7, 5, "turn-1")) == []
    assert h.state.requests == {}
    assert h.feed(inst.turn_start_response(7, 5, "turn-1")) == []


def test_later_request_with_same_id_overwrites_pending_entry(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    h.feed(inst.turn_start_request(7, 5), inst.turn_steer_request(7, 5, expected_turn_id="turn-x"))
    (event,) = h.feed(inst.turn_steer_response(7, 5, "turn-x"))
    assert event["event_type"] == "codex_turn_steer_event"


def test_other_requests_and_responses_are_ignored(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    h.feed(inst.turn_start_request(7, 5))
    assert (
        h.feed(
            inst.request(7, 5, "thread/list", {"limit": 3}),
            inst.response(7, 5, "model/list", {"data": []}),
        )
        == []
    )
    assert (7, 5) in h.state.requests


def test_turn_start_error_discards_pending_start_and_turn_never_emits(
    h: Harness, inst: Instance
) -> None:
    open_thread(h, inst)
    h.feed(inst.turn_start_request(7, 1), inst.error_response(7, 1))
    assert h.state.requests == {}
    events = h.feed(
        inst.turn_start_response(7, 1, "turn-1"),
        inst.resolved_config("turn-1"),
        inst.token_usage("turn-1"),
        inst.turn_completed("turn-1"),
    )
    assert events == []


def test_error_response_without_pending_request_does_nothing(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    assert h.feed(inst.error_response(7, 99, {"turn_steer": "no_active_turn"})) == []
    assert h.drop_reasons() == [DropReason.ERROR_WITHOUT_PENDING_REQUEST]


# -- 3.9 steers -------------------------------------------------------------------------------


def test_accepted_steer_event_and_steer_count(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    h.feed(inst.turn_start_request(7, 1), inst.turn_start_response(7, 1, "turn-1"))
    steer_request = inst.turn_steer_request(7, 2, "thread-1", "turn-1", images=3)
    (steer,) = h.feed(steer_request, inst.turn_steer_response(7, 2, "turn-1"))
    params = steer["event_params"]
    assert params["result"] == "accepted"
    assert params["accepted_turn_id"] == "turn-1"
    assert params["rejection_reason"] is None
    assert params["num_input_images"] == 3
    assert params["created_at"] == steer_request["observed_at_ms"] // 1000
    assert "product_client_id" not in params
    (turn,) = h.feed(inst.resolved_config("turn-1"), inst.turn_completed("turn-1"))
    assert turn["event_params"]["steer_count"] == 1


def test_steer_never_creates_a_turn_and_is_not_counted_without_one(
    h: Harness, inst: Instance
) -> None:
    open_thread(h, inst)
    h.feed(inst.turn_steer_request(7, 2), inst.turn_steer_response(7, 2, "turn-1"))
    assert "turn-1" not in h.state.turns
    (turn,) = h.feed(*full_turn(inst))
    assert turn["event_params"]["steer_count"] == 0


def test_steer_counts_even_when_its_event_is_dropped(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    h.feed(inst.turn_start_request(7, 1), inst.turn_start_response(7, 1, "turn-1"))
    # The steer names a thread nobody initialized: the steer event is dropped...
    assert (
        h.feed(
            inst.turn_steer_request(7, 2, "thread-unknown"),
            inst.turn_steer_response(7, 2, "turn-1"),
        )
        == []
    )
    assert h.drop_reasons()[-1] is DropReason.STEER_MISSING_THREAD_METADATA
    # ...but the turn still counted it.
    (turn,) = h.feed(inst.resolved_config("turn-1"), inst.turn_completed("turn-1"))
    assert turn["event_params"]["steer_count"] == 1


@pytest.mark.parametrize(
    ("error_type", "reason"),
    [
        (None, None),
        ({"turn_steer": "no_active_turn"}, "no_active_turn"),
        ({"turn_steer": "expected_turn_mismatch"}, "expected_turn_mismatch"),
        ({"turn_steer": "non_steerable_review"}, "non_steerable_review"),
        ({"turn_steer": "non_steerable_compact"}, "non_steerable_compact"),
        ({"input": "empty"}, "empty_input"),
        ({"input": "too_large"}, "input_too_large"),
    ],
)
def test_rejected_steer_reason_map(
    h: Harness, inst: Instance, error_type: Any, reason: str | None
) -> None:
    open_thread(h, inst)
    (event,) = h.feed(inst.turn_steer_request(7, 2), inst.error_response(7, 2, error_type))
    params = event["event_params"]
    assert (params["result"], params["accepted_turn_id"], params["rejection_reason"]) == (
        "rejected",
        None,
        reason,
    )


def test_steer_uses_the_connection_that_answered_not_the_threads(
    h: Harness, inst: Instance
) -> None:
    h.feed(
        inst.initialize(1, client_name="thread-owner"),
        inst.thread_response(1, "thread-1"),
        inst.initialize(2, client_name="steerer"),
    )
    (event,) = h.feed(
        inst.turn_steer_request(2, 2), inst.error_response(2, 2, {"turn_steer": "no_active_turn"})
    )
    assert event["event_params"]["app_server_client"]["client_name"] == "steerer"


def test_steer_on_unknown_connection_is_silent(h: Harness, inst: Instance) -> None:
    h.feed(inst.initialize(1), inst.thread_response(1, "thread-1"))
    assert h.feed(inst.turn_steer_request(5, 2), inst.turn_steer_response(5, 2, "turn-1")) == []
    assert h.drop_reasons() == [DropReason.STEER_UNKNOWN_CONNECTION]
    assert not DropReason.STEER_UNKNOWN_CONNECTION.logged


# -- 3.7 subagent threads -----------------------------------------------------------------------


def test_subagent_thread_needs_no_initialize_and_records_no_metadata(
    h: Harness, inst: Instance
) -> None:
    (event,) = h.feed(
        inst.subagent_thread_started("thread-sub", subagent_source={"other": "guardian"})
    )
    params = event["event_params"]
    assert params["app_server_client"]["rpc_transport"] == "in_process"
    assert params["app_server_client"]["experimental_api_enabled"] is None
    assert params["runtime"]["runtime_os"] == "macos"  # source.runtime
    assert (params["thread_source"], params["initialization_mode"], params["subagent_source"]) == (
        "subagent",
        "new",
        "guardian",
    )
    assert h.state.threads == {}
    assert h.feed(inst.compaction("thread-sub")) == []


def test_subagent_explicit_parent_wins_over_spawn_parent(h: Harness, inst: Instance) -> None:
    spawn = {
        "thread_spawn": {"parent_thread_id": "11111111-1111-1111-1111-111111111111", "depth": 1}
    }
    (a,) = h.feed(inst.subagent_thread_started(subagent_source=spawn, parent_thread_id="explicit"))
    (b,) = h.feed(inst.subagent_thread_started(subagent_source=spawn))
    (c,) = h.feed(inst.subagent_thread_started(subagent_source="compact"))
    assert a["event_params"]["parent_thread_id"] == "explicit"
    assert b["event_params"]["parent_thread_id"] == "11111111-1111-1111-1111-111111111111"
    assert c["event_params"]["parent_thread_id"] is None


# -- 3.10 / 3.11 guardian and compaction ------------------------------------------------------------


def test_guardian_review_flattens_params_after_client_and_runtime(
    h: Harness, inst: Instance
) -> None:
    open_thread(h, inst)
    fact = inst.guardian_review()
    (event,) = h.feed(fact)
    keys = list(event["event_params"])
    assert keys[:2] == ["app_server_client", "runtime"]
    assert keys[2:] == list(fact["payload"])
    assert event["event_params"]["reviewed_action"] == fact["payload"]["reviewed_action"]


def test_guardian_review_drops(h: Harness, inst: Instance) -> None:
    assert h.feed(inst.guardian_review("thread-1")) == []
    assert h.drop_reasons() == [DropReason.GUARDIAN_MISSING_THREAD_CONNECTION]
    assert (
        DropReason.GUARDIAN_MISSING_THREAD_CONNECTION.message
        == "dropping guardian analytics event: missing thread connection metadata"
    )
    drop = h.reductions[-1].drops[0]
    assert dict(drop.ids) == {"thread_id": "thread-1", "turn_id": "turn-1", "review_id": "review-1"}


def test_compaction_event_copies_fact_and_thread_context(h: Harness, inst: Instance) -> None:
    open_thread(h, inst, source={"subAgent": "review"})
    fact = inst.compaction()
    (event,) = h.feed(fact)
    params = event["event_params"]
    assert list(params)[:7] == [
        "thread_id",
        "turn_id",
        "app_server_client",
        "runtime",
        "thread_source",
        "subagent_source",
        "parent_thread_id",
    ]
    for key, value in fact["payload"].items():
        assert params[key] == value
    assert params["subagent_source"] == "review"


def test_compaction_without_thread_is_dropped_with_warning(h: Harness, inst: Instance) -> None:
    h.feed(inst.initialize(7))
    assert h.feed(inst.compaction("thread-1")) == []
    assert h.drop_reasons() == [DropReason.COMPACTION_MISSING_THREAD_CONNECTION]
    assert DropReason.COMPACTION_MISSING_THREAD_CONNECTION.logged


# -- 3.7 stateless facts ------------------------------------------------------------------------


def test_skill_invocations_one_event_each_in_order_with_skill_ids(
    h: Harness, inst: Instance
) -> None:
    events = h.feed(
        inst.skill_invoked(
            skill("doc"),
            skill(
                "lint",
                scope="repo",
                path="/repo/root/.codex/skills/doc/SKILL.md",
                repo_root="/repo/root/",
                repo_url="https://example.com/repo.git",
                invocation_type="implicit",
            ),
        )
    )
    assert [e["skill_name"] for e in events] == ["doc", "lint"]
    assert list(events[0]) == ["event_type", "skill_id", "skill_name", "event_params"]
    expected = hashlib.sha1(
        b"repo_https://example.com/repo.git_.codex/skills/doc/SKILL.md_lint"
    ).hexdigest()
    assert events[1]["skill_id"] == expected
    assert events[1]["event_params"]["repo_url"] == "https://example.com/repo.git"
    assert events[0]["event_params"]["product_client_id"] == "codex_cli_rs"  # source.originator


def test_empty_lists_emit_nothing(h: Harness, inst: Instance) -> None:
    assert h.feed(inst.skill_invoked(), inst.app_mentioned()) == []


def test_app_mentions_and_app_used(h: Harness, inst: Instance) -> None:
    events = h.feed(
        inst.app_mentioned(app("calendar", "Calendar", "explicit"), app(None, None, None)),
        inst.app_used(None),
    )
    assert types(events) == ["codex_app_mentioned", "codex_app_mentioned", "codex_app_used"]
    assert events[1]["event_params"]["connector_id"] is None
    # Upstream's reducer does no dedupe (reducer.md §6): with ours off, repeats emit.
    plain = Harness(dedupe=False)
    assert types(plain.feed(inst.app_used("drive"), inst.app_used("drive"))) == [
        "codex_app_used",
        "codex_app_used",
    ]


# -- windowed dedupe (design.md §5) ----------------------------------------------------------------


def test_app_used_is_emitted_once_per_turn_and_connector(h: Harness, inst: Instance) -> None:
    events = h.feed(
        inst.app_used("drive", turn_id="t1"),
        inst.app_used("drive", turn_id="t1"),
        inst.app_used("calendar", turn_id="t1"),
        inst.app_used("drive", turn_id="t2"),
        inst.app_used("drive", turn_id="t1"),
    )
    assert [(e["event_params"]["turn_id"], e["event_params"]["connector_id"]) for e in events] == [
        ("t1", "drive"),
        ("t1", "calendar"),
        ("t2", "drive"),
    ]
    assert h.reducer.stats.drops["dedupe_repeat"] == 2


def test_app_without_connector_always_passes(h: Harness, inst: Instance) -> None:
    assert len(h.feed(inst.app_used(None), inst.app_used(None), inst.app_used(None))) == 3


def test_plugin_used_dedupes_on_the_local_key_even_with_a_remote_id(
    h: Harness, inst: Instance
) -> None:
    events = h.feed(
        inst.plugin_used("linear@chatgpt-global"),
        inst.plugin_used("linear@chatgpt-global", remote_plugin_id="plugins~Plugin_linear"),
        inst.plugin_used("linear@other"),
        inst.plugin_used("linear@chatgpt-global", turn_id="turn-2"),
    )
    assert [e["event_params"]["plugin_id"] for e in events] == [
        "linear@chatgpt-global",
        "linear@other",
        "linear@chatgpt-global",
    ]


def test_app_and_plugin_keys_do_not_collide(h: Harness, inst: Instance) -> None:
    assert len(h.feed(inst.app_used("sample@test"), inst.plugin_used("sample@test"))) == 2


def test_dedupe_window_reopens_after_the_horizon_and_purges() -> None:
    minute = 60_000
    h = Harness(dedupe_horizon_ms=10 * minute)
    inst = Instance(step_ms=minute)
    assert len(h.feed(inst.app_used("drive"), inst.app_used("drive"))) == 1
    assert len(h.state.dedupe) == 1
    later = inst.fact(
        "app_used", inst.app_used("drive")["payload"], at_ms=inst.now_ms + 11 * minute
    )
    assert len(h.feed(later)) == 1  # the window has passed: emitted again
    # Keys older than the window are purged by the sweep.
    h.feed(inst.fact("hook_run", inst.hook_run()["payload"], at_ms=inst.now_ms + 30 * minute))
    assert h.state.dedupe == {}
    assert h.reducer.stats.expired["dedupe_keys"] >= 1


def test_dedupe_survives_save_and_restore(h: Harness, inst: Instance) -> None:
    h.feed(inst.plugin_used())
    h.state = InstanceState.from_bytes(h.state.to_bytes())
    assert h.feed(inst.plugin_used()) == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("running", "failed"),
        ("completed", "completed"),
        ("failed", "failed"),
        ("blocked", "blocked"),
        ("stopped", "stopped"),
    ],
)
def test_hook_status(h: Harness, inst: Instance, status: str, expected: str) -> None:
    (event,) = h.feed(
        inst.hook_run(status, event_name="PreCompact", hook_source="legacy_managed_config_mdm")
    )
    assert event["event_params"] == {
        "thread_id": "thread-1",
        "turn_id": "turn-1",
        "model_slug": "gpt-5",
        "hook_name": "PreCompact",
        "hook_source": "legacy_managed_config_mdm",
        "status": expected,
    }


@pytest.mark.parametrize("state", ["installed", "uninstalled", "enabled", "disabled"])
def test_plugin_state_events(h: Harness, inst: Instance, state: str) -> None:
    (event,) = h.feed(inst.plugin_state(state))
    assert event == {
        "event_type": f"codex_plugin_{state}",
        "event_params": {
            "plugin_id": "sample@test",
            "plugin_name": "sample",
            "marketplace_name": "test",
            "has_skills": True,
            "mcp_server_count": 2,
            "connector_ids": ["calendar", "drive"],
            "product_client_id": "codex_cli_rs",
        },
    }


def test_plugin_remote_id_override_and_no_summary(h: Harness, inst: Instance) -> None:
    (event,) = h.feed(
        inst.plugin_used(
            "linear@chatgpt-global", remote_plugin_id="plugins~Plugin_linear", summary=None
        )
    )
    params = event["event_params"]
    assert (params["plugin_id"], params["plugin_name"], params["marketplace_name"]) == (
        "plugins~Plugin_linear",
        "linear",
        "chatgpt-global",
    )
    for key in ("has_skills", "mcp_server_count", "connector_ids", "mcp_server_names"):
        assert params[key] is None
    assert list(params)[-4:] == ["mcp_server_names", "thread_id", "turn_id", "model_slug"]


def test_plugin_key_splits_at_last_at_sign(h: Harness, inst: Instance) -> None:
    (event,) = h.feed(inst.plugin_state("enabled", "my@plugin@market"))
    params = event["event_params"]
    assert (params["plugin_name"], params["marketplace_name"]) == ("my@plugin", "market")


# -- idempotence and expiry ------------------------------------------------------------------------


def test_duplicate_and_old_seq_are_ignored_and_counted(h: Harness, inst: Instance) -> None:
    first = inst.hook_run()
    second = inst.hook_run()
    assert len(h.feed(first, second)) == 2
    assert h.feed(second, first) == []
    assert h.drop_reasons() == [DropReason.DUPLICATE_SEQ, DropReason.DUPLICATE_SEQ]
    assert h.reducer.stats.drops["duplicate_seq"] == 2
    assert all(r.duplicate for r in h.reductions[2:])


def test_idle_state_expires_after_horizon_and_is_counted() -> None:
    hour = 3600 * 1000
    h = Harness(horizon_ms=hour)
    inst = Instance(step_ms=1000)
    h.feed(
        inst.initialize(7),
        inst.thread_response(7, "thread-1"),
        inst.turn_start_request(7, 1),
        inst.turn_started("turn-9"),
    )
    assert (
        len(h.state.connections),
        len(h.state.threads),
        len(h.state.requests),
        len(h.state.turns),
    ) == (1, 1, 1, 1)
    h.feed(
        inst.fact(
            "hook_run",
            {
                "tracking": {"model_slug": "m", "thread_id": "x", "turn_id": "y"},
                "hook": {"event_name": "Stop", "hook_source": "user", "status": "completed"},
            },
            at_ms=inst.now_ms + 2 * hour,
        )
    )
    assert h.state.is_empty
    assert h.reducer.stats.expired == {"requests": 1, "turns": 1, "threads": 1, "connections": 1}
    # An expired thread is unknown again.
    assert h.feed(inst.compaction("thread-1")) == []


def test_active_state_is_kept_past_the_horizon_while_it_is_used() -> None:
    hour = 3600 * 1000
    h = Harness(horizon_ms=hour)
    inst = Instance(step_ms=20 * 60 * 1000)  # one fact every 20 minutes
    h.feed(inst.initialize(7), inst.thread_response(7, "thread-1"))
    for n in range(6):  # two hours of compactions keep the thread and connection alive
        assert types(h.feed(inst.compaction("thread-1", f"turn-{n}"))) == ["codex_compaction_event"]


def test_state_bytes_round_trip_mid_turn(h: Harness, inst: Instance) -> None:
    open_thread(h, inst)
    h.feed(*full_turn(inst)[:4], inst.turn_steer_request(7, 9))
    restored = InstanceState.from_bytes(h.state.to_bytes())
    assert restored == h.state
    assert restored.to_bytes() == h.state.to_bytes()


def test_corrupt_state_bytes_raise_value_error() -> None:
    with pytest.raises(ValueError, match="reducer state"):
        InstanceState.from_bytes(b'{"v": 99}')
    with pytest.raises(ValueError, match="corrupt"):
        InstanceState.from_bytes(b"\x00garbage")


def test_corrupt_compact_state_bytes_raise_value_error() -> None:
    with pytest.raises(ValueError, match="corrupt"):
        InstanceState.from_bytes(b"[5, 1, 2]")
    with pytest.raises(ValueError, match="corrupt"):
        InstanceState.from_bytes(b'[5, 1, 0, 0, [[1, ["x"], [], 0]], [], [], [], []]')
    with pytest.raises(ValueError, match="reducer state"):
        InstanceState.from_bytes(b"[6]")
