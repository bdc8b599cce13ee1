"""What the dashboard reads once a second, and how the readings of a time step add up.

A model version is read as counters that only grow (requests, failures, summed latency,
the workers' summed batch time, executions by batch size, worker failures), gauges (queue
depth, workers by state) and the latencies recorded since the last read. The recorder turns
two reads into a ``VersionReading`` of one second; the readings of a minute or an hour merge
into one, and a merged reading answers the chart points of its step: counts become rates,
latencies become percentiles of the whole step, gauges become means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelserve.telemetry.frontend_metrics import VersionState
from modelserve.telemetry.latency_sketch import LatencySketch

# A chart series of one owner: (series name, part), the part "" when the series has one line.
SeriesKey = tuple[str, str]
LATENCY_QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
# Workers that have loaded the model (busy or idle): a gauge the points split in two.
READY = ("workers", "ready")


@dataclass(frozen=True, slots=True)
class VersionReadout:
    """One model version as the dashboard reads it: counters since it was registered, its
    gauges now, the latencies recorded since the last read, and its row of the model table."""

    state: VersionState
    is_default: bool
    # The serving state: AVAILABLE, LOADING or END.
    status: str
    target_workers: int
    batch_size: int
    load_error: str | None
    requests: int
    failures: int
    latency_ns: int
    # The workers' time on batches (decoding and the handler), summed over all batches.
    batch_ns: int
    executions_by_size: Mapping[int, int]
    worker_failures: int
    worker_pids: tuple[int, ...]
    latencies: list[float]

    def table_row(self) -> dict[str, object]:
        """The version's row in the dashboard's model table."""
        state = self.state
        return {
            "model": state.model_name,
            "version": state.model_version,
            "default": self.is_default,
            "status": self.status,
            "workers": state.busy + state.idle,
            "starting": state.starting,
            "target_workers": self.target_workers,
            "worker_failures": self.worker_failures,
            "batch_size": self.batch_size,
            "queued": state.queued,
            "load_error": self.load_error,
        }


class GaugeMeans:
    """Gauges read once a second, averaged over a time step (each over the reads it was in)."""

    __slots__ = ("counts", "sums")

    def __init__(self) -> None:
        self.sums: dict[SeriesKey, float] = {}
        self.counts: dict[SeriesKey, int] = {}

    def add(self, values: Mapping[SeriesKey, float]) -> None:
        """One read of some gauges."""
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def merge(self, other: GaugeMeans) -> None:
        """Add ``other``'s reads to these."""
        for key, total in other.sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + total
            self.counts[key] = self.counts.get(key, 0) + other.counts[key]

    def means(self) -> dict[SeriesKey, float]:
        """Each gauge's mean over its reads."""
        return {key: total / self.counts[key] for key, total in self.sums.items()}


def batch_size_buckets(batch_size: int) -> list[tuple[int, int]]:
    """The batch-size ranges a version's distribution is shown in: 1, 2, 3-4, 5-8 … up to
    ``batch_size`` (powers of two, so a batch size of 64 gives 8 lines, not 64)."""
    buckets, low = [], 1
    while low <= batch_size:
        high = min(max(1, 2 * (low - 1)), batch_size)
        buckets.append((low, high))
        low = high + 1
    return buckets


def bucket_label(low: int, high: int) -> str:
    """``"3-4"``, or ``"1"`` for a range of one size."""
    return str(low) if low == high else f"{low}-{high}"


@dataclass(slots=True)
class VersionReading:
    """A model version over one time step: what happened in it, and its gauges' means."""

    batch_size: int
    seconds: float = 0.0
    requests: int = 0
    failures: int = 0
    latency_ns: int = 0
    latency_max_s: float = 0.0
    batch_ns: int = 0
    latencies: LatencySketch = field(default_factory=LatencySketch)
    executions_by_size: dict[int, int] = field(default_factory=dict)
    worker_failures: int = 0
    gauges: GaugeMeans = field(default_factory=GaugeMeans)

    @classmethod
    def between(
        cls, before: VersionReadout | None, now: VersionReadout, seconds: float
    ) -> VersionReading:
        """What happened between two reads ``seconds`` apart (``before``: None for a version
        that is new, or whose counters went back because it was registered anew)."""
        if before is not None and now.requests < before.requests:
            before = None
        reading = cls(now.batch_size, seconds)
        if before is None:
            reading.requests, reading.failures = now.requests, now.failures
            reading.latency_ns, reading.worker_failures = now.latency_ns, now.worker_failures
            reading.batch_ns = now.batch_ns
            reading.executions_by_size = dict(now.executions_by_size)
        else:
            reading.requests = now.requests - before.requests
            reading.failures = now.failures - before.failures
            reading.latency_ns = now.latency_ns - before.latency_ns
            reading.batch_ns = now.batch_ns - before.batch_ns
            reading.worker_failures = now.worker_failures - before.worker_failures
            previous = before.executions_by_size
            reading.executions_by_size = {
                size: count - previous.get(size, 0)
                for size, count in now.executions_by_size.items()
                if count != previous.get(size, 0)
            }
        reading.latency_max_s = max(now.latencies, default=0.0)
        reading.latencies.add_all(now.latencies)
        state = now.state
        reading.gauges.add(
            {
                ("queue_depth", ""): state.queued,
                READY: state.busy + state.idle,
                ("workers", "starting"): state.starting,
            }
        )
        return reading

    def merge(self, other: VersionReading) -> None:
        """Add a later reading of the same version (the next second of a minute) to this."""
        self.batch_size = other.batch_size
        self.seconds += other.seconds
        self.requests += other.requests
        self.failures += other.failures
        self.latency_ns += other.latency_ns
        self.latency_max_s = max(self.latency_max_s, other.latency_max_s)
        self.batch_ns += other.batch_ns
        self.latencies.merge(other.latencies)
        for size, count in other.executions_by_size.items():
            self.executions_by_size[size] = self.executions_by_size.get(size, 0) + count
        self.worker_failures += other.worker_failures
        self.gauges.merge(other.gauges)

    def points(self) -> dict[SeriesKey, float | None]:
        """The chart points of this step: rates per second, the failed share in percent,
        latencies in ms (None without requests), gauge means, worker failures in the step.

        Busy workers are the mean over the step, from the time they spent on batches (a read
        once a second would catch a worker busy or idle at random; a batch counts when it
        ends); idle ones are the rest of the ready ones."""
        seconds = self.seconds or 1.0
        answered = self.requests
        points: dict[SeriesKey, float | None] = {
            ("requests_per_s", ""): answered / seconds,
            ("failed_percent", ""): 100.0 * self.failures / answered if answered else None,
            ("latency_ms", "mean"): self.latency_ns / answered / 1e6 if answered else None,
            ("latency_ms", "max"): self.latency_max_s * 1e3 if self.latencies.total else None,
        }
        quantiles = self.latencies.quantiles(list(LATENCY_QUANTILES.values()))
        for name, value in zip(LATENCY_QUANTILES, quantiles, strict=True):
            points["latency_ms", name] = None if value is None else value * 1e3
        for low, high in batch_size_buckets(self.batch_size):
            executions = sum(
                count for size, count in self.executions_by_size.items() if low <= size <= high
            )
            points["batches_per_s", bucket_label(low, high)] = executions / seconds
        gauges = self.gauges.means()
        ready = gauges.pop(READY, 0.0)
        busy = min(self.batch_ns / 1e9 / seconds, ready)
        points["workers", "busy"] = busy
        points["workers", "idle"] = ready - busy
        points.update(gauges)
        points["workers", "failed"] = float(self.worker_failures)
        return points
