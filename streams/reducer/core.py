"""The reducer: facts of one instance in, the exact upstream track events out.

Pure and deterministic: no I/O, no clock (time comes only from ``observed_at_ms``), no
filesystem. ``Reducer.apply(state, fact)`` mutates the instance's :class:`InstanceState`
and returns the events that fact emits, in upstream order (one upstream request body).
Spec: ``shared/spec/reducer.md`` (Profile S).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codex_analytics.contract.events import (
    PLUGIN_STATE_EVENTS,
    AppMentionedEvent,
    AppServerClientMetadata,
    AppUsedEvent,
    CompactionEvent,
    CompactionEventParams,
    GuardianReviewEvent,
    HookRunEvent,
    HookRunEventParams,
    PluginEventParams,
    PluginUsedEvent,
    PluginUsedEventParams,
    SkillInvocationEvent,
    SkillInvocationEventParams,
    ThreadInitializedEvent,
    ThreadInitializedEventParams,
    TurnEvent,
    TurnEventParams,
    TurnSteerEvent,
    TurnSteerEventParams,
)
from codex_analytics.contract.facts import (
    THREAD_LIFECYCLE_METHODS,
    AppMentionedPayload,
    AppUsedPayload,
    ClientRequestPayload,
    ClientResponsePayload,
    CompactionPayload,
    ErrorResponsePayload,
    FactEnvelope,
    GuardianReviewPayload,
    HookRunPayload,
    InitializePayload,
    PluginStateChangedPayload,
    PluginTelemetryMetadata,
    PluginUsedPayload,
    ServerNotificationPayload,
    SkillInvokedPayload,
    SubagentThreadStartedPayload,
    TurnResolvedConfigPayload,
    TurnTokenUsagePayload,
)
from codex_analytics.contract.versions import CONTRACT_J, CONTRACT_S

from . import profile_j
from .derive import image_count, non_negative, skill_id, turn_completion, turn_config
from .drops import Drop, DropReason, ReducerStats
from .event_params import app_event_params, subagent_client
from .fact_context import FactContext, Reduction
from .profile_j.state import JTables
from .state import (
    Connection,
    InstanceState,
    PendingRequest,
    StateLimits,
    ThreadMetadata,
    TurnState,
)
from .tables import expire_table

#: Default event-time horizon after which idle state expires (design.md §2): 24 h.
DEFAULT_HORIZON_MS = 24 * 60 * 60 * 1000


class Reducer:
    """Applies facts to per-instance states. Holds only configuration and counters.

    ``horizon_ms``: state untouched for longer than this (in the instance's event time)
    is expired: pending requests, threads, connections and unfinished turns. Upstream
    keeps them forever; with the default 24 h, any sequence shorter than the horizon
    gives exactly upstream's output.

    ``dedupe_horizon_ms`` (design.md §5): ``app_used`` with a connector id and
    ``plugin_used`` are emitted at most once per ``(turn_id, key)`` of an instance within
    this window of event time; the key is the connector id, or the plugin's *local* key
    even when a remote id is set, as upstream's client dedupe. ``dedupe=False`` turns it
    off (then the output is upstream's reducer alone, which never dedupes).

    ``limits``: most entries per table of an instance's state (:class:`StateLimits`); a
    fact that needs one more is dropped as ``instance_state_full`` (PROPOSAL).
    """

    def __init__(
        self,
        *,
        horizon_ms: int = DEFAULT_HORIZON_MS,
        dedupe: bool = True,
        dedupe_horizon_ms: int = DEFAULT_HORIZON_MS,
        limits: StateLimits | None = None,
        stats: ReducerStats | None = None,
    ) -> None:
        if horizon_ms <= 0 or dedupe_horizon_ms <= 0:
            raise ValueError("horizons must be positive")
        self.horizon_ms = horizon_ms
        self.dedupe = dedupe
        self.dedupe_horizon_ms = dedupe_horizon_ms
        self.limits = limits if limits is not None else StateLimits()
        # Sweep a few times per horizon: bounded memory for an O(state) pass now and then.
        self.sweep_interval_ms = max(1, min(horizon_ms, dedupe_horizon_ms) // 8)
        self.stats = stats if stats is not None else ReducerStats()
        self._rules_s: dict[str, Callable[[FactContext, Any], None]] = {
            "initialize": self._initialize,
            "client_request": self._client_request,
            "client_response": self._client_response,
            "error_response": self._error_response,
            "server_notification": self._server_notification,
            "subagent_thread_started": self._subagent_thread_started,
            "guardian_review": self._guardian_review,
            "compaction": self._compaction,
            "turn_resolved_config": self._turn_resolved_config,
            "turn_token_usage": self._turn_token_usage,
            "skill_invoked": self._skill_invoked,
            "app_mentioned": self._app_mentioned,
            "app_used": self._app_used,
            "hook_run": self._hook_run,
            "plugin_used": self._plugin_used,
            "plugin_state_changed": self._plugin_state_changed,
        }
        self._rules_j: dict[str, Callable[[FactContext, Any], None]] = {
            "initialize": self._initialize,  # unchanged in Profile J
            **profile_j.RULES,
        }
        self._rules = {CONTRACT_S: self._rules_s, CONTRACT_J: self._rules_j}

    # -- entry point -----------------------------------------------------------------------

    def apply(self, state: InstanceState, fact: FactEnvelope) -> Reduction:
        out = Reduction()
        stats = self.stats
        stats.count_fact(fact.kind)
        contract = fact.contract
        if state.contract != contract:
            if state.contract is not None:
                # One state per instance, in one contract's shape (profile-j.md §1).
                out.drops.append(
                    Drop(
                        DropReason.CONTRACT_CHANGED,
                        fact.source.instance_id,
                        fact.seq,
                        fact.kind,
                        (("instance_contract", state.contract), ("fact_contract", contract)),
                    )
                )
                stats.count_drop(DropReason.CONTRACT_CHANGED)
                return out
            state.contract = contract
            if contract != CONTRACT_S:
                state.j = JTables()
        if fact.seq <= state.last_seq:
            out.duplicate = True
            out.drops.append(
                Drop(
                    DropReason.DUPLICATE_SEQ,
                    fact.source.instance_id,
                    fact.seq,
                    fact.kind,
                    (("last_seq", state.last_seq),),
                )
            )
            stats.count_drop(DropReason.DUPLICATE_SEQ)
            return out
        state.last_seq = fact.seq
        if fact.observed_at_ms > state.watermark_ms:
            state.watermark_ms = fact.observed_at_ms
        if state.watermark_ms - state.last_sweep_ms >= self.sweep_interval_ms:
            self.expire(state)
        self._rules[contract][fact.kind](FactContext(self, state, fact, out), fact.payload)
        for event in out.events:
            stats.count_event(event.event_type)
        for drop in out.drops:
            stats.count_drop(drop.reason)
        return out

    def expire(self, state: InstanceState) -> None:
        """Forget state idle for longer than the horizon (event time of this instance)."""
        state.last_sweep_ms = state.watermark_ms
        cutoff = state.watermark_ms - self.horizon_ms
        count = self.stats.count_expired
        count("requests", expire_table(state.requests, cutoff))
        count("turns", expire_table(state.turns, cutoff))
        count("threads", expire_table(state.threads, cutoff))
        count("connections", expire_table(state.connections, cutoff))
        if state.j is not None:
            for table, n in state.j.expire(cutoff).items():
                count(table, n)
        dedupe_cutoff = state.watermark_ms - self.dedupe_horizon_ms
        stale = [key for key, seen in state.dedupe.items() if seen <= dedupe_cutoff]
        for key in stale:
            del state.dedupe[key]
        count("dedupe_keys", len(stale))

    def first_use(self, ctx: FactContext, turn_id: str, use: str, key: str) -> bool:
        """Windowed dedupe of app and plugin uses: True if this use is to be emitted.

        Shared by both contracts' rules (Profile J's reach it as ``ctx.reducer``)."""
        if not self.dedupe:
            return True
        dedupe = ctx.state.dedupe
        entry = (turn_id, use, key)
        seen = dedupe.get(entry)
        if seen is not None and ctx.now_ms - seen < self.dedupe_horizon_ms:
            ctx.drop(DropReason.DEDUPE_REPEAT, turn_id=turn_id, use=use, key=key)
            return False
        if not ctx.has_room("dedupe_keys", dedupe, entry, self.limits.dedupe_keys):
            return False
        dedupe[entry] = ctx.now_ms
        return True

    # -- connection-scoped facts -------------------------------------------------------------

    def _initialize(self, ctx: FactContext, p: InitializePayload) -> None:
        conn = ctx.fact.connection_id
        assert conn is not None  # the codec guarantees it for connection-scoped kinds
        connections = ctx.state.connections
        if not ctx.has_room("connections", connections, conn, self.limits.connections):
            return
        caps = p.params.capabilities
        client = AppServerClientMetadata(
            product_client_id=p.product_client_id,
            client_name=p.params.client_info.name,
            client_version=p.params.client_info.version,
            rpc_transport=p.rpc_transport,
            experimental_api_enabled=None if caps is None else caps.experimental_api,
        )
        connections[conn] = Connection(client, p.runtime, ctx.now_ms)

    def _client_request(self, ctx: FactContext, p: ClientRequestPayload) -> None:
        conn = ctx.fact.connection_id
        assert conn is not None  # the codec guarantees it for connection-scoped kinds
        if p.turn_start is not None:
            params = p.turn_start
            pending = PendingRequest(
                False, params.thread_id, None, image_count(params.input), None, ctx.now_ms
            )
        elif p.turn_steer is not None:
            steer = p.turn_steer
            pending = PendingRequest(
                True,
                steer.thread_id,
                steer.expected_turn_id,
                image_count(steer.input),
                # PROPOSAL (facts.md §1): the producer's clock stands in for the reducer's.
                ctx.fact.observed_at_ms // 1000,
                ctx.now_ms,
            )
        else:
            return
        key = (conn, p.request_id)
        if ctx.has_room("requests", ctx.state.requests, key, self.limits.requests):
            ctx.state.requests[key] = pending

    def _client_response(self, ctx: FactContext, p: ClientResponsePayload) -> None:
        conn = ctx.fact.connection_id
        assert conn is not None
        state = ctx.state
        if p.thread_lifecycle is not None:
            connection = state.connections.get(conn)
            if connection is None:
                ctx.drop(
                    DropReason.THREAD_RESPONSE_UNKNOWN_CONNECTION,
                    connection_id=conn,
                    thread_id=p.thread_lifecycle.thread.id,
                )
                return
            thread = p.thread_lifecycle.thread
            if not ctx.has_room("threads", state.threads, thread.id, self.limits.threads):
                return
            connection.touched_ms = ctx.now_ms
            mode = THREAD_LIFECYCLE_METHODS[p.method]
            state.threads[thread.id] = ThreadMetadata(
                conn,
                thread.thread_source,
                mode,
                thread.subagent_source,
                thread.parent_thread_id,
                ctx.now_ms,
            )
            ctx.out.events.append(
                ThreadInitializedEvent(
                    event_params=ThreadInitializedEventParams(
                        thread_id=thread.id,
                        app_server_client=connection.client,
                        runtime=connection.runtime,
                        model=p.thread_lifecycle.model,
                        ephemeral=thread.ephemeral,
                        thread_source=thread.thread_source,  # type: ignore[arg-type]
                        initialization_mode=mode,  # type: ignore[arg-type]
                        subagent_source=thread.subagent_source,
                        parent_thread_id=thread.parent_thread_id,
                        created_at=max(thread.created_at, 0),
                    )
                )
            )
            return
        if p.turn_id is None:  # a method the reducer does not read
            return
        wanted_steer = p.method == "turn/steer"
        # Checked before anything changes: a dropped fact leaves the state as it was.
        if not wanted_steer and not self._room_for_turn(ctx, p.turn_id):
            return
        # The pending entry is removed whatever its kind: a mismatched one is discarded.
        pending = state.requests.pop((conn, p.request_id), None)
        if pending is None or pending.is_steer is not wanted_steer:
            ctx.drop(
                DropReason.RESPONSE_WITHOUT_PENDING_REQUEST,
                connection_id=conn,
                request_id=p.request_id,
                method=p.method,
            )
            return
        if not wanted_steer:
            turn = self._turn(ctx, p.turn_id)
            assert turn is not None  # room was checked above
            turn.connection_id = conn
            turn.thread_id = pending.thread_id
            turn.num_input_images = pending.num_input_images
            self._maybe_emit_turn(ctx, p.turn_id)
            return
        # An accepted steer counts only against a turn state that exists at this moment.
        turn_state = state.turns.get(p.turn_id)
        if turn_state is not None:
            turn_state.steer_count += 1
        self._emit_steer(ctx, conn, pending, p.turn_id, "accepted", None)

    def _error_response(self, ctx: FactContext, p: ErrorResponsePayload) -> None:
        conn = ctx.fact.connection_id
        assert conn is not None
        pending = ctx.state.requests.pop((conn, p.request_id), None)
        if pending is None:
            ctx.drop(
                DropReason.ERROR_WITHOUT_PENDING_REQUEST,
                connection_id=conn,
                request_id=p.request_id,
            )
            return
        if pending.is_steer:
            self._emit_steer(ctx, conn, pending, None, "rejected", p.rejection_reason)
        # A failed turn/start just forgets its pending entry: that turn can never emit.

    def _emit_steer(
        self,
        ctx: FactContext,
        conn: int,
        pending: PendingRequest,
        accepted_turn_id: str | None,
        result: str,
        rejection_reason: str | None,
    ) -> None:
        connection = ctx.state.connections.get(conn)
        if connection is None:
            ctx.drop(
                DropReason.STEER_UNKNOWN_CONNECTION,
                connection_id=conn,
                thread_id=pending.thread_id,
            )
            return
        thread = ctx.state.threads.get(pending.thread_id)
        if thread is None:
            ctx.drop(
                DropReason.STEER_MISSING_THREAD_METADATA,
                connection_id=conn,
                thread_id=pending.thread_id,
                expected_turn_id=pending.expected_turn_id,
            )
            return
        connection.touched_ms = thread.touched_ms = ctx.now_ms
        ctx.out.events.append(
            TurnSteerEvent(
                event_params=TurnSteerEventParams(
                    thread_id=pending.thread_id,
                    expected_turn_id=pending.expected_turn_id,  # type: ignore[arg-type]
                    accepted_turn_id=accepted_turn_id,
                    app_server_client=connection.client,
                    runtime=connection.runtime,
                    thread_source=thread.thread_source,  # type: ignore[arg-type]
                    subagent_source=thread.subagent_source,
                    parent_thread_id=thread.parent_thread_id,
                    num_input_images=pending.num_input_images,
                    result=result,  # type: ignore[arg-type]
                    rejection_reason=rejection_reason,  # type: ignore[arg-type]
                    created_at=pending.created_at,  # type: ignore[arg-type]
                )
            )
        )

    # -- turn lifecycle ------------------------------------------------------------------------

    def _room_for_turn(self, ctx: FactContext, turn_id: str) -> bool:
        return ctx.has_room("turns", ctx.state.turns, turn_id, self.limits.turns)

    def _turn(self, ctx: FactContext, turn_id: str) -> TurnState | None:
        """The turn's state, created if new; None (and the fact dropped) when the turns
        table is full."""
        return ctx.entry("turns", ctx.state.turns, turn_id, self.limits.turns, TurnState)

    def _server_notification(self, ctx: FactContext, p: ServerNotificationPayload) -> None:
        if p.turn_started is not None:
            started = p.turn_started.turn
            turn = self._turn(ctx, started.id)
            if turn is None:
                return
            turn.started_at = non_negative(started.started_at)
            return  # turn/started never triggers emission
        if p.turn_completed is not None:
            done = p.turn_completed.turn
            turn = self._turn(ctx, done.id)
            if turn is None:
                return
            turn.completed = turn_completion(done)
            self._maybe_emit_turn(ctx, done.id)

    def _turn_resolved_config(self, ctx: FactContext, p: TurnResolvedConfigPayload) -> None:
        turn = self._turn(ctx, p.turn_id)
        if turn is None:
            return
        turn.thread_id = p.thread_id
        turn.num_input_images = p.num_input_images
        turn.resolved_config = turn_config(p)
        self._maybe_emit_turn(ctx, p.turn_id)

    def _turn_token_usage(self, ctx: FactContext, p: TurnTokenUsagePayload) -> None:
        turn = self._turn(ctx, p.turn_id)
        if turn is None:
            return
        turn.thread_id = p.thread_id
        turn.token_usage = p.token_usage
        self._maybe_emit_turn(ctx, p.turn_id)

    def _maybe_emit_turn(self, ctx: FactContext, turn_id: str) -> None:
        state = ctx.state
        turn = state.turns.get(turn_id)
        if turn is None:
            return
        config, completed, thread_id = turn.resolved_config, turn.completed, turn.thread_id
        if (
            thread_id is None
            or turn.num_input_images is None
            or config is None
            or completed is None
            or turn.connection_id is None  # only a matched turn/start response sets it
        ):
            return
        connection = state.connections.get(turn.connection_id)
        if connection is None:
            ctx.drop(
                DropReason.TURN_MISSING_CONNECTION_METADATA,
                connection_id=turn.connection_id,
                thread_id=thread_id,
                turn_id=turn_id,
            )
            return
        thread = state.threads.get(thread_id)
        if thread is None:
            ctx.drop(
                DropReason.TURN_MISSING_THREAD_METADATA,
                connection_id=turn.connection_id,
                thread_id=thread_id,
                turn_id=turn_id,
            )
            return
        connection.touched_ms = thread.touched_ms = ctx.now_ms
        (
            submission_type,
            ephemeral,
            model,
            model_provider,
            sandbox_policy,
            reasoning_effort,
            reasoning_summary,
            service_tier,
            approval_policy,
            approvals_reviewer,
            sandbox_network_access,
            collaboration_mode,
            personality,
            is_first_turn,
        ) = config
        usage = turn.token_usage
        ctx.out.events.append(
            TurnEvent(
                event_params=TurnEventParams(
                    thread_id=thread_id,
                    turn_id=turn_id,
                    submission_type=submission_type,
                    app_server_client=connection.client,
                    runtime=connection.runtime,
                    ephemeral=ephemeral,
                    thread_source=thread.thread_source,  # type: ignore[arg-type]
                    initialization_mode=thread.initialization_mode,  # type: ignore[arg-type]
                    subagent_source=thread.subagent_source,
                    parent_thread_id=thread.parent_thread_id,
                    model=model,
                    model_provider=model_provider,
                    sandbox_policy=sandbox_policy,  # type: ignore[arg-type]
                    reasoning_effort=reasoning_effort,
                    reasoning_summary=reasoning_summary,
                    service_tier=service_tier,
                    approval_policy=approval_policy,
                    approvals_reviewer=approvals_reviewer,
                    sandbox_network_access=sandbox_network_access,
                    collaboration_mode=collaboration_mode,  # type: ignore[arg-type]
                    personality=personality,
                    num_input_images=turn.num_input_images,
                    is_first_turn=is_first_turn,
                    status=completed.status,  # type: ignore[arg-type]
                    turn_error=completed.turn_error,
                    steer_count=turn.steer_count,
                    total_tool_call_count=None,
                    shell_command_count=None,
                    file_change_count=None,
                    mcp_tool_call_count=None,
                    dynamic_tool_call_count=None,
                    subagent_tool_call_count=None,
                    web_search_count=None,
                    image_generation_count=None,
                    input_tokens=None if usage is None else usage.input_tokens,
                    cached_input_tokens=None if usage is None else usage.cached_input_tokens,
                    output_tokens=None if usage is None else usage.output_tokens,
                    reasoning_output_tokens=None
                    if usage is None
                    else usage.reasoning_output_tokens,
                    total_tokens=None if usage is None else usage.total_tokens,
                    duration_ms=completed.duration_ms,
                    started_at=turn.started_at,
                    completed_at=completed.completed_at,
                )
            )
        )
        del state.turns[turn_id]

    # -- facts that need thread context -------------------------------------------------------

    def _guardian_review(self, ctx: FactContext, p: GuardianReviewPayload) -> None:
        thread = ctx.state.threads.get(p.thread_id)
        ids = {"thread_id": p.thread_id, "turn_id": p.turn_id, "review_id": p.review_id}
        if thread is None:
            ctx.drop(DropReason.GUARDIAN_MISSING_THREAD_CONNECTION, **ids)
            return
        connection = ctx.state.connections.get(thread.connection_id)
        if connection is None:
            ctx.drop(
                DropReason.GUARDIAN_MISSING_CONNECTION, connection_id=thread.connection_id, **ids
            )
            return
        connection.touched_ms = thread.touched_ms = ctx.now_ms
        params: dict[str, Any] = {
            "app_server_client": connection.client,
            "runtime": connection.runtime,
        }
        params.update(p.raw)
        ctx.out.events.append(GuardianReviewEvent(event_params=params))

    def _compaction(self, ctx: FactContext, p: CompactionPayload) -> None:
        ids = {"thread_id": p.thread_id, "turn_id": p.turn_id}
        thread = ctx.state.threads.get(p.thread_id)
        if thread is None:
            ctx.drop(DropReason.COMPACTION_MISSING_THREAD_CONNECTION, **ids)
            return
        connection = ctx.state.connections.get(thread.connection_id)
        if connection is None:
            ctx.drop(
                DropReason.COMPACTION_MISSING_CONNECTION, connection_id=thread.connection_id, **ids
            )
            return
        # (Profile S sets a thread's connection and lifecycle metadata together, so the third
        # upstream check, "missing thread lifecycle metadata", cannot fail separately here.)
        connection.touched_ms = thread.touched_ms = ctx.now_ms
        ctx.out.events.append(
            CompactionEvent(
                event_params=CompactionEventParams(
                    thread_id=p.thread_id,
                    turn_id=p.turn_id,
                    app_server_client=connection.client,
                    runtime=connection.runtime,
                    thread_source=thread.thread_source,  # type: ignore[arg-type]
                    subagent_source=thread.subagent_source,
                    parent_thread_id=thread.parent_thread_id,
                    trigger=p.trigger,
                    reason=p.reason,
                    implementation=p.implementation,
                    phase=p.phase,
                    strategy=p.strategy,
                    status=p.status,
                    error=p.error,
                    active_context_tokens_before=p.active_context_tokens_before,
                    active_context_tokens_after=p.active_context_tokens_after,
                    started_at=p.started_at,
                    completed_at=p.completed_at,
                    duration_ms=p.duration_ms,
                )
            )
        )

    # -- stateless custom facts -----------------------------------------------------------------

    def _subagent_thread_started(self, ctx: FactContext, p: SubagentThreadStartedPayload) -> None:
        # Profile S records no thread metadata here (reducer.md §3.7).
        ctx.out.events.append(
            ThreadInitializedEvent(
                event_params=ThreadInitializedEventParams(
                    thread_id=p.thread_id,
                    app_server_client=subagent_client(
                        p.product_client_id, p.client_name, p.client_version
                    ),
                    runtime=ctx.fact.source.runtime,
                    model=p.model,
                    ephemeral=p.ephemeral,
                    thread_source="subagent",
                    initialization_mode="new",
                    subagent_source=p.subagent_name,
                    parent_thread_id=(
                        p.parent_thread_id
                        if p.parent_thread_id is not None
                        else p.spawn_parent_thread_id
                    ),
                    created_at=p.created_at,
                )
            )
        )

    def _skill_invoked(self, ctx: FactContext, p: SkillInvokedPayload) -> None:
        originator = ctx.fact.source.originator
        tracking = p.tracking
        for inv in p.invocations:
            resolved = inv.resolved
            ctx.out.events.append(
                SkillInvocationEvent(
                    skill_id=skill_id(inv.skill_name, resolved),
                    skill_name=inv.skill_name,
                    event_params=SkillInvocationEventParams(
                        product_client_id=originator,
                        skill_scope=inv.skill_scope,
                        repo_url=resolved.repo_url,
                        thread_id=tracking.thread_id,
                        invoke_type=inv.invocation_type,
                        model_slug=tracking.model_slug,
                    ),
                )
            )

    def _app_mentioned(self, ctx: FactContext, p: AppMentionedPayload) -> None:
        originator = ctx.fact.source.originator
        for app in p.mentions:
            ctx.out.events.append(
                AppMentionedEvent(event_params=app_event_params(p.tracking, app, originator))
            )

    def _app_used(self, ctx: FactContext, p: AppUsedPayload) -> None:
        connector = p.app.connector_id
        # An app without a connector id always passes, as upstream.
        if connector is not None and not self.first_use(ctx, p.tracking.turn_id, "app", connector):
            return
        ctx.out.events.append(
            AppUsedEvent(
                event_params=app_event_params(p.tracking, p.app, ctx.fact.source.originator)
            )
        )

    def _hook_run(self, ctx: FactContext, p: HookRunPayload) -> None:
        hook = p.hook
        ctx.out.events.append(
            HookRunEvent(
                event_params=HookRunEventParams(
                    thread_id=p.tracking.thread_id,
                    turn_id=p.tracking.turn_id,
                    model_slug=p.tracking.model_slug,
                    hook_name=hook.event_name,
                    hook_source=hook.hook_source,
                    # Upstream never reports a hook as still running.
                    status="failed" if hook.status == "running" else hook.status,
                )
            )
        )

    def _plugin_used(self, ctx: FactContext, p: PluginUsedPayload) -> None:
        plugin, tracking = p.plugin, p.tracking
        if not self.first_use(ctx, tracking.turn_id, "plugin", plugin.plugin_id):
            return
        summary = plugin.capability_summary
        ctx.out.events.append(
            PluginUsedEvent(
                event_params=PluginUsedEventParams(
                    *_plugin_metadata(plugin, ctx.fact.source.originator),
                    mcp_server_names=None if summary is None else summary.mcp_server_names,
                    thread_id=tracking.thread_id,
                    turn_id=tracking.turn_id,
                    model_slug=tracking.model_slug,
                )
            )
        )

    def _plugin_state_changed(self, ctx: FactContext, p: PluginStateChangedPayload) -> None:
        event_model = PLUGIN_STATE_EVENTS[p.state]
        ctx.out.events.append(
            event_model(
                event_params=PluginEventParams(
                    *_plugin_metadata(p.plugin, ctx.fact.source.originator)
                )
            )
        )


def _plugin_metadata(
    plugin: PluginTelemetryMetadata, originator: str
) -> tuple[str, str, str, bool | None, int | None, list[str] | None, str]:
    """``codex_plugin_metadata`` (reducer.md §4.7): the remote id wins ``plugin_id``; the
    name halves always come from the local key."""
    summary = plugin.capability_summary
    return (
        plugin.remote_plugin_id if plugin.remote_plugin_id is not None else plugin.plugin_id,
        plugin.plugin_name,
        plugin.marketplace_name,
        None if summary is None else summary.has_skills,
        None if summary is None else len(summary.mcp_server_names),
        None if summary is None else summary.app_connector_ids,
        originator,
    )
