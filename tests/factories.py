"""Test-facing names for the shared wire-form fact builders."""

from producers.fact_builder import FactBuilder as Instance
from producers.fact_builder import app, plugin, skill, tracking

__all__ = ["Instance", "app", "plugin", "skill", "tracking"]
