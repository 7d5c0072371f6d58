"""The ``environment variables`` part of each command's ``--help``, rendered from the
declarations (:mod:`codex_analytics.cli.settings_catalog`), so that it lists exactly
what the command reads, with the defaults its code uses."""

from __future__ import annotations

import textwrap

from codex_analytics.cli.settings_catalog import read_by

_WIDTH = 80
_INDENT = " " * 6


def environment_help(command: str) -> str:
    """The paragraph for ``command`` ("stream worker", "offsets show"); "" when it reads
    no variable."""
    settings = read_by(command)
    if not settings:
        return ""
    lines = ["environment variables (the README's Configuration table has them all):"]
    for setting in settings:
        kind = setting.kind.label + (", secret" if setting.secret else "")
        default = _plain(setting.shown_default())
        lines.append(f"  {' or '.join(setting.names)} ({kind}; default: {default})")
        lines += textwrap.wrap(
            _plain(setting.help),
            _WIDTH,
            initial_indent=_INDENT,
            subsequent_indent=_INDENT,
            break_long_words=False,
            break_on_hyphens=False,
        )
    return "\n".join(lines)


def _plain(markdown: str) -> str:
    """The docs' Markdown as terminal text: no code ticks, no emphasis."""
    return markdown.replace("`", "").replace("**", "")
