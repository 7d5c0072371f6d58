"""The pure reducer (no I/O, no clock): facts of one instance in, upstream track events out."""

from __future__ import annotations

from .core import DEFAULT_HORIZON_MS, Reducer
from .derive import normalize_skill_path, skill_id
from .drops import Drop, DropReason, ReducerStats
from .fact_context import Reduction
from .state import InstanceState, StateLimits

__all__ = [
    "DEFAULT_HORIZON_MS",
    "Drop",
    "DropReason",
    "InstanceState",
    "Reducer",
    "ReducerStats",
    "Reduction",
    "StateLimits",
    "normalize_skill_path",
    "skill_id",
]
