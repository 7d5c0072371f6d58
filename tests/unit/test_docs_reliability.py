"""docs/reliability.md names the test behind each promise: every name it cites exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
#: ``tests/x/test_y.py`` (a module), ``test_y.py`` (a chaos module), or ``::name`` (a test
#: of the last module named on the line).
CITATION = re.compile(r"`((?:tests/[\w/]+/)?test_\w+\.py)?(?:::(\w+))?[^`]*`")


def _tests_in(module: Path) -> set[str]:
    tree = ast.parse(module.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def test_every_cited_test_exists() -> None:
    cited: list[tuple[Path, str | None]] = []
    for line in DOC.read_text().splitlines():
        module: Path | None = None
        for match in CITATION.finditer(line):
            path, name = match.groups()
            if path:
                module = ROOT / path if "/" in path else ROOT / "tests" / "chaos" / path
            if path or name:
                assert module is not None, f"{match.group(0)} names no module: {line}"
                cited.append((module, name))
    assert len(cited) > 30
    missing = [
        f"{module.relative_to(ROOT)}::{name}"
        for module, name in cited
        if not module.exists() or (name is not None and name not in _tests_in(module))
    ]
    assert missing == []
