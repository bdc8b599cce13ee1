"""The engine: the registry, worker pools and dispatcher of one server, their lifecycle and the
management changes (register, scale, set-default, unregister). The protocol adapters reach it
through the data plane (``engine.dataplane``)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable, Coroutine
from typing import Any

from modelserve.config import Settings
from modelserve.engine.cpu_budget import compute_threads
from modelserve.engine.dispatcher import Dispatcher
from modelserve.engine.errors import BadRequestException, WorkerLoadException
from modelserve.engine.model_snapshots import SnapshotKeeper
from modelserve.engine.model_version import ModelVersion
from modelserve.engine.outcomes import Outcome
from modelserve.engine.registration import RegisterOptions, Registration
from modelserve.engine.registry import ModelRegistry
from modelserve.engine.runtime_dir import SOCKET_NAME, prepare_runtime_dir, worker_socket_dir
from modelserve.engine.spare_worker import SpareWorker
from modelserve.engine.startup_models import StartupModels, StartupOutcome
from modelserve.engine.worker_process import worker_environment
from modelserve.telemetry.frontend_metrics import ServerMetrics

# Re-exported: startup code imports StartupOutcome from here, tests RegisterOptions.
__all__ = ["Engine", "RegisterOptions", "StartupOutcome"]

log = logging.getLogger("modelserve.engine")


class Engine:
    """Registry, worker pools and the dispatcher of one server."""

    def __init__(self, settings: Settings, metrics: ServerMetrics, instance_name: str) -> None:
        self.settings = settings
        self.metrics = metrics
        self.registry = ModelRegistry()
        self.runtime_dir = settings.resolved_runtime_dir() / str(os.getpid())
        self._socket_dir = self.runtime_dir
        # Started once the startup models have settled (start_spare_worker), so that it does
        # not compete with them, nor with the server's own start, for the CPU.
        self.spare = (
            SpareWorker(
                self.runtime_dir / "spare",
                worker_environment(compute_threads(settings.worker_threads, 1), []),
            )
            if settings.spare_worker
            else None
        )
        self._registration = Registration(
            settings, metrics, self.runtime_dir, self.registry, self.spare
        )
        self._dispatcher: Dispatcher | None = None
        self.snapshots = (
            SnapshotKeeper(settings.resolved_snapshot_dir(instance_name), settings.model_store)
            if settings.enable_snapshots
            else None
        )
        self._background: set[asyncio.Task] = set()
        # The startup models still loading or failed: the data plane's health reads them.
        self.startup = StartupModels()
        # Called with the registered model names after every successful management change.
        self.on_models_changed: Callable[[list[str]], None] = lambda _names: None

    def set_server_endpoint(self, url: str, token: str | None) -> None:
        """Where the workers spawned from now on reach the inference plane, and the token they
        present there (a Triton Python model's BLS calls go through the server's front door)."""
        self._registration.server_url = url
        self._registration.server_token = token or ""

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

    def start_spare_worker(self) -> None:
        """Start the spare worker (with ``spare_worker`` on): a worker process that does its
        imports now and is handed the next model that fits, instead of a new process."""
        if self.spare is None:
            log.info("spare worker off (spare_worker=false)")
            return
        self.spare.start()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop every worker and remove the runtime directory. Batches still in flight get
        ``grace_s`` seconds (None: each model's unregister timeout) before their workers are
        killed."""
        if self.spare is not None:
            await self.spare.close()
        versions = self.registry.all_versions()
        await asyncio.gather(*(version.pool.close(grace_s) for version in versions))
        if self._dispatcher is not None:
            self._dispatcher.close()
        shutil.rmtree(self._socket_dir, ignore_errors=True)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    # ----- management

    async def register(self, options: RegisterOptions) -> Outcome:
        """``POST /models``: resolve, validate and extract the archive, then start workers."""
        model_version = await self._registration.add(options, self._dispatcher)
        self.startup.registered(model_version.name)
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

    def model_names(self) -> list[str]:
        """The registered model names, sorted."""
        return self.registry.names()

    async def _changed(self) -> None:
        """A management change succeeded: record the new state."""
        self.on_models_changed(self.model_names())
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

    async def load_startup_models(self, entries: list[str]) -> list[StartupOutcome]:
        """Register ``--models`` / ``load_models`` entries (``[name=]url`` or ``all``); until
        this has run, the data plane's health is never ready.

        Workers load in the background. An entry that cannot be registered is logged, and
        /ping names it and stays not-Healthy until a model of its name is registered; one
        already registered (restored from a snapshot) keeps its restored settings.
        """
        return await self.startup.load(entries, self.settings.model_store, self.register)
