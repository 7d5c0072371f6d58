"""Accepted lines of a turn's unified diff (profile-j.md §5.5): how many lines it adds
and deletes, counted as upstream's ``accepted_lines.rs`` counts them.

Upstream also hashes every effective added line, but never uploads the hashes (the
event's ``line_fingerprints`` is always ``[]``), so only the counts are computed here.
"""

from __future__ import annotations

from .state import AcceptedLineCounts


def count_accepted_lines(unified_diff: str) -> AcceptedLineCounts:
    """Lines starting ``+`` (added) and ``-`` (deleted).

    A file section starts at ``diff --git ``; within it, until its first hunk (a line
    starting ``@@ ``), lines starting ``+++ `` or ``--- `` are file headers, not lines.
    Inside a hunk they count: ``+++ x`` is an added line ``++ x``. Only a new
    ``diff --git `` line ends a hunk, so headers of a second file without one count."""
    in_hunk = False
    added = deleted = 0
    # Lines end at "\n" only, as Rust's ``str::lines`` (not at the other separators of
    # Python's ``splitlines``); the "\r" of "\r\n" it strips never changes how a line starts.
    for line in unified_diff.split("\n"):
        if line.startswith("diff --git "):
            in_hunk = False
        elif line.startswith("@@ "):
            in_hunk = True
        elif not in_hunk and line.startswith(("+++ ", "--- ")):
            continue
        elif line.startswith("+"):
            added += 1
        elif line.startswith("-"):
            deleted += 1
    return AcceptedLineCounts(added, deleted)
