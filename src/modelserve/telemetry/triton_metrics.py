"""Triton's ``nv_inference_*`` metrics beside TorchServe's, with Triton's labels (``model``,
``version``), read from the versions' statistics when scraped: a Triton dashboard reads them
unchanged.

Triton's counters do not end in ``_total``, so, like TorchServe's, they are exposed untyped
under their own names (a Prometheus counter's samples must end in ``_total``); ``rate()``
works on them as on a counter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class TritonSample:
    """One model version's numbers, as Triton's metrics report them."""

    model: str
    version: str
    success: int
    failure: int
    inference_count: int
    execution_count: int
    request_us: int
    queue_us: int
    compute_input_us: int
    compute_infer_us: int
    compute_output_us: int
    pending: int


# Metric name → (help, the sample's field, type).
FAMILIES = {
    "nv_inference_request_success": ("Number of successful inference requests", "success"),
    "nv_inference_request_failure": ("Number of failed inference requests", "failure"),
    "nv_inference_count": ("Number of inferences performed", "inference_count"),
    "nv_inference_exec_count": ("Number of model executions (batches)", "execution_count"),
    "nv_inference_request_duration_us": ("Cumulative inference request duration", "request_us"),
    "nv_inference_queue_duration_us": ("Cumulative inference queuing duration", "queue_us"),
    "nv_inference_compute_input_duration_us": (
        "Cumulative compute input duration",
        "compute_input_us",
    ),
    "nv_inference_compute_infer_duration_us": (
        "Cumulative compute inference duration",
        "compute_infer_us",
    ),
    "nv_inference_compute_output_duration_us": (
        "Cumulative inference compute output duration",
        "compute_output_us",
    ),
    "nv_inference_pending_request_count": ("Instantaneous number of pending requests", "pending"),
}
GAUGES = {"nv_inference_pending_request_count"}


class TritonCollector(Collector):
    """The ``nv_inference_*`` families, from ``read()`` at each scrape."""

    def __init__(self, read: Callable[[], list[TritonSample]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        samples = self._read()
        for name, (description, attribute) in FAMILIES.items():
            metric = Metric(name, description, "gauge" if name in GAUGES else "unknown")
            for sample in samples:
                labels = {"model": sample.model, "version": sample.version}
                metric.add_sample(name, labels, getattr(sample, attribute))
            yield metric

    def describe(self) -> list[Metric]:
        """The families without samples: registries check names without a scrape."""
        return [
            Metric(name, description, "gauge" if name in GAUGES else "unknown")
            for name, (description, _) in FAMILIES.items()
        ]
