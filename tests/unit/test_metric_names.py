"""Every metric deploy/prometheus/alerts.yml and deploy/grafana/dashboard.json use is
one a service exports (names read from the services' own metrics classes), every
service exports its build info and process metrics, and names carry their unit."""

from __future__ import annotations

import re

import pytest

from codex_analytics.devtools.receiver import Receiver, ReceiverMetrics
from codex_analytics.runtime.metrics import ServiceMetrics
from producers.gateway.service import GatewayMetrics
from sinks.metrics import SinkMetrics
from streams.metrics import StreamCounts, StreamMetrics
from streams.reducer.drops import ReducerStats
from tests.deploy_metrics import (
    SCRAPE_SERIES,
    alert_expressions,
    dashboard_expressions,
    exported_names,
    names_in,
    names_used,
)


def _services() -> dict[str, ServiceMetrics]:
    sink = SinkMetrics()
    sink.watch_lag("Events records", dict)  # as SinkWorker does
    return {
        "stream": StreamMetrics(ReducerStats(), StreamCounts(), dict),
        "sink": sink,
        "gateway": GatewayMetrics(),
        "receiver": ReceiverMetrics(Receiver()),
    }


def _exported() -> set[str]:
    names: set[str] = set()
    for metrics in _services().values():
        names |= exported_names(metrics.render().decode())
    return names


def test_alerts_and_dashboard_use_only_exported_metrics() -> None:
    used = names_used()
    assert len(used) >= 30  # the expressions were found and read
    assert not used - _exported() - SCRAPE_SERIES


def test_the_check_catches_a_misspelled_metric() -> None:
    used = names_in(['sum(rate(codex_stream_recordz_total{job="codex_sink_x"}[5m]))'])
    assert used == {"codex_stream_recordz_total"}  # a label value is not a name
    assert used - _exported() == used


def test_the_dashboard_covers_every_stage() -> None:
    used = names_in(dashboard_expressions())
    for name in (
        "codex_gateway_facts_total",
        "codex_stream_events_total",
        "codex_sink_events_total",
        "codex_stream_consumer_lag_seconds",
        "codex_sink_consumer_lag_records",
        "codex_stream_dead_letters_total",
        "codex_sink_dead_letters_total",
        "codex_sink_delivery_seconds_bucket",
        "codex_sink_retries_total",
        "codex_gateway_requests_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert name in used, name
    assert "up" in names_in(alert_expressions())


@pytest.mark.parametrize("service", ["stream", "sink", "gateway", "receiver"])
def test_every_service_exports_build_info_and_process_metrics(service: str) -> None:
    metrics = _services()[service]
    text = metrics.render().decode()
    info = re.search(r"^codex_analytics_build_info\{(.*)\} 1\.0$", text, re.MULTILINE)
    assert info, text
    labels = dict(re.findall(r'(\w+)="([^"]*)"', info.group(1)))
    assert labels["service"] == service
    assert set(labels) == {"service", "version", "python", "contract"}
    assert metrics.value("process_resident_memory_bytes") > 0
    assert metrics.value("process_cpu_seconds_total") > 0
    assert "python_info{" in text


def test_names_carry_their_unit() -> None:
    """Counters end in _total, times in _seconds, sizes in _bytes; no ``what`` label
    mixes unrelated counts."""
    text = "\n".join(m.render().decode() for m in _services().values())
    for line in text.splitlines():
        if not line.startswith("# TYPE codex_") or line.split()[2].endswith("_created"):
            continue
        _, _, name, kind = line.split()
        if kind == "counter":
            assert name.endswith("_total"), name
        if "time" in name or "latency" in name or "duration" in name:
            assert name.endswith("_seconds"), name
        if "bytes" in name:
            assert name.removesuffix("_total").endswith("_bytes"), name
    assert 'what="records"' not in text
    assert "codex_stream_worker_total" not in text
