"""The in-process limit: a handler called directly in a tight loop, with no server around it."""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from loadtest import BATCH_SIZE
from loadtest.archives import DIGITS_HANDLER, NOOP_HANDLER, load_module

Handle = Callable[[list[dict[str, Any]] | None, Any], Any]
NS_PER_MS = 1e6
NS_PER_S = 1e9
# Enough calls for TorchScript's profiling runs and the allocator to settle.
WARM_UP_CALLS = 50


@dataclass(frozen=True)
class InProcessResult:
    """Calls per second and per-call latency percentiles of one handler and batch size."""

    model: str
    batch_size: int
    calls: int
    calls_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    cpu_ms_per_call: float  # this process's CPU time per call, every thread's

    @property
    def requests_per_s(self) -> float:
        """Requests answered per second: each call answers a whole batch."""
        return self.calls_per_s * self.batch_size

    def as_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready data, with requests per second."""
        return {**asdict(self), "requests_per_s": self.requests_per_s}


def handler_context(
    model_dir: Path, model_name: str, serialized_file: str | None, gpu_id: int | None = None
) -> Any:
    """The parts of TorchServe's Context that the benchmarked handlers read at load time; a
    ``gpu_id`` places the handler on that GPU, as a worker there would be."""
    model: dict[str, str] = {"modelName": model_name}
    if serialized_file:
        model["serializedFile"] = serialized_file
    properties = {"model_dir": str(model_dir), "gpu_id": gpu_id, "batch_size": BATCH_SIZE}
    return SimpleNamespace(
        system_properties=properties,
        manifest={"model": model},
    )


def measure(
    model: str,
    handle: Handle,
    batch: list[Any],
    context: Any,
    duration_s: float,
    warm_up_calls: int = WARM_UP_CALLS,
) -> InProcessResult:
    """Call ``handle(batch, context)`` back to back for ``duration_s`` seconds, after
    ``warm_up_calls`` calls (fewer for a model whose call takes a large part of a second).

    One clock read per call: each call's latency runs from the end of the previous one, so
    the loop's own few tens of nanoseconds are charged to the handler and the latencies add
    up to the elapsed time exactly.
    """
    for _ in range(warm_up_calls):
        handle(batch, context)
    clock = time.perf_counter_ns
    samples = array("q")
    cpu_started = time.process_time()
    start = previous = clock()
    deadline = start + int(duration_s * NS_PER_S)
    while previous < deadline:
        handle(batch, context)
        now = clock()
        samples.append(now - previous)
        previous = now
    p50, p90, p99 = np.percentile(np.frombuffer(samples, dtype=np.int64), [50, 90, 99])
    return InProcessResult(
        model=model,
        batch_size=len(batch),
        calls=len(samples),
        calls_per_s=len(samples) * NS_PER_S / (previous - start),
        p50_ms=p50 / NS_PER_MS,
        p90_ms=p90 / NS_PER_MS,
        p99_ms=p99 / NS_PER_MS,
        cpu_ms_per_call=(time.process_time() - cpu_started) * 1000 / len(samples),
    )


def noop_limit(duration_s: float) -> InProcessResult:
    """The no-op handler on a batch of one ``{}`` body, as the worker would decode it."""
    handle = load_module(NOOP_HANDLER, "bench_noop").handle
    context = handler_context(NOOP_HANDLER.parent, "noop", None)
    handle(None, context)  # a function handler's load-time call
    return measure("noop", handle, [{"body": {}}], context, duration_s)


def digits_limits(
    artifacts: Path, sample: Any, duration_s: float, batch_sizes: tuple[int, ...]
) -> list[InProcessResult]:
    """The digits handler on batches of ``sample`` (the decoded JSON body), one per size."""
    handler = load_module(DIGITS_HANDLER, "bench_digits_handler").DigitsHandler()
    context = handler_context(artifacts, "digits", "digits.pt")
    handler.initialize(context)
    return [
        measure("digits", handler.handle, [{"body": sample}] * size, context, duration_s)
        for size in batch_sizes
    ]


def measure_threads(call: Callable[[], Any], threads: int, duration_s: float) -> dict[str, Any]:
    """``threads`` Python threads calling ``call()`` back to back for ``duration_s`` seconds,
    started together: concurrent callers in one process, which the GIL runs one at a time.

    Each call is timed on its own (two clock reads), so a thread's wait for the GIL between
    calls is not charged to a call, while a wait in the middle of one is. Returns calls,
    calls/s over the whole run, and per-call p50/p90/p99 in ms.
    """
    for _ in range(WARM_UP_CALLS):
        call()
    clock = time.perf_counter_ns
    samples = [array("q") for _ in range(threads)]
    ends = [0] * threads
    start_line = threading.Barrier(threads + 1)
    deadline = 0

    def caller(index: int) -> None:
        own = samples[index]
        start_line.wait()
        finished = clock()
        while finished < deadline:
            started = clock()
            call()
            finished = clock()
            own.append(finished - started)
        ends[index] = finished

    workers = [threading.Thread(target=caller, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    start = clock()
    deadline = start + int(duration_s * NS_PER_S)
    start_line.wait()
    for worker in workers:
        worker.join()
    latencies = np.concatenate([np.frombuffer(own, dtype=np.int64) for own in samples])
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    return {
        "calls": len(latencies),
        "calls_per_s": len(latencies) * NS_PER_S / (max(ends) - start),
        "p50_ms": p50 / NS_PER_MS,
        "p90_ms": p90 / NS_PER_MS,
        "p99_ms": p99 / NS_PER_MS,
    }
