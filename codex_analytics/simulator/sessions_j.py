"""Realistic sessions of contract ``2026-08`` (Profile J) for the generator.

A simulated process initializes its connections and starts threads (with session ids,
thread sources, forks and sub-agent lineage, sometimes a per-thread originator); its
turns carry a profile, image preparations, skills, apps, plugins and hooks, tool items
of the seven tracked kinds (started, then completed, some reviewed by the user or the
guardian first), code-mode calls (held until the turn completes, a later sampling
response or a flush), goals, compactions, guardian reviews, steers, interrupts, codex
errors and diffs. Between turns it archives and closes threads, installs plugins (some
installs fail), imports an external agent's config and flushes. A few facts are ones
the reducer must drop (unknown threads, a tool item never started, a second abort).

Reduced, these sessions give every Profile J event type (profile-j.md §4).
"""

from __future__ import annotations

import random
import uuid
from typing import TYPE_CHECKING, Any

from codex_analytics.simulator.fact_builder_j import FactBuilderJ, skill_j, unified_diff
from codex_analytics.simulator.process import SimulatedProcess
from codex_analytics.simulator.tool_episodes_j import ToolEpisodesJ
from codex_analytics.simulator.tool_items_j import REVIEWED_ACTIONS, tool_item

if TYPE_CHECKING:
    from codex_analytics.simulator.generator import GeneratorConfig

#: Namespace of the generated thread ids (any fixed UUID: only determinism matters).
_THREAD_NAMESPACE = uuid.UUID("6f0c2a8e-51c4-4b55-9a3e-202608000000")
_SOURCES: list[Any] = ["cli", "vscode", "vscode", "exec", "appServer", {"custom": "jetbrains"}]
#: ``thread.threadSource``: upstream ``ThreadSource`` (a feature's name passes through).
_THREAD_SOURCES: list[str | None] = ["user", "user", "user", "memory_consolidation", None, "goals"]
_SUBAGENT_KINDS: list[Any] = ["review", "compact", "memory_consolidation", {"other": "guardian"}]
_MODELS = ["gpt-5", "gpt-5-codex", "gpt-5.1-codex", "gpt-5.4"]
#: (local id, remote id): the local key ``name@marketplace`` and the backend id.
_PLUGINS: list[tuple[str, str | None]] = [
    ("linear@openai-curated", "plugins~Plugin_linear"),
    ("sample@test", None),
    ("github@openai-curated", "plugins~Plugin_github"),
    ("notion.so@openai-curated", None),
]
_CONNECTORS = [("drive", "Google Drive"), ("calendar", "Calendar"), ("slack", "Slack")]
_HOOKS = [
    ("PreToolUse", "user"),
    ("PostToolUse", "project"),
    ("SessionStart", "mdm"),
    ("SessionEnd", "plugin"),
    ("Stop", "cloud_managed_config"),
]
_HOOK_STATUSES = ["completed", "completed", "failed", "blocked", "stopped", "running"]
_SANDBOXES = ["read_only", "workspace_write", "full_access", "external_sandbox"]
#: Upstream ``CodexErrKind`` values (snake_case) with their HTTP status, if any.
_CODEX_ERRORS: list[tuple[str, int | None]] = [
    ("context_window_exceeded", None),
    ("usage_limit_reached", 429),
    ("server_overloaded", 503),
    ("connection_failed", None),
    ("unexpected_status", 502),
    ("tool_collision", None),
]
_GOAL_STATUSES = ["active", "paused", "blocked", "usage_limited", "budget_limited", "complete"]
_STEER_REJECTIONS: list[Any] = [
    {"turn_steer": "no_active_turn"},
    {"turn_steer": "expected_turn_mismatch"},
    {"input": "too_large"},
    None,
]


class SimulatedInstanceJ(ToolEpisodesJ, SimulatedProcess[FactBuilderJ]):
    """One Codex process of contract ``2026-08``."""

    def __init__(self, index: int, account: int, config: GeneratorConfig, rng: random.Random):
        super().__init__(f"inst-{config.seed}-j{index:05d}", rng, config)
        self.builder = FactBuilderJ(
            self.name,
            originator=rng.choice(["codex_cli_rs", "codex_vscode", "codex_exec"]),
            product_client_id=rng.choice(["codex_work_desktop", "codex-tui", "codex_vscode"]),
        )
        self._start(account)
        #: (connection, thread id, session id) of the threads opened so far.
        self.threads: list[tuple[int, str, str]] = []
        self.server_request_id = 0

    # -- episodes ----------------------------------------------------------------------

    def _plan_episode(self) -> None:
        b, rng = self.builder, self.rng
        self._begin_episode([None, {"experimentalApi": True, "optOutNotificationMethods": None}])
        if not self.threads or rng.random() < 0.12:
            self._thread()
            return
        roll = rng.random()
        # A turn is some 25 facts and the other episodes one to three: these odds keep
        # every event type well represented in a few thousand facts.
        if roll < 0.55:
            self._turn()
        elif roll < 0.60:
            self._subagent()
        elif roll < 0.71:
            self._plugins()
        elif roll < 0.77:
            self._onboarding()
        elif roll < 0.84:
            self._thread_lifecycle()
        elif roll < 0.87:
            self._goal()
        elif roll < 0.89:
            self.queue.append(b.flush())
        elif roll < 0.95:
            self._orphans()
        else:
            self._thread()

    def thread_id(self) -> str:
        """A new thread id: a UUID, as upstream's (a spawned agent's source names its
        parent by it), derived from a readable name so that runs stay deterministic."""
        return str(uuid.uuid5(_THREAD_NAMESPACE, self.next_id("th")))

    def _thread(self) -> None:
        b, rng = self.builder, self.rng
        conn = rng.choice(self.connections)
        thread_id = self.thread_id()
        method = rng.choices(["thread/start", "thread/resume", "thread/fork"], [7, 2, 1])[0]
        forked_from = None
        session_id = f"{thread_id}-session"
        if method == "thread/fork" and self.threads:
            _, forked_from, session_id = rng.choice(self.threads)
        source: Any = rng.choice(_SOURCES)
        thread_source = rng.choice(_THREAD_SOURCES)
        parent = None
        if self.threads and rng.random() < 0.1:
            _, parent, session_id = rng.choice(self.threads)
            depth = rng.randrange(1, 3)
            source = {"subAgent": {"thread_spawn": _spawn(parent, depth)}}
            thread_source = "subagent"
        self.queue.append(
            b.thread_response(
                conn,
                thread_id,
                method=method,
                session_id=session_id,
                source=source,
                thread_source=thread_source,
                parent_thread_id=parent,
                forked_from_id=forked_from,
                ephemeral=rng.random() < 0.2,
                created_at=b.now_ms // 1000,
                model=rng.choice(_MODELS),
                request_id=self.counter,
                thread_originator=rng.choice([None, None, None, "codex_chatgpt_desktop"]),
            )
        )
        self.threads.append((conn, thread_id, session_id))

    def _subagent(self) -> None:
        rng = self.rng
        _, parent, session_id = rng.choice(self.threads)
        kind: Any = rng.choice([*_SUBAGENT_KINDS, "thread_spawn"])
        explicit_parent = parent if rng.random() < 0.7 else None
        if kind == "thread_spawn":
            kind = {"thread_spawn": _spawn(parent, 1)}
        self.queue.append(
            self.builder.subagent_thread_started(
                self.thread_id(),
                session_id=session_id,
                subagent_source=kind,
                parent_thread_id=explicit_parent,
                forked_from_thread_id=parent if rng.random() < 0.2 else None,
                ephemeral=rng.random() < 0.5,
                created_at=self.builder.now_ms // 1000,
            )
        )

    def _turn(self) -> None:
        b, rng, q = self.builder, self.rng, self.queue
        conn, thread_id, _ = rng.choice(self.threads)
        if rng.random() < 0.2:  # turns may be sent on another connection of the process
            conn = rng.choice(self.connections)
        turn_id, images, model = self._open_turn(conn, thread_id, _MODELS)
        q.append(self._resolved_config(turn_id, thread_id, images, model))
        for i in range(images):
            q.append(
                b.image_preparation(
                    turn_id,
                    f"{turn_id}-img{i}",
                    effective_detail=rng.choice(["high", "original"]),
                    width=rng.choice([800, 2048, 4096]),
                )
            )
        self._uses(thread_id, turn_id, model)
        for _ in range(rng.choices([0, 1, 2, 4], [3, 4, 2, 1])[0]):
            self._tool(conn, thread_id, turn_id)
        if rng.random() < 0.15:
            self._code_mode(thread_id, turn_id)
        if rng.random() < 0.1:
            q.append(
                b.guardian_review(
                    thread_id,
                    turn_id,
                    self.next_id("rv"),
                    action=rng.choice(list(REVIEWED_ACTIONS)),
                    decision=rng.choice(["approved", "denied"]),
                    target_item_id=rng.choice([None, f"{turn_id}-item"]),
                )
            )
        if rng.random() < 0.08:
            q.append(
                b.compaction(
                    thread_id,
                    turn_id,
                    status=rng.choice(["completed", "completed", "failed"]),
                    reason=rng.choice(["context_limit", "user_requested", "comp_hash_changed"]),
                    implementation=rng.choice(["responses_compact", "responses_compaction_v2"]),
                )
            )
        if rng.random() < 0.08:
            q.append(
                b.goal(
                    thread_id,
                    self.next_id("goal"),
                    "usage_accounted",
                    turn_id=turn_id,
                    tokens=rng.randrange(1000, 90_000),
                    seconds=rng.randrange(10, 900),
                )
            )
        if rng.random() < 0.15:
            self._steer(conn, thread_id, turn_id, _STEER_REJECTIONS)
        if rng.random() < 0.4:
            for _ in range(rng.choice([1, 2])):
                q.append(
                    b.turn_diff_updated(
                        thread_id, turn_id, unified_diff(rng.randrange(0, 6), rng.randrange(0, 4))
                    )
                )
        if rng.random() < 0.9:
            q.append(b.token_usage(turn_id, thread_id, total=rng.randrange(100, 50_000)))
        if rng.random() < 0.95:  # without its profile a turn is never reported
            q.append(b.turn_profile(turn_id, sampling_ms=rng.randrange(200, 20_000)))
        status = rng.choices(["completed", "interrupted", "failed", "inProgress"], [80, 10, 8, 2])[
            0
        ]
        if status == "interrupted":
            self._interrupt(conn, turn_id)
        error: Any = "no-error"
        if status == "failed":
            kind, http_status = rng.choice(_CODEX_ERRORS)
            q.append(b.turn_codex_error(turn_id, thread_id, kind, http_status))
            error = rng.choice(["badRequest", {"httpConnectionFailed": {"httpStatusCode": 502}}])
        self._close_turn(turn_id, thread_id, status, error)

    def _resolved_config(
        self, turn_id: str, thread_id: str, images: int, model: str
    ) -> dict[str, Any]:
        rng = self.rng
        return self.builder.resolved_config(
            turn_id,
            thread_id,
            num_input_images=images,
            model=model,
            reasoning_effort=rng.choice([None, "low", "medium", "high"]),
            reasoning_summary=rng.choice([None, "auto", "none", "detailed"]),
            service_tier=rng.choice([None, None, "fast", "flex"]),
            approval_policy=rng.choice(["on-request", "never", "untrusted", "on-failure"]),
            approvals_reviewer=rng.choice(["user", "guardian_subagent", "auto_review"]),
            collaboration_mode=rng.choice(["default", "plan"]),
            personality=rng.choice([None, "none", "friendly", "pragmatic"]),
            workspace_kind=rng.choice([None, "git", "plain"]),
            is_first_turn=rng.random() < 0.3,
            resolved={
                "sandbox_policy": rng.choice(_SANDBOXES),
                "repo_hash": rng.choice([None, f"repo-{self.name}"]),
            },
        )

    def _uses(self, thread_id: str, turn_id: str, model: str) -> None:
        """Skills, app mentions and uses, plugin uses and hooks of a turn."""
        b, rng, q = self.builder, self.rng, self.queue
        where = {"turn_id": turn_id, "thread_id": thread_id}
        if rng.random() < 0.2:
            q.append(b.skill_invoked(*self._skills(), **where))
        if rng.random() < 0.15:
            self._mention_apps(_CONNECTORS, thread_id, turn_id)
        if rng.random() < 0.2:
            self._use_app(_CONNECTORS, 3, thread_id, turn_id)
        if rng.random() < 0.2:
            key, remote = rng.choice(_PLUGINS)
            # Known to the backend only: no local key yet.
            local = None if remote is not None and rng.random() < 0.2 else key
            for _ in range(self._repeats(3)):
                q.append(b.plugin_used(local, remote_plugin_id=remote, **where))
        if rng.random() < 0.05:
            q.append(
                b.plugin_install_requested(
                    self.next_id("sugg"),
                    [
                        {
                            "plugin_id": local,
                            "remote_plugin_id": remote,
                            "plugin_name": local.partition("@")[0],
                            "connector_ids": ["connector_linear"] if remote else [],
                        }
                        for local, remote in rng.sample(_PLUGINS, rng.choice([1, 2]))
                    ],
                    source=rng.choice(["endpoint_recommendation", "legacy_discovery"]),
                    **where,
                )
            )
        if rng.random() < 0.2:
            self._run_hook(_HOOKS, _HOOK_STATUSES, thread_id, turn_id)

    def _skills(self) -> list[dict[str, Any]]:
        out = []
        for _ in range(self.rng.choice([1, 1, 2])):
            name = self.rng.choice(["doc", "lint", "release", "deploy"])
            roll = self.rng.random()
            if roll < 0.4:
                out.append(skill_j(name, path=f"/Users/dev/.codex/skills/{name}/SKILL.md"))
            elif roll < 0.7:
                local, remote = self.rng.choice(_PLUGINS)
                marketplace = local.rpartition("@")[2]
                path = f"/Users/dev/.codex/plugins/cache/{marketplace}/{name}/SKILL.md"
                out.append(
                    skill_j(
                        name,
                        path=path,
                        plugin_id=local,
                        remote_plugin_id=remote,
                        invocation_type="implicit",
                    )
                )
            else:
                root = f"/work/{self.name}"
                out.append(
                    skill_j(
                        name,
                        scope="repo",
                        path=f"{root}/.codex/skills/{name}/SKILL.md",
                        repo_root=root,
                        repo_url=f"https://git.example.com/{self.name}.git",
                        invocation_type=self.rng.choice(["explicit", "implicit"]),
                    )
                )
        return out

    def _interrupt(self, conn: int, turn_id: str) -> None:
        """One or two interrupt requests; the earliest answered one counts."""
        b, rng, q = self.builder, self.rng, self.queue
        for _ in range(rng.choice([1, 1, 2])):
            rid = f"interrupt-{self.next_id('ir')}"
            q.append(b.turn_interrupt_request(conn, rid, turn_id, requested_at_ms=b.now_ms))
            if rng.random() < 0.85:
                q.append(b.turn_interrupt_response(conn, rid))
            else:
                q.append(b.error_response(conn, rid, None))

    def _plugins(self) -> None:
        """Plugin state changes, installs that fail before or after details resolved."""
        b, rng, q = self.builder, self.rng, self.queue
        local, remote = rng.choice(_PLUGINS)
        if rng.random() < 0.3:
            known = rng.random() < 0.5
            q.append(
                b.plugin_install_failed(
                    local if known else None,
                    remote if remote else "plugins~Plugin_00000000000000000000000000000000",
                    source=rng.choice(["manual", "external_agent_migration"]),
                    error_type=rng.choice(["remote_catalog_unexpected_status", "download_failed"]),
                    sub_error_type=rng.choice([None, "timeout"]),
                )
            )
            return
        for state in rng.choice(
            [["installed", "enabled"], ["disabled"], ["enabled"], ["uninstalled"]]
        ):
            q.append(
                b.plugin_state(
                    state,
                    local,
                    remote_plugin_id=remote,
                    summary="default" if rng.random() < 0.8 else None,
                )
            )

    def _onboarding(self) -> None:
        b, rng = self.builder, self.rng
        import_id = self.next_id("import")
        item_type = rng.choice(["PLUGINS", "SKILLS", "MCP_SERVERS", "CONFIG"])
        if rng.random() < 0.55:
            self.queue.append(
                b.import_completed(
                    import_id, item_type, success=rng.randrange(1, 6), failed=rng.randrange(0, 2)
                )
            )
        else:
            self.queue.append(
                b.import_failure(
                    import_id,
                    item_type,
                    failure_stage=rng.choice(["plugin_import", "config_parse"]),
                    sub_error_type=rng.choice([None, "failed_to_copy_plugin_file"]),
                )
            )

    def _thread_lifecycle(self) -> None:
        b, rng = self.builder, self.rng
        index = rng.randrange(len(self.threads))
        _, thread_id, _ = self.threads[index]
        roll = rng.random()
        if roll < 0.5:
            self.queue.append(b.thread_notification("thread/archived", thread_id))
            if rng.random() < 0.3:
                self.queue.append(b.thread_notification("thread/unarchived", thread_id))
        else:
            self.queue.append(b.thread_notification("thread/closed", thread_id))
            if len(self.threads) > 1:
                del self.threads[index]  # a closed thread runs no more turns

    def _goal(self) -> None:
        """A goal set on a thread, changed, then cleared, outside any turn."""
        b, rng = self.builder, self.rng
        _, thread_id, _ = rng.choice(self.threads)
        goal_id = self.next_id("goal")
        budget = rng.random() < 0.5
        self.queue.append(b.goal(thread_id, goal_id, "created", has_token_budget=budget))
        status = rng.choice(_GOAL_STATUSES)
        self.queue.append(
            b.goal(
                thread_id, goal_id, "status_changed", goal_status=status, has_token_budget=budget
            )
        )
        if rng.random() < 0.5:
            self.queue.append(
                b.goal(
                    thread_id, goal_id, "cleared", goal_status="complete", has_token_budget=budget
                )
            )

    def _orphans(self) -> None:
        """Facts the reducer must drop: unknown threads and turns, a tool item never
        started, code mode on an unknown thread, stray answers."""
        b, rng = self.builder, self.rng
        stray = self.next_id("stray")
        _, thread_id, _ = rng.choice(self.threads)
        choice = rng.randrange(6)
        if choice == 0:
            self.queue.append(b.compaction(stray, stray))
        elif choice == 1:
            self.queue.append(b.goal(stray, stray, "created"))
        elif choice == 2:  # the turn state is gone (or never was): no count, no event
            self.queue.append(
                b.item_completed(
                    thread_id, stray, tool_item("webSearch", stray, "completed"), completed_at_ms=1
                )
            )
        elif choice == 3:
            self.queue.append(
                b.code_mode(
                    "cell_started", thread_id=stray, turn_id=stray, call_id=stray, cell_id=stray
                )
            )
        elif choice == 4:
            self.queue.append(b.server_request_aborted(stray, completed_at_ms=b.now_ms))
        else:
            self.queue.append(b.thread_response(99, stray))


def _spawn(parent: str, depth: int) -> dict[str, Any]:
    return {
        "parent_thread_id": parent,
        "depth": depth,
        "agent_path": None,
        "agent_nickname": None,
        "agent_role": None,
    }
