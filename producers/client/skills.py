"""Resolve a skill's path on the producer's machine (``facts.md`` §2.4, PROPOSAL).

Upstream works these out inside its reducer, on the same machine as the skill file; a
Kafka reducer cannot see that filesystem, so the producer fills the ``resolved`` block:
the canonical path (the raw path when canonicalisation fails), the git root found by
walking up from it, and that repository's ``origin`` URL. Reads the git config file
instead of running ``git``: no subprocess per skill, and results are cached per path.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any


def resolve_skill_path(skill_path: str) -> dict[str, Any]:
    """The ``resolved`` block for ``skill_path``; never raises."""
    return dict(_resolve(skill_path))


@lru_cache(maxsize=1024)
def _resolve(skill_path: str) -> tuple[tuple[str, Any], ...]:
    try:
        canonical = os.path.realpath(skill_path, strict=True)
    except (OSError, ValueError):
        canonical = skill_path
    root = git_repo_root(canonical)
    url = git_origin_url(root) if root is not None else None
    return (("canonical_skill_path", canonical), ("repo_root", root), ("repo_url", url))


def git_repo_root(path: str) -> str | None:
    """The nearest directory at or above ``path``'s directory holding ``.git``."""
    try:
        start = Path(path)
        if not start.is_dir():
            start = start.parent
        for directory in (start, *start.parents):
            if (directory / ".git").exists():
                return str(directory)
    except (OSError, ValueError):
        return None
    return None


def git_origin_url(repo_root: str) -> str | None:
    """``remote.origin.url`` of the repository at ``repo_root`` (worktrees and
    submodules, whose ``.git`` is a file pointing elsewhere, included)."""
    try:
        config = _git_dir(Path(repo_root) / ".git") / "config"
        return _origin_url(config.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return None


def _git_dir(dot_git: Path) -> Path:
    if dot_git.is_dir():
        return dot_git
    line = dot_git.read_text(encoding="utf-8").strip()
    if not line.startswith("gitdir:"):
        raise ValueError("not a gitdir file")
    git_dir = (dot_git.parent / line.removeprefix("gitdir:").strip()).resolve()
    common = git_dir / "commondir"
    if common.is_file():  # a linked worktree: the config lives in the main repository
        return (git_dir / common.read_text(encoding="utf-8").strip()).resolve()
    return git_dir


def _origin_url(config_text: str) -> str | None:
    in_origin = False
    for raw in config_text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            header = line.strip("[]").replace("'", '"')
            in_origin = header.split() == ["remote", '"origin"']
            continue
        if in_origin and "=" in line:
            key, _, value = line.partition("=")
            if key.strip().lower() == "url":
                return value.strip().strip('"') or None
    return None
