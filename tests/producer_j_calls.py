"""Profile J track calls for the client's tests: the call that makes each worked
example's fact (``tests/data/spec_vectors_j.jsonl``) from its parts, and the calls of the
kinds no worked example has, with the payload profile-j.md §3 gives them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from producers import TrackCalls

VECTORS = Path(__file__).parent / "data" / "spec_vectors_j.jsonl"
Call = Callable[[TrackCalls], bool]


def vector_facts() -> list[dict[str, Any]]:
    facts: list[dict[str, Any]] = []
    for line in VECTORS.read_bytes().splitlines():
        facts.extend(orjson.loads(line)["facts"])
    return facts


def call_for(fact: Mapping[str, Any]) -> Call:
    """The track call that makes ``fact`` (a worked example's fact) from its parts."""
    kind, conn, p = fact["kind"], fact["connection_id"], fact["payload"]
    calls: dict[str, Call] = {
        "initialize": lambda c: c.track_initialize(
            conn, p["params"], p["product_client_id"], p["rpc_transport"], p["runtime"]
        ),
        "client_request": lambda c: c.track_request(
            conn, p["request_id"], p["method"], p["params"]
        ),
        "client_response": lambda c: (
            c.track_response(conn, p["request_id"], p["method"], p["result"])
            if p["thread_originator"] is None
            else c.track_response_with_thread_originator(
                conn, p["request_id"], p["method"], p["result"], p["thread_originator"]
            )
        ),
        "error_response": lambda c: c.track_error_response(
            conn, p["request_id"], p["error"], p["error_type"]
        ),
        "server_notification": lambda c: c.track_notification(p["method"], p["params"]),
        "subagent_thread_started": lambda c: c.track_subagent_thread_started(p),
        "guardian_review": lambda c: c.track_guardian_review(p),
        "compaction": lambda c: c.track_compaction(p),
        "turn_resolved_config": lambda c: c.track_turn_resolved_config(p),
        "turn_token_usage": lambda c: c.track_turn_token_usage(p),
        "turn_profile": lambda c: c.track_turn_profile(p),
        "goal": lambda c: c.track_goal_event(p),
        "code_mode_tool_call": lambda c: c.track_code_mode_tool_call(p),
        "skill_invoked": lambda c: c.track_skill_invocations(p["tracking"], p["invocations"]),
        "hook_run": lambda c: c.track_hook_run(p["tracking"], p["hook"]),
        "plugin_used": lambda c: c.track_plugin_used(p["tracking"], p["plugin"]),
        "plugin_state_changed": lambda c: getattr(c, f"track_plugin_{p['state']}")(p["plugin"]),
        "plugin_install_failed": lambda c: c.track_plugin_install_failed(
            p["plugin"], p["source"], p["error_type"], p["sub_error_type"]
        ),
        "external_agent_config_import_completed": (
            lambda c: c.track_external_agent_config_import_completed(p)
        ),
        "external_agent_config_import_failure": (
            lambda c: c.track_external_agent_config_import_failure(p)
        ),
        "server_request": lambda c: c.track_server_request(
            conn, p["request_id"], p["method"], p["params"]
        ),
        "server_response": lambda c: c.track_server_response(
            p["completed_at_ms"], p["request_id"], p["method"], p["result"]
        ),
        "explicit_client_interrupt_request": lambda c: c.track_request(
            conn, p["request_id"], "turn/interrupt", {"threadId": "t", "turnId": p["turn_id"]}
        ),
    }
    return calls[kind]


#: Kinds no worked example has: (call, the payload the spec's §3 table gives it).
PERMISSIONS = {
    "permissions": {"network": {"enabled": True}, "file_system": None},
    "scope": "session",
}
TRACKING = {"model_slug": "gpt-5", "thread_id": "t-1", "turn_id": "u-1", "product_client_id": "x"}
INSTALL_REQUEST = {
    "suggestion_id": "s-1",
    "plugins": [
        {
            "plugin_id": "linear@openai-curated",
            "remote_plugin_id": None,
            "plugin_name": "linear",
            "connector_ids": ["c-1"],
        }
    ],
    "source": "endpoint_recommendation",
}
IMAGE = {
    "turn_id": "u-1",
    "metadata": {
        "message_role": "user",
        "item_id": "i-1",
        "effective_detail": "high",
        "source_width": 4000,
        "source_height": 3000,
        "prepared_width": 2048,
        "prepared_height": 1536,
    },
}
PROFILE_ONLY: list[tuple[str, Call, int | None, dict[str, Any]]] = [
    (
        "effective_permissions_approval_response",
        lambda c: c.track_effective_permissions_approval_response(9, 41, PERMISSIONS),
        None,
        {"completed_at_ms": 9, "request_id": 41, "response": PERMISSIONS},
    ),
    (
        "server_request_aborted",
        lambda c: c.track_server_request_aborted(10, "r-7"),
        None,
        {"completed_at_ms": 10, "request_id": "r-7"},
    ),
    (
        "turn_codex_error",
        lambda c: c.track_turn_codex_error(
            {
                "turn_id": "u-1",
                "thread_id": "t-1",
                "error": {"kind": "tool_collision", "http_status_code": None},
            }
        ),
        None,
        {
            "turn_id": "u-1",
            "thread_id": "t-1",
            "error": {"kind": "tool_collision", "http_status_code": None},
        },
    ),
    (
        "image_preparation",
        lambda c: c.track_image_preparation(IMAGE),
        None,
        IMAGE,
    ),
    (
        "plugin_install_requested",
        lambda c: c.track_plugin_install_requested(TRACKING, INSTALL_REQUEST),
        None,
        {"tracking": TRACKING, "request": INSTALL_REQUEST},
    ),
]
