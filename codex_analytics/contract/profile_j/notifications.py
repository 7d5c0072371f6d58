"""``server_notification`` under Profile J: the methods the reducer reads, each decoded
into its own view (profile-j.md §2), by the module of the domain that reads it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..limits import Name
from ..schema import JsonObject, decode_within, derived
from . import session_facts, tool_facts

#: method -> view model of its params. A method without a view is accepted and ignored.
NOTIFICATION_VIEWS: dict[str, type[Any]] = {
    **session_facts.NOTIFICATION_VIEWS,
    **tool_facts.NOTIFICATION_VIEWS,
}


@dataclass(slots=True)
class ServerNotificationPayloadJ:
    method: Name
    params: JsonObject
    #: The decoded params of a method the reducer reads (its model in
    #: ``NOTIFICATION_VIEWS``), else None.
    view: Any = derived()

    def _post_decode(self) -> None:
        model = NOTIFICATION_VIEWS.get(self.method)
        if model is not None:
            self.view = decode_within(model, self.params, "params")
