"""Profile J session facts at the door (profile-j.md §2-§3): what the decoder accepts,
refuses and re-encodes, beyond the vectors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from codex_analytics.contract import DecodeError, decode_fact, encode_fact
from codex_analytics.contract.errors import DecodeReason

from .j_tool_facts import resolved_config_payload as resolved_config

RUNTIME = {
    "codex_rs_version": "0.1.0",
    "runtime_os": "macos",
    "runtime_os_version": "15.3.1",
    "runtime_arch": "aarch64",
}


def envelope(
    kind: str, payload: dict[str, Any], *, conn: int | None = None, contract: str = "2026-08"
) -> bytes:
    source = {"instance_id": "i", "originator": "o", "runtime": RUNTIME, "contract": contract}
    return orjson.dumps(
        {
            "envelope_version": 1,
            "fact_id": "f",
            "source": source,
            "seq": 1,
            "observed_at_ms": 1,
            "kind": kind,
            "connection_id": conn,
            "payload": payload,
        }
    )


def refused(data: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode_fact(data)
    return caught.value


INTERRUPT = {"request_id": 4, "turn_id": "turn-1", "requested_at_ms": 5}


@pytest.mark.parametrize("originator", ["absent", None, "app-1"])
def test_thread_originator_reencodes_as_sent(originator: Any) -> None:
    payload: dict[str, Any] = {"request_id": 1, "method": "turn/interrupt", "result": {}}
    if originator != "absent":
        payload["thread_originator"] = originator
    data = envelope("client_response", payload, conn=7)
    fact = decode_fact(data)
    assert fact.payload.thread_originator == (None if originator == "absent" else originator)  # type: ignore[union-attr]
    assert encode_fact(fact) == data


def test_the_interrupt_kind_is_profile_j_only() -> None:
    assert decode_fact(envelope("explicit_client_interrupt_request", INTERRUPT, conn=7))
    error = refused(
        envelope("explicit_client_interrupt_request", INTERRUPT, conn=7, contract="2026-06")
    )
    assert error.reason is DecodeReason.UNKNOWN_KIND
    # Connection-scoped: its envelope names the connection.
    assert refused(envelope("explicit_client_interrupt_request", INTERRUPT)).path == "connection_id"


def test_a_lifecycle_thread_needs_its_session_id() -> None:
    thread = {"id": "t", "ephemeral": False, "createdAt": 1}
    result = {"thread": thread, "model": "gpt-5"}
    payload = {"request_id": 1, "method": "thread/start", "result": result}
    error = refused(envelope("client_response", payload, conn=7))
    assert (error.reason, error.path) == (
        DecodeReason.MISSING_KEY,
        "payload.result.thread.sessionId",
    )


def test_turn_notifications_need_their_thread_id() -> None:
    params = {"turn": {"id": "turn-1", "status": "completed"}}
    error = refused(envelope("server_notification", {"method": "turn/completed", "params": params}))
    assert (error.reason, error.path) == (DecodeReason.MISSING_KEY, "payload.params.threadId")


@pytest.mark.parametrize(
    ("kind", "payload", "path", "reason"),
    [
        (
            "turn_codex_error",
            {
                "turn_id": "t",
                "thread_id": "th",
                "error": {"kind": "oops", "http_status_code": None},
            },
            "payload.error.kind",
            DecodeReason.UNKNOWN_ENUM_VALUE,
        ),
        (
            "turn_profile",
            {"turn_id": "t", "profile": {"sampling_ms": 1}},
            "payload.profile.before_first_sampling_ms",
            DecodeReason.MISSING_KEY,
        ),
        (
            "image_preparation",
            {
                "turn_id": "t",
                "metadata": {
                    "message_role": "user",
                    "item_id": None,
                    "effective_detail": "low",
                    "source_width": 1,
                    "source_height": 1,
                    "prepared_width": 1,
                    "prepared_height": 1,
                },
            },
            "payload.metadata.effective_detail",
            DecodeReason.UNKNOWN_ENUM_VALUE,
        ),
        (
            "subagent_thread_started",
            {"thread_id": "t", "parent_thread_id": None},
            "payload.session_id",
            DecodeReason.MISSING_KEY,
        ),
    ],
)
def test_bad_session_facts_name_their_field(
    kind: str, payload: dict[str, Any], path: str, reason: DecodeReason
) -> None:
    error = refused(envelope(kind, payload))
    assert (error.path, error.reason) == (path, reason)


def test_turn_resolved_config_reads_the_resolved_block() -> None:
    assert decode_fact(envelope("turn_resolved_config", resolved_config()))
    error = refused(envelope("turn_resolved_config", resolved_config(resolved="drop")))
    assert (error.reason, error.path) == (DecodeReason.MISSING_KEY, "payload.resolved")
    bad = resolved_config(resolved={"sandbox_policy": "read-only", "repo_hash": None})
    assert refused(envelope("turn_resolved_config", bad)).path == "payload.resolved.sandbox_policy"
    # Profile S's collaboration modes are not Profile J's.
    error = refused(envelope("turn_resolved_config", resolved_config(collaboration_mode="execute")))
    assert error.path == "payload.collaboration_mode"
