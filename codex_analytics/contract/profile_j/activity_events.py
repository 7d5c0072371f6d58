"""Profile J events of the activity domain (profile-j.md §4): field order is key order."""

from __future__ import annotations

from typing import Any, Never, TypeAlias

#: The union of this module's event models (``Never`` while it has none).
Event: TypeAlias = Never
#: event_type -> event model.
EVENTS: dict[str, type[Any]] = {}
