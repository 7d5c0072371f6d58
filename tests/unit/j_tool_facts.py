"""Wire-form builders of Profile J (``2026-08``) facts for the tests: one instance, ``seq``
counted, app-server JSON as upstream sends it; the payloads other J tests share."""

from __future__ import annotations

from typing import Any

import orjson

from codex_analytics.contract import decode_fact
from codex_analytics.contract.facts import FactEnvelope
from tests import factories

CONNECTION = 7


class JInstance:
    """Builds one instance's facts, in order, decoded (the shared 2026-08 envelope)."""

    def __init__(self, instance_id: str = "inst-tools") -> None:
        self.envelopes = factories.JInstance(instance_id)

    @property
    def now_ms(self) -> int:
        return self.envelopes.now_ms

    def fact(
        self, kind: str, payload: Any, *, connection_id: int | None = None, step_ms: int = 1000
    ) -> FactEnvelope:
        envelope = self.envelopes.fact(
            kind, payload, conn=connection_id, at_ms=self.now_ms + step_ms
        )
        return decoded(envelope)

    # -- sessions (what the tool rules need around them) --------------------------------------

    def initialize(self) -> FactEnvelope:
        return decoded(
            self.envelopes.initialize(
                CONNECTION,
                product_client_id="codex_cli_rs",
                capabilities={"experimentalApi": False},
                rpc_transport="websocket",
            )
        )

    def thread_start(self, thread_id: str = "thread-1", request_id: int = 1) -> FactEnvelope:
        payload = thread_start_payload(thread_id, request_id=request_id)
        return self.fact("client_response", payload, connection_id=CONNECTION)

    def notification(self, method: str, params: dict[str, Any]) -> FactEnvelope:
        return decoded(self.envelopes.notification(method, params))

    def turn_started(self, thread_id: str = "thread-1", turn_id: str = "turn-1") -> FactEnvelope:
        turn = {"id": turn_id, "items": [], "status": "inProgress", "startedAt": 455}
        return self.notification("turn/started", {"threadId": thread_id, "turn": turn})

    def turn_completed(self, thread_id: str = "thread-1", turn_id: str = "turn-1") -> FactEnvelope:
        turn = {"id": turn_id, "items": [], "status": "completed", "completedAt": 456}
        return self.notification("turn/completed", {"threadId": thread_id, "turn": turn})

    # -- tool items ---------------------------------------------------------------------------

    def item_started(
        self,
        item: dict[str, Any],
        *,
        thread_id: str = "thread-1",
        turn_id: str = "turn-1",
        at_ms: int = 1000,
    ) -> FactEnvelope:
        return decoded(self.envelopes.item_started(thread_id, turn_id, item, started_at_ms=at_ms))

    def item_completed(
        self,
        item: dict[str, Any],
        *,
        thread_id: str = "thread-1",
        turn_id: str = "turn-1",
        at_ms: int = 1045,
    ) -> FactEnvelope:
        return decoded(
            self.envelopes.item_completed(thread_id, turn_id, item, completed_at_ms=at_ms)
        )

    # -- reviews ------------------------------------------------------------------------------

    def server_request(
        self, request_id: int | str, method: str, params: dict[str, Any]
    ) -> FactEnvelope:
        return decoded(self.envelopes.server_request(CONNECTION, request_id, method, params))

    def server_response(
        self, request_id: int | str, method: str, decision: Any, *, at_ms: int = 1042
    ) -> FactEnvelope:
        return decoded(
            self.envelopes.server_response(request_id, method, decision, completed_at_ms=at_ms)
        )

    def permissions_response(
        self, request_id: int | str, permissions: dict[str, Any], scope: str, *, at_ms: int = 1042
    ) -> FactEnvelope:
        return self.fact(
            "effective_permissions_approval_response",
            {
                "completed_at_ms": at_ms,
                "request_id": request_id,
                "response": {"permissions": permissions, "scope": scope},
            },
        )

    def aborted(self, request_id: int | str, *, at_ms: int = 1042) -> FactEnvelope:
        return decoded(self.envelopes.server_request_aborted(request_id, completed_at_ms=at_ms))

    def guardian_completed(
        self,
        action: dict[str, Any],
        status: str = "approved",
        *,
        target_item_id: str | None = "item-1",
        started_at_ms: int = 1000,
        completed_at_ms: int = 1030,
        thread_id: str = "thread-1",
        turn_id: str = "turn-1",
    ) -> FactEnvelope:
        return self.notification(
            "item/autoApprovalReview/completed",
            {
                "threadId": thread_id,
                "turnId": turn_id,
                "startedAtMs": started_at_ms,
                "completedAtMs": completed_at_ms,
                "reviewId": "guardian-1",
                "targetItemId": target_item_id,
                "decisionSource": "agent",
                "review": {"status": status, "riskLevel": None, "userAuthorization": None},
                "action": action,
            },
        )

    # -- code mode ----------------------------------------------------------------------------

    def code_mode(self, variant: str, **body: Any) -> FactEnvelope:
        return decoded(self.envelopes.code_mode(variant, **body))

    def sampling_response(
        self, response_id: str, tool_call_ids: list[str], *, turn_id: str = "turn-1"
    ) -> FactEnvelope:
        """The code-mode ``sampling_response_completed`` of a response of thread-1."""
        return self.code_mode(
            "sampling_response_completed",
            thread_id="thread-1",
            turn_id=turn_id,
            response_id=response_id,
            tool_call_ids=tool_call_ids,
        )

    def flush(self) -> FactEnvelope:
        return decoded(self.envelopes.flush())


def command_item(
    item_id: str = "item-1", status: str = "completed", **fields: Any
) -> dict[str, Any]:
    """A ``commandExecution`` ThreadItem (app-server v2 JSON)."""
    item: dict[str, Any] = {
        "type": "commandExecution",
        "id": item_id,
        "pluginId": None,
        "scriptPath": None,
        "command": "echo hi",
        "cwd": "/tmp",
        "processId": "pid-1",
        "source": "agent",
        "status": status,
        "commandActions": [],
        "aggregatedOutput": None,
        "exitCode": 0,
        "durationMs": 42,
    }
    item.update(fields)
    return item


def thread_start_payload(
    thread_id: str = "thread-1", *, request_id: int = 1, originator: str | None = None
) -> dict[str, Any]:
    """The ``client_response`` payload of a ``thread/start`` of a user thread."""
    thread = {
        "id": thread_id,
        "sessionId": f"session-{thread_id}",
        "forkedFromId": None,
        "parentThreadId": None,
        "ephemeral": False,
        "createdAt": 1,
        "source": "exec",
        "threadSource": "user",
    }
    return {
        "request_id": request_id,
        "method": "thread/start",
        "result": {"thread": thread, "model": "gpt-5"},
        "thread_originator": originator,
    }


def resolved_config_payload(
    turn_id: str = "turn-1", thread_id: str = "thread-1", **changes: Any
) -> dict[str, Any]:
    """The simulator's ``turn_resolved_config`` payload with the values these tests read;
    a change to ``"drop"`` leaves its key out."""
    values: dict[str, Any] = {
        "permission_profile": {"type": "disabled"},
        "approvals_reviewer": "user",
        "collaboration_mode": "default",
        "resolved": {"sandbox_policy": "full_access", "repo_hash": "repo-1"},
    }
    fact = factories.JInstance().resolved_config(turn_id, thread_id, **(values | changes))
    return {key: value for key, value in fact["payload"].items() if value != "drop"}


def decoded(envelope: dict[str, Any]) -> FactEnvelope:
    """A wire-form envelope as the stream decodes it."""
    return decode_fact(orjson.dumps(envelope))
