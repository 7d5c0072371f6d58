"""Profile J reducer rules: the activity domain (profile-j.md §5)."""

from __future__ import annotations

from .rules import Rule

#: fact kind -> rule.
RULES: dict[str, Rule] = {}
