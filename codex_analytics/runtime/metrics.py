"""Prometheus pieces every service shares: counters read from plain dicts at scrape
time, and consumer lag per partition.

Services keep their counts in ordinary dicts (the pure core counts, the glue renders),
so the hot path pays a dict increment, not a labelled-metric lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


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
