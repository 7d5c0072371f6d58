"""Profile J facts of the activity domain (profile-j.md §2-§3): payload models."""

from __future__ import annotations

from typing import Any

#: kind -> payload model.
PAYLOADS: dict[str, type[Any]] = {}
