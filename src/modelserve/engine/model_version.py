"""One registered (model, version): its archive, settings and worker pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelserve.archive import Manifest
from modelserve.engine.jobs import InferenceJob
from modelserve.engine.results import ServingState, VersionStatus
from modelserve.engine.sequence_batcher import SequenceBatcher
from modelserve.engine.sequences import describe_sequences
from modelserve.engine.settings import VersionSettings
from modelserve.engine.statistics import VersionStatistics
from modelserve.engine.worker_pool import WorkerPool
from modelserve.engine.worker_process import READY
from modelserve.telemetry.dashboard_readings import VersionReadout
from modelserve.telemetry.frontend_metrics import VersionMetrics, VersionState


class ModelVersion:
    """A loaded archive with its own queue and worker processes."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        url: str,
        archive_path: Path,
        model_dir: Path,
        manifest: Manifest,
        handler: str,
        runtime: str,
        settings: VersionSettings,
        loaded_at_startup: bool,
        pool: WorkerPool,
        metrics: VersionMetrics,
        declared_tensors: dict[str, list[dict[str, Any]] | None] | None = None,
        version_labels: dict[str, str] | None = None,
        triton_config: dict[str, Any] | None = None,
        in_snapshots: bool = True,
    ) -> None:
        self.name = name
        self.version = version
        self.url = url
        self.archive_path = archive_path
        self.model_dir = model_dir
        self.manifest = manifest
        self.handler = handler
        self.runtime = runtime
        self.settings = settings
        self.loaded_at_startup = loaded_at_startup
        # False for a workflow's node models: snapshots leave them out.
        self.in_snapshots = in_snapshots
        self.pool = pool
        self.metrics = metrics
        # From the model-config yaml: {"inputs": [...] or None, "outputs": [...] or None}.
        self.declared_tensors = declared_tensors or {}
        # From the model-config yaml: TF Serving's ``versionLabels`` (label -> version).
        self.version_labels = version_labels or {}
        # From the model-config yaml: the Triton config.pbtxt of a repository model, as JSON.
        self.triton_config = triton_config
        self._no_worker_message = (
            f'Model "{name}" Version {version} has no worker to serve inference request. '
            "Please use scale workers API to add workers."
        )

    def tensor_metadata(self) -> dict[str, list[dict[str, Any]]]:
        """The model's inputs and outputs ({name, datatype, shape}): declared in the yaml, else
        as a worker reported them; empty lists while unknown."""
        reported = self.pool.tensor_metadata or {}
        metadata = {}
        for key in ("inputs", "outputs"):
            declared = self.declared_tensors.get(key)
            metadata[key] = list(reported.get(key) or [] if declared is None else declared)
        return metadata

    def platform(self) -> str | None:
        """The KServe v2 platform its worker reported in READY (the tensor handler names its
        framework), if any."""
        platform = (self.pool.tensor_metadata or {}).get("platform")
        return platform if isinstance(platform, str) else None

    @property
    def statistics(self) -> VersionStatistics:
        """What the version has served: Triton's statistics and nv_inference_* metrics."""
        return self.pool.statistics

    def serving_state(self) -> ServingState:
        """Available once a worker is ready; loading while workers are asked for; END when
        none is asked for. (Health asks this of every model on each /ping: no allocation.)"""
        pool = self.pool
        if pool.has_ready_worker():
            return ServingState.AVAILABLE
        return ServingState.LOADING if pool.target > 0 else ServingState.END

    def status(self) -> VersionStatus:
        """The serving state, with the last load failure of a loading version, if any."""
        state = self.serving_state()
        if state is not ServingState.LOADING:
            return VersionStatus(self.version, state)
        failure = self.pool.last_failure
        return VersionStatus(self.version, state, failure.summary() if failure else None)

    def worker_descriptions(self) -> list[dict[str, Any]]:
        """Its workers as TorchServe's describe output lists them."""
        return [worker.describe() for worker in self.pool.workers.values()]

    def submit(self, job: InferenceJob) -> None:
        """Queue an inference job (503 when no worker exists or the queue is full)."""
        self.pool.submit(job, self._no_worker_message)

    async def scale(self, min_workers: int, max_workers: int, *, wait: bool) -> int:
        """TorchServe scaling: raise the count to min, trim it to max; returns the new count."""
        self.settings.min_workers = min_workers
        self.settings.max_workers = max_workers
        count = min(max(self.pool.target, min_workers), max_workers)
        await self.pool.scale(count, wait=wait)
        return count

    def state(self) -> VersionState:
        """Queue depth and worker states, for the scrape-time gauges."""
        workers = self.pool.live_workers()
        busy = sum(1 for worker in workers if worker.batches)
        ready = sum(1 for worker in workers if worker.state == READY)
        batcher = self.pool.batcher
        stateful = isinstance(batcher, SequenceBatcher)
        return VersionState(
            self.name,
            self.version,
            queued=batcher.queued(),
            busy=busy,
            idle=ready - busy,
            starting=len(workers) - ready,
            sequences=len(batcher.sequences) if stateful else None,
            expired_sequences=batcher.expired if stateful else 0,
        )

    def readout(self, is_default: bool) -> VersionReadout:
        """What the dashboard reads of this version each second; takes the latencies
        recorded since the last readout."""
        statistics = self.statistics
        failure = self.pool.last_failure
        return VersionReadout(
            state=self.state(),
            is_default=is_default,
            status=self.serving_state().name,
            target_workers=self.pool.target,
            batch_size=self.settings.batch_size,
            load_error=failure.summary() if failure else None,
            requests=statistics.success.count + statistics.fail.count,
            failures=statistics.fail.count,
            latency_ns=statistics.success.ns + statistics.fail.ns,
            batch_ns=statistics.compute_input.ns + statistics.compute_infer.ns,
            executions_by_size={
                size: batches.compute_infer.count for size, batches in statistics.batches.items()
            },
            worker_failures=self.pool.worker_failures,
            worker_pids=tuple(
                worker.pid for worker in self.pool.live_workers() if worker.pid is not None
            ),
            latencies=self.metrics.take_latencies(),
        )

    def describe(self) -> dict[str, Any]:
        """This version's entry in TorchServe's describe output."""
        settings = self.settings
        queued = self.pool.batcher.queued()
        description: dict[str, Any] = {
            "modelName": self.name,
            "modelVersion": self.version,
            "modelUrl": self.url,
            "runtime": self.runtime,
            "minWorkers": settings.min_workers,
            "maxWorkers": settings.max_workers,
            "batchSize": settings.batch_size,
            "maxBatchDelay": settings.max_batch_delay,
            "responseTimeout": settings.response_timeout,
            "startupTimeout": settings.startup_timeout,
            "maxRetryTimeoutInSec": settings.max_retry_timeout,
            "clientTimeoutInMills": 0,
            "parallelType": "",
            "parallelLevel": 0,
            "deviceType": self.pool.placement.device_type,
            **({"deviceIds": list(settings.device_ids)} if settings.device_ids else {}),
            "continuousBatching": False,
            "useJobTicket": False,
            "useVenv": False,
            **describe_sequences(self.pool.sequences),
            "loadedAtStartup": self.loaded_at_startup,
            "workers": self.worker_descriptions(),
            "jobQueueStatus": {
                "remainingCapacity": settings.job_queue_size - queued,
                "pendingRequests": queued,
            },
        }
        failure = self.pool.last_failure
        if failure is not None:
            # Beyond TorchServe: why the workers are not coming up, without reading logs.
            description["loadError"] = {
                "type": failure.error_type,
                "message": failure.message,
                "traceback": failure.traceback,
            }
        return description
