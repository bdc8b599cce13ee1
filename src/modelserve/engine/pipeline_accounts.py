"""What each served pipeline has answered: every request counted on the metrics plane
(requests, failures by reason, end-to-end and per-step latency; a Triton ensemble, a TorchServe
workflow or a Paddle Serving service alike) and, for a pipeline served as a v2 model (a Triton
ensemble), in its statistics too, as Triton counts an ensemble's requests
in the ensemble's own statistics and ``nv_inference_*`` metrics.

An ensemble request waits in no queue of its own and runs as one execution: on success its
statistics gain a zero queue time and one execution of one request, with zero compute times
(the steps' compute times are in their own models' statistics, where Triton also counts them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from modelserve.engine.pipeline_runner import PipelineTimeoutError, StepFinished
from modelserve.engine.pipelines import PipelineStep
from modelserve.engine.statistics import VersionStatistics
from modelserve.telemetry.frontend_metrics import PipelineMetrics

# A front door's answer: a WireResponse, or a Paddle service's response.
T = TypeVar("T")


class _Run:
    """One request's steps as they end: their latencies, and the first that failed."""

    __slots__ = ("failed_step", "metrics")

    def __init__(self, metrics: PipelineMetrics) -> None:
        self.metrics = metrics
        self.failed_step = ""

    def step_finished(self, step: PipelineStep, elapsed_s: float, failed: bool) -> None:
        self.metrics.step_finished(step.name, step.model, elapsed_s)
        if failed and not self.failed_step:
            self.failed_step = step.name


class PipelineAccount:
    """Counts the requests of one served pipeline; ``statistics`` (None: none kept) are its
    Triton statistics."""

    def __init__(
        self, metrics: PipelineMetrics, statistics: VersionStatistics | None = None
    ) -> None:
        self.metrics = metrics
        self.statistics = statistics

    async def run(self, work: Callable[[StepFinished], Awaitable[T]]) -> T:
        """``work``'s answer (it is told of each step that ends), counted; a request fails
        when ``work`` raises."""
        self.metrics.received()
        run = _Run(self.metrics)
        started = time.perf_counter()
        try:
            response = await work(run.step_finished)
        except BaseException as exc:  # a cancelled request too: the client went away
            reason = _reason(exc, run.failed_step)
            step = run.failed_step if reason == "step" else ""
            self._ended(time.perf_counter() - started, reason, step)
            raise
        self._ended(time.perf_counter() - started, None)
        return response

    def _ended(self, elapsed_s: float, failure: str | None, step: str = "") -> None:
        """A request ended after ``elapsed_s``; ``failure``: why it failed (None: it did not),
        ``step``: the step that failed."""
        self.metrics.finished(elapsed_s)
        if failure is not None:
            self.metrics.failed(failure, step)
        statistics = self.statistics
        if statistics is None:
            return
        statistics.request_ended(failure is None, elapsed_s)
        if failure is None:
            statistics.dispatched(0.0)
            statistics.batch_ran(1, 0.0, 0.0)


def _reason(exc: BaseException, failed_step: str) -> str:
    """The failure reason of ``PipelineMetrics.failed`` for a request that raised ``exc``."""
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, PipelineTimeoutError):
        return "timeout"
    return "step" if failed_step else "other"
