"""Test-facing names for the shared wire-form fact builders."""

from typing import Any

from codex_analytics.contract.versions import CONTRACT_J
from codex_analytics.simulator.fact_builder import FactBuilder as Instance
from codex_analytics.simulator.fact_builder import app, plugin, skill, tracking

__all__ = ["Instance", "JInstance", "app", "plugin", "skill", "tracking"]


class JInstance(Instance):
    """The shared fact builder, speaking contract 2026-08 (Profile J)."""

    def fact(self, kind: str, payload: dict[str, Any], **kw: Any) -> dict[str, Any]:
        envelope = super().fact(kind, payload, **kw)
        envelope["source"]["contract"] = CONTRACT_J
        return envelope
