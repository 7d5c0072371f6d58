"""Pure derivations of reducer.md §4: skill ids and the turn config mappings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from codex_analytics.contract.facts import (
    CompletedTurn,
    ResolvedSkillPath,
    TurnResolvedConfigPayload,
    UserInput,
)

_SANDBOX_POLICY_NAMES = {
    "danger-full-access": "full_access",
    "read-only": "read_only",
    "workspace-write": "workspace_write",
    "external-sandbox": "external_sandbox",
}


def _strip_path_prefix(path: str, root: str) -> str | None:
    """Rust ``Path::strip_prefix``: whole components only; a trailing ``/`` is irrelevant."""
    try:
        rest = PurePosixPath(path).relative_to(PurePosixPath(root))
    except ValueError:
        return None
    return "/".join(rest.parts)


def normalize_skill_path(repo_url: str | None, repo_root: str | None, canonical_path: str) -> str:
    """reducer.md §4.1 ``normalize``: repo-relative when both repo facts are known."""
    path = canonical_path
    if repo_url is not None and repo_root is not None:
        relative = _strip_path_prefix(canonical_path, repo_root)
        if relative is not None:
            path = relative
    return path.replace("\\", "/")


def skill_id(skill_name: str, resolved: ResolvedSkillPath) -> str:
    """Lowercase hex SHA-1 of ``{prefix}_{path}_{skill_name}`` (reducer.md §4.1), for a
    skill of either contract (both resolve its path the same way)."""
    repo_url = resolved.repo_url
    prefix = "personal" if repo_url is None else f"repo_{repo_url}"
    path = normalize_skill_path(repo_url, resolved.repo_root, resolved.canonical_skill_path)
    raw = f"{prefix}_{path}_{skill_name}"
    return hashlib.sha1(raw.encode("utf-8"), usedforsecurity=False).hexdigest()


def sandbox_policy_name(policy_type: str) -> str:
    return _SANDBOX_POLICY_NAMES[policy_type]


def collaboration_mode_name(mode: str) -> str:
    return "plan" if mode == "plan" else "default"


def none_if_none_string(value: str | None) -> str | None:
    """``reasoning_summary`` and ``personality``: unset or ``"none"`` both become null."""
    return None if value is None or value == "none" else value


def service_tier_name(tier: str | None) -> str:
    return "default" if tier is None else tier


def turn_status_name(status: str) -> str | None:
    """``turn.status`` of ``turn/completed``; ``inProgress`` has no event value."""
    return None if status == "inProgress" else status


def image_count(inputs: list[UserInput]) -> int:
    """``num_input_images`` of a ``turn/start`` or ``turn/steer``."""
    return sum(1 for item in inputs if item.is_image)


def non_negative(value: int | None) -> int | None:
    """Upstream's ``u64::try_from(i64).ok()``: a negative time is no time."""
    return value if value is not None and value >= 0 else None


def observed_duration_ms(started_at_ms: int, completed_at_ms: int) -> int | None:
    """``completed - started``, or None when that is negative (upstream ``checked_sub``)."""
    duration = completed_at_ms - started_at_ms
    return duration if duration >= 0 else None


@dataclass(slots=True)
class Completion:
    """What ``turn/completed`` said about the turn (both contracts)."""

    status: str | None
    turn_error: Any
    completed_at: int
    duration_ms: int | None


def turn_completion(done: CompletedTurn) -> Completion:
    """The turn event's values of ``turn/completed``: no status while in progress, a
    negative completion time is 0 and a negative duration none."""
    return Completion(
        status=turn_status_name(done.status),
        turn_error=None if done.error is None else done.error.codex_error_info,
        completed_at=non_negative(done.completed_at) or 0,
        duration_ms=non_negative(done.duration_ms),
    )


#: The turn event's config values, in event key order:
#: (submission_type, ephemeral, model, model_provider, sandbox_policy, reasoning_effort,
#:  reasoning_summary, service_tier, approval_policy, approvals_reviewer,
#:  sandbox_network_access, collaboration_mode, personality, is_first_turn)
TurnConfig = tuple[
    str | None,
    bool,
    str,
    str,
    str,
    str | None,
    str | None,
    str,
    str,
    str,
    bool,
    str,
    str | None,
    bool,
]


def turn_config(config: TurnResolvedConfigPayload) -> TurnConfig:
    """The mapped values a turn event needs (reducer.md §4.5), and nothing else: the
    reducer keeps these rather than the whole payload while the turn is open."""
    return (
        config.submission_type,
        config.ephemeral,
        config.model,
        config.model_provider,
        sandbox_policy_name(config.sandbox_policy.type),
        config.reasoning_effort,
        none_if_none_string(config.reasoning_summary),
        service_tier_name(config.service_tier),
        config.approval_policy,
        config.approvals_reviewer,
        config.sandbox_network_access,
        collaboration_mode_name(config.collaboration_mode),
        none_if_none_string(config.personality),
        config.is_first_turn,
    )
