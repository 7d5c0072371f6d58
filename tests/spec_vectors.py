"""The spec's worked examples, vendored in ``tests/data`` so that a clone runs its tests
on its own, and checked against the team's spec checkout beside the repository (as in
CI) when it is there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

VENDORED = Path(__file__).resolve().parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "spec"


def load_vectors(vendored_name: str) -> list[dict[str, Any]]:
    """The vectors of ``tests/data/<vendored_name>``, one JSON object a line."""
    data = (VENDORED / vendored_name).read_bytes()
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def assert_vendored_copy_is_current(vendored_name: str, shared_name: str) -> None:
    shared = SHARED / shared_name
    if shared.is_file():
        assert (VENDORED / vendored_name).read_bytes() == shared.read_bytes(), (
            f"tests/data/{vendored_name} is stale: copy ../shared/spec/{shared_name}"
        )
