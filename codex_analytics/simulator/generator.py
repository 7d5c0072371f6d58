"""Realistic, deterministic fact streams from simulated Codex instances.

Each simulated instance runs a session: one or two app-server connections initialize,
threads start (or resume, or fork), turns run with their resolved config, token usage,
started/completed notifications, steers (accepted and rejected), skills, app mentions and
uses, plugin uses, hooks, guardian reviews and compactions; sub-agent threads start and
plugins change state (with local and remote ids). A small share of facts is redelivered
(same ``seq``), and app/plugin uses repeat within a turn, as they do upstream.

The same ``seed`` gives the same facts, byte for byte. The output feeds the demo, the
tests and the benchmarks.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from codex_analytics.simulator.fact_builder import BASE_MS, FactBuilder, skill
from codex_analytics.simulator.process import SimulatedProcess
from codex_analytics.simulator.sessions_j import SimulatedInstanceJ

_SOURCES = ["cli", "cli", "vscode", "vscode", "exec", "appServer", {"custom": "jetbrains"}]
_SUBAGENT_SOURCES: list[Any] = [
    "review",
    "compact",
    {"other": "guardian"},
    {
        "thread_spawn": {
            "parent_thread_id": "",
            "depth": 1,
            "agent_path": None,
            "agent_nickname": None,
            "agent_role": None,
        }
    },
]
_MODELS = ["gpt-5", "gpt-5-codex", "o3", "gpt-5.1-codex"]
_PLUGINS = [
    ("linear@chatgpt-global", "plugins~Plugin_linear"),
    ("sample@test", None),
    ("github@openai-curated", "plugins~Plugin_github"),
    ("notion@openai-curated", None),
]
_CONNECTORS = [
    ("drive", "Google Drive"),
    ("calendar", "Calendar"),
    ("slack", "Slack"),
    (None, None),
]
_HOOKS = [
    ("PreToolUse", "user"),
    ("PostToolUse", "project"),
    ("Stop", "system"),
    ("SessionStart", "mdm"),
]
_HOOK_STATUSES = ["completed", "completed", "completed", "failed", "blocked", "stopped", "running"]
_STEER_REJECTIONS: list[Any] = [
    {"turn_steer": "no_active_turn"},
    {"turn_steer": "expected_turn_mismatch"},
    {"turn_steer": "non_steerable_review"},
    {"turn_steer": "non_steerable_compact"},
    {"input": "empty"},
    {"input": "too_large"},
    None,
]


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    instances: int = 200
    seed: int = 0
    #: Share of facts delivered a second time later (same seq): producer retries.
    duplicate_rate: float = 0.01
    #: Chance that an app or plugin use repeats within its turn (the dedupe's work).
    repeat_use_rate: float = 0.3
    #: Accounts the instances are spread over (the events' delivery routes).
    accounts: int = 10
    start_ms: int = BASE_MS
    #: Share of the instances that speak contract ``2026-08`` (Profile J); the others
    #: speak ``2026-06``. 0 (the library's default) gives exactly the Profile S streams
    #: of old; the commands default to a mix (``simulator.DEFAULT_J_SHARE``).
    j_share: float = 0.0

    def __post_init__(self) -> None:
        if self.instances < 1:
            raise ValueError("instances must be at least 1")
        if not 0 <= self.duplicate_rate < 1 or not 0 <= self.repeat_use_rate <= 1:
            raise ValueError("rates must be within [0, 1)")
        if not 0 <= self.j_share <= 1:
            raise ValueError("j_share must be within [0, 1]")
        if self.accounts < 1:
            raise ValueError("accounts must be at least 1")

    @property
    def j_instances(self) -> int:
        """How many of the instances speak ``2026-08``: at least one for any share > 0."""
        if self.j_share == 0:
            return 0
        return min(self.instances, max(1, round(self.instances * self.j_share)))


class _SimulatedInstance(SimulatedProcess[FactBuilder]):
    """One Codex process of contract ``2026-06``: a fact builder plus what it has opened
    so far."""

    def __init__(self, index: int, config: GeneratorConfig, rng: random.Random) -> None:
        super().__init__(f"inst-{config.seed}-{index:05d}", rng, config)
        self.builder = FactBuilder(
            self.name, originator=rng.choice(["codex_cli_rs", "codex_vscode", "codex_exec"])
        )
        self._start(index % config.accounts)
        self.threads: list[tuple[int, str]] = []

    # -- episodes ----------------------------------------------------------------------

    def _plan_episode(self) -> None:
        rng = self.rng
        self._begin_episode(["absent", None, {"experimentalApi": True}])
        if not self.threads or rng.random() < 0.15:
            self._thread()
            return
        roll = rng.random()
        if roll < 0.70:
            self._turn()
        elif roll < 0.78:
            self._subagent()
        elif roll < 0.86:
            self._plugin_state()
        elif roll < 0.93:
            self._orphans()
        else:
            self._thread()

    def _thread(self) -> None:
        b, rng = self.builder, self.rng
        conn = rng.choice(self.connections)
        thread_id = self.next_id("th")
        method = rng.choices(["thread/start", "thread/resume", "thread/fork"], [8, 1, 1])[0]
        source = rng.choice(_SOURCES)
        if rng.random() < 0.1:
            source = {"subAgent": self._subagent_source()}
        self.queue.append(
            b.thread_response(
                conn,
                thread_id,
                method=method,
                source=source,
                ephemeral=rng.random() < 0.2,
                created_at=b.now_ms // 1000,
                model=rng.choice(_MODELS),
                request_id=self.counter,
            )
        )
        self.threads.append((conn, thread_id))

    def _subagent_source(self) -> Any:
        source = self.rng.choice(_SUBAGENT_SOURCES)
        if isinstance(source, dict) and "thread_spawn" in source:
            parent = f"{self.rng.getrandbits(128):032x}"
            parent = f"{parent[:8]}-{parent[8:12]}-{parent[12:16]}-{parent[16:20]}-{parent[20:]}"
            return {"thread_spawn": {**source["thread_spawn"], "parent_thread_id": parent}}
        return source

    def _turn(self) -> None:
        b, rng, q = self.builder, self.rng, self.queue
        conn, thread_id = rng.choice(self.threads)
        if rng.random() < 0.2:  # turns may be sent on another connection of the process
            conn = rng.choice(self.connections)
        turn_id, images, model = self._open_turn(conn, thread_id, _MODELS)
        q.append(
            b.resolved_config(
                turn_id,
                thread_id,
                num_input_images=images,
                model=model,
                sandbox_policy={
                    "type": rng.choice(
                        ["read-only", "workspace-write", "danger-full-access", "external-sandbox"]
                    )
                },
                reasoning_effort=rng.choice([None, "low", "medium", "high"]),
                reasoning_summary=rng.choice([None, "auto", "none", "detailed"]),
                service_tier=rng.choice([None, None, "fast", "flex"]),
                approval_policy=rng.choice(["on-request", "never", "untrusted", "on-failure"]),
                collaboration_mode=rng.choice(["default", "plan", "pair_programming", "execute"]),
                personality=rng.choice([None, "none", "friendly", "pragmatic"]),
                is_first_turn=rng.random() < 0.3,
            )
        )
        tracking = {"turn_id": turn_id, "thread_id": thread_id}
        if rng.random() < 0.2:
            q.append(b.skill_invoked(*self._skills(), **tracking))
        if rng.random() < 0.15:
            self._mention_apps(_CONNECTORS, thread_id, turn_id)
        if rng.random() < 0.25:
            self._use_app(_CONNECTORS, 4, thread_id, turn_id)
        if rng.random() < 0.2:
            plugin_id, _ = rng.choice(_PLUGINS)
            for _ in range(self._repeats(4)):
                q.append(b.plugin_used(plugin_id, **tracking))
        if rng.random() < 0.2:
            self._run_hook(_HOOKS, _HOOK_STATUSES, thread_id, turn_id)
        if rng.random() < 0.1:
            q.append(b.guardian_review(thread_id, turn_id, self.next_id("rv")))
        if rng.random() < 0.06:
            q.append(b.compaction(thread_id, turn_id))
        if rng.random() < 0.15:
            self._steer(conn, thread_id, turn_id, _STEER_REJECTIONS)
        if rng.random() < 0.9:
            q.append(b.token_usage(turn_id, thread_id, total=rng.randrange(100, 50_000)))
        status = rng.choices(["completed", "interrupted", "failed", "inProgress"], [85, 8, 6, 1])[0]
        error = (
            rng.choice(["badRequest", {"httpConnectionFailed": {"httpStatusCode": 502}}, None])
            if status == "failed"
            else "no-error"
        )
        self._close_turn(turn_id, thread_id, status, error)

    def _skills(self) -> list[dict[str, Any]]:
        out = []
        for _ in range(self.rng.choice([1, 1, 2])):
            name = self.rng.choice(["doc", "lint", "release", "review"])
            if self.rng.random() < 0.5:
                out.append(skill(name, path=f"/Users/dev/.codex/skills/{name}/SKILL.md"))
            else:
                root = f"/work/{self.name}"
                out.append(
                    skill(
                        name,
                        scope="repo",
                        path=f"{root}/.codex/skills/{name}/SKILL.md",
                        repo_root=root,
                        repo_url=f"https://git.example.com/{self.name}.git",
                        invocation_type=self.rng.choice(["explicit", "implicit"]),
                    )
                )
        return out

    def _subagent(self) -> None:
        _, parent = self.rng.choice(self.threads)
        self.queue.append(
            self.builder.subagent_thread_started(
                self.next_id("sub"),
                subagent_source=self._subagent_source(),
                parent_thread_id=parent if self.rng.random() < 0.5 else None,
            )
        )

    def _plugin_state(self) -> None:
        plugin_id, remote = self.rng.choice(_PLUGINS)
        for state in self.rng.choice(
            [["installed", "enabled"], ["disabled"], ["enabled"], ["uninstalled"]]
        ):
            self.queue.append(
                self.builder.plugin_state(
                    state,
                    plugin_id,
                    # Only a remote install knows the authoritative backend id (delivery.md §6).
                    remote_plugin_id=remote if state == "installed" else None,
                    summary="default" if self.rng.random() < 0.8 else None,
                )
            )

    def _orphans(self) -> None:
        """Facts the reducer must drop: unknown threads and connections, stray answers."""
        b, rng = self.builder, self.rng
        stray = self.next_id("stray")
        choice = rng.randrange(4)
        if choice == 0:
            self.queue.append(b.compaction(stray, stray))
        elif choice == 1:
            self.queue.append(b.guardian_review(stray, stray, stray))
        elif choice == 2:
            self.queue.append(b.error_response(rng.choice(self.connections), stray, None))
        else:
            self.queue.append(b.thread_response(99, stray))


class SessionGenerator:
    """Interleaves the sessions of ``config.instances`` simulated instances.

    The ``2026-06`` instances draw from the seed's generator exactly as they always did,
    and the ``2026-08`` ones from generators of their own, so the ``2026-06`` facts of a
    mixed run are byte for byte the facts of a ``2026-06``-only run with as many
    instances and the same seed.
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        self.config = config = config or GeneratorConfig()
        j_count = config.j_instances
        s_count = config.instances - j_count
        self._rng = random.Random(config.seed)
        self._instances = [_SimulatedInstance(i, config, self._rng) for i in range(s_count)]
        self._j_rng = random.Random(f"2026-08:{config.seed}")
        self._j_instances = [
            SimulatedInstanceJ(i, (s_count + i) % config.accounts, config, self._j_rng)
            for i in range(j_count)
        ]
        self._mix = random.Random(f"mix:{config.seed}")
        self._j_weight = j_count / config.instances

    def facts(self, total: int) -> Iterator[dict[str, Any]]:
        """``total`` fact envelopes (wire-form JSON objects), in publication order."""
        rng, instances = self._rng, self._instances
        j_rng, j_instances = self._j_rng, self._j_instances
        for _ in range(total):
            if j_instances and (not instances or self._mix.random() < self._j_weight):
                yield j_instances[j_rng.randrange(len(j_instances))].next_fact()
            else:
                yield instances[rng.randrange(len(instances))].next_fact()
