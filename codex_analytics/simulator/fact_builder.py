"""Wire-form fact envelopes (plain JSON objects), one builder per fact kind.

:class:`FactBuilder` plays one Codex process of contract ``2026-06`` (Profile S; its
sibling :class:`~codex_analytics.simulator.fact_builder_j.FactBuilderJ` plays one of
``2026-08``): it numbers its facts (``seq``), stamps them with its clock and fills every
field upstream would, so that the session generator, the tests and the benchmarks all
build facts the same way. The builders take
the fields the reducer reads as arguments and fill the rest with realistic values.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from typing import Any

from codex_analytics.contract.versions import ContractId
from producers.client.envelope import build_envelope

RUNTIME = {
    "codex_rs_version": "0.1.0",
    "runtime_os": "macos",
    "runtime_os_version": "15.3.1",
    "runtime_arch": "aarch64",
}
CONN_RUNTIME = {
    "codex_rs_version": "0.99.0",
    "runtime_os": "linux",
    "runtime_os_version": "24.04",
    "runtime_arch": "x86_64",
}
BASE_MS = 1_750_000_000_000
#: A fact envelope in wire form.
Fact = dict[str, Any]


class EnvelopeBuilder(ABC):
    """One simulated Codex process: numbers its facts and advances its clock; builds the
    facts whose payloads both contracts share. Each contract builds its own turn objects
    (the abstract methods)."""

    def __init__(
        self,
        instance_id: str = "inst-1",
        *,
        originator: str = "codex_cli_rs",
        step_ms: int = 1000,
        contract: ContractId | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.originator = originator
        self.seq = itertools.count(1)
        self.now_ms = BASE_MS
        self.step_ms = step_ms
        self.auth: dict[str, Any] | None = None
        #: ``source.contract``; None leaves the key out (a 2026-06 producer of old).
        self.contract = contract

    def fact(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        conn: int | None = None,
        at_ms: int | None = None,
    ) -> dict[str, Any]:
        seq = next(self.seq)
        self.now_ms = at_ms if at_ms is not None else self.now_ms + self.step_ms
        source: dict[str, Any] = {
            "instance_id": self.instance_id,
            "originator": self.originator,
            "runtime": dict(RUNTIME),
        }
        if self.auth is not None:
            source["auth"] = dict(self.auth)
        if self.contract is not None:
            source["contract"] = self.contract
        return build_envelope(
            source,
            seq=seq,
            fact_id=f"{self.instance_id}-{seq}",
            observed_at_ms=self.now_ms,
            kind=kind,
            connection_id=conn,
            payload=payload,
        )

    # -- connection-scoped ------------------------------------------------------------

    def initialize(
        self,
        conn: int = 7,
        *,
        client_name: str = "codex-tui",
        product_client_id: str = "codex-tui",
        capabilities: Any = "absent",
        rpc_transport: str = "stdio",
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "clientInfo": {"name": client_name, "title": None, "version": "1.0.0"}
        }
        if capabilities != "absent":
            params["capabilities"] = capabilities
        return self.fact(
            "initialize",
            {
                "params": params,
                "product_client_id": product_client_id,
                "runtime": dict(CONN_RUNTIME),
                "rpc_transport": rpc_transport,
            },
            conn=conn,
        )

    def request(
        self,
        conn: int,
        request_id: int | str,
        method: str,
        params: dict[str, Any],
        *,
        kind: str = "client_request",
    ) -> dict[str, Any]:
        """A JSON-RPC request of the client (or, as ``kind="server_request"``, of the
        app-server) on connection ``conn``."""
        return self.fact(
            kind, {"request_id": request_id, "method": method, "params": params}, conn=conn
        )

    def turn_start_request(
        self,
        conn: int = 7,
        request_id: int | str = 1,
        thread_id: str = "thread-1",
        *,
        images: int = 0,
    ) -> dict[str, Any]:
        return self.request(
            conn, request_id, "turn/start", {"threadId": thread_id, "input": _inputs(images)}
        )

    def turn_steer_request(
        self,
        conn: int = 7,
        request_id: int | str = 2,
        thread_id: str = "thread-1",
        expected_turn_id: str = "turn-1",
        *,
        images: int = 0,
    ) -> dict[str, Any]:
        return self.request(
            conn,
            request_id,
            "turn/steer",
            {"threadId": thread_id, "expectedTurnId": expected_turn_id, "input": _inputs(images)},
        )

    def error_response(
        self, conn: int = 7, request_id: int | str = 2, error_type: Any = None
    ) -> dict[str, Any]:
        return self.fact(
            "error_response",
            {
                "request_id": request_id,
                "error": {"code": -32600, "message": "rejected", "data": None},
                "error_type": error_type,
            },
            conn=conn,
        )

    def response(
        self, conn: int, request_id: int | str, method: str, result: dict[str, Any]
    ) -> dict[str, Any]:
        return self.fact(
            "client_response",
            {"request_id": request_id, "method": method, "result": result},
            conn=conn,
        )

    def turn_steer_response(
        self, conn: int = 7, request_id: int | str = 2, turn_id: str = "turn-1"
    ) -> dict[str, Any]:
        return self.response(conn, request_id, "turn/steer", {"turnId": turn_id})

    @abstractmethod
    def turn_start_response(self, conn: int, request_id: int | str, turn_id: str) -> Fact: ...

    @abstractmethod
    def turn_started(self, turn_id: str, thread_id: str, *, started_at: Any) -> Fact: ...

    @abstractmethod
    def turn_completed(
        self,
        turn_id: str,
        thread_id: str,
        *,
        status: str,
        error_info: Any,
        completed_at: Any,
        duration_ms: Any,
    ) -> Fact: ...

    # -- custom facts both contracts share (their tracking and plugin objects differ) --

    def tracked_fact(self, kind: str, thread_id: str, turn_id: str, **body: Any) -> Fact:
        """A custom fact of a turn: its ``tracking`` object, then ``body``."""
        return self.fact(kind, {"tracking": self.tracking(thread_id, turn_id), **body})

    def tracking(self, thread_id: str, turn_id: str, model_slug: str = "gpt-5") -> dict[str, Any]:
        """The ``tracking`` object of this contract's custom facts."""
        return tracking(thread_id, turn_id, model_slug)

    def plugin(
        self, plugin_id: str | None, remote_plugin_id: str | None, summary: Any
    ) -> dict[str, Any]:
        """The ``plugin`` object (``PluginTelemetryMetadata``) of this contract."""
        return plugin(plugin_id, remote_plugin_id, summary)

    def skill_invoked(
        self, *invocations: dict[str, Any], turn_id: str = "turn-1", thread_id: str = "thread-1"
    ) -> dict[str, Any]:
        return self.tracked_fact("skill_invoked", thread_id, turn_id, invocations=list(invocations))

    def app_mentioned(
        self, *mentions: dict[str, Any], turn_id: str = "turn-1", thread_id: str = "thread-1"
    ) -> dict[str, Any]:
        return self.tracked_fact("app_mentioned", thread_id, turn_id, mentions=list(mentions))

    def app_used(
        self,
        connector_id: str | None = "drive",
        *,
        turn_id: str = "turn-1",
        thread_id: str = "thread-1",
        app_name: str | None = "Google Drive",
    ) -> dict[str, Any]:
        return self.tracked_fact("app_used", thread_id, turn_id, app=app(connector_id, app_name))

    def hook_run(
        self,
        status: str = "completed",
        *,
        event_name: str = "PreToolUse",
        hook_source: str = "user",
        turn_id: str = "turn-1",
        thread_id: str = "thread-1",
    ) -> dict[str, Any]:
        return self.tracked_fact(
            "hook_run",
            thread_id,
            turn_id,
            hook={"event_name": event_name, "hook_source": hook_source, "status": status},
        )

    def plugin_used(
        self,
        plugin_id: str | None = "sample@test",
        *,
        remote_plugin_id: str | None = None,
        summary: Any = "default",
        turn_id: str = "turn-1",
        thread_id: str = "thread-1",
    ) -> dict[str, Any]:
        return self.tracked_fact(
            "plugin_used",
            thread_id,
            turn_id,
            plugin=self.plugin(plugin_id, remote_plugin_id, summary),
        )

    def plugin_state(
        self,
        state: str,
        plugin_id: str | None = "sample@test",
        *,
        remote_plugin_id: str | None = None,
        summary: Any = "default",
    ) -> dict[str, Any]:
        return self.fact(
            "plugin_state_changed",
            {"plugin": self.plugin(plugin_id, remote_plugin_id, summary), "state": state},
        )


class FactBuilder(EnvelopeBuilder):
    """The payloads of Profile S (contract ``2026-06``, no ``source.contract``)."""

    def thread_response(
        self,
        conn: int = 7,
        thread_id: str = "thread-1",
        *,
        method: str = "thread/start",
        source: Any = "cli",
        ephemeral: bool = False,
        created_at: int = 1,
        model: str = "gpt-5",
        request_id: int | str = 100,
    ) -> dict[str, Any]:
        thread = app_server_thread(
            thread_id, source=source, ephemeral=ephemeral, created_at=created_at
        )
        return self.response(
            conn, request_id, method, {"thread": thread, "model": model, "modelProvider": "openai"}
        )

    def turn_start_response(
        self, conn: int = 7, request_id: int | str = 1, turn_id: str = "turn-1"
    ) -> dict[str, Any]:
        turn: dict[str, Any] = {"id": turn_id, "items": [], "status": "inProgress", "error": None}
        return self.response(conn, request_id, "turn/start", {"turn": turn})

    def turn_started(
        self, turn_id: str = "turn-1", thread_id: str = "thread-1", *, started_at: Any = 455
    ) -> dict[str, Any]:
        turn: dict[str, Any] = {"id": turn_id, "items": [], "status": "inProgress", "error": None}
        if started_at != "absent":
            turn["startedAt"] = started_at
        return self.fact(
            "server_notification",
            {"method": "turn/started", "params": {"threadId": thread_id, "turn": turn}},
        )

    def turn_completed(
        self,
        turn_id: str = "turn-1",
        thread_id: str = "thread-1",
        *,
        status: str = "completed",
        error_info: Any = "no-error",
        completed_at: Any = 456,
        duration_ms: Any = 1234,
    ) -> dict[str, Any]:
        turn: dict[str, Any] = {"id": turn_id, "items": [], "status": status}
        turn["error"] = turn_error(error_info)
        if completed_at != "absent":
            turn["completedAt"] = completed_at
        if duration_ms != "absent":
            turn["durationMs"] = duration_ms
        return self.fact(
            "server_notification",
            {"method": "turn/completed", "params": {"threadId": thread_id, "turn": turn}},
        )

    # -- custom facts -----------------------------------------------------------------------

    def resolved_config(
        self, turn_id: str = "turn-1", thread_id: str = "thread-1", **overrides: Any
    ) -> dict[str, Any]:
        payload = {
            "turn_id": turn_id,
            "thread_id": thread_id,
            "num_input_images": 1,
            "submission_type": None,
            "ephemeral": False,
            "session_source": "cli",
            "model": "gpt-5",
            "model_provider": "openai",
            "sandbox_policy": {"type": "read-only"},
            "reasoning_effort": None,
            "reasoning_summary": None,
            "service_tier": None,
            "approval_policy": "on-request",
            "approvals_reviewer": "guardian_subagent",
            "sandbox_network_access": True,
            "collaboration_mode": "plan",
            "personality": None,
            "is_first_turn": True,
        }
        payload.update(overrides)
        return self.fact("turn_resolved_config", payload)

    def token_usage(
        self, turn_id: str = "turn-1", thread_id: str = "thread-1", *, total: int = 321
    ) -> dict[str, Any]:
        usage = token_counts(total)
        return self.fact(
            "turn_token_usage", {"turn_id": turn_id, "thread_id": thread_id, "token_usage": usage}
        )

    def subagent_thread_started(
        self,
        thread_id: str = "thread-sub",
        *,
        subagent_source: Any = "review",
        parent_thread_id: str | None = None,
    ) -> dict[str, Any]:
        return self.fact(
            "subagent_thread_started",
            subagent(thread_id, subagent_source, parent_thread_id, ephemeral=True, created_at=124),
        )

    def guardian_review(
        self, thread_id: str = "thread-1", turn_id: str = "turn-1", review_id: str = "review-1"
    ) -> dict[str, Any]:
        return self.fact(
            "guardian_review",
            {
                "thread_id": thread_id,
                "turn_id": turn_id,
                "review_id": review_id,
                "target_item_id": "item-1",
                "approval_request_source": "main_turn",
                "reviewed_action": {"type": "apply_patch", "cwd": "/tmp", "files": ["a.txt"]},
                "decision": "approved",
                "started_at": 1000,
                "completed_at": 1001,
            },
        )

    def compaction(self, thread_id: str = "thread-1", turn_id: str = "turn-c") -> dict[str, Any]:
        return self.fact(
            "compaction",
            {
                "thread_id": thread_id,
                "turn_id": turn_id,
                "trigger": "auto",
                "reason": "context_limit",
                "implementation": "responses_compact",
                "phase": "mid_turn",
                "strategy": "memento",
                "status": "completed",
                "error": None,
                "active_context_tokens_before": 120000,
                "active_context_tokens_after": 30000,
                "started_at": 100,
                "completed_at": 101,
                "duration_ms": 900,
            },
        )


def with_keys_after(obj: dict[str, Any], after: str, **keys: Any) -> dict[str, Any]:
    """``obj`` with ``keys`` right after its key ``after``: a later contract's object that
    adds keys to an earlier one's, in its wire order."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out[key] = value
        if key == after:
            out |= keys
    return out


def app_server_thread(
    thread_id: str,
    *,
    source: Any,
    ephemeral: bool,
    created_at: int,
    forked_from_id: str | None = None,
) -> dict[str, Any]:
    """An app-server ``Thread`` (v2) as ``2026-06`` has it."""
    return {
        "id": thread_id,
        "forkedFromId": forked_from_id,
        "preview": "first prompt",
        "ephemeral": ephemeral,
        "modelProvider": "openai",
        "createdAt": created_at,
        "updatedAt": created_at + 1,
        "status": {"type": "idle"},
        "path": None,
        "cwd": "/tmp",
        "cliVersion": "0.0.0",
        "source": source,
        "agentNickname": None,
        "agentRole": None,
        "gitInfo": None,
        "name": None,
        "turns": [],
    }


def subagent(
    thread_id: str,
    subagent_source: Any,
    parent_thread_id: str | None,
    *,
    ephemeral: bool,
    created_at: int,
) -> dict[str, Any]:
    """A ``subagent_thread_started`` payload as ``2026-06`` has it."""
    return {
        "thread_id": thread_id,
        "parent_thread_id": parent_thread_id,
        "product_client_id": "codex-tui",
        "client_name": "codex-tui",
        "client_version": "1.0.0",
        "model": "gpt-5",
        "ephemeral": ephemeral,
        "subagent_source": subagent_source,
        "created_at": created_at,
    }


def token_counts(total: int) -> dict[str, Any]:
    """A turn's ``token_usage`` as ``2026-06`` has it."""
    return {
        "input_tokens": 123,
        "cached_input_tokens": 45,
        "output_tokens": 140,
        "reasoning_output_tokens": 13,
        "total_tokens": total,
    }


def tracking(
    thread_id: str = "thread-1", turn_id: str = "turn-1", model_slug: str = "gpt-5"
) -> dict[str, Any]:
    return {"model_slug": model_slug, "thread_id": thread_id, "turn_id": turn_id}


def app(
    connector_id: str | None = "drive",
    app_name: str | None = "Google Drive",
    invocation_type: str | None = "implicit",
) -> dict[str, Any]:
    return {"connector_id": connector_id, "app_name": app_name, "invocation_type": invocation_type}


def skill(
    name: str = "doc",
    *,
    scope: str = "user",
    path: str = "/Users/abc/.codex/skills/doc/SKILL.md",
    repo_root: str | None = None,
    repo_url: str | None = None,
    invocation_type: str = "explicit",
    **plugin_ids: str | None,
) -> dict[str, Any]:
    """A ``SkillInvocation``; Profile J names the skill's plugin after its path
    (``plugin_ids``: ``plugin_id`` and ``remote_plugin_id``, see :func:`~codex_analytics.simulator.fact_builder_j.skill_j`)."""
    return {
        "skill_name": name,
        "skill_scope": scope,
        "skill_path": path,
        **plugin_ids,
        "invocation_type": invocation_type,
        "resolved": {"canonical_skill_path": path, "repo_root": repo_root, "repo_url": repo_url},
    }


def plugin(
    plugin_id: str | None = "sample@test",
    remote_plugin_id: str | None = None,
    summary: Any = "default",
    *,
    namespaced: bool = False,
) -> dict[str, Any]:
    """A ``PluginTelemetryMetadata``; a ``"default"`` summary is made from the plugin id
    (Profile J: ``namespaced``, the summary names its ``plugin_namespace``, and the id may
    be null)."""
    if summary == "default":
        key = plugin_id or "unknown@unknown"
        summary = {"config_name": key, "display_name": key.rpartition("@")[0]}
        if namespaced:
            summary["plugin_namespace"] = None
        summary |= {
            "description": None,
            "has_skills": True,
            "mcp_server_names": ["mcp-1", "mcp-2"],
            "app_connector_ids": ["calendar", "drive"],
        }
    return {
        "plugin_id": plugin_id,
        "remote_plugin_id": remote_plugin_id,
        "capability_summary": summary,
    }


def turn_error(error_info: Any) -> dict[str, Any] | None:
    """A turn's ``error``: none for ``"no-error"``, else one with ``error_info`` as its
    ``codexErrorInfo``."""
    if error_info == "no-error":
        return None
    return {"message": "boom", "codexErrorInfo": error_info, "additionalDetails": None}


def _inputs(images: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"type": "text", "text": "hello", "text_elements": []}]
    for i in range(images):
        items.append(
            {"type": "image", "url": f"https://x/{i}.png"}
            if i % 2 == 0
            else {"type": "localImage", "path": f"/tmp/{i}.png"}
        )
    return items
