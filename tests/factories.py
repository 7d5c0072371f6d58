"""Test-facing names for the shared wire-form fact builders."""

from codex_analytics.simulator.fact_builder import FactBuilder as Instance
from codex_analytics.simulator.fact_builder import app, plugin, skill, tracking

__all__ = ["Instance", "app", "plugin", "skill", "tracking"]
