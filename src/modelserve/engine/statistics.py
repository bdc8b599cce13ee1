"""Per-version inference statistics, as Triton's statistics extension and its ``nv_inference_*``
metrics count them: requests that succeeded and failed, time in the queue and in the worker,
inferences and executions (batches), by batch size.

The worker reports two times per batch: the handler's own run, and its whole batch (the
handler plus decoding the requests into the handler's rows). ``compute_infer`` is the
handler's time and ``compute_input`` the rest; modelserve's handlers do their own output
encoding inside the handler, so ``compute_output`` stays 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

NS_PER_S = 1_000_000_000


@dataclass(slots=True)
class Duration:
    """A count of events and their summed duration in nanoseconds."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * NS_PER_S)


@dataclass(slots=True)
class BatchStatistics:
    """The executions of one batch size and their compute times."""

    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass(slots=True)
class VersionStatistics:
    """What one model version has served since it was registered."""

    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    # Inferences (requests answered by a worker) and executions (batches).
    inference_count: int = 0
    execution_count: int = 0
    # When the last request succeeded, in ms since the epoch; 0 before any.
    last_inference_ms: int = 0
    batches: dict[int, BatchStatistics] = field(default_factory=dict)

    def request_ended(self, succeeded: bool, elapsed_s: float) -> None:
        """One request answered (``succeeded``: a 2xx/3xx answer) after ``elapsed_s``."""
        if succeeded:
            self.success.add(elapsed_s)
            self.last_inference_ms = int(time.time() * 1000)
        else:
            self.fail.add(elapsed_s)

    def dispatched(self, waited_s: float) -> None:
        """A request left the queue for a worker after ``waited_s``."""
        self.queue.add(waited_s)

    def batch_ran(self, size: int, handler_ms: float, batch_ms: float) -> None:
        """A worker ran a batch of ``size`` requests: its handler took ``handler_ms`` of the
        batch's ``batch_ms``."""
        input_s, infer_s = max(batch_ms - handler_ms, 0.0) / 1000, handler_ms / 1000
        self.inference_count += size
        self.execution_count += 1
        self.compute_input.add(input_s, size)
        self.compute_infer.add(infer_s, size)
        self.compute_output.add(0.0, size)
        by_size = self.batches.get(size)
        if by_size is None:
            by_size = self.batches[size] = BatchStatistics()
        by_size.compute_input.add(input_s)
        by_size.compute_infer.add(infer_s)
        by_size.compute_output.add(0.0)
