"""Test-facing names for the shared wire-form fact builders (the simulator's)."""

from codex_analytics.simulator.fact_builder import FactBuilder as Instance
from codex_analytics.simulator.fact_builder import app, plugin, skill, tracking
from codex_analytics.simulator.fact_builder_j import FactBuilderJ as JInstance
from codex_analytics.simulator.fact_builder_j import skill_j, tracking_j

__all__ = ["Instance", "JInstance", "app", "plugin", "skill", "skill_j", "tracking", "tracking_j"]
