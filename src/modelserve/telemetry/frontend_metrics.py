"""The frontend's metrics: TorchServe's names and labels, plus a latency histogram,
scrape-time gauges for queue depth and worker states, and pipeline metrics.

``ServerMetrics`` builds the families from the metrics config; ``VersionMetrics`` holds the
pre-computed label keys of one model version, and ``PipelineMetrics`` those of one pipeline
(a Triton ensemble, a TorchServe workflow), so that the per-request updates are a few dict
writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelserve.telemetry.metrics_config import MetricsConfig, MetricSpec
from modelserve.telemetry.store import (
    CallbackCollector,
    Family,
    HistogramFamily,
    MetricFamily,
    MetricStore,
    StoreCollector,
)
from modelserve.telemetry.system_metrics import GPU_METRICS, HOST_METRICS, SystemMetricsCollector

log = logging.getLogger("modelserve.metrics")
SYSTEM_METRICS = frozenset(HOST_METRICS) | frozenset(GPU_METRICS)

LATENCY_HISTOGRAM = "modelserve_inference_latency_seconds"
# Answers in parts (docs/streaming.md): time to the first part, parts per answer, duration.
STREAM_FIRST_PART = "modelserve_stream_first_response_seconds"
STREAM_PARTS = "modelserve_stream_responses"
STREAM_DURATION = "modelserve_stream_duration_seconds"
STREAM_PARTS_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0)
STREAM_SECONDS_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip
QUEUE_DEPTH = "modelserve_queue_depth"
WORKERS = "modelserve_workers"
SEQUENCES = "modelserve_sequences"
SEQUENCES_EXPIRED = "modelserve_sequences_expired"  # a counter: exposed with _total
WAITING = "modelserve_inference_waiting"
VERSION_LABELS = ("model_name", "model_version", "hostname")
PIPELINE_REQUESTS = "modelserve_pipeline_requests_total"
PIPELINE_FAILURES = "modelserve_pipeline_failures_total"
PIPELINE_LATENCY = "modelserve_pipeline_latency_seconds"
PIPELINE_STEP_LATENCY = "modelserve_pipeline_step_latency_seconds"
PIPELINE_LABELS = ("pipeline", "platform", "hostname")
# Why a pipeline request failed: a step failed (``step`` names it), the pipeline's timeout
# passed, the client went away, or anything else (a bad request, an answer not assembled).
FAILURE_REASONS = ("step", "timeout", "cancelled", "other")
# Handler histograms carry no unit we can rely on: buckets wide enough for ms, MB or counts.
CUSTOM_HISTOGRAM_BUCKETS = (
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 1e4,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class VersionState:
    """What the scrape-time gauges report for one model version."""

    model_name: str
    model_version: str
    queued: int
    busy: int
    idle: int
    starting: int
    # A stateful model's live sequences, and how many expired idle so far (None: stateless).
    sequences: int | None = None
    expired_sequences: int = 0


def _family(spec: MetricSpec, logged: bool) -> Family:
    if spec.kind == "histogram":
        return HistogramFamily(spec.name, spec.unit, spec.dimensions, logged=logged)
    return MetricFamily(spec.name, spec.kind, spec.unit, spec.dimensions, logged=logged)


def _key(family: Family | None, values: dict[str, str]) -> tuple[str, ...]:
    """The label tuple of ``family`` from named values (a name it lacks gets "")."""
    if family is None:
        return ()
    return tuple(values.get(name, "") for name in family.label_names)


class ServerMetrics:
    """All frontend metric families of one server."""

    def __init__(
        self,
        config: MetricsConfig,
        mode: str,
        hostname: str,
        auto_detect_model_metrics: bool,
        system_metrics: bool = True,
    ) -> None:
        self.hostname = hostname
        self.store = MetricStore()
        self._config = config
        self._auto_detect = auto_detect_model_metrics
        # legacy: the configured ts_* counters are exported, everything else is logged.
        self._log_others = mode in ("log", "legacy")
        for spec in config.frontend.values():
            if spec.name not in SYSTEM_METRICS:  # read at scrape time by their own collector
                self.store.add(_family(spec, logged=mode == "log"))
        if mode == "prometheus":
            self.store.add(HistogramFamily(LATENCY_HISTOGRAM, "Seconds", VERSION_LABELS))
            self._add_pipeline_families()
            for name, unit, buckets in (
                (STREAM_FIRST_PART, "Seconds", STREAM_SECONDS_BUCKETS),
                (STREAM_PARTS, "Count", STREAM_PARTS_BUCKETS),
                (STREAM_DURATION, "Seconds", STREAM_SECONDS_BUCKETS),
            ):
                self.store.add(HistogramFamily(name, unit, VERSION_LABELS, buckets))
        host_labels = {"Level": "Host", "Hostname": hostname, "hostname": hostname}
        self._status = [
            (family, _key(family, host_labels))
            for family in (self.store.get(f"Requests{n}XX") for n in (2, 4, 5))
        ]
        self._dropped: set[str] = set()
        self._keeps_latencies = False
        self._exports_state = mode == "prometheus"
        self._system = (
            SystemMetricsCollector(hostname, lambda name: name in config.frontend)
            if system_metrics and mode != "log"
            else None
        )

    def collectors(
        self, states: Callable[[], Iterable[VersionState]], waiting: Callable[[], int]
    ) -> list[Collector]:
        """What /metrics exposes: the store, plus gauges computed per scrape from ``states()``
        and ``waiting()`` (requests waiting for a ``max_concurrency`` slot)."""
        collectors: list[Collector] = [StoreCollector(self.store)]
        if self._system is not None:
            collectors.append(self._system)
        if self._exports_state:
            collectors.append(CallbackCollector(lambda: self._state_metrics(states(), waiting())))
        return collectors

    def _add_pipeline_families(self) -> None:
        step_labels = ("pipeline", "platform", "step", "model", "hostname")
        for family in (
            MetricFamily(PIPELINE_REQUESTS, "counter", "Count", PIPELINE_LABELS),
            MetricFamily(
                PIPELINE_FAILURES,
                "counter",
                "Count",
                ("pipeline", "platform", "reason", "step", "hostname"),
            ),
            HistogramFamily(PIPELINE_LATENCY, "Seconds", PIPELINE_LABELS),
            HistogramFamily(PIPELINE_STEP_LATENCY, "Seconds", step_labels),
        ):
            self.store.add(family)

    def count_response(self, status: int) -> None:
        """Requests2XX / 4XX / 5XX (1xx and 3xx count as 5XX, as in TorchServe)."""
        index = 0 if 200 <= status < 300 else 1 if 400 <= status < 500 else 2
        family, key = self._status[index]
        if family is not None:
            family.inc(key)

    def declared_model_metrics(self) -> dict[str, dict[str, Any]]:
        """Handler metrics declared in the config, as workers receive them."""
        return {
            name: {"kind": spec.kind, "unit": spec.unit, "dimensions": list(spec.dimensions)}
            for name, spec in self._config.model.items()
        }

    def keep_latencies(self) -> None:
        """Versions registered from now on keep each request's latency until
        ``VersionMetrics.take_latencies`` collects them (the dashboard does, once a second)."""
        self._keeps_latencies = True

    def for_version(self, model_name: str, model_version: str) -> VersionMetrics:
        """The recorder of one model version."""
        return VersionMetrics(self, model_name, model_version, self._keeps_latencies)

    def for_pipeline(self, pipeline: str, platform: str) -> PipelineMetrics:
        """The recorder of one pipeline (``platform``: ensemble, workflow …)."""
        return PipelineMetrics(self, pipeline, platform)

    def apply_model_metrics(self, updates: list[list[Any]]) -> None:
        """Apply the handler metrics a worker sent with a batch result."""
        for name, unit, kind, dimension_names, dimension_values, value in updates:
            family = self.model_family(name, unit, kind, dimension_names)
            if family is None:
                continue
            labels = (*dimension_values, self.hostname)
            if family.kind != kind or len(labels) != len(family.label_names):
                log.warning(
                    "metric %s: got a %s with dimensions %s, declared as a %s with %s",
                    name,
                    kind,
                    dimension_names,
                    family.kind,
                    list(family.label_names),
                )
                continue
            family.observe(labels, value)

    def model_family(
        self, name: str, unit: str, kind: str, dimension_names: list[str]
    ) -> Family | None:
        """The family of a handler metric, created on first use; None when it is dropped."""
        existing = self.store.get(name)
        if existing is not None:
            return existing
        spec = self._config.model.get(name)
        if spec is None:
            if not self._auto_detect:
                if name not in self._dropped:
                    self._dropped.add(name)
                    log.info("handler metric %s is not in the metrics config; dropped", name)
                return None
            spec = MetricSpec(name, kind, unit, tuple(dimension_names))
        labels = (*spec.dimensions, "Hostname")
        if spec.kind == "histogram":
            family: Family = HistogramFamily(
                name, spec.unit, labels, CUSTOM_HISTOGRAM_BUCKETS, logged=self._log_others
            )
        else:
            family = MetricFamily(name, spec.kind, spec.unit, labels, logged=self._log_others)
        return self.store.add(family)

    def _state_metrics(self, states: Iterable[VersionState], waiting: int) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            QUEUE_DEPTH, "Requests waiting for a worker", labels=list(VERSION_LABELS)
        )
        workers = GaugeMetricFamily(
            WORKERS, "Worker processes by state", labels=[*VERSION_LABELS, "state"]
        )
        sequences = GaugeMetricFamily(
            SEQUENCES, "Live sequences of a stateful model", labels=list(VERSION_LABELS)
        )
        expired = CounterMetricFamily(
            SEQUENCES_EXPIRED,
            "Sequences of a stateful model that expired idle",
            labels=list(VERSION_LABELS),
        )
        for state in states:
            labels = [state.model_name, state.model_version, self.hostname]
            queue.add_metric(labels, state.queued)
            for name, count in (("busy", state.busy), ("idle", state.idle)):
                workers.add_metric([*labels, name], count)
            workers.add_metric([*labels, "starting"], state.starting)
            if state.sequences is not None:
                sequences.add_metric(labels, state.sequences)
                expired.add_metric(labels, state.expired_sequences)
        yield queue
        yield workers
        slots = GaugeMetricFamily(
            WAITING,
            "Inference requests waiting for a slot (max_concurrency)",
            labels=["hostname"],
        )
        slots.add_metric([self.hostname], waiting)
        yield slots
        if sequences.samples:
            yield sequences
            yield expired


class VersionMetrics:
    """Per-request and per-batch updates for one model version."""

    __slots__ = (
        "_handler_time",
        "_histogram",
        "_histogram_key",
        "_latencies",
        "_latency",
        "_load_time",
        "_load_values",
        "_prediction_time",
        "_queue_latency",
        "_queue_time",
        "_queue_time_key",
        "_requests",
        "_server",
        "_streams",
        "_thread_time",
        "_thread_time_key",
        "_worker_time_key",
    )

    def __init__(
        self,
        server: ServerMetrics,
        model_name: str,
        model_version: str,
        keep_latencies: bool = False,
    ) -> None:
        store, host = server.store, server.hostname
        self._server = server
        # The latencies since the dashboard last took them: one list append per request buys
        # percentiles within 1 % (the histogram's buckets are too coarse for them).
        self._latencies: list[float] | None = [] if keep_latencies else None
        # TorchServe labels requests without a version in the URL model_version="default".
        by_route = {
            explicit: {
                "model_name": model_name,
                "model_version": model_version if explicit else "default",
                "hostname": host,
            }
            for explicit in (False, True)
        }

        def keyed(name: str) -> tuple[Family | None, dict[bool, tuple[str, ...]]]:
            family = store.get(name)
            return family, {explicit: _key(family, by_route[explicit]) for explicit in by_route}

        self._requests = keyed("ts_inference_requests_total")
        self._latency = keyed("ts_inference_latency_microseconds")
        self._queue_latency = keyed("ts_queue_latency_microseconds")
        self._histogram = store.get(LATENCY_HISTOGRAM)
        self._histogram_key = _key(self._histogram, by_route[True])
        streams = [store.get(name) for name in (STREAM_FIRST_PART, STREAM_PARTS, STREAM_DURATION)]
        self._streams = None if None in streams else streams
        host_labels = {"Level": "Host", "Hostname": host}
        self._queue_time = store.get("QueueTime")
        self._queue_time_key = _key(self._queue_time, host_labels)
        self._thread_time = store.get("WorkerThreadTime")
        self._thread_time_key = _key(self._thread_time, host_labels)
        self._load_time = store.get("WorkerLoadTime")
        self._load_values = {**host_labels, "model": f"{model_name}_{model_version}"}
        # The worker's own timings arrive as two numbers per batch, not as generic metrics.
        timing_dimensions = ["ModelName", "Level"]
        self._handler_time = server.model_family("HandlerTime", "ms", "gauge", timing_dimensions)
        self._prediction_time = server.model_family(
            "PredictionTime", "ms", "gauge", timing_dimensions
        )
        self._worker_time_key = (model_name, "Model", host)

    def received(self, explicit: bool) -> None:
        """A request arrived (counted before queueing, so 503s count too, as in TorchServe)."""
        family, keys = self._requests
        if family is not None:
            family.inc(keys[explicit])

    def dispatched(self, explicit: bool, waited_s: float) -> None:
        """A request left the queue for a worker after ``waited_s``."""
        family, keys = self._queue_latency
        if family is not None:
            family.inc(keys[explicit], waited_s * 1e6)
        if self._queue_time is not None:
            self._queue_time.set(self._queue_time_key, waited_s * 1e3)

    def finished(self, explicit: bool, elapsed_s: float) -> None:
        """A request was answered ``elapsed_s`` after it arrived."""
        family, keys = self._latency
        if family is not None:
            family.inc(keys[explicit], elapsed_s * 1e6)
        if self._histogram is not None:
            self._histogram.observe(self._histogram_key, elapsed_s)
        if self._latencies is not None:
            self._latencies.append(elapsed_s)

    def take_latencies(self) -> list[float]:
        """The latencies (seconds) of the requests finished since the last call."""
        taken = self._latencies
        if taken is None:
            return []
        self._latencies = []
        return taken

    def stream_ended(self, first_part_s: float, parts: int, duration_s: float) -> None:
        """An answer in parts ended: ``first_part_s`` after its request arrived the first part
        came, the client took ``parts`` parts, and it lasted ``duration_s``."""
        if self._streams is not None:
            first, count, duration = self._streams
            first.observe(self._histogram_key, first_part_s)
            count.observe(self._histogram_key, parts)
            duration.observe(self._histogram_key, duration_s)

    def batch_overhead(self, elapsed_ms: float) -> None:
        """Frontend time spent on one batch outside the worker (encode, send, decode)."""
        if self._thread_time is not None:
            self._thread_time.set(self._thread_time_key, elapsed_ms)

    def worker_loaded(self, worker_id: str, elapsed_ms: float) -> None:
        """A worker loaded the model ``elapsed_ms`` after it was started."""
        if self._load_time is not None:
            worker_name = f"W-{worker_id}-{self._load_values['model']}"
            values = {**self._load_values, "WorkerName": worker_name}
            self._load_time.set(_key(self._load_time, values), elapsed_ms)

    def worker_timings(self, handler_ms: float, prediction_ms: float) -> None:
        """HandlerTime and PredictionTime of the last batch."""
        for family, value in (
            (self._handler_time, handler_ms),
            (self._prediction_time, prediction_ms),
        ):
            if family is not None and len(family.label_names) == len(self._worker_time_key):
                family.set(self._worker_time_key, value)

    def apply_worker_metrics(self, updates: list[list[Any]]) -> None:
        """Handler metrics that came back with a batch."""
        self._server.apply_model_metrics(updates)


class PipelineMetrics:
    """Per-request and per-step updates for one pipeline; the step label keys are computed
    on a step's first answer and kept."""

    __slots__ = (
        "_failures",
        "_labels",
        "_latency",
        "_latency_key",
        "_requests",
        "_requests_key",
        "_step_keys",
        "_step_latency",
    )

    def __init__(self, server: ServerMetrics, pipeline: str, platform: str) -> None:
        store = server.store
        self._labels = {"pipeline": pipeline, "platform": platform, "hostname": server.hostname}
        self._requests = store.get(PIPELINE_REQUESTS)
        self._requests_key = _key(self._requests, self._labels)
        self._latency = store.get(PIPELINE_LATENCY)
        self._latency_key = _key(self._latency, self._labels)
        self._failures = store.get(PIPELINE_FAILURES)
        self._step_latency = store.get(PIPELINE_STEP_LATENCY)
        self._step_keys: dict[tuple[str, str], tuple[str, ...]] = {}

    def received(self) -> None:
        """A request arrived."""
        if self._requests is not None:
            self._requests.inc(self._requests_key)

    def finished(self, elapsed_s: float) -> None:
        """A request was answered (or failed) ``elapsed_s`` after it arrived."""
        if self._latency is not None:
            self._latency.observe(self._latency_key, elapsed_s)

    def failed(self, reason: str, step: str = "") -> None:
        """A request failed for ``reason`` (one of ``FAILURE_REASONS``); ``step``: the step
        that failed, for reason ``step``."""
        if self._failures is not None:
            values = {**self._labels, "reason": reason, "step": step}
            self._failures.inc(_key(self._failures, values))

    def step_finished(self, step: str, model: str, elapsed_s: float) -> None:
        """A step's request to ``model`` was answered (or failed) after ``elapsed_s``."""
        if self._step_latency is None:
            return
        key = self._step_keys.get((step, model))
        if key is None:
            values = {**self._labels, "step": step, "model": model}
            key = self._step_keys[(step, model)] = _key(self._step_latency, values)
        self._step_latency.observe(key, elapsed_s)
