"""Profile J reducer rules: the sessions domain (profile-j.md §5.1-§5.3, §5.5, §5.6).

Client requests and their responses, threads (lifecycle responses and sub-agents),
turns (the turn event, gathered fact by fact), steers, a turn's accepted lines and
thread archiving. Upstream: ``reducer.rs`` at the reference commit.
"""

from __future__ import annotations

from codex_analytics.contract.facts import (
    THREAD_LIFECYCLE_METHODS,
    ClientRequestPayload,
    ErrorResponsePayload,
)
from codex_analytics.contract.profile_j.session_events import (
    AcceptedLineFingerprintsEvent,
    AcceptedLineFingerprintsEventParams,
    ThreadArchiveEvent,
    ThreadArchiveEventParams,
    ThreadInitializedEventJ,
    ThreadInitializedEventParamsJ,
    TurnEventJ,
    TurnEventParamsJ,
    TurnSteerEventJ,
    TurnSteerEventParamsJ,
)
from codex_analytics.contract.profile_j.session_facts import (
    ClientResponsePayloadJ,
    ExplicitClientInterruptRequestPayload,
    ImagePreparationPayload,
    SubagentThreadStartedPayloadJ,
    ThreadArchiveView,
    TurnCodexErrorPayload,
    TurnCompletedView,
    TurnDiffUpdatedView,
    TurnProfilePayload,
    TurnResolvedConfigPayloadJ,
    TurnStartedView,
    TurnTokenUsagePayloadJ,
)

from ..derive import (
    image_count,
    non_negative,
    none_if_none_string,
    service_tier_name,
    turn_completion,
)
from ..drops import DropReason
from ..event_params import subagent_client
from ..fact_context import FactContext
from . import tools
from .accepted_lines import count_accepted_lines
from .context import client_and_lineage, client_for, tables, thread_context
from .rules import Rule
from .state import (
    PendingRequestJ,
    ThreadJ,
    ThreadMetadataJ,
    TurnConfigJ,
    TurnJ,
)

# -- helpers ---------------------------------------------------------------------------------


def _turn(ctx: FactContext, turn_id: str) -> TurnJ | None:
    """The turn's state, created if new (upstream ``entry().or_default()``) and touched;
    None, with the fact dropped as ``instance_state_full``, when there is no room."""
    return ctx.entry("turns", tables(ctx).turns, turn_id, ctx.limits.turns, TurnJ)


def _thread(ctx: FactContext, thread_id: str) -> ThreadJ | None:
    """The thread's state, created if new and touched; None (fact dropped) when full."""
    return ctx.entry("threads", tables(ctx).threads, thread_id, ctx.limits.threads, ThreadJ)


def _store_request(ctx: FactContext, request_id: int | str, pending: PendingRequestJ) -> None:
    conn = ctx.fact.connection_id
    assert conn is not None  # the codec guarantees it for connection-scoped kinds
    requests = tables(ctx).requests
    key = (conn, request_id)
    if ctx.has_room("requests", requests, key, ctx.limits.requests):
        requests[key] = pending


def _take_request(
    ctx: FactContext, request_id: int | str, kind: str, method: str
) -> PendingRequestJ | None:
    """Remove the pending request ``(connection, request_id)`` whatever its kind, as
    upstream does; return it only when it is of ``kind`` (the response's ``method``)."""
    conn = ctx.fact.connection_id
    assert conn is not None
    pending = tables(ctx).requests.pop((conn, request_id), None)
    if pending is None or pending.kind != kind:
        ctx.drop(
            DropReason.RESPONSE_WITHOUT_PENDING_REQUEST,
            connection_id=conn,
            request_id=request_id,
            method=method,
        )
        return None
    return pending


# -- requests and responses ------------------------------------------------------------------


def client_request(ctx: FactContext, p: ClientRequestPayload) -> None:
    """``turn/start`` and ``turn/steer`` wait for their response; other requests are not
    read (a ``turn/interrupt`` comes as ``explicit_client_interrupt_request``)."""
    if p.turn_start is not None:
        start = p.turn_start
        pending = PendingRequestJ(
            ctx.now_ms, "turn_start", start.thread_id, image_count(start.input)
        )
    elif p.turn_steer is not None:
        steer = p.turn_steer
        pending = PendingRequestJ(
            ctx.now_ms,
            "turn_steer",
            steer.thread_id,
            image_count(steer.input),
            expected_turn_id=steer.expected_turn_id,
            # The producer's clock stands in for upstream's (profile-j.md §7).
            created_at=ctx.fact.observed_at_ms // 1000,
        )
    else:
        return
    _store_request(ctx, p.request_id, pending)


def explicit_client_interrupt_request(
    ctx: FactContext, p: ExplicitClientInterruptRequestPayload
) -> None:
    _store_request(
        ctx,
        p.request_id,
        PendingRequestJ(
            ctx.now_ms,
            "explicit_client_interrupt",
            turn_id=p.turn_id,
            requested_at_ms=p.requested_at_ms,
        ),
    )


def client_response(ctx: FactContext, p: ClientResponsePayloadJ) -> None:
    if p.thread_lifecycle is not None:
        _thread_lifecycle_response(ctx, p)
        return
    method = p.method
    if method == "turn/start":
        assert p.turn_id is not None  # the decoder reads it for turn/start
        _turn_start_response(ctx, p.request_id, p.turn_id)
    elif method == "turn/steer":
        assert p.turn_id is not None
        _turn_steer_response(ctx, p.request_id, p.turn_id)
    elif method == "turn/interrupt":
        _turn_interrupt_response(ctx, p.request_id)


def error_response(ctx: FactContext, p: ErrorResponsePayload) -> None:
    """An error ends the pending request: a steer's is a rejected steer event; a
    ``turn/start``'s or ``turn/interrupt``'s is just forgotten."""
    conn = ctx.fact.connection_id
    assert conn is not None
    pending = tables(ctx).requests.pop((conn, p.request_id), None)
    if pending is None:
        ctx.drop(
            DropReason.ERROR_WITHOUT_PENDING_REQUEST, connection_id=conn, request_id=p.request_id
        )
        return
    if pending.kind == "turn_steer":
        _emit_steer(ctx, pending, None, "rejected", p.rejection_reason)


def _turn_start_response(ctx: FactContext, request_id: int | str, turn_id: str) -> None:
    conn = ctx.fact.connection_id
    turns = tables(ctx).turns
    # Checked before anything changes: a dropped fact leaves the state as it was.
    if not ctx.has_room("turns", turns, turn_id, ctx.limits.turns):
        return
    pending = _take_request(ctx, request_id, "turn_start", "turn/start")
    if pending is None:
        return
    turn = _turn(ctx, turn_id)
    assert turn is not None  # room was checked above
    turn.connection_id = conn
    turn.thread_id = pending.thread_id
    turn.num_input_images = pending.num_input_images
    _maybe_emit_turn(ctx, turn_id)


def _turn_steer_response(ctx: FactContext, request_id: int | str, turn_id: str) -> None:
    pending = _take_request(ctx, request_id, "turn_steer", "turn/steer")
    if pending is None:
        return
    # An accepted steer counts only against a turn state that exists at this moment.
    turn = tables(ctx).turns.get(turn_id)
    if turn is not None:
        turn.steer_count += 1
        turn.touched_ms = ctx.now_ms
    _emit_steer(ctx, pending, turn_id, "accepted", None)


def _turn_interrupt_response(ctx: FactContext, request_id: int | str) -> None:
    """An accepted interrupt tags its turn with the earliest time one was asked for."""
    conn = ctx.fact.connection_id
    assert conn is not None
    requests = tables(ctx).requests
    pending = requests.get((conn, request_id))
    if pending is not None and pending.kind == "explicit_client_interrupt":
        assert pending.turn_id is not None
        if not ctx.has_room("turns", tables(ctx).turns, pending.turn_id, ctx.limits.turns):
            return
    pending = _take_request(ctx, request_id, "explicit_client_interrupt", "turn/interrupt")
    if pending is None:
        return
    turn_id, requested_at_ms = pending.turn_id, pending.requested_at_ms
    assert turn_id is not None
    assert requested_at_ms is not None
    turn = _turn(ctx, turn_id)
    assert turn is not None  # room was checked above
    earliest = turn.explicit_client_interrupt_requested_at_ms
    turn.explicit_client_interrupt_requested_at_ms = (
        requested_at_ms if earliest is None else min(earliest, requested_at_ms)
    )
    _maybe_emit_turn(ctx, turn_id)


def _emit_steer(
    ctx: FactContext,
    pending: PendingRequestJ,
    accepted_turn_id: str | None,
    result: str,
    rejection_reason: str | None,
) -> None:
    """The steer event, with the connection of its response (or error) and the thread's
    metadata (profile-j.md §5.6)."""
    conn = ctx.fact.connection_id
    assert conn is not None
    assert pending.thread_id is not None
    connection = ctx.state.connections.get(conn)
    if connection is None:  # upstream drops it without a warning (§9)
        ctx.drop(
            DropReason.STEER_UNKNOWN_CONNECTION, connection_id=conn, thread_id=pending.thread_id
        )
        return
    thread = tables(ctx).threads.get(pending.thread_id)
    if thread is None or thread.metadata is None:
        ctx.drop(
            DropReason.MISSING_CONTEXT,
            site="turn steer",
            missing_context="thread_metadata",
            thread_id=pending.thread_id,
        )
        return
    metadata = thread.metadata
    connection.touched_ms = thread.touched_ms = ctx.now_ms
    ctx.emit(
        TurnSteerEventJ(
            event_params=TurnSteerEventParamsJ(
                thread_id=pending.thread_id,
                session_id=metadata.session_id,
                expected_turn_id=pending.expected_turn_id,  # type: ignore[arg-type]
                accepted_turn_id=accepted_turn_id,
                **client_and_lineage(
                    client_for(connection.client, thread), connection.runtime, metadata
                ),
                num_input_images=pending.num_input_images,
                result=result,  # type: ignore[arg-type]
                rejection_reason=rejection_reason,  # type: ignore[arg-type]
                created_at=pending.created_at,  # type: ignore[arg-type]
            )
        )
    )


# -- threads ---------------------------------------------------------------------------------


def _thread_lifecycle_response(ctx: FactContext, p: ClientResponsePayloadJ) -> None:
    """``thread/start|resume|fork`` on a known connection: the thread's connection,
    metadata and (when given) originator, then its ``codex_thread_initialized``."""
    conn = ctx.fact.connection_id
    assert conn is not None
    assert p.thread_lifecycle is not None
    thread_info = p.thread_lifecycle.thread
    connection = ctx.state.connections.get(conn)
    if connection is None:  # nothing stored, nothing emitted (upstream: silently)
        ctx.drop(
            DropReason.THREAD_RESPONSE_UNKNOWN_CONNECTION,
            connection_id=conn,
            thread_id=thread_info.id,
        )
        return
    thread = _thread(ctx, thread_info.id)
    if thread is None:
        return
    connection.touched_ms = ctx.now_ms
    mode = THREAD_LIFECYCLE_METHODS[p.method]
    metadata = ThreadMetadataJ(
        session_id=thread_info.session_id,
        thread_source=thread_info.thread_source,
        initialization_mode=mode,
        subagent_source=thread_info.subagent_source,
        parent_thread_id=thread_info.parent_thread_id,
    )
    if p.thread_originator is not None:  # a null keeps the originator the thread had
        thread.originator = p.thread_originator
    thread.connection_id = conn
    thread.metadata = metadata
    ctx.emit(
        ThreadInitializedEventJ(
            event_params=ThreadInitializedEventParamsJ(
                thread_id=thread_info.id,
                session_id=metadata.session_id,
                model=p.thread_lifecycle.model,
                ephemeral=thread_info.ephemeral,
                initialization_mode=mode,  # type: ignore[arg-type]
                **client_and_lineage(
                    client_for(connection.client, thread), connection.runtime, metadata
                ),
                forked_from_thread_id=thread_info.forked_from_id,
                created_at=max(thread_info.created_at, 0),
            )
        )
    )


def subagent_thread_started(ctx: FactContext, p: SubagentThreadStartedPayloadJ) -> None:
    """A sub-agent's thread inherits its parent's connection; what the thread already
    has is kept. Its ``codex_thread_initialized`` needs no ``initialize``."""
    threads = tables(ctx).threads
    parent = None if p.parent_thread_id is None else threads.get(p.parent_thread_id)
    parent_connection = None if parent is None else parent.connection_id
    thread = _thread(ctx, p.thread_id)
    if thread is None:
        return
    if thread.originator is None:
        thread.originator = p.product_client_id
    if thread.metadata is None:
        thread.metadata = ThreadMetadataJ(
            session_id=p.session_id,
            thread_source="subagent",
            initialization_mode="new",
            subagent_source=p.subagent_name,
            # Only the explicit parent: no fallback to a thread_spawn source's parent.
            parent_thread_id=p.parent_thread_id,
        )
    if thread.connection_id is None:
        thread.connection_id = parent_connection
    ctx.emit(
        ThreadInitializedEventJ(
            event_params=ThreadInitializedEventParamsJ(
                thread_id=p.thread_id,
                session_id=p.session_id,
                app_server_client=subagent_client(
                    p.product_client_id, p.client_name, p.client_version
                ),
                # Upstream: the process's runtime, which the envelope's source carries.
                runtime=ctx.fact.source.runtime,
                model=p.model,
                ephemeral=p.ephemeral,
                thread_source="subagent",
                initialization_mode="new",
                subagent_source=p.subagent_name,
                parent_thread_id=p.parent_thread_id,
                forked_from_thread_id=p.forked_from_thread_id,
                created_at=p.created_at,
            )
        )
    )


def thread_archived(ctx: FactContext, view: ThreadArchiveView) -> None:
    _emit_archive(ctx, view.thread_id, "archived")


def thread_unarchived(ctx: FactContext, view: ThreadArchiveView) -> None:
    _emit_archive(ctx, view.thread_id, "unarchived")


def _emit_archive(ctx: FactContext, thread_id: str, action: str) -> None:
    """No context needed; upstream's wall clock is the notification fact's
    ``observed_at_ms`` here (profile-j.md §7)."""
    ctx.emit(
        ThreadArchiveEvent(
            event_params=ThreadArchiveEventParams(
                thread_id=thread_id,
                action=action,  # type: ignore[arg-type]
                occurred_at_ms=ctx.fact.observed_at_ms,
            )
        )
    )


# -- turns -----------------------------------------------------------------------------------


def turn_config(p: TurnResolvedConfigPayloadJ) -> TurnConfigJ:
    """The turn event's config values (reducer.md §4.5 mappings, Profile J's changes)."""
    return TurnConfigJ(
        submission_type=p.submission_type,
        ephemeral=p.ephemeral,
        model=p.model,
        model_provider=p.model_provider,
        sandbox_policy=p.resolved.sandbox_policy,
        reasoning_effort=p.reasoning_effort,
        reasoning_summary=none_if_none_string(p.reasoning_summary),
        service_tier=service_tier_name(p.service_tier),
        approval_policy=p.approval_policy_name,
        # Upstream reads ``guardian_subagent`` as an alias of ``auto_review``.
        approvals_reviewer="user" if p.approvals_reviewer == "user" else "auto_review",
        sandbox_network_access=p.sandbox_network_access,
        collaboration_mode=p.collaboration_mode,
        personality=none_if_none_string(p.personality),
        workspace_kind=p.workspace_kind,
        is_first_turn=p.is_first_turn,
        repo_hash=p.resolved.repo_hash,
    )


def turn_resolved_config(ctx: FactContext, p: TurnResolvedConfigPayloadJ) -> None:
    turn = _turn(ctx, p.turn_id)
    if turn is None:
        return
    turn.thread_id = p.thread_id
    turn.num_input_images = p.num_input_images
    turn.resolved_config = turn_config(p)
    _maybe_emit_turn(ctx, p.turn_id)


def turn_token_usage(ctx: FactContext, p: TurnTokenUsagePayloadJ) -> None:
    turn = _turn(ctx, p.turn_id)
    if turn is None:
        return
    turn.thread_id = p.thread_id
    turn.token_usage = p.token_usage
    _maybe_emit_turn(ctx, p.turn_id)


def turn_profile(ctx: FactContext, p: TurnProfilePayload) -> None:
    turn = _turn(ctx, p.turn_id)
    if turn is None:
        return
    turn.profile = p.profile
    _maybe_emit_turn(ctx, p.turn_id)


def turn_codex_error(ctx: FactContext, p: TurnCodexErrorPayload) -> None:
    """Recorded for the turn event; never emits by itself."""
    turn = _turn(ctx, p.turn_id)
    if turn is None:
        return
    if turn.thread_id is None:
        turn.thread_id = p.thread_id
    turn.codex_error = p.error


def image_preparation(ctx: FactContext, p: ImagePreparationPayload) -> None:
    """Appended in arrival order for the turn event; never emits by itself."""
    turns = tables(ctx).turns
    existing = turns.get(p.turn_id)
    limit = ctx.limits.image_preparations_per_turn
    if existing is not None and len(existing.image_preparations) >= limit:
        ctx.drop(
            DropReason.INSTANCE_STATE_FULL,
            table="image_preparations",
            limit=limit,
            turn_id=p.turn_id,
        )
        return
    turn = _turn(ctx, p.turn_id)
    if turn is None:
        return
    turn.image_preparations.append(p.metadata)


def turn_started(ctx: FactContext, view: TurnStartedView) -> None:
    turn = _turn(ctx, view.turn.id)
    if turn is None:
        return
    turn.started_at = non_negative(view.turn.started_at)


def turn_diff_updated(ctx: FactContext, view: TurnDiffUpdatedView) -> None:
    """Only the latest diff of a turn counts: its line counts replace the previous ones."""
    turn = _turn(ctx, view.turn_id)
    if turn is None:
        return
    turn.thread_id = view.thread_id
    turn.latest_diff = count_accepted_lines(view.diff)


def turn_completed(ctx: FactContext, view: TurnCompletedView) -> None:
    """The tool events held for the turn go first (same output list), then the turn."""
    done = view.turn
    if not ctx.has_room("turns", tables(ctx).turns, done.id, ctx.limits.turns):
        return
    tools.release_turn(ctx, view.thread_id, done.id)
    turn = _turn(ctx, done.id)
    assert turn is not None  # room was checked above
    turn.completed = turn_completion(done)
    _maybe_emit_turn(ctx, done.id)


def _maybe_emit_turn(ctx: FactContext, turn_id: str) -> None:
    """Emit the turn event (then its accepted lines) once the turn has its thread, image
    count, resolved config, profile and completion; the turn state is then forgotten.
    Without context, upstream's warning, and the state is kept."""
    j = tables(ctx)
    turn = j.turns.get(turn_id)
    if turn is None:
        return
    thread_id, config, profile, completed = (
        turn.thread_id,
        turn.resolved_config,
        turn.profile,
        turn.completed,
    )
    if (
        thread_id is None
        or turn.num_input_images is None
        or config is None
        or profile is None
        or completed is None
    ):
        return
    context = thread_context(
        ctx, thread_id, "turn", connection_id=turn.connection_id, turn_id=turn_id
    )
    if context is None:
        return
    metadata = context.metadata
    usage, error, counts = turn.token_usage, turn.codex_error, turn.tool_counts
    ctx.emit(
        TurnEventJ(
            event_params=TurnEventParamsJ(
                thread_id=thread_id,
                session_id=metadata.session_id,
                turn_id=turn_id,
                submission_type=config.submission_type,
                ephemeral=config.ephemeral,
                initialization_mode=metadata.initialization_mode,  # type: ignore[arg-type]
                **context.client_and_lineage(),
                model=config.model,
                model_provider=config.model_provider,
                sandbox_policy=config.sandbox_policy,  # type: ignore[arg-type]
                reasoning_effort=config.reasoning_effort,
                reasoning_summary=config.reasoning_summary,
                service_tier=config.service_tier,
                approval_policy=config.approval_policy,
                approvals_reviewer=config.approvals_reviewer,
                sandbox_network_access=config.sandbox_network_access,
                collaboration_mode=config.collaboration_mode,  # type: ignore[arg-type]
                personality=config.personality,
                workspace_kind=config.workspace_kind,
                num_input_images=turn.num_input_images,
                image_preparations=turn.image_preparations,
                is_first_turn=config.is_first_turn,
                status=completed.status,  # type: ignore[arg-type]
                explicit_client_interrupt_requested_at_ms=turn.explicit_client_interrupt_requested_at_ms,
                turn_error=completed.turn_error,
                codex_error_kind=None if error is None else error.kind,
                codex_error_http_status_code=None if error is None else error.http_status_code,
                steer_count=turn.steer_count,
                total_tool_call_count=counts.total,
                shell_command_count=counts.shell_command,
                file_change_count=counts.file_change,
                mcp_tool_call_count=counts.mcp_tool_call,
                dynamic_tool_call_count=counts.dynamic_tool_call,
                subagent_tool_call_count=counts.subagent_tool_call,
                web_search_count=counts.web_search,
                image_generation_count=counts.image_generation,
                input_tokens=None if usage is None else usage.input_tokens,
                cached_input_tokens=None if usage is None else usage.cached_input_tokens,
                cache_write_input_tokens=None if usage is None else usage.cache_write_input_tokens,
                output_tokens=None if usage is None else usage.output_tokens,
                reasoning_output_tokens=None if usage is None else usage.reasoning_output_tokens,
                total_tokens=None if usage is None else usage.total_tokens,
                before_first_sampling_ms=profile.before_first_sampling_ms,
                sampling_ms=profile.sampling_ms,
                compaction_ms=profile.compaction_ms,
                between_sampling_overhead_ms=profile.between_sampling_overhead_ms,
                tool_blocking_ms=profile.tool_blocking_ms,
                after_last_sampling_ms=profile.after_last_sampling_ms,
                sampling_request_count=profile.sampling_request_count,
                sampling_retry_count=profile.sampling_retry_count,
                duration_ms=completed.duration_ms,
                started_at=turn.started_at,
                completed_at=completed.completed_at,
            )
        )
    )
    lines = turn.latest_diff
    if lines is not None and (lines.added or lines.deleted):
        ctx.emit(
            AcceptedLineFingerprintsEvent(
                event_params=AcceptedLineFingerprintsEventParams(
                    event_type="codex.accepted_line_fingerprints",
                    turn_id=turn_id,
                    thread_id=thread_id,
                    product_surface="codex",
                    model_slug=config.model,
                    # Upstream's wall clock at emission: the triggering fact's time here.
                    completed_at=ctx.fact.observed_at_ms // 1000,
                    repo_hash=config.repo_hash,
                    accepted_added_lines=lines.added,
                    accepted_deleted_lines=lines.deleted,
                    # Upstream computes the hashes but never uploads them.
                    line_fingerprints=[],
                )
            )
        )
    del j.turns[turn_id]


#: fact kind -> rule.
RULES: dict[str, Rule] = {
    "client_request": client_request,
    "explicit_client_interrupt_request": explicit_client_interrupt_request,
    "client_response": client_response,
    "error_response": error_response,
    "subagent_thread_started": subagent_thread_started,
    "turn_resolved_config": turn_resolved_config,
    "turn_token_usage": turn_token_usage,
    "turn_profile": turn_profile,
    "turn_codex_error": turn_codex_error,
    "image_preparation": image_preparation,
}
#: server_notification method -> rule (its payload is the method's decoded view).
NOTIFICATION_RULES: dict[str, Rule] = {
    "turn/started": turn_started,
    "turn/completed": turn_completed,
    "turn/diff/updated": turn_diff_updated,
    "thread/archived": thread_archived,
    "thread/unarchived": thread_unarchived,
}
