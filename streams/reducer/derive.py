"""Pure derivations of reducer.md §4: skill ids and the turn config mappings."""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

from codex_analytics.contract.facts import TurnResolvedConfigPayload

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


def skill_id(
    skill_name: str, repo_url: str | None, repo_root: str | None, canonical_path: str
) -> str:
    """Lowercase hex SHA-1 of ``{prefix}_{path}_{skill_name}`` (reducer.md §4.1)."""
    prefix = "personal" if repo_url is None else f"repo_{repo_url}"
    path = normalize_skill_path(repo_url, repo_root, canonical_path)
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
