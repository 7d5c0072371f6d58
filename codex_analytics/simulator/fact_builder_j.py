"""Wire-form facts of contract ``2026-08`` (Profile J, ``shared/spec/profile-j.md``), one
builder per fact kind, shaped as the worked examples (``vectors-j.jsonl``) and upstream's
app-server protocol (v2, camelCase) for requests, responses and notifications.

:class:`FactBuilderJ` plays one Codex process that names ``source.contract = "2026-08"``.
Like its Profile S sibling it takes the fields the reducer reads as arguments and fills
the rest with realistic values (the app-server items of the tool kinds are in
:mod:`~codex_analytics.simulator.tool_items_j`).
"""

from __future__ import annotations

from typing import Any

from codex_analytics.contract.versions import CONTRACT_J
from codex_analytics.simulator.fact_builder import (
    BASE_MS,
    EnvelopeBuilder,
    app_server_thread,
    plugin,
    skill,
    subagent,
    token_counts,
    tracking,
    turn_error,
    with_keys_after,
)
from codex_analytics.simulator.tool_items_j import GUARDIAN_ACTIONS, REVIEWED_ACTIONS


class FactBuilderJ(EnvelopeBuilder):
    """One simulated Codex process of contract ``2026-08``."""

    def __init__(
        self,
        instance_id: str = "inst-j1",
        *,
        originator: str = "codex_cli_rs",
        step_ms: int = 1000,
        product_client_id: str = "codex_work_desktop",
    ) -> None:
        super().__init__(instance_id, originator=originator, step_ms=step_ms, contract=CONTRACT_J)
        self.now_ms = BASE_MS
        #: ``tracking.product_client_id`` of this process's custom facts.
        self.product_client_id = product_client_id

    def tracking(self, thread_id: str, turn_id: str, model_slug: str = "gpt-5") -> dict[str, Any]:
        return tracking_j(thread_id, turn_id, self.product_client_id, model_slug)

    def plugin(
        self, plugin_id: str | None, remote_plugin_id: str | None, summary: Any
    ) -> dict[str, Any]:
        return plugin(plugin_id, remote_plugin_id, summary, namespaced=True)

    # -- connection-scoped ------------------------------------------------------------

    def response(
        self,
        conn: int,
        request_id: int | str,
        method: str,
        result: dict[str, Any],
        *,
        thread_originator: str | None = None,
    ) -> dict[str, Any]:
        """The 2026-06 response plus ``thread_originator`` (null when the thread has none)."""
        fact = super().response(conn, request_id, method, result)
        fact["payload"]["thread_originator"] = thread_originator
        return fact

    def thread_response(
        self,
        conn: int = 7,
        thread_id: str = "thread-1",
        *,
        method: str = "thread/start",
        session_id: str | None = None,
        source: Any = "exec",
        thread_source: str | None = "user",
        parent_thread_id: str | None = None,
        forked_from_id: str | None = None,
        ephemeral: bool = False,
        created_at: int = 1,
        model: str = "gpt-5",
        request_id: int | str = 1,
        thread_originator: str | None = None,
    ) -> dict[str, Any]:
        # The 2026-06 thread plus its session, its parent and its thread source.
        thread = app_server_thread(
            thread_id,
            source=source,
            ephemeral=ephemeral,
            created_at=created_at,
            forked_from_id=forked_from_id,
        )
        thread = with_keys_after(
            thread,
            "id",
            sessionId=session_id if session_id is not None else f"session-{thread_id}",
        )
        thread = with_keys_after(thread, "forkedFromId", parentThreadId=parent_thread_id)
        thread = with_keys_after(thread, "source", threadSource=thread_source)
        result = {
            "thread": thread,
            "model": model,
            "modelProvider": "openai",
            "serviceTier": None,
            "cwd": "/tmp",
            "approvalPolicy": "on-request",
            "approvalsReviewer": "user",
            "sandbox": {"type": "dangerFullAccess"},
            "reasoningEffort": None,
        }
        return self.response(conn, request_id, method, result, thread_originator=thread_originator)

    def turn_start_response(
        self, conn: int = 7, request_id: int | str = 1, turn_id: str = "turn-1"
    ) -> dict[str, Any]:
        return self.response(conn, request_id, "turn/start", {"turn": _turn(turn_id)})

    def turn_interrupt_request(
        self, conn: int, request_id: int | str, turn_id: str, *, requested_at_ms: int
    ) -> dict[str, Any]:
        """A ``turn/interrupt`` request travels as its own kind (profile-j.md §3)."""
        return self.fact(
            "explicit_client_interrupt_request",
            {"request_id": request_id, "turn_id": turn_id, "requested_at_ms": requested_at_ms},
            conn=conn,
        )

    def turn_interrupt_response(self, conn: int, request_id: int | str) -> dict[str, Any]:
        return self.response(conn, request_id, "turn/interrupt", {})

    def server_request(
        self, conn: int, request_id: int | str, method: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        return self.request(conn, request_id, method, params, kind="server_request")

    # -- answers to server requests -----------------------------------------------------

    def server_response(
        self, request_id: int | str, method: str, decision: Any, *, completed_at_ms: int
    ) -> dict[str, Any]:
        return self.fact(
            "server_response",
            {
                "completed_at_ms": completed_at_ms,
                "request_id": request_id,
                "method": method,
                "result": {"decision": decision},
            },
        )

    def permissions_response(
        self,
        request_id: int | str,
        *,
        network: bool,
        file_system: bool,
        scope: str = "turn",
        completed_at_ms: int,
    ) -> dict[str, Any]:
        permissions = {
            "network": {"enabled": True} if network else None,
            "file_system": {"read": None, "write": ["/work"]} if file_system else None,
        }
        return self.fact(
            "effective_permissions_approval_response",
            {
                "completed_at_ms": completed_at_ms,
                "request_id": request_id,
                "response": {"permissions": permissions, "scope": scope},
            },
        )

    def server_request_aborted(
        self, request_id: int | str, *, completed_at_ms: int
    ) -> dict[str, Any]:
        return self.fact(
            "server_request_aborted",
            {"completed_at_ms": completed_at_ms, "request_id": request_id},
        )

    # -- notifications --------------------------------------------------------------------

    def notification(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.fact("server_notification", {"method": method, "params": params})

    def turn_started(
        self, turn_id: str = "turn-1", thread_id: str = "thread-1", *, started_at: int | None = 455
    ) -> dict[str, Any]:
        turn = _turn(turn_id, started_at=started_at)
        return self.notification("turn/started", {"threadId": thread_id, "turn": turn})

    def turn_completed(
        self,
        turn_id: str = "turn-1",
        thread_id: str = "thread-1",
        *,
        status: str = "completed",
        error_info: Any = "no-error",
        completed_at: int | None = 456,
        duration_ms: int | None = 1234,
    ) -> dict[str, Any]:
        turn = _turn(
            turn_id,
            status=status,
            error=turn_error(error_info),
            completed_at=completed_at,
            duration_ms=duration_ms,
        )
        return self.notification("turn/completed", {"threadId": thread_id, "turn": turn})

    def turn_diff_updated(self, thread_id: str, turn_id: str, diff: str) -> dict[str, Any]:
        return self.notification(
            "turn/diff/updated", {"threadId": thread_id, "turnId": turn_id, "diff": diff}
        )

    def item_started(
        self, thread_id: str, turn_id: str, item: dict[str, Any], *, started_at_ms: int
    ) -> dict[str, Any]:
        return self.notification(
            "item/started",
            {"threadId": thread_id, "turnId": turn_id, "startedAtMs": started_at_ms, "item": item},
        )

    def item_completed(
        self, thread_id: str, turn_id: str, item: dict[str, Any], *, completed_at_ms: int
    ) -> dict[str, Any]:
        return self.notification(
            "item/completed",
            {
                "threadId": thread_id,
                "turnId": turn_id,
                "completedAtMs": completed_at_ms,
                "item": item,
            },
        )

    def guardian_review_notification(
        self,
        thread_id: str,
        turn_id: str,
        review_id: str,
        *,
        completed: bool = True,
        status: str = "approved",
        action: str = "command",
        target_item_id: str | None = None,
        started_at_ms: int = 1000,
        completed_at_ms: int = 1200,
    ) -> dict[str, Any]:
        """``item/autoApprovalReview/completed`` (or ``…/started``, which the reducer
        accepts and ignores)."""
        params: dict[str, Any] = {
            "threadId": thread_id,
            "turnId": turn_id,
            "startedAtMs": started_at_ms,
        }
        if completed:
            params["completedAtMs"] = completed_at_ms
        params["reviewId"] = review_id
        params["targetItemId"] = target_item_id
        if completed:
            params["decisionSource"] = "agent"
        params["review"] = {
            "status": status if completed else "inProgress",
            "riskLevel": "low",
            "userAuthorization": "high",
            "rationale": None,
        }
        params["action"] = dict(GUARDIAN_ACTIONS[action])
        phase = "completed" if completed else "started"
        return self.notification(f"item/autoApprovalReview/{phase}", params)

    def thread_notification(self, method: str, thread_id: str) -> dict[str, Any]:
        """``thread/archived``, ``thread/unarchived`` or ``thread/closed``."""
        return self.notification(method, {"threadId": thread_id})

    # -- custom facts: threads and turns -----------------------------------------------

    def subagent_thread_started(
        self,
        thread_id: str = "thread-sub",
        *,
        session_id: str = "session-root",
        subagent_source: Any = "review",
        parent_thread_id: str | None = None,
        forked_from_thread_id: str | None = None,
        ephemeral: bool = False,
        created_at: int = 124,
    ) -> dict[str, Any]:
        payload = subagent(
            thread_id,
            subagent_source,
            parent_thread_id,
            ephemeral=ephemeral,
            created_at=created_at,
        )
        payload = with_keys_after(
            payload, "parent_thread_id", forked_from_thread_id=forked_from_thread_id
        )
        return self.fact("subagent_thread_started", {"session_id": session_id, **payload})

    def resolved_config(
        self, turn_id: str = "turn-1", thread_id: str = "thread-1", **overrides: Any
    ) -> dict[str, Any]:
        payload = {
            "turn_id": turn_id,
            "thread_id": thread_id,
            "num_input_images": 1,
            "submission_type": None,
            "ephemeral": False,
            "session_source": "exec",
            "model": "gpt-5",
            "model_provider": "openai",
            "permission_profile": {
                "type": "managed",
                "file_system": {"type": "restricted", "entries": []},
                "network": "restricted",
            },
            "permission_profile_cwd": "/tmp",
            "reasoning_effort": None,
            "reasoning_summary": None,
            "service_tier": None,
            "approval_policy": "on-request",
            "approvals_reviewer": "auto_review",
            "sandbox_network_access": True,
            "collaboration_mode": "plan",
            "personality": None,
            "workspace_kind": None,
            "is_first_turn": True,
            "resolved": {"sandbox_policy": "read_only", "repo_hash": None},
        }
        payload.update(overrides)
        return self.fact("turn_resolved_config", payload)

    def token_usage(
        self, turn_id: str = "turn-1", thread_id: str = "thread-1", *, total: int = 321
    ) -> dict[str, Any]:
        usage = with_keys_after(
            token_counts(total), "cached_input_tokens", cache_write_input_tokens=7
        )
        return self.fact(
            "turn_token_usage", {"turn_id": turn_id, "thread_id": thread_id, "token_usage": usage}
        )

    def turn_profile(self, turn_id: str = "turn-1", *, sampling_ms: int = 700) -> dict[str, Any]:
        profile = {
            "before_first_sampling_ms": 100,
            "sampling_ms": sampling_ms,
            "compaction_ms": 40,
            "between_sampling_overhead_ms": 50,
            "tool_blocking_ms": 250,
            "after_last_sampling_ms": 94,
            "sampling_request_count": 2,
            "sampling_retry_count": 1,
        }
        return self.fact("turn_profile", {"turn_id": turn_id, "profile": profile})

    def turn_codex_error(
        self, turn_id: str, thread_id: str, kind: str, http_status_code: int | None = None
    ) -> dict[str, Any]:
        return self.fact(
            "turn_codex_error",
            {
                "turn_id": turn_id,
                "thread_id": thread_id,
                "error": {"kind": kind, "http_status_code": http_status_code},
            },
        )

    def image_preparation(
        self, turn_id: str, item_id: str, *, effective_detail: str = "high", width: int = 2048
    ) -> dict[str, Any]:
        return self.fact(
            "image_preparation",
            {
                "turn_id": turn_id,
                "metadata": {
                    "message_role": "user",
                    "item_id": item_id,
                    "effective_detail": effective_detail,
                    "source_width": width,
                    "source_height": width * 3 // 4,
                    "prepared_width": min(width, 1536),
                    "prepared_height": min(width, 1536) * 3 // 4,
                },
            },
        )

    def goal(
        self,
        thread_id: str,
        goal_id: str,
        event_kind: str,
        *,
        turn_id: str | None = None,
        goal_status: str = "active",
        has_token_budget: bool = True,
        tokens: int | None = None,
        seconds: int | None = None,
    ) -> dict[str, Any]:
        return self.fact(
            "goal",
            {
                "thread_id": thread_id,
                "turn_id": turn_id,
                "goal_id": goal_id,
                "event_kind": event_kind,
                "goal_status": goal_status,
                "has_token_budget": has_token_budget,
                "cumulative_tokens_accounted": tokens,
                "cumulative_time_accounted_seconds": seconds,
            },
        )

    def code_mode(self, variant: str, **fields: Any) -> dict[str, Any]:
        """A ``code_mode_tool_call`` fact: ``{variant: fields}`` (externally tagged)."""
        return self.fact("code_mode_tool_call", {variant: fields})

    def flush(self) -> dict[str, Any]:
        return self.fact("flush", {})

    # -- custom facts: reviews and compaction -------------------------------------------

    def guardian_review(
        self,
        thread_id: str = "thread-1",
        turn_id: str = "turn-1",
        review_id: str = "review-1",
        *,
        action: str = "shell",
        decision: str = "approved",
        target_item_id: str | None = "item-1",
    ) -> dict[str, Any]:
        """Keys in upstream ``GuardianReviewEventParams`` order: the reducer passes them
        through as sent."""
        approved = decision == "approved"
        return self.fact(
            "guardian_review",
            {
                "thread_id": thread_id,
                "turn_id": turn_id,
                "review_id": review_id,
                "target_item_id": target_item_id,
                "approval_request_source": "main_turn",
                "reviewed_action": dict(REVIEWED_ACTIONS[action]),
                "reviewed_action_truncated": False,
                "decision": decision,
                "terminal_status": "approved" if approved else "denied",
                "failure_reason": None,
                "attempt_count": 1,
                "risk_level": "low" if approved else "high",
                "user_authorization": "high" if approved else "low",
                "outcome": "allow" if approved else "deny",
                "guardian_thread_id": f"guardian-{thread_id}",
                "guardian_session_kind": "trunk_new",
                "guardian_model": "gpt-5.4-mini",
                "guardian_reasoning_effort": "low",
                "guardian_default_review_model_id": "gpt-5.4-mini",
                "guardian_catalog_contains_auto_review": True,
                "guardian_review_model_overridden": False,
                "guardian_review_model_override": None,
                "guardian_model_provider_id": "openai",
                "had_prior_review_context": False,
                "review_timeout_ms": 90000,
                "tool_call_count": None,
                "time_to_first_token_ms": 120,
                "completion_latency_ms": 900,
                "started_at": 1716000000,
                "completed_at": 1716000001,
                "input_tokens": 1000,
                "cached_input_tokens": 200,
                "cache_write_input_tokens": 10,
                "output_tokens": 50,
                "reasoning_output_tokens": 20,
                "total_tokens": 1050,
            },
        )

    def compaction(
        self,
        thread_id: str = "thread-1",
        turn_id: str = "turn-c",
        *,
        status: str = "completed",
        reason: str = "context_limit",
        implementation: str = "responses_compact",
    ) -> dict[str, Any]:
        failed = status == "failed"
        return self.fact(
            "compaction",
            {
                "thread_id": thread_id,
                "turn_id": turn_id,
                "trigger": "auto",
                "reason": reason,
                "implementation": implementation,
                "phase": "mid_turn",
                "strategy": "memento",
                "status": status,
                "codex_error_kind": "context_window_exceeded" if failed else None,
                "codex_error_http_status_code": None,
                "active_context_tokens_before": 120000,
                "active_context_tokens_after": 120000 if failed else 30000,
                "retained_image_count": None if failed else 1,
                "compaction_summary_tokens": None if failed else 2100,
                "cached_input_tokens": None if failed else 90000,
                "cache_write_input_tokens": None if failed else 1200,
                "started_at": 100,
                "completed_at": 101,
                "duration_ms": 900,
            },
        )

    # -- custom facts: skills, apps, hooks, plugins, onboarding --------------------------

    def plugin_install_requested(
        self,
        suggestion_id: str,
        plugins: list[dict[str, Any]],
        *,
        source: str = "endpoint_recommendation",
        turn_id: str = "turn-1",
        thread_id: str = "thread-1",
    ) -> dict[str, Any]:
        return self.tracked_fact(
            "plugin_install_requested",
            thread_id,
            turn_id,
            request={"suggestion_id": suggestion_id, "plugins": plugins, "source": source},
        )

    def plugin_install_failed(
        self,
        plugin_id: str | None,
        remote_plugin_id: str | None,
        *,
        source: str = "manual",
        error_type: str = "remote_catalog_unexpected_status",
        sub_error_type: str | None = None,
    ) -> dict[str, Any]:
        summary = "default" if plugin_id is not None else None
        return self.fact(
            "plugin_install_failed",
            {
                "plugin": self.plugin(plugin_id, remote_plugin_id, summary),
                "source": source,
                "error_type": error_type,
                "sub_error_type": sub_error_type,
            },
        )

    def import_completed(
        self, import_id: str, item_type: str = "PLUGINS", *, success: int = 2, failed: int = 0
    ) -> dict[str, Any]:
        return self.fact(
            "external_agent_config_import_completed",
            {
                "import_id": import_id,
                "source": "app_server",
                "provider_id": "claude-code",
                "item_type": item_type,
                "success_count": success,
                "failed_count": failed,
            },
        )

    def import_failure(
        self,
        import_id: str,
        item_type: str = "PLUGINS",
        *,
        failure_stage: str = "plugin_import",
        sub_error_type: str | None = "failed_to_copy_plugin_file",
    ) -> dict[str, Any]:
        return self.fact(
            "external_agent_config_import_failure",
            {
                "import_id": import_id,
                "source": "app_server",
                "provider_id": "claude-code",
                "item_type": item_type,
                "failure_stage": failure_stage,
                "error_type": failure_stage,
                "sub_error_type": sub_error_type,
            },
        )


def tracking_j(
    thread_id: str = "thread-1",
    turn_id: str = "turn-1",
    product_client_id: str = "codex_work_desktop",
    model_slug: str = "gpt-5",
) -> dict[str, Any]:
    """Profile J ``TrackEventsContext``: the S one with the ``product_client_id``."""
    return tracking(thread_id, turn_id, model_slug) | {"product_client_id": product_client_id}


def skill_j(
    name: str = "doc",
    *,
    scope: str = "user",
    path: str = "/Users/abc/.codex/skills/doc/SKILL.md",
    plugin_id: str | None = None,
    remote_plugin_id: str | None = None,
    repo_root: str | None = None,
    repo_url: str | None = None,
    invocation_type: str = "explicit",
) -> dict[str, Any]:
    """Profile J ``SkillInvocation``: the skill's plugin ids after its path."""
    return skill(
        name,
        scope=scope,
        path=path,
        repo_root=repo_root,
        repo_url=repo_url,
        invocation_type=invocation_type,
        plugin_id=plugin_id,
        remote_plugin_id=remote_plugin_id,
    )


def unified_diff(added: int, deleted: int) -> str:
    """A one-file unified diff with ``added`` and ``deleted`` lines (accepted lines)."""
    body = [f"-old line {i}" for i in range(deleted)] + [f"+new line {i}" for i in range(added)]
    return (
        "diff --git a/src/lib.rs b/src/lib.rs\nindex 1111111..2222222\n"
        "--- a/src/lib.rs\n+++ b/src/lib.rs\n"
        f"@@ -1,{max(deleted, 1)} +1,{max(added, 1)} @@\n" + "\n".join(body) + "\n"
    )


def _turn(
    turn_id: str,
    *,
    status: str = "inProgress",
    error: Any = None,
    started_at: int | None = None,
    completed_at: int | None = None,
    duration_ms: int | None = None,
) -> dict[str, Any]:
    return {
        "id": turn_id,
        "items": [],
        "status": status,
        "error": error,
        "startedAt": started_at,
        "completedAt": completed_at,
        "durationMs": duration_ms,
    }
