"""Profile J facts of the tool domain (profile-j.md §2-§3): payload models."""

from __future__ import annotations

from typing import Any

#: kind -> payload model.
PAYLOADS: dict[str, type[Any]] = {}
#: server_notification method -> view model of its ``params``.
NOTIFICATION_VIEWS: dict[str, type[Any]] = {}
