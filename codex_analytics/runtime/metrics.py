"""Prometheus, one way for every service: a :class:`ServiceMetrics` subclass per service
(its own registry, every name under the service's prefix, one ``render`` for
``/metrics``), and consumer lag per partition.

Two kinds of series, one class: events the glue sees once per batch or request are
prometheus_client counters, gauges and histograms (``counter``, ``gauge``,
``histogram``); counts a pure core keeps in ordinary dicts are read at scrape time
(``at_scrape``), so the hot path pays a dict increment, not a labelled-metric lookup.
Labels are kinds, outcomes and reasons, never an instance, an account or a token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Content type of ``/metrics`` (Prometheus text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4"


class CallbackCollector(Collector):
    """A collector whose metric families are built by a callable on every scrape."""

    def __init__(self, build: Callable[[], Iterable[Metric]]) -> None:
        self._build = build

    def collect(self) -> Iterable[Metric]:
        return list(self._build())


def counter_family(name: str, doc: str, label: str, values: Mapping[str, int]) -> Metric:
    """``name_total{label="key"} value`` for every key of ``values``."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def lag_family(name: str, doc: str, lags: Mapping[int, int]) -> Metric:
    """``name{partition="N"}``: records on the broker past the consumer's position."""
    family = GaugeMetricFamily(name, doc, labels=["partition"])
    for partition, lag in sorted(lags.items()):
        family.add_metric([str(partition)], lag)
    return family


def partition_lag(
    highwaters: Mapping[int, int | None], positions: Mapping[int, int | None]
) -> dict[int, int]:
    """Lag per partition; partitions whose highwater or position is not known yet are
    left out rather than reported as 0 (a scrape must not claim "caught up" blindly)."""
    lags: dict[int, int] = {}
    for partition, highwater in highwaters.items():
        position = positions.get(partition)
        if highwater is not None and position is not None:
            lags[partition] = max(0, highwater - position)
    return lags


class ServiceMetrics:
    """A service's metrics: its own registry, every series named ``{PREFIX}_{name}``."""

    #: ``codex_sink``, ``codex_stream``, ``codex_gateway``...
    PREFIX: ClassVar[str]

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def name(self, short: str) -> str:
        return f"{self.PREFIX}_{short}"

    def counter(self, short: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(self.name(short), doc, list(labels), registry=self.registry)

    def gauge(self, short: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(self.name(short), doc, list(labels), registry=self.registry)

    def histogram(self, short: str, doc: str, buckets: Sequence[float]) -> Histogram:
        return Histogram(self.name(short), doc, buckets=tuple(buckets), registry=self.registry)

    def at_scrape(self, build: Callable[[], Iterable[Metric]]) -> None:
        """Series built from plain counts on every scrape (see the module docstring)."""
        self.registry.register(CallbackCollector(build))

    def counts(self, short: str, doc: str, label: str, values: Mapping[str, int]) -> Metric:
        """``{PREFIX}_{short}_total{label="key"}`` for every key of ``values``."""
        return counter_family(self.name(short), doc, label, values)

    def lag(self, short: str, doc: str, lags: Mapping[int, int]) -> Metric:
        return lag_family(self.name(short), doc, lags)

    def value(self, full_name: str, **labels: str) -> float:
        """A sample's current value (0 when never touched): for logs and tests."""
        return self.registry.get_sample_value(full_name, labels) or 0.0

    def render(self) -> bytes:
        return generate_latest(self.registry)
