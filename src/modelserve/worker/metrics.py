"""``context.metrics``: TorchServe 0.12's handler metrics API, inside the worker.

Updates are buffered during a batch and travel back to the frontend inside the batch's
result message: no extra socket, no extra message. Method names, argument orders, default
dimensions and validation follow ``ts.metrics.metric_cache_abstract``.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("modelserve.worker")

TIME_UNITS = ("ms", "s")
SIZE_UNITS = ("MB", "kB", "GB", "B")


class MetricTypes(enum.Enum):
    """The kinds of metric a handler can emit."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class Dimension:
    """A (name, value) label of a metric."""

    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}:{self.value}"

    def to_dict(self) -> dict[str, str]:
        """TorchServe's dict form."""
        return {"Name": self.name, "Value": self.value}


class MetricsCacheError(Exception):
    """Base of the metrics API's errors."""


class MetricsCacheKeyError(MetricsCacheError, KeyError):
    """No metric of that name and type exists yet."""


class MetricsCacheTypeError(MetricsCacheError, TypeError):
    """An argument has the wrong type."""


class MetricsCacheValueError(MetricsCacheError, ValueError):
    """An argument has an invalid value (an unknown unit)."""


class CachingMetric:
    """One metric with fixed dimension names; ``add_or_update`` records a value."""

    def __init__(
        self,
        cache: MetricsCache,
        metric_name: str,
        unit: str,
        dimension_names: list[str],
        metric_type: MetricTypes,
    ) -> None:
        self.metric_name = metric_name
        self.unit = unit
        self.dimension_names = list(dimension_names)
        self.metric_type = metric_type
        self._cache = cache

    def add_or_update(
        self, value: float, dimension_values: list[str] | None = None, request_id: str = ""
    ) -> None:
        """Record ``value`` with these dimension values (counters add, gauges set)."""
        values = [str(v) for v in dimension_values or []]
        if len(values) != len(self.dimension_names):
            log.error(
                "metric %s needs %d dimension values %s, got %s",
                self.metric_name,
                len(self.dimension_names),
                self.dimension_names,
                values,
            )
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            log.error("metric %s: value %r is not a number", self.metric_name, value)
            return
        if self.metric_type is MetricTypes.COUNTER and value < 0:
            log.error("metric %s: a counter cannot be decreased (got %s)", self.metric_name, value)
            return
        self._cache.record(self, values, float(value))

    def update(
        self, value: float, request_id: str = "", dimensions: list[Dimension] | None = None
    ) -> None:
        """The legacy form: dimensions as Dimension objects."""
        self.add_or_update(value, [dimension.value for dimension in dimensions or []], request_id)


class MetricsCache:
    """The handler-facing metrics API of one worker."""

    def __init__(self, model_name: str, declared: dict[str, dict[str, Any]] | None = None) -> None:
        self.model_name = model_name
        self.request_ids: dict[int, str] | None = None
        self._metrics: dict[tuple[str, MetricTypes], CachingMetric] = {}
        self._updates: list[list[Any]] = []
        for name, spec in (declared or {}).items():
            self.add_metric_to_cache(
                name, spec["unit"], list(spec["dimensions"]), MetricTypes(spec["kind"])
            )

    # ----- transport

    def record(self, metric: CachingMetric, values: list[str], value: float) -> None:
        """Buffer one update for the next result message."""
        self._updates.append(
            [
                metric.metric_name,
                metric.unit,
                metric.metric_type.value,
                metric.dimension_names,
                values,
                value,
            ]
        )

    def drain(self) -> list[list[Any]]:
        """Take the buffered updates."""
        updates, self._updates = self._updates, []
        return updates

    def set_request_ids(self, request_ids: dict[int, str] | None) -> None:
        """The batch in hand (None between batches: metrics then get Level=Error)."""
        self.request_ids = request_ids

    # ----- TorchServe's API

    def _with_default_dimensions(self, dimensions: list[Dimension] | None) -> list[Dimension]:
        dimensions = list(dimensions or [])
        names = {dimension.name for dimension in dimensions}
        if self.request_ids is None:
            if "Level" not in names:
                dimensions.append(Dimension("Level", "Error"))
        else:
            if "ModelName" not in names:
                dimensions.append(Dimension("ModelName", self.model_name))
            if "Level" not in names:
                dimensions.append(Dimension("Level", "Model"))
        return dimensions

    def _emit(
        self,
        name: str,
        value: float,
        unit: str,
        dimensions: list[Dimension] | None,
        metric_type: MetricTypes,
    ) -> None:
        if not isinstance(name, str):
            raise MetricsCacheTypeError(f"metric name must be a str, got {type(name).__name__}")
        self._record(name, value, unit, self._with_default_dimensions(dimensions), metric_type)

    def _record(
        self,
        name: str,
        value: float,
        unit: str,
        dimensions: list[Dimension],
        metric_type: MetricTypes,
    ) -> None:
        metric = self._metrics.get((name, metric_type)) or self.add_metric_to_cache(
            name, unit, [dimension.name for dimension in dimensions], metric_type
        )
        metric.add_or_update(value, [dimension.value for dimension in dimensions])

    def add_metric(
        self,
        name: str,
        value: float,
        unit: str,
        idx: str | None = None,
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.COUNTER,
    ) -> None:
        """A metric of any type and unit (default type: counter)."""
        self._emit(name, value, unit, dimensions, metric_type)

    def add_counter(
        self,
        name: str,
        value: float,
        idx: str | None = None,
        dimensions: list[Dimension] | None = None,
    ) -> None:
        """Increment a counter."""
        self._emit(name, value, "count", dimensions, MetricTypes.COUNTER)

    def add_time(
        self,
        name: str,
        value: float,
        idx: str | None = None,
        unit: str = "ms",
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        """A duration in ms or s (default type: gauge)."""
        if unit not in TIME_UNITS:
            raise MetricsCacheValueError(f"the unit of a time metric is one of {list(TIME_UNITS)}")
        self._emit(name, value, unit, dimensions, metric_type)

    def add_size(
        self,
        name: str,
        value: float,
        idx: str | None = None,
        unit: str = "MB",
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        """A size in MB, kB, GB or B (default type: gauge)."""
        if unit not in SIZE_UNITS:
            raise MetricsCacheValueError(f"the unit of a size metric is one of {list(SIZE_UNITS)}")
        self._emit(name, value, unit, dimensions, metric_type)

    def add_percent(
        self,
        name: str,
        value: float,
        idx: str | None = None,
        dimensions: list[Dimension] | None = None,
        metric_type: MetricTypes = MetricTypes.GAUGE,
    ) -> None:
        """A percentage (default type: gauge)."""
        self._emit(name, value, "percent", dimensions, metric_type)

    def add_error(self, name: str, value: float, dimensions: list[Dimension] | None = None) -> None:
        """An error counter, labelled Level=Error."""
        dimensions = list(dimensions or [])
        if "Level" not in {dimension.name for dimension in dimensions}:
            dimensions.append(Dimension("Level", "Error"))
        self._record(name, value, "", dimensions, MetricTypes.COUNTER)

    def get_metric(
        self, metric_name: str, metric_type: MetricTypes = MetricTypes.COUNTER
    ) -> CachingMetric:
        """A metric added before (or declared in the metrics config)."""
        metric = self._metrics.get((metric_name, metric_type))
        if metric is None:
            raise MetricsCacheKeyError(
                f"metric {metric_name!r} of type {metric_type.value} is not in the cache"
            )
        return metric

    def add_metric_to_cache(
        self,
        metric_name: str,
        unit: str,
        dimension_names: list[str] | None = None,
        metric_type: MetricTypes = MetricTypes.COUNTER,
    ) -> CachingMetric:
        """Declare a metric; use its ``add_or_update`` to record values."""
        if not isinstance(metric_type, MetricTypes):
            raise MetricsCacheTypeError(f"metric_type must be a MetricTypes, got {metric_type!r}")
        metric = CachingMetric(self, metric_name, unit, dimension_names or [], metric_type)
        self._metrics[(metric_name, metric_type)] = metric
        return metric
