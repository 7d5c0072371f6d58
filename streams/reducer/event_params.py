"""Event params that the Profile S and Profile J rules build alike (upstream builds them
with one function for both)."""

from __future__ import annotations

from codex_analytics.contract.events import AppEventParams, AppServerClientMetadata
from codex_analytics.contract.facts import AppInvocation, TrackingContext


def app_event_params(
    tracking: TrackingContext, app: AppInvocation, product_client_id: str
) -> AppEventParams:
    """``codex_app_mentioned`` and ``codex_app_used`` params of one app of a turn."""
    return AppEventParams(
        connector_id=app.connector_id,
        thread_id=tracking.thread_id,
        turn_id=tracking.turn_id,
        app_name=app.app_name,
        product_client_id=product_client_id,
        invoke_type=app.invocation_type,
        model_slug=tracking.model_slug,
    )


def subagent_client(
    product_client_id: str, client_name: str, client_version: str
) -> AppServerClientMetadata:
    """A sub-agent thread's ``app_server_client``: its own ids, on the in-process
    transport, with no experimental-API flag."""
    return AppServerClientMetadata(
        product_client_id=product_client_id,
        client_name=client_name,
        client_version=client_version,
        rpc_transport="in_process",
        experimental_api_enabled=None,
    )
