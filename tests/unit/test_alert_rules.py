"""deploy/prometheus/alerts.yml, checked by the real ``promtool`` (Debian's
``prometheus`` package; .ci/run installs it): the rules and the Prometheus config are
valid, the rules' own tests (deploy/prometheus/alerts.test.yml) pass, each alert has a
firing and a quiet case, and a broken rule makes those tests fail. No promtool is a
failure, never a skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.cli import ROOT
from tests.deploy_metrics import ALERTS, DASHBOARD, dashboard_expressions

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_TESTS = PROMETHEUS / "alerts.test.yml"


def _promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: apt-get install prometheus (see .ci/run)"
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def _alert_names() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


def test_rules_and_prometheus_config_are_valid() -> None:
    rules = _promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(_alert_names())} rules found" in rules.stdout
    config = _promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for name in _alert_names():
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: no firing case"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: no quiet case"


def test_a_broken_rule_fails_its_tests(tmp_path: Path) -> None:
    """The endpoint rule as the old docs wrote it (``and`` across different label sets)
    never fires: its test must say so."""
    fixed = ALERTS.read_text()
    broken = re.sub(
        r"sum by \(job, instance\) \(rate\(codex_sink_delivery_attempts_total\{result=~\"5xx\|"
        r"transport_error\"\}\[5m\]\)\) > 0\n\s*and on \(job, instance\)",
        'rate(codex_sink_delivery_attempts_total{result=~"5xx|transport_error"}[5m]) > 0 and',
        fixed,
    )
    assert broken != fixed
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(RULE_TESTS, tmp_path / "alerts.test.yml")
    assert _promtool("check", "rules", "alerts.yml", cwd=tmp_path).returncode == 0
    result = _promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "CodexSinkEndpointFailing" in result.stdout + result.stderr


def test_every_runbook_points_at_a_heading_of_the_operations_guide() -> None:
    headings = re.findall(r"^#+ (.+)$", (ROOT / "docs" / "operations.md").read_text(), re.M)
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each dashboard query, Grafana's ``$__rate_interval`` made 5m, checked by promtool
    as a recording rule (promtool parses the PromQL; a typo fails)."""
    expressions = [e.replace("$__rate_interval", "5m") for e in dashboard_expressions()]
    rules = [{"record": f"codex:dashboard_query_{i}", "expr": e} for i, e in enumerate(expressions)]
    (tmp_path / "queries.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    result = _promtool("check", "rules", "queries.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    rules[0]["expr"] = "sum(rate(codex_sink_retries_total[5m])"  # one parenthesis short
    (tmp_path / "queries.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    assert _promtool("check", "rules", "queries.yml", cwd=tmp_path).returncode != 0


def test_dashboard_uses_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    provisioned = yaml.safe_load(
        (
            ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
        ).read_text()
    )["datasources"]
    uids = {source["uid"] for source in provisioned}
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids, panel["title"]
