"""The metric names deploy/prometheus/alerts.yml and deploy/grafana/dashboard.json
query, and the names a ``/metrics`` text exports: so the files cannot drift from what
the services really export (tests/unit/test_metric_names.py checks the services'
metrics classes, tests/integration/test_compose.py a scrape of real processes)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.cli import ROOT

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboard.json"

#: Series Prometheus itself makes for every target.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

#: A metric name in PromQL: an identifier of ours, where a selector or a call may use it.
_NAME = re.compile(r"\b((?:codex|process|python)_[a-zA-Z0-9_]+|up)\b(?!\s*\()")


def alert_expressions() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    def targets(panels: Iterable[dict]) -> Iterable[str]:  # type: ignore[type-arg]
        for panel in panels:
            yield from (t["expr"] for t in panel.get("targets", []))
            yield from targets(panel.get("panels", []))

    return list(targets(json.loads(DASHBOARD.read_text())["panels"]))


def names_in(expressions: Iterable[str]) -> set[str]:
    """Metric names the PromQL ``expressions`` select (label values in quotes excluded)."""
    names: set[str] = set()
    for expr in expressions:
        names |= set(_NAME.findall(re.sub(r'"[^"]*"', '""', expr)))
    return names


def names_used() -> set[str]:
    return names_in(alert_expressions() + dashboard_expressions())


def exported_names(text: str) -> set[str]:
    """Every sample name ``text`` (Prometheus text format) can carry, series never
    touched yet included (their families are declared with no sample)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("_sum", "_count", "_created"),
        }.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
        names |= {sample.name for sample in family.samples}
    return names
