"""Drive a client with wire-form facts: each fact becomes the ``track_*`` call that makes
it. Lets the generator's realistic sessions run through the real client library (the
benchmarks, the demo, the smoke workflow)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from producers.client.analytics_client import TrackCalls

_PLUGIN_STATES: dict[str, Callable[[TrackCalls, Any], bool]] = {
    "installed": TrackCalls.track_plugin_installed,
    "uninstalled": TrackCalls.track_plugin_uninstalled,
    "enabled": TrackCalls.track_plugin_enabled,
    "disabled": TrackCalls.track_plugin_disabled,
}


def track_fact(client: TrackCalls, fact: Mapping[str, Any]) -> bool:
    """Make the ``track_*`` call that records ``fact``'s kind and payload (the client
    stamps its own identity, seq and time). Returns what the call returned."""
    kind, p, conn = fact["kind"], fact["payload"], fact["connection_id"]
    if kind == "initialize":
        return client.track_initialize(
            conn, p["params"], p["product_client_id"], p["rpc_transport"], runtime=p["runtime"]
        )
    if kind == "client_request":
        return client.track_request(conn, p["request_id"], p["method"], p["params"])
    if kind == "client_response":
        return client.track_response(conn, p["request_id"], p["method"], p["result"])
    if kind == "error_response":
        return client.track_error_response(conn, p["request_id"], p["error"], p["error_type"])
    if kind == "server_notification":
        return client.track_notification(p["method"], p["params"])
    if kind == "skill_invoked":
        return client.track_skill_invocations(p["tracking"], p["invocations"])
    if kind == "app_mentioned":
        return client.track_app_mentioned(p["tracking"], p["mentions"])
    if kind == "app_used":
        return client.track_app_used(p["tracking"], p["app"])
    if kind == "hook_run":
        return client.track_hook_run(p["tracking"], p["hook"])
    if kind == "plugin_used":
        return client.track_plugin_used(p["tracking"], p["plugin"])
    if kind == "plugin_state_changed":
        return _PLUGIN_STATES[p["state"]](client, p["plugin"])
    single: dict[str, Callable[[TrackCalls, Any], bool]] = {
        "subagent_thread_started": TrackCalls.track_subagent_thread_started,
        "guardian_review": TrackCalls.track_guardian_review,
        "compaction": TrackCalls.track_compaction,
        "turn_resolved_config": TrackCalls.track_turn_resolved_config,
        "turn_token_usage": TrackCalls.track_turn_token_usage,
    }
    return single[kind](client, p)
