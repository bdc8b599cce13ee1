"""What a model version's worker pool is built with: its limits and how it spawns workers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelserve.engine.devices import Placement
from modelserve.engine.sequences import SequencePolicy
from modelserve.engine.spare_worker import SpareWorker
from modelserve.engine.streams import StreamLimits
from modelserve.wire import WorkerSpec


@dataclass(frozen=True, slots=True)
class PoolTimeouts:
    """Seconds allowed for a load, a batch, a retiring worker's exit, and restarts."""

    startup: float
    response: float
    unregister: float
    # Workers failing for longer than this are not restarted again (TorchServe's
    # maxRetryTimeoutInSec); describe and /ping show the model as not serving.
    max_retry: float = 300.0


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """How the version batches its requests, and how long and how much its workers may take."""

    batch_size: int
    max_batch_delay_ms: int
    # Requests that may wait for a worker (job_queue_size); more are a 503.
    queue_capacity: int
    max_response_size: int
    timeouts: PoolTimeouts
    # How answers in parts are bounded (window, timeouts).
    stream: StreamLimits
    # A stateful model's sequences (each on one worker, in order); None: stateless.
    sequences: SequencePolicy | None = None


@dataclass(frozen=True, slots=True)
class WorkerLaunch:
    """What each worker of the version is spawned with."""

    # (worker id, GPU or None) -> what the worker loads.
    make_spec: Callable[[str, int | None], WorkerSpec]
    next_worker_id: Callable[[], str]
    spec_dir: Path
    placement: Placement
    # Compute threads per worker; 0 = share the cores the frontend does not use.
    threads: int = 0
    # The server's spare worker, handed the model instead of a new process where it fits;
    # None: spare_worker is off.
    spare: SpareWorker | None = None
