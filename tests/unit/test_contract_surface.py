"""The contract's public surface (as httpx tests its ``__all__``) and its import rule:
the standard library and orjson only, and nobody outside it uses its private names."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import codex_analytics.contract as contract

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "codex_analytics" / "contract"
PACKAGES = ("codex_analytics", "producers", "streams", "sinks", "bench", "tests")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import statement of a file; relative imports
    resolved against the file's package."""
    tree = ast.parse(path.read_text(), str(path))
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((module, [alias.name for alias in node.names]))
    return found


def test_every_public_name_is_exported_and_resolves() -> None:
    public = {
        name
        for name, value in vars(contract).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert set(contract.__all__) == public
    assert len(contract.__all__) == len(set(contract.__all__))
    for name in contract.__all__:
        assert getattr(contract, name) is not None


def test_contract_imports_only_the_standard_library_and_orjson() -> None:
    allowed = set(sys.stdlib_module_names) | {"orjson", "__future__"}
    for path in sorted(CONTRACT.rglob("*.py")):
        for module, _ in _imports(path):
            top = module.split(".")[0]
            if top == "codex_analytics":
                assert module.startswith("codex_analytics.contract"), (path.name, module)
            else:
                assert top in allowed, f"{path.name} imports {module}"


def test_nothing_outside_the_contract_imports_its_private_names() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if CONTRACT in path.parents:
                continue
            for module, names in _imports(path):
                if not module.startswith("codex_analytics.contract"):
                    continue
                private = [n for n in names if n.startswith("_")]
                private_module = [p for p in module.split(".") if p.startswith("_")]
                if private or private_module:
                    offenders.append(f"{path.relative_to(ROOT)}: {module} {private}")
    assert not offenders, offenders
