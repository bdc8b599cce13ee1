"""The frontend's metric values, and their Prometheus exposition.

Values live in plain dicts keyed by label-value tuples: the frontend is one event loop, so
an update is a dict write with no lock, which keeps the per-request cost to well under a
microsecond. ``prometheus_client`` renders them at scrape time through a custom collector,
so metric names stay exactly TorchServe's (``Requests2XX``, not ``Requests2XX_total``).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

metrics_log = logging.getLogger("modelserve.metrics")

# Latency buckets in seconds: sub-millisecond serving overhead up to slow models.
DEFAULT_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass(slots=True)
class MetricFamily:
    """A counter or gauge with fixed label names."""

    name: str
    kind: str
    unit: str
    label_names: tuple[str, ...]
    # Log-mode metrics are written to the metrics log instead of being exported.
    logged: bool = False
    values: dict[tuple[str, ...], float] = field(default_factory=dict)

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add to a counter (or gauge)."""
        self.values[labels] = self.values.get(labels, 0.0) + amount
        if self.logged:
            log_metric(self, labels, amount)

    def set(self, labels: tuple[str, ...], value: float) -> None:
        """Set a gauge."""
        self.values[labels] = value
        if self.logged:
            log_metric(self, labels, value)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        """Record a value by the family's kind: counters add, gauges take it."""
        if self.kind == "counter":
            self.inc(labels, value)
        else:
            self.set(labels, value)

    def to_prometheus(self) -> Metric:
        """The family as a prometheus_client metric with TorchServe's HELP text."""
        name = self.name.removesuffix("_total") if self.kind == "counter" else self.name
        metric = Metric(name, _help(self.kind, self.unit), _exposed_type(self))
        for labels, value in self.values.items():
            metric.add_sample(self.name, dict(zip(self.label_names, labels, strict=True)), value)
        return metric


@dataclass(slots=True)
class HistogramFamily:
    """A histogram with fixed label names and buckets."""

    name: str
    unit: str
    label_names: tuple[str, ...]
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    logged: bool = False
    counts: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    sums: dict[tuple[str, ...], float] = field(default_factory=dict)

    kind = "histogram"

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        """Record one value."""
        counts = self.counts.get(labels)
        if counts is None:
            counts = self.counts[labels] = [0] * (len(self.buckets) + 1)
            self.sums[labels] = 0.0
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[labels] += value
        if self.logged:
            log_metric(self, labels, value)

    def to_prometheus(self) -> Metric:
        """Cumulative buckets, sum and count per label set."""
        metric = Metric(self.name, _help("histogram", self.unit), "histogram")
        for labels, counts in self.counts.items():
            base = dict(zip(self.label_names, labels, strict=True))
            cumulative = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                metric.add_sample(f"{self.name}_bucket", {**base, "le": le}, cumulative)
            metric.add_sample(f"{self.name}_count", base, cumulative)
            metric.add_sample(f"{self.name}_sum", base, self.sums[labels])
        return metric


Family = MetricFamily | HistogramFamily


def _exposed_type(family: MetricFamily) -> str:
    """The TYPE line's type, keeping the sample name exactly TorchServe's.

    The text format names a counter's family ``<name>_total``; a TorchServe counter whose name
    does not end in ``_total`` (``Requests2XX``) is exposed untyped under its own name, since
    renaming it would break existing dashboards.
    """
    if family.kind != "counter":
        return family.kind
    return "counter" if family.name.endswith("_total") else "unknown"


def _help(kind: str, unit: str) -> str:
    return f"Torchserve prometheus {kind} metric with unit: {unit}"


def log_metric(family: Family, labels: tuple[str, ...], value: float) -> None:
    """One line in TorchServe's metric log format."""
    dimensions = ",".join(
        f"{name}:{label}" for name, label in zip(family.label_names, labels, strict=True)
    )
    metrics_log.info(
        "[METRICS]%s.%s:%s|#%s|#type:%s|#timestamp:%d",
        family.name,
        family.unit,
        value,
        dimensions,
        family.kind.upper(),
        time.time(),
    )


class MetricStore:
    """Every metric family of the server, by name."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}

    def add(self, family: Family) -> Family:
        """Register a family (the existing one when the name is taken)."""
        return self.families.setdefault(family.name, family)

    def get(self, name: str) -> Family | None:
        """A family by name; None when it is not configured."""
        return self.families.get(name)


class StoreCollector(Collector):
    """Exposes the store's exported families to prometheus_client."""

    def __init__(self, store: MetricStore) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        for family in list(self._store.families.values()):
            if not family.logged:
                yield family.to_prometheus()


class _FilteredView(Collector):
    """The metrics of some collectors whose family or sample names were asked for."""

    def __init__(self, collectors: Iterable[Collector], names: set[str]) -> None:
        self._collectors = collectors
        self._names = names

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            for metric in collector.collect():
                sample_names = {sample.name for sample in metric.samples}
                if metric.name in self._names or sample_names & self._names:
                    yield metric


def render(collectors: list[Collector], names: list[str]) -> bytes:
    """Prometheus text exposition of ``collectors``, limited to ``names`` when given."""
    registry = CollectorRegistry(auto_describe=False)
    if names:
        registry.register(_FilteredView(collectors, set(names)))
    else:
        for collector in collectors:
            registry.register(collector)
    return generate_latest(registry)


class CallbackCollector(Collector):
    """Metrics computed at scrape time by a function (queue depths, worker states)."""

    def __init__(self, produce: Callable[[], Iterable[Metric]]) -> None:
        self._produce = produce

    def collect(self) -> Iterator[Metric]:
        yield from self._produce()
