"""Reviews (profile-j.md §5.4, §9): user reviews of approval requests, from the server
request to its answer, and guardian (auto-approval) reviews, from their completed
notification. Each closed review updates its tool item's review summary, then emits
``codex_review_event``."""

from __future__ import annotations

from codex_analytics.contract.profile_j import tool_events as ev
from codex_analytics.contract.profile_j import tool_facts as tf

from ..derive import observed_duration_ms
from ..fact_context import FactContext
from .context import tables, thread_context
from .state import ItemReviewSummaryJ, PendingReviewJ

#: The subjects whose review is summed up on their tool item (upstream
#: ``item_review_summary_key``).
SUMMARISED_SUBJECTS = frozenset({"command_execution", "file_change", "mcp_tool_call"})

#: decision -> (status, resolution); ``applyNetworkPolicyAmendment`` depends on its action.
DECISIONS: dict[str, tuple[str, str]] = {
    "accept": ("approved", "none"),
    "acceptForSession": ("approved", "session_approval"),
    "acceptWithExecpolicyAmendment": ("approved", "exec_policy_amendment"),
    "decline": ("denied", "none"),
    "cancel": ("aborted", "none"),
}
GUARDIAN_STATUSES = {
    "approved": "approved",
    "denied": "denied",
    "timedOut": "timed_out",
    "aborted": "aborted",
}


def user_review_id(request_id: int | str) -> str:
    return f"user:{request_id}"


# -- opening: server requests ------------------------------------------------------------------


def _pending(
    ctx: FactContext,
    review_id: str,
    item_id: str | None,
    params: tf.ApprovalParams | tf.GuardianReviewCompletedParams,
    subject: tuple[str, str],
    trigger: str,
    requested_additional_permissions: bool,
    requested_network_access: bool,
) -> PendingReviewJ:
    """A review of ``item_id`` in the thread and turn of ``params``, from their start."""
    return PendingReviewJ(
        touched_ms=ctx.now_ms,
        thread_id=params.thread_id,
        turn_id=params.turn_id,
        item_id=item_id,
        review_id=review_id,
        subject_kind=subject[0],
        subject_name=subject[1],
        trigger=trigger,
        started_at_ms=params.started_at_ms,
        requested_additional_permissions=requested_additional_permissions,
        requested_network_access=requested_network_access,
    )


def _trigger(network: bool, additional: bool) -> str:
    if network:
        return "network_policy_denial"
    return "sandbox_denial" if additional else "initial"


def server_request(ctx: FactContext, payload: tf.ServerRequestPayload) -> None:
    """An approval request opens a pending user review (upstream ``ingest_server_request``);
    other requests, and a negative ``startedAtMs``, open nothing."""
    params = payload.approval
    if params is None or params.started_at_ms < 0:
        return
    review_id = user_review_id(payload.request_id)
    if isinstance(params, tf.CommandExecutionApprovalParams):
        extra = params.additional_permissions
        network_review = params.network_approval_context is not None
        network = (
            network_review
            or bool(params.proposed_network_policy_amendments)
            or (extra is not None and extra.requests_network)
        )
        additional = extra is not None
        trigger = (
            "execve_intercept" if params.approval_id is not None else _trigger(network, additional)
        )
        subject = (
            ("network_access", "network_access")
            if network_review
            else ("command_execution", "command_execution")
        )
        pending = _pending(
            ctx, review_id, params.item_id, params, subject, trigger, additional, network
        )
    elif isinstance(params, tf.FileChangeApprovalParams):
        additional = params.grant_root is not None
        trigger = "sandbox_denial" if additional else "initial"
        pending = _pending(
            ctx,
            review_id,
            params.item_id,
            params,
            ("file_change", "apply_patch"),
            trigger,
            additional,
            False,
        )
    else:
        network = params.permissions.requests_network
        additional = network or params.permissions.file_system is not None
        pending = _pending(
            ctx,
            review_id,
            params.item_id,
            params,
            ("permissions", "permissions"),
            _trigger(network, additional),
            additional,
            network,
        )
    table = tables(ctx).pending_reviews
    if ctx.has_room("pending_reviews", table, payload.request_id, ctx.limits.pending_reviews):
        table[payload.request_id] = pending


# -- closing: answers, aborts, guardian reviews --------------------------------------------------


def server_response(ctx: FactContext, payload: tf.ServerResponsePayload) -> None:
    decision = payload.decision
    if decision is None:
        return
    if decision.name == "applyNetworkPolicyAmendment":
        status = "approved" if decision.network_action == "allow" else "denied"
        result = (status, "network_policy_amendment")
    else:
        result = DECISIONS[decision.name]
    close_user_review(ctx, payload.request_id, result, payload.completed_at_ms)


def effective_permissions_approval_response(
    ctx: FactContext, payload: tf.EffectivePermissionsApprovalResponsePayload
) -> None:
    response = payload.response
    if response.permissions.is_empty:
        result = ("denied", "none")
    elif response.scope == "session":
        result = ("approved", "session_approval")
    else:  # "turn", serde's default
        result = ("approved", "none")
    close_user_review(ctx, payload.request_id, result, payload.completed_at_ms)


def server_request_aborted(ctx: FactContext, payload: tf.ServerRequestAbortedPayload) -> None:
    close_user_review(ctx, payload.request_id, ("aborted", "none"), payload.completed_at_ms)


def close_user_review(
    ctx: FactContext, request_id: int | str, result: tuple[str, str], completed_at_ms: int
) -> None:
    """Close the pending review of ``request_id``; without one (never opened, or already
    closed: a second abort), nothing happens."""
    pending = tables(ctx).pending_reviews.get(request_id)
    if pending is None or not _summary_fits(ctx, pending):
        return
    del tables(ctx).pending_reviews[request_id]
    emit_review(ctx, pending, "user", result, completed_at_ms)


def guardian_review_completed(ctx: FactContext, view: tf.GuardianReviewCompletedParams) -> None:
    """``item/autoApprovalReview/completed`` (upstream ``ingest_guardian_review_completed``):
    a finished guardian review; in progress, or with a negative time, is ignored."""
    status = GUARDIAN_STATUSES.get(view.review.status)
    if status is None or view.started_at_ms < 0 or view.completed_at_ms < 0:
        return
    action = view.action
    network = action.type == "networkAccess" or (
        action.type == "requestPermissions"
        and action.permissions is not None
        and action.permissions.requests_network
    )
    file_system = (
        action.type == "requestPermissions"
        and action.permissions is not None
        and action.permissions.file_system is not None
    )
    additional = action.type in ("applyPatch", "networkAccess") or network or file_system
    if action.type == "command":
        subject, trigger = ("command_execution", "command_execution"), "initial"
    elif action.type == "execve":
        subject, trigger = ("command_execution", "command_execution"), "execve_intercept"
    elif action.type == "applyPatch":
        subject, trigger = ("file_change", "apply_patch"), "sandbox_denial"
    elif action.type == "networkAccess":
        subject, trigger = ("network_access", "network_access"), "network_policy_denial"
    elif action.type == "mcpToolCall":
        assert action.tool_name is not None  # the view requires it
        subject, trigger = ("mcp_tool_call", action.tool_name), "initial"
    else:  # requestPermissions
        subject, trigger = ("permissions", "permissions"), _trigger(network, file_system)
    pending = _pending(
        ctx, view.review_id, view.target_item_id, view, subject, trigger, additional, network
    )
    if _summary_fits(ctx, pending):
        emit_review(ctx, pending, "guardian", (status, "none"), view.completed_at_ms)


def _summary_key(pending: PendingReviewJ) -> tuple[str, str, str] | None:
    if pending.subject_kind not in SUMMARISED_SUBJECTS or pending.item_id is None:
        return None
    return (pending.thread_id, pending.turn_id, pending.item_id)


def _summary_fits(ctx: FactContext, pending: PendingReviewJ) -> bool:
    """Whether the review's summary (if it has one) fits in its table: checked before
    anything changes, so that a refused fact changes nothing."""
    key = _summary_key(pending)
    table = tables(ctx).item_review_summaries
    return key is None or ctx.has_room(
        "item_review_summaries", table, key, ctx.limits.item_review_summaries
    )


def final_approval_outcome(reviewer: str, status: str, resolution: str) -> str:
    if reviewer == "guardian":
        return {"approved": "guardian_approved", "denied": "guardian_denied"}.get(
            status, "guardian_aborted"
        )
    if status == "approved":
        return "user_approved_for_session" if resolution == "session_approval" else "user_approved"
    return "user_denied" if status == "denied" else "user_aborted"


def emit_review(
    ctx: FactContext,
    pending: PendingReviewJ,
    reviewer: str,
    result: tuple[str, str],
    completed_at_ms: int,
) -> None:
    """Sum the review up on its tool item, then emit it with thread context (upstream
    ``emit_review_event``)."""
    status, resolution = result
    key = _summary_key(pending)
    if key is not None:
        table = tables(ctx).item_review_summaries
        summary = table.get(key)
        if summary is None:
            summary = table[key] = ItemReviewSummaryJ(ctx.now_ms)
        summary.touched_ms = ctx.now_ms
        summary.review_count += 1
        if reviewer == "guardian":
            summary.guardian_review_count += 1
        else:
            summary.user_review_count += 1
        summary.final_approval_outcome = final_approval_outcome(reviewer, status, resolution)
        summary.requested_additional_permissions |= pending.requested_additional_permissions
        summary.requested_network_access |= pending.requested_network_access
    context = thread_context(
        ctx,
        pending.thread_id,
        "review",
        turn_id=pending.turn_id,
        review_id=pending.review_id,
        item_id=pending.item_id,
    )
    if context is None:
        return
    ctx.emit(
        ev.ReviewEvent(
            event_params=ev.ReviewEventParams(
                thread_id=pending.thread_id,
                turn_id=pending.turn_id,
                item_id=pending.item_id,
                review_id=pending.review_id,
                **context.client_and_lineage(),
                subject_kind=pending.subject_kind,  # type: ignore[arg-type]
                subject_name=pending.subject_name,
                reviewer=reviewer,  # type: ignore[arg-type]
                trigger=pending.trigger,  # type: ignore[arg-type]
                status=status,  # type: ignore[arg-type]
                resolution=resolution,  # type: ignore[arg-type]
                started_at_ms=pending.started_at_ms,
                completed_at_ms=completed_at_ms,
                duration_ms=observed_duration_ms(pending.started_at_ms, completed_at_ms),
            )
        )
    )
