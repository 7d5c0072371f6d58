"""Profile J facts of the session domain (profile-j.md §2-§3): payload models."""

from __future__ import annotations

from typing import Any

from ..facts import ErrorResponsePayload, InitializePayload

#: kind -> payload model.
PAYLOADS: dict[str, type[Any]] = {
    # Unchanged in Profile J.
    "initialize": InitializePayload,
    "error_response": ErrorResponsePayload,
}
#: server_notification method -> view model of its ``params``.
NOTIFICATION_VIEWS: dict[str, type[Any]] = {}
