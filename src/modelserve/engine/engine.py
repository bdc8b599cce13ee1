"""The engine: everything the API planes ask of the server, behind one object."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from modelserve import archive
from modelserve.archive import Manifest, url_policy
from modelserve.config import ConfigError, Settings, cuda_visible_devices
from modelserve.engine.archive_download import download_archive
from modelserve.engine.devices import (
    DevicePlacementError,
    Placement,
    resolve_placement,
    visible_gpu_count,
)
from modelserve.engine.dispatcher import Dispatcher
from modelserve.engine.errors import (
    BadRequestException,
    ConflictStatusException,
    InvalidModelException,
    ModelNotFoundException,
    ServingError,
    WorkerLoadException,
)
from modelserve.engine.health import Health, health_of
from modelserve.engine.jobs import InferenceJob
from modelserve.engine.model_config import ModelConfig, load_model_config
from modelserve.engine.model_dependencies import install_requirements
from modelserve.engine.model_snapshots import SnapshotKeeper
from modelserve.engine.model_version import ModelVersion, VersionSettings
from modelserve.engine.registry import ModelRegistry
from modelserve.engine.worker_pool import PoolTimeouts, WorkerPool
from modelserve.telemetry.frontend_metrics import ServerMetrics, VersionState
from modelserve.wire import WireRequest, WireResponse, WorkerSpec

log = logging.getLogger("modelserve.engine")

RUNTIMES = ("python", "python3", "LSP")
DEFAULT_BATCH_SIZE = 1
DEFAULT_MAX_BATCH_DELAY_MS = 100
DEFAULT_MAX_RETRY_TIMEOUT_S = 300
FIRST_WORKER_ID = 9000
LIST_LIMIT_MAX = 100


@dataclass(slots=True)
class RegisterOptions:
    """The parameters of ``POST /models`` (None = not given)."""

    url: str
    model_name: str | None = None
    handler: str | None = None
    runtime: str | None = None
    batch_size: int | None = None
    max_batch_delay: int | None = None
    initial_workers: int | None = None
    synchronous: bool = True
    response_timeout: int | None = None
    startup_timeout: int | None = None
    loaded_at_startup: bool = False


@dataclass(slots=True)
class StartupOutcome:
    """What became of one ``--models`` / ``load_models`` entry at start."""

    entry: str
    # The registered model's name; None when the entry could not be registered.
    model_name: str | None
    # Why it does not serve; None once registered (its workers may still be loading).
    error: str | None = None


@dataclass(slots=True)
class Outcome:
    """A management call's HTTP status and status message."""

    status: int
    message: str
    # The model a registration registered.
    model_name: str | None = None


class Engine:
    """Registry, worker pools and the dispatcher of one server."""

    def __init__(self, settings: Settings, metrics: ServerMetrics, instance_name: str) -> None:
        self.settings = settings
        self.metrics = metrics
        self.registry = ModelRegistry()
        self.runtime_dir = settings.resolved_runtime_dir() / str(os.getpid())
        self._worker_ids = itertools.count(FIRST_WORKER_ID)
        self._dispatcher: Dispatcher | None = None
        self._lock = asyncio.Lock()
        self.snapshots = (
            SnapshotKeeper(settings.resolved_snapshot_dir(instance_name), settings.model_store)
            if settings.enable_snapshots
            else None
        )
        self._background: set[asyncio.Task] = set()
        # Until the startup models are registered the server is not ready, whatever the
        # (still empty) registry says.
        self._loading_startup_models = True
        # Startup entries that could not be registered (name -> why), until a model of that
        # name is registered: they count as models that should serve and do not.
        self._startup_failures: dict[str, str] = {}
        # Called with the registered model names after every successful management change.
        self.on_models_changed: Callable[[list[str]], None] = lambda _names: None
        self.gpu_count = visible_gpu_count(settings.number_of_gpu, cuda_visible_devices())
        try:  # a --device naming a GPU that is not there is a startup error, not a model's
            self._server_placement = resolve_placement(self.gpu_count, settings.device)
        except DevicePlacementError as exc:
            raise ConfigError(f"device: {exc}") from exc

    # ----- lifecycle

    async def start(self) -> None:
        """Create the private runtime directory and bind the worker socket."""
        self.runtime_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.runtime_dir.parent, 0o700)  # ipc sockets live here: owner only
        _remove_stale_runtime_dirs(self.runtime_dir.parent)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        for sub in ("models", "specs"):
            (self.runtime_dir / sub).mkdir(mode=0o700, parents=True)
        self._dispatcher = Dispatcher(f"ipc://{self.runtime_dir / 'workers.sock'}")
        self._dispatcher.start()
        log.info(
            "%d GPUs visible to workers; device: %s",
            self.gpu_count,
            self.settings.device or "auto",
        )

    async def stop(self) -> None:
        """Stop every worker and remove the runtime directory."""
        await asyncio.gather(*(version.pool.close() for version in self.registry.all_versions()))
        if self._dispatcher is not None:
            self._dispatcher.close()
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
        if self._loading_startup_models:
            serving["*"], reasons["*"] = False, "the server is loading its startup models"
        for name in self.registry.names():
            pool = self.registry.get(name).pool
            if pool.target == 0:
                continue
            serving[name] = pool.ready_count() > 0
            failure = pool.last_failure
            reasons[name] = failure.summary() if failure is not None else "loading"
        for name, error in self._startup_failures.items():
            serving.setdefault(name, False)
            reasons.setdefault(name, error)
        return health_of(serving, reasons)

    # ----- management

    async def register(self, options: RegisterOptions) -> Outcome:
        """``POST /models``: resolve, validate and extract the archive, then start workers."""
        if not options.url:
            raise BadRequestException("Parameter url is required.")
        if options.runtime is not None and options.runtime not in RUNTIMES:
            raise BadRequestException(f"Invalid RuntimeType value: {options.runtime}")
        # Outside the lock: a download may take minutes, and other calls must go on meanwhile.
        url, downloaded = await self._local_source(options.url)
        try:
            # Two registrations of one name must not both pass the 409 check.
            async with self._lock:
                model_version, workers = await self._version_from(options, url)
                self.registry.add(model_version)
                self._startup_failures.pop(model_version.name, None)
        except BaseException:
            if downloaded is not None:  # a failed registration keeps no download
                downloaded.unlink(missing_ok=True)
            raise
        label = f'Model "{model_version.name}" Version: {model_version.version}'
        name = model_version.name
        # The asked worker count is part of the registration (and of its snapshot) at once,
        # not only once the workers are up.
        model_version.settings.min_workers = model_version.settings.max_workers = workers
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
            await model_version.scale(workers, workers, wait=True)
        except WorkerLoadException as exc:
            await self._remove(model_version)
            raise WorkerLoadException(
                f"Failed to start workers for model {model_version.name} "
                f"version: {model_version.version}: {exc.message}",
                status=exc.status,  # 400 when the handler names nothing loadable
                type_name=exc.type_name,
            ) from exc
        await self._changed()
        return Outcome(200, f"{label} registered with {workers} initial workers", name)

    async def _local_source(self, url: str) -> tuple[str, Path | None]:
        """The model-store url to register, and the file downloaded for it (if any).

        An http(s) url is downloaded into the store first; the version then records the
        stored file's name (snapshots, modelUrl), so a restart loads it without downloading.
        """
        if not url_policy.is_remote_url(url):
            return url, None
        archive_path = await download_archive(url, self.settings)
        return archive_path.name, archive_path

    async def _version_from(self, options: RegisterOptions, url: str) -> tuple[ModelVersion, int]:
        """Resolve ``url`` in the model store, check and unpack the archive, set up its pool."""
        store = self.settings.model_store
        try:
            archive_path = archive.resolve_archive(url, store, self.settings.allowed_urls)
            # Overrides apply before validation: a manifest without a name or handler is fine
            # when the register call supplies them (as in TorchServe).
            manifest = await asyncio.to_thread(
                archive.read_manifest,
                archive_path,
                model_name=options.model_name,
                handler=options.handler,
            )
        except (
            archive.ArchiveNotFoundError,
            archive.UnsafeUrlError,
            archive.RemoteUrlNotAllowedError,
        ) as exc:  # TorchServe answers 404 for every url it will not resolve
            raise ModelNotFoundException(str(exc)) from exc
        except archive.ArchiveError as exc:
            raise InvalidModelException(str(exc)) from exc
        name = manifest.model_name or archive.default_model_name(archive_path)
        version = manifest.model_version
        handler = manifest.handler
        if not handler:
            raise InvalidModelException(f"No handler is defined for model {name}.")
        self.registry.check_free(name, version)
        model_dir = self.runtime_dir / "models" / f"{name}-{uuid.uuid4().hex}"
        try:
            await asyncio.to_thread(
                archive.extract_archive,
                archive_path,
                model_dir,
                model_name=name,
                handler=handler,
                max_uncompressed_bytes=self.settings.max_archive_size,
            )
        except archive.ArchiveError as exc:
            raise InvalidModelException(str(exc)) from exc
        try:
            config_path = model_dir / manifest.config_file if manifest.config_file else None
            model_config = load_model_config(config_path)
            settings, workers = self._version_settings(options, name, version, model_config)
            placement = self._placement(name, model_config)
            python_path = await self._install_dependencies(
                name, model_dir, manifest, settings.startup_timeout
            )
        except ServingError:
            shutil.rmtree(model_dir, ignore_errors=True)
            raise
        version_metrics = self.metrics.for_version(name, version)
        pool = WorkerPool(
            label=f"{name}:{version}",
            make_spec=lambda worker_id, gpu_id: WorkerSpec(
                worker_id=worker_id,
                endpoint=self._dispatcher.endpoint,
                model_name=name,
                model_version=version,
                model_dir=str(model_dir),
                handler=handler,
                batch_size=settings.batch_size,
                manifest=manifest.to_dict(),
                gpu_id=gpu_id,
                parent_pid=os.getpid(),
                model_yaml_config=model_config.raw,
                model_metrics=self.metrics.declared_model_metrics(),
                python_path=python_path,
            ),
            next_worker_id=lambda: str(next(self._worker_ids)),
            dispatcher=self._dispatcher,
            spec_dir=self.runtime_dir / "specs",
            batch_size=settings.batch_size,
            max_batch_delay_ms=settings.max_batch_delay,
            queue_capacity=settings.job_queue_size,
            timeouts=PoolTimeouts(
                startup=settings.startup_timeout,
                response=settings.response_timeout,
                unregister=self.settings.unregister_model_timeout,
                max_retry=settings.max_retry_timeout,
            ),
            max_response_size=self.settings.max_response_size,
            worker_threads=self.settings.worker_threads,
            metrics=version_metrics,
            placement=placement,
        )
        model_version = ModelVersion(
            name=name,
            version=version,
            url=url,
            archive_path=archive_path,
            model_dir=model_dir,
            manifest=manifest,
            handler=handler,
            runtime=options.runtime or manifest.runtime or "python",
            settings=settings,
            loaded_at_startup=options.loaded_at_startup,
            pool=pool,
            metrics=version_metrics,
            declared_tensors={"inputs": model_config.inputs, "outputs": model_config.outputs},
        )
        return model_version, workers

    def _version_settings(
        self, options: RegisterOptions, name: str, version: str, config: ModelConfig
    ) -> tuple[VersionSettings, int]:
        """Apply TorchServe's precedence (reference §4.5) to every knob."""
        startup = self.settings.models.get(name, {}).get(version, {})
        settings = VersionSettings(
            batch_size=_first(
                options.batch_size, config.batch_size, startup.get("batchSize"), DEFAULT_BATCH_SIZE
            ),
            max_batch_delay=_first(
                options.max_batch_delay,
                config.max_batch_delay,
                startup.get("maxBatchDelay"),
                DEFAULT_MAX_BATCH_DELAY_MS,
            ),
            response_timeout=_first(
                config.response_timeout,
                startup.get("responseTimeout"),
                options.response_timeout,
                self.settings.default_response_timeout,
            ),
            startup_timeout=_first(
                config.startup_timeout,
                startup.get("startupTimeout"),
                options.startup_timeout,
                self.settings.default_startup_timeout,
            ),
            job_queue_size=_first(config.job_queue_size, self.settings.job_queue_size),
            max_retry_timeout=_first(config.max_retry_timeout, DEFAULT_MAX_RETRY_TIMEOUT_S),
            device_ids=config.device_ids,
        )
        workers = options.initial_workers
        if workers is None:
            workers = self._default_worker_count() if options.loaded_at_startup else 0
        worker_range = config.worker_range()
        if worker_range is None and startup.get("minWorkers") is not None:
            worker_range = (startup["minWorkers"], startup.get("maxWorkers", startup["minWorkers"]))
        if worker_range is not None:
            workers = worker_range[0]
        return settings, workers

    def _default_worker_count(self) -> int:
        # TorchServe's rule: one worker per GPU where there are GPUs, else one per CPU core.
        return (
            self.settings.default_workers_per_model
            or len(self._server_placement.gpu_ids)
            or os.cpu_count()
            or 1
        )

    def _placement(self, name: str, config: ModelConfig) -> Placement:
        try:
            return resolve_placement(
                self.gpu_count,
                self.settings.device,
                config.device_type,
                config.device_ids,
                model=f"model {name}",
            )
        except DevicePlacementError as exc:
            raise InvalidModelException(f"Model {name}: {exc}") from exc

    async def _install_dependencies(
        self, name: str, model_dir: Path, manifest: Manifest, timeout_s: float
    ) -> list[str]:
        """The workers' PYTHONPATH entries for the model's own pip packages: their directory
        once installed (with ``install_py_dep_per_model``), else none."""
        if not manifest.requirements_file:
            return []
        if not self.settings.install_py_dep_per_model:
            log.info(
                "model %s: requirementsFile %s not installed (install_py_dep_per_model=false)",
                name,
                manifest.requirements_file,
            )
            return []
        target = await install_requirements(name, model_dir, manifest.requirements_file, timeout_s)
        return [str(target)]

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
        try:
            await model_version.scale(min_workers, max_workers, wait=True)
        except WorkerLoadException as exc:
            raise WorkerLoadException(
                f"Failed to start workers for model {model_version.name} "
                f"version: {model_version.version}: {exc.message}",
                status=exc.status,  # 400 when the handler names nothing loadable
                type_name=exc.type_name,
            ) from exc
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
        try:
            return await self._register_startup_models(entries)
        finally:
            self._loading_startup_models = False

    async def _register_startup_models(self, entries: list[str]) -> list[StartupOutcome]:
        store = self.settings.model_store
        if any(entry.lower() == "all" for entry in entries):
            if store is None:
                error = "--models all needs a model store (--model-store DIR)"
                log.error("%s", error)
                self._startup_failures["all"] = error
                return [StartupOutcome("all", None, error)]
            entries = [path.name for path in archive.list_model_store(store)]
        outcomes = []
        for entry in entries:
            name, _, url = entry.rpartition("=")
            options = RegisterOptions(
                url=url, model_name=name or None, synchronous=False, loaded_at_startup=True
            )
            try:
                outcome = await self.register(options)
            except ConflictStatusException:
                log.info("startup model %s: already registered (restored); kept as restored", entry)
                outcomes.append(StartupOutcome(entry, name or Path(url).stem))
            except ServingError as exc:
                log.error("startup model %s not loaded: %s", entry, exc.message)
                label = name or Path(url).stem
                self._startup_failures[label] = exc.message
                outcomes.append(StartupOutcome(entry, None, exc.message))
            else:
                outcomes.append(StartupOutcome(entry, outcome.model_name))
        return outcomes


def _remove_stale_runtime_dirs(parent: Path) -> None:
    """Delete what servers killed with SIGKILL left behind (sockets, extracted models)."""
    for entry in parent.iterdir():
        if entry.is_dir() and entry.name.isdigit() and not psutil.pid_exists(int(entry.name)):
            log.info("removing the runtime directory of dead server process %s", entry.name)
            shutil.rmtree(entry, ignore_errors=True)


def _first(*values: int | None) -> int:
    """The first value that is set (the last one is the default and always set)."""
    return next(value for value in values if value is not None)
