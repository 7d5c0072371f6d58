"""The README's configuration table, rendered from the declarations.

    python -m codex_analytics.cli.settings_table           print the table
    python -m codex_analytics.cli.settings_table --write   rewrite it in README.md
    python -m codex_analytics.cli.settings_table --check   exit 1 when README.md differs

The table sits between two marker comments in the README; everything else there is
written by hand. A unit test fails while the README's copy differs from the rendering,
so a changed declaration shows up in review together with its documentation.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from codex_analytics.cli.settings_catalog import Variable, catalog

START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"
README = Path(__file__).resolve().parents[2] / "README.md"
REGENERATE = "python -m codex_analytics.cli.settings_table --write"


def render_table() -> str:
    """The Markdown table, one row per variable, with the markers around it."""
    rows = [
        START,
        f"<!-- generated from the settings declarations: {REGENERATE} -->",
        "| variable | type | default | used by | meaning |",
        "|---|---|---|---|---|",
    ]
    rows += ["| " + " | ".join(_escape(cell) for cell in _cells(v)) + " |" for v in catalog()]
    rows.append(END)
    return "\n".join(rows)


def splice(readme: str, table: str) -> str:
    """``readme`` with the text between (and including) the markers replaced by ``table``."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {START} ... {END} section")
    return readme[:start] + table + readme[end + len(END) :]


def _cells(variable: Variable) -> tuple[str, str, str, str, str]:
    declaration = variable.declaration
    name = f"`{declaration.name}`"
    if declaration.aliases:
        name += " (alias " + ", ".join(f"`{a}`" for a in declaration.aliases) + ")"
    kind = declaration.kind.label + "".join(
        f" ({', '.join(v.used_by)}: {v.kind.label})"
        for v in variable.variants
        if v.kind.label != declaration.kind.label
    )
    default = declaration.shown_default() + "".join(
        f" ({', '.join(v.used_by)}: {v.shown_default()})"
        for v in variable.variants
        if v.default != declaration.default
    )
    meaning = declaration.help + (" (secret: never logged or shown)" if declaration.secret else "")
    return name, kind, default, ", ".join(variable.used_by), meaning


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the table in the README")
    mode.add_argument("--check", action="store_true", help="exit 1 when the README differs")
    parser.add_argument("--readme", type=Path, default=README, help="default: the repo's")
    args = parser.parse_args(argv)
    table = render_table()
    if not (args.write or args.check):
        print(table)
        return 0
    current = args.readme.read_text(encoding="utf-8")
    wanted = splice(current, table)
    if args.check:
        if wanted != current:
            print(f"{args.readme}: the settings table is stale; run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.readme.write_text(wanted, encoding="utf-8")
        print(f"{args.readme}: settings table rewritten", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
