"""Cheap in-process metrics exported in the Prometheus text format at scrape time.

``prometheus_client`` counters take a lock on every ``inc()`` (~2 us here); the message path
counts several things per message, so hot-path metrics are plain Python integers and lists
here, and a :class:`MetricSet` registered on a ``CollectorRegistry`` turns them into
Prometheus families only when ``/metrics`` is scraped. Names follow the Prometheus
conventions (base units, ``_total`` for counters).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["Counter", "Histogram", "MetricSet"]


class Counter:
    """A monotonically increasing count (one label combination)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Histogram:
    """Cumulative-bucket histogram (one label combination); ``buckets`` are upper bounds."""

    __slots__ = ("buckets", "counts", "sum")

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        total, out = 0, []
        for bound, count in zip((*map(str, self.buckets), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, float(total)))
        return out


class _Family:
    def __init__(self, name: str, doc: str, labels: Sequence[str], make: Callable[[], Counter | Histogram]) -> None:
        self.name, self.doc, self.labelnames = name, doc, tuple(labels)
        self._make = make
        self.children: dict[tuple[str, ...], Counter | Histogram] = {}

    def child(self, *values: str) -> Counter | Histogram:
        found = self.children.get(values)
        if found is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}")
            found = self.children[values] = self._make()
        return found


class MetricSet(Collector):
    """A named group of counters, histograms and gauge callbacks, exported on scrape."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._counters: list[_Family] = []
        self._histograms: list[_Family] = []
        self._gauges: list[tuple[str, str, Callable[[], float]]] = []
        if registry is not None:
            registry.register(self)

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Callable[..., Counter]:
        """Declare ``name`` (ending in ``_total``); returns ``labels(*values) -> Counter``."""
        family = _Family(name.removesuffix("_total"), doc, labels, Counter)
        self._counters.append(family)
        return family.child  # type: ignore[return-value]

    def histogram(
        self, name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> Callable[..., Histogram]:
        family = _Family(name, doc, labels, lambda: Histogram(buckets))
        self._histograms.append(family)
        return family.child  # type: ignore[return-value]

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        self._gauges.append((name, doc, read))

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        return iter(())  # unchecked: families are only known at collect time

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        for family in self._counters:
            out = CounterMetricFamily(family.name, family.doc, labels=family.labelnames)
            for values, counter in family.children.items():
                out.add_metric(list(values), counter.value)  # type: ignore[union-attr]
            yield out
        for family in self._histograms:
            hist = HistogramMetricFamily(family.name, family.doc, labels=family.labelnames)
            for values, child in family.children.items():
                assert isinstance(child, Histogram)
                hist.add_metric(list(values), child.cumulative(), child.sum)
            yield hist
        for name, doc, read in self._gauges:
            yield GaugeMetricFamily(name, doc, value=read())
