"""Profile J reducer rules: the sessions domain (profile-j.md §5)."""

from __future__ import annotations

from .rules import Rule

#: fact kind -> rule.
RULES: dict[str, Rule] = {}
#: server_notification method -> rule (its payload is the method's decoded view).
NOTIFICATION_RULES: dict[str, Rule] = {}
