"""Profile J reducer rules: the activity domain (profile-j.md §5.6-§5.7).

Guardian reviews, compaction and goals need the thread's context (its connection and
lifecycle metadata, §5.7): without it the event is dropped with upstream's warning, and
it is not replayed when the context appears later. Every other rule here is stateless:
one event per fact (per invocation or mention), from the fact alone, except for the
windowed dedupe of app and plugin uses.

Product ids: skill, app, hook and plugin-used events take the tracking context's
``product_client_id``; the plugin state, install and onboarding events take the
process's originator (``source.originator``), as upstream's ``originator()``.
"""

from __future__ import annotations

from typing import Any

from codex_analytics.contract.events import AppMentionedEvent, AppUsedEvent
from codex_analytics.contract.profile_j.activity_events import (
    PLUGIN_STATE_EVENTS_J,
    CompactionEventJ,
    CompactionEventParamsJ,
    ExternalAgentImportCompleteEvent,
    ExternalAgentImportCompleteEventParams,
    ExternalAgentImportFailureEvent,
    ExternalAgentImportFailureEventParams,
    GoalEvent,
    GoalEventParams,
    GuardianReviewEventJ,
    HookRunEventJ,
    HookRunEventParamsJ,
    PluginEventParamsJ,
    PluginInstallFailedEvent,
    PluginInstallFailedEventParams,
    PluginInstallRequestedEvent,
    PluginInstallRequestedEventParams,
    PluginInstallRequestedPluginParams,
    PluginUsedEventJ,
    PluginUsedEventParamsJ,
    SkillInvocationEventJ,
    SkillInvocationEventParamsJ,
)
from codex_analytics.contract.profile_j.activity_facts import (
    AppMentionedPayloadJ,
    AppUsedPayloadJ,
    CompactionPayloadJ,
    ExternalAgentConfigImportCompletedPayload,
    ExternalAgentConfigImportFailurePayload,
    GoalPayload,
    GuardianReviewPayloadJ,
    HookRunPayloadJ,
    PluginInstallFailedPayload,
    PluginInstallRequestedPayload,
    PluginStateChangedPayloadJ,
    PluginTelemetryMetadataJ,
    PluginUsedPayloadJ,
    SkillInvokedPayloadJ,
)

from ..derive import skill_id
from ..event_params import app_event_params
from ..fact_context import FactContext
from .context import thread_context
from .rules import Rule

# -- facts that need thread context ---------------------------------------------------------


def guardian_review(ctx: FactContext, p: GuardianReviewPayloadJ) -> None:
    context = thread_context(ctx, p.thread_id, "guardian", turn_id=p.turn_id, review_id=p.review_id)
    if context is None:
        return
    # upstream flattens its params struct after the event's own three keys.
    params: dict[str, Any] = {
        "session_id": context.metadata.session_id,
        "app_server_client": context.client,
        "runtime": context.runtime,
        **p.event_params,
    }
    ctx.emit(GuardianReviewEventJ(event_params=params))


def compaction(ctx: FactContext, p: CompactionPayloadJ) -> None:
    context = thread_context(ctx, p.thread_id, "compaction", turn_id=p.turn_id)
    if context is None:
        return
    ctx.emit(
        CompactionEventJ(
            event_params=CompactionEventParamsJ(
                thread_id=p.thread_id,
                session_id=context.metadata.session_id,
                turn_id=p.turn_id,
                **context.client_and_lineage(),
                trigger=p.trigger,
                reason=p.reason,
                implementation=p.implementation,
                phase=p.phase,
                strategy=p.strategy,
                status=p.status,
                codex_error_kind=p.codex_error_kind,
                codex_error_http_status_code=p.codex_error_http_status_code,
                active_context_tokens_before=p.active_context_tokens_before,
                active_context_tokens_after=p.active_context_tokens_after,
                retained_image_count=p.retained_image_count,
                compaction_summary_tokens=p.compaction_summary_tokens,
                cached_input_tokens=p.cached_input_tokens,
                cache_write_input_tokens=p.cache_write_input_tokens,
                started_at=p.started_at,
                completed_at=p.completed_at,
                duration_ms=p.duration_ms,
            )
        )
    )


def goal(ctx: FactContext, p: GoalPayload) -> None:
    context = thread_context(ctx, p.thread_id, "goal", turn_id=p.turn_id)
    if context is None:
        return
    ctx.emit(
        GoalEvent(
            event_params=GoalEventParams(
                thread_id=p.thread_id,
                session_id=context.metadata.session_id,
                turn_id=p.turn_id,
                **context.client_and_lineage(),
                goal_id=p.goal_id,
                event_kind=p.event_kind,
                goal_status=p.goal_status,
                has_token_budget=p.has_token_budget,
                cumulative_tokens_accounted=p.cumulative_tokens_accounted,
                cumulative_time_accounted_seconds=p.cumulative_time_accounted_seconds,
            )
        )
    )


# -- skills, apps, hooks ----------------------------------------------------------------------


def skill_invoked(ctx: FactContext, p: SkillInvokedPayloadJ) -> None:
    tracking = p.tracking
    for inv in p.invocations:
        resolved = inv.resolved
        ctx.emit(
            SkillInvocationEventJ(
                skill_id=skill_id(inv.skill_name, resolved),
                skill_name=inv.skill_name,
                event_params=SkillInvocationEventParamsJ(
                    product_client_id=tracking.product_client_id,
                    skill_scope=inv.skill_scope,
                    plugin_id=inv.plugin_id,
                    remote_plugin_id=inv.remote_plugin_id,
                    repo_url=resolved.repo_url,
                    thread_id=tracking.thread_id,
                    turn_id=tracking.turn_id,
                    invoke_type=inv.invocation_type,
                    model_slug=tracking.model_slug,
                ),
            )
        )


def app_mentioned(ctx: FactContext, p: AppMentionedPayloadJ) -> None:
    for app in p.mentions:
        ctx.emit(
            AppMentionedEvent(
                event_params=app_event_params(p.tracking, app, p.tracking.product_client_id)
            )
        )


def app_used(ctx: FactContext, p: AppUsedPayloadJ) -> None:
    connector = p.app.connector_id
    # As Profile S: keyed by (turn, connector id); an app without one always passes.
    if connector is not None and not ctx.reducer.first_use(
        ctx, p.tracking.turn_id, "app", connector
    ):
        return
    ctx.emit(
        AppUsedEvent(event_params=app_event_params(p.tracking, p.app, p.tracking.product_client_id))
    )


def hook_run(ctx: FactContext, p: HookRunPayloadJ) -> None:
    tracking, hook = p.tracking, p.hook
    ctx.emit(
        HookRunEventJ(
            event_params=HookRunEventParamsJ(
                thread_id=tracking.thread_id,
                turn_id=tracking.turn_id,
                product_client_id=tracking.product_client_id,
                model_slug=tracking.model_slug,
                hook_name=hook.event_name,
                hook_source=hook.hook_source,
                # Upstream never reports a hook as still running.
                status="failed" if hook.status == "running" else hook.status,
            )
        )
    )


# -- plugins ----------------------------------------------------------------------------------

PluginMetadata = tuple[
    str | None, str | None, str | None, str | None, bool | None, int | None, list[str] | None, str
]


def _plugin_metadata(plugin: PluginTelemetryMetadataJ, product_client_id: str) -> PluginMetadata:
    """``codex_plugin_metadata`` (PR #29495): the local key and its halves (null without a
    local id; the remote id never stands in), the remote id, and the capability summary's
    counts (null without a summary). In :class:`PluginEventParamsJ` order."""
    summary = plugin.capability_summary
    return (
        plugin.plugin_id,
        plugin.remote_plugin_id,
        plugin.plugin_name,
        plugin.marketplace_name,
        None if summary is None else summary.has_skills,
        None if summary is None else len(summary.mcp_server_names),
        None if summary is None else summary.app_connector_ids,
        product_client_id,
    )


def plugin_used(ctx: FactContext, p: PluginUsedPayloadJ) -> None:
    plugin, tracking = p.plugin, p.tracking
    # profile-j.md §6 "Dedupe": the local key, else the remote id; with neither, always
    # emitted (upstream's client cannot key it either).
    key = plugin.plugin_id if plugin.plugin_id is not None else plugin.remote_plugin_id
    if key is not None and not ctx.reducer.first_use(ctx, tracking.turn_id, "plugin", key):
        return
    summary = plugin.capability_summary
    ctx.emit(
        PluginUsedEventJ(
            event_params=PluginUsedEventParamsJ(
                *_plugin_metadata(plugin, tracking.product_client_id),
                mcp_server_names=None if summary is None else summary.mcp_server_names,
                thread_id=tracking.thread_id,
                turn_id=tracking.turn_id,
                model_slug=tracking.model_slug,
            )
        )
    )


def plugin_state_changed(ctx: FactContext, p: PluginStateChangedPayloadJ) -> None:
    event_model = PLUGIN_STATE_EVENTS_J[p.state]
    ctx.emit(
        event_model(
            event_params=PluginEventParamsJ(*_plugin_metadata(p.plugin, ctx.fact.source.originator))
        )
    )


def plugin_install_requested(ctx: FactContext, p: PluginInstallRequestedPayload) -> None:
    tracking, request = p.tracking, p.request
    ctx.emit(
        PluginInstallRequestedEvent(
            event_params=PluginInstallRequestedEventParams(
                suggestion_id=request.suggestion_id,
                plugins=[
                    PluginInstallRequestedPluginParams(
                        plugin_id=plugin.plugin_id,
                        remote_plugin_id=plugin.remote_plugin_id,
                        plugin_name=plugin.plugin_name,
                        connector_ids=plugin.connector_ids,
                    )
                    for plugin in request.plugins
                ],
                source=request.source,
                thread_id=tracking.thread_id,
                turn_id=tracking.turn_id,
                model_slug=tracking.model_slug,
                # Upstream reads the process originator here, not the tracking context.
                product_client_id=ctx.fact.source.originator,
            )
        )
    )


def plugin_install_failed(ctx: FactContext, p: PluginInstallFailedPayload) -> None:
    ctx.emit(
        PluginInstallFailedEvent(
            event_params=PluginInstallFailedEventParams(
                *_plugin_metadata(p.plugin, ctx.fact.source.originator),
                source=p.source,
                error_type=p.error_type,
                sub_error_type=p.sub_error_type,
            )
        )
    )


# -- external-agent config import (onboarding) ----------------------------------------------------


def external_agent_config_import_completed(
    ctx: FactContext, p: ExternalAgentConfigImportCompletedPayload
) -> None:
    ctx.emit(
        ExternalAgentImportCompleteEvent(
            event_params=ExternalAgentImportCompleteEventParams(
                import_id=p.import_id,
                source=p.source,
                provider_id=p.provider_id,
                type=p.item_type,
                success_count=p.success_count,
                failed_count=p.failed_count,
                product_client_id=ctx.fact.source.originator,
            )
        )
    )


def external_agent_config_import_failure(
    ctx: FactContext, p: ExternalAgentConfigImportFailurePayload
) -> None:
    ctx.emit(
        ExternalAgentImportFailureEvent(
            event_params=ExternalAgentImportFailureEventParams(
                import_id=p.import_id,
                source=p.source,
                provider_id=p.provider_id,
                type=p.item_type,
                failure_stage=p.failure_stage,
                error_type=p.error_type,
                sub_error_type=p.sub_error_type,
                product_client_id=ctx.fact.source.originator,
            )
        )
    )


#: fact kind -> rule.
RULES: dict[str, Rule] = {
    "guardian_review": guardian_review,
    "compaction": compaction,
    "goal": goal,
    "skill_invoked": skill_invoked,
    "app_mentioned": app_mentioned,
    "app_used": app_used,
    "hook_run": hook_run,
    "plugin_used": plugin_used,
    "plugin_state_changed": plugin_state_changed,
    "plugin_install_requested": plugin_install_requested,
    "plugin_install_failed": plugin_install_failed,
    "external_agent_config_import_completed": external_agent_config_import_completed,
    "external_agent_config_import_failure": external_agent_config_import_failure,
}
