"""Prometheus, one way for every service: a :class:`ServiceMetrics` subclass per service
(its own registry, every name under the service's prefix, one ``render`` for
``/metrics``), and consumer lag per partition, in records and in seconds.

Every registry also carries what an operator expects of any process:
``codex_analytics_build_info{service,version,python,contract} 1`` (to see which build
runs where, and to alert on a version skew) and prometheus_client's ``process_*`` and
``python_*`` series (CPU, resident memory, open files, garbage collection).

Two kinds of series, one class: events the glue sees once per batch or request are
prometheus_client counters, gauges and histograms (``counter``, ``gauge``,
``histogram``); counts a pure core keeps in ordinary dicts are read at scrape time
(``at_scrape``), so the hot path pays a dict increment, not a labelled-metric lookup.
Labels are kinds, outcomes and reasons, never an instance, an account or a token.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from codex_analytics import __version__
from codex_analytics.contract import ENVELOPE_VERSION

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


def lag_family(name: str, doc: str, lags: Mapping[int, float]) -> Metric:
    """``name{partition="N"}``: one value per partition (records or seconds behind)."""
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


@dataclass(frozen=True, slots=True)
class Backlog:
    """One assigned partition's backlog: records on the broker past the consumer's
    position, and the timestamp (epoch ms) of the oldest of them when the consumer has
    fetched it (``None`` when it has not, or when there is no backlog)."""

    records: int
    oldest_ms: int | None = None


def backlogs(
    highwaters: Mapping[int, int | None],
    positions: Mapping[int, int | None],
    oldest_ms: Callable[[int], int | None],
) -> dict[int, Backlog | None]:
    """Every assigned partition (the keys of ``highwaters``): its backlog, or ``None``
    while its highwater or position is not known yet (see :func:`partition_lag`)."""
    lags = partition_lag(highwaters, positions)
    return {
        p: (Backlog(lags[p], oldest_ms(p) if lags[p] else None) if p in lags else None)
        for p in highwaters
    }


class LagClock:
    """Consumer lag in seconds, as kafka-lag-exporter means it: how long ago the oldest
    record the consumer has not processed yet was written (its timestamp), per partition.

    0 when nothing is behind. When records are behind but the oldest of them has not
    been fetched yet (its timestamp is unknown), the time since the partition was first
    seen behind, a lower bound that keeps growing while the consumer does not move: a
    stuck worker never reads as caught up. Producer clocks ahead of ours count as 0.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._behind_since: dict[int, float] = {}

    def seconds(self, backlog: Mapping[int, Backlog]) -> dict[int, float]:
        now = self._clock()
        behind_since = {p: self._behind_since.get(p, now) for p, b in backlog.items() if b.records}
        self._behind_since = behind_since
        ages: dict[int, float] = {}
        for partition, lag in backlog.items():
            if not lag.records:
                ages[partition] = 0.0
            elif lag.oldest_ms is not None:
                ages[partition] = max(0.0, now - lag.oldest_ms / 1000)
            else:
                ages[partition] = now - behind_since[partition]
        return ages


def build_info(service: str) -> Metric:
    """``codex_analytics_build_info{service,version,python,contract} 1``."""
    family = GaugeMetricFamily(
        "codex_analytics_build_info",
        "Always 1: the service, its package version, the Python version and the wire"
        " contract's envelope version.",
        labels=["service", "version", "python", "contract"],
    )
    family.add_metric([service, __version__, platform.python_version(), str(ENVELOPE_VERSION)], 1)
    return family


class ServiceMetrics:
    """A service's metrics: its own registry, every series named ``{PREFIX}_{name}``,
    plus the build info and the process metrics (see the module docstring)."""

    #: ``codex_sink``, ``codex_stream``, ``codex_gateway``...
    PREFIX: ClassVar[str]

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        info = build_info(self.PREFIX.removeprefix("codex_"))
        self.at_scrape(lambda: [info])
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

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

    def total(self, short: str, doc: str, value: int) -> Metric:
        """``{PREFIX}_{short}_total value``: one count read at scrape time."""
        return CounterMetricFamily(self.name(short), doc, value=value)

    def watch_lag(self, records: str, backlog: Callable[[], Mapping[int, Backlog | None]]) -> None:
        """On every scrape: ``{PREFIX}_assigned_partitions``, and per partition whose
        backlog is known ``{PREFIX}_consumer_lag_records`` (``records`` says of what)
        and ``{PREFIX}_consumer_lag_seconds`` (:class:`LagClock`)."""
        clock = LagClock()

        def build() -> Iterable[Metric]:
            assigned = backlog()
            known = {p: b for p, b in assigned.items() if b is not None}
            yield GaugeMetricFamily(
                self.name("assigned_partitions"),
                "Partitions assigned to this worker (0 while it has none: more workers than"
                " partitions, or a rebalance).",
                value=len(assigned),
            )
            yield lag_family(
                self.name("consumer_lag_records"),
                f"{records} on the broker not yet processed, per assigned partition.",
                {p: b.records for p, b in known.items()},
            )
            yield lag_family(
                self.name("consumer_lag_seconds"),
                "Age of the oldest record not yet processed (0 when caught up), per assigned"
                " partition.",
                clock.seconds(known),
            )

        self.at_scrape(build)

    def value(self, full_name: str, **labels: str) -> float:
        """A sample's current value (0 when never touched): for logs and tests."""
        return self.registry.get_sample_value(full_name, labels) or 0.0

    def render(self) -> bytes:
        return generate_latest(self.registry)
