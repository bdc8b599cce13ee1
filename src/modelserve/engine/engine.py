"""The engine: everything the API planes ask of the server, behind one object."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from typing import Any

from modelserve.config import Settings
from modelserve.engine.dispatcher import Dispatcher
from modelserve.engine.errors import BadRequestException, WorkerLoadException
from modelserve.engine.health import Health, health_of
from modelserve.engine.jobs import InferenceJob
from modelserve.engine.model_snapshots import SnapshotKeeper
from modelserve.engine.model_version import ModelVersion
from modelserve.engine.outcomes import Outcome
from modelserve.engine.registration import RegisterOptions, Registration
from modelserve.engine.registry import ModelRegistry
from modelserve.engine.runtime_dir import SOCKET_NAME, prepare_runtime_dir, worker_socket_dir
from modelserve.engine.startup_models import StartupModels, StartupOutcome
from modelserve.telemetry.frontend_metrics import ServerMetrics, VersionState
from modelserve.wire import WireRequest, WireResponse

# RegisterOptions, Outcome and StartupOutcome are imported from here by the API planes,
# the gRPC servicers and server.py (until they go through the data plane).
__all__ = ["Engine", "Outcome", "RegisterOptions", "StartupOutcome"]

log = logging.getLogger("modelserve.engine")

LIST_LIMIT_MAX = 100


class Engine:
    """Registry, worker pools and the dispatcher of one server."""

    def __init__(self, settings: Settings, metrics: ServerMetrics, instance_name: str) -> None:
        self.settings = settings
        self.metrics = metrics
        self.registry = ModelRegistry()
        self.runtime_dir = settings.resolved_runtime_dir() / str(os.getpid())
        self._socket_dir = self.runtime_dir
        self._registration = Registration(settings, metrics, self.runtime_dir, self.registry)
        self._dispatcher: Dispatcher | None = None
        self.snapshots = (
            SnapshotKeeper(settings.resolved_snapshot_dir(instance_name), settings.model_store)
            if settings.enable_snapshots
            else None
        )
        self._background: set[asyncio.Task] = set()
        self._startup = StartupModels()
        # Called with the registered model names after every successful management change.
        self.on_models_changed: Callable[[list[str]], None] = lambda _names: None

    # ----- lifecycle

    async def start(self) -> None:
        """Create the private runtime directory and bind the worker socket."""
        prepare_runtime_dir(self.runtime_dir)
        self._socket_dir = worker_socket_dir(self.runtime_dir)
        self._dispatcher = Dispatcher(f"ipc://{self._socket_dir / SOCKET_NAME}")
        self._dispatcher.start()
        log.info(
            "%d GPUs visible to workers; device: %s",
            self._registration.gpu_count,
            self.settings.device or "auto",
        )

    async def stop(self) -> None:
        """Stop every worker and remove the runtime directory."""
        await asyncio.gather(*(version.pool.close() for version in self.registry.all_versions()))
        if self._dispatcher is not None:
            self._dispatcher.close()
        shutil.rmtree(self._socket_dir, ignore_errors=True)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    # ----- inference

    async def predict(self, name: str, version: str | None, request: WireRequest) -> WireResponse:
        """Queue one request on the model version and wait for its response."""
        model_version = self.registry.get(name, version)
        explicit = version is not None
        metrics = model_version.metrics
        metrics.received(explicit)
        future = asyncio.get_running_loop().create_future()
        job = InferenceJob(request, future, time.perf_counter(), explicit)
        try:
            model_version.submit(job)
            return await future
        finally:
            metrics.finished(explicit, time.perf_counter() - job.enqueued_at)

    def version_states(self) -> list[VersionState]:
        """Queue depth and worker states of every version, for the scrape-time gauges."""
        return [version.state() for version in self.registry.all_versions()]

    def health(self) -> Health:
        """Can the default version of each model that should serve (it has workers, or it is
        a startup model) take requests? Never ready before the startup models are registered."""
        serving: dict[str, bool] = {}
        reasons: dict[str, str] = {}
        if self._startup.loading:
            serving["*"], reasons["*"] = False, "the server is loading its startup models"
        for name in self.registry.names():
            pool = self.registry.get(name).pool
            if pool.target == 0:
                continue
            serving[name] = pool.ready_count() > 0
            failure = pool.last_failure
            reasons[name] = failure.summary() if failure is not None else "loading"
        for name, error in self._startup.failures.items():
            serving.setdefault(name, False)
            reasons.setdefault(name, error)
        return health_of(serving, reasons)

    # ----- management

    async def register(self, options: RegisterOptions) -> Outcome:
        """``POST /models``: resolve, validate and extract the archive, then start workers."""
        model_version = await self._registration.add(options, self._dispatcher)
        self._startup.registered(model_version.name)
        workers = model_version.settings.min_workers
        label = f'Model "{model_version.name}" Version: {model_version.version}'
        name = model_version.name
        if workers == 0:
            await self._changed()
            return Outcome(
                200,
                f"{label} registered with 0 initial workers. "
                "Use scale workers API to add workers for the model.",
                name,
            )
        if not options.synchronous:
            await self._changed()
            self._in_background(self._scale_and_log(model_version, workers, workers))
            return Outcome(202, "Processing worker updates...", name)
        try:
            await self._scale_now(model_version, workers, workers)
        except WorkerLoadException:
            await self._remove(model_version)
            raise
        await self._changed()
        return Outcome(200, f"{label} registered with {workers} initial workers", name)

    async def settle(self) -> None:
        """Wait until the worker scaling under way has succeeded or failed (startup)."""
        await asyncio.gather(*list(self._background), return_exceptions=True)

    def _in_background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)  # keep a reference until done, or the task may vanish
        task.add_done_callback(self._background.discard)

    async def _scale_and_log(self, version: ModelVersion, low: int, high: int) -> None:
        try:
            await version.scale(low, high, wait=True)
        except WorkerLoadException as exc:
            log.error("workers of %s:%s failed to start: %s", version.name, version.version, exc)
        await self._changed()

    @staticmethod
    async def _scale_now(version: ModelVersion, low: int, high: int) -> None:
        """Scale and wait for the new workers; their load error names the version."""
        try:
            await version.scale(low, high, wait=True)
        except WorkerLoadException as exc:
            raise WorkerLoadException(
                f"Failed to start workers for model {version.name} "
                f"version: {version.version}: {exc.message}",
                status=exc.status,  # 400 when the handler names nothing loadable
                type_name=exc.type_name,
            ) from exc

    def scale_in_background(self, name: str, version: str, low: int, high: int) -> None:
        """Scale a version without waiting (snapshot restore)."""
        self._in_background(self._scale_and_log(self.registry.get(name, version), low, high))

    async def _changed(self) -> None:
        """A management change succeeded: record the new state."""
        self.on_models_changed(self.registry.names())
        if self.snapshots is not None:
            await self.snapshots.save(self.registry)

    async def scale(
        self,
        name: str,
        version: str | None,
        min_workers: int,
        max_workers: int,
        synchronous: bool,
    ) -> Outcome:
        """``PUT /models/{m}[/{v}]``: TorchServe's min/max scaling, sync (200) or async (202)."""
        if max_workers < min_workers:
            raise BadRequestException("max_worker cannot be less than min_worker.")
        model_version = self.registry.get(name, version)
        if not synchronous:
            self._in_background(self._scale_and_log(model_version, min_workers, max_workers))
            return Outcome(202, "Processing worker updates...")
        await self._scale_now(model_version, min_workers, max_workers)
        await self._changed()
        suffix = f", version: {version}" if version else ""
        return Outcome(200, f"Workers scaled to {min_workers} for model: {name}{suffix}")

    async def set_default(self, name: str, version: str) -> Outcome:
        """``PUT /models/{m}/{v}/set-default``."""
        self.registry.set_default(name, version)
        await self._changed()
        return Outcome(
            200, f'Default version successfully updated for model "{name}" to "{version}"'
        )

    async def unregister(self, name: str, version: str | None) -> Outcome:
        """``DELETE /models/{m}[/{v}]``: stop the workers and delete the extracted files."""
        model_version = self.registry.check_removable(name, version)
        await self._remove(model_version)
        await self._changed()
        return Outcome(200, f'Model "{name}" unregistered')

    async def _remove(self, model_version: ModelVersion) -> None:
        self.registry.remove(model_version)
        await model_version.pool.close()
        await asyncio.to_thread(shutil.rmtree, model_version.model_dir, True)

    def describe(self, name: str, version: str | None) -> list[dict[str, Any]]:
        """``GET /models/{m}[/{v}|/all]``: a list with one entry per described version."""
        if version == "all":
            entry = self.registry.entry(name)
            return [entry.versions[key].describe() for key in sorted(entry.versions)]
        return [self.registry.get(name, version).describe()]

    def tensor_metadata(self, name: str, version: str | None) -> dict[str, list[dict[str, Any]]]:
        """The model version's ``{"inputs": [...], "outputs": [...]}`` tensors, each
        ``{name, datatype, shape}`` as KServe v2 metadata has them (-1: an open dimension);
        empty lists while unknown. 404s as for every lookup."""
        return self.registry.get(name, version).tensor_metadata()

    def list_models(self, limit: int, page_token: int) -> dict[str, Any]:
        """``GET /models``: default versions sorted by name, paginated as TorchServe does."""
        if limit > LIST_LIMIT_MAX or limit < 0:
            limit = LIST_LIMIT_MAX
        page_token = max(page_token, 0)
        names = self.registry.names()
        last = page_token + limit
        body: dict[str, Any] = {}
        if last <= len(names):
            body["nextPageToken"] = str(last)
        body["models"] = [
            {"modelName": name, "modelUrl": self.registry.get(name).url}
            for name in names[page_token:last]
        ]
        return body

    async def load_startup_models(self, entries: list[str]) -> list[StartupOutcome]:
        """Register ``--models`` / ``load_models`` entries (``[name=]url`` or ``all``); until
        this has run, health() is never ready.

        Workers load in the background. An entry that cannot be registered is logged, and
        /ping names it and stays not-Healthy until a model of its name is registered; one
        already registered (restored from a snapshot) keeps its restored settings.
        """
        return await self._startup.load(entries, self.settings.model_store, self.register)
