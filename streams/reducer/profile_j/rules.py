"""The shape of a Profile J rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..fact_context import FactContext

#: A rule applies one fact's payload (or one notification's view) to the state.
Rule = Callable[[FactContext, Any], None]
