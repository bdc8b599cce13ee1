"""Registration: from a register call to a registered model version whose pool can scale.

archive (download, resolve, manifest, extraction) → settings (TorchServe's precedence,
``settings.resolve_settings``) → placement → the model's own pip packages → its worker pool.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelserve import archive
from modelserve.archive import Manifest, url_policy
from modelserve.config import ConfigError, Settings, cuda_visible_devices
from modelserve.engine.cpu_budget import usable_cpus
from modelserve.engine.devices import (
    DevicePlacementError,
    Placement,
    resolve_placement,
    visible_gpu_count,
)
from modelserve.engine.dispatcher import Dispatcher
from modelserve.engine.errors import (
    BadRequestException,
    InvalidModelException,
    ModelNotFoundException,
    ServingError,
)
from modelserve.engine.model_config import ModelConfig, load_model_config
from modelserve.engine.model_dependencies import install_requirements
from modelserve.engine.model_version import ModelVersion
from modelserve.engine.pool_config import PoolLimits, PoolTimeouts, WorkerLaunch
from modelserve.engine.registry import ModelRegistry
from modelserve.engine.sequences import SequencePolicy, sequence_policy
from modelserve.engine.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_BATCH_DELAY_MS,
    DEFAULT_MAX_RETRY_TIMEOUT_S,
    SettingsSources,
    VersionSettings,
    resolve_settings,
)
from modelserve.engine.spare_worker import SpareWorker
from modelserve.engine.streams import StreamLimits
from modelserve.engine.worker_pool import WorkerPool
from modelserve.telemetry.frontend_metrics import ServerMetrics
from modelserve.wire import WorkerSpec

log = logging.getLogger("modelserve.engine")

RUNTIMES = ("python", "python3", "LSP")
FIRST_WORKER_ID = 9000


@dataclass(slots=True)
class RegisterOptions:
    """A register call: ``POST /models``, gRPC RegisterModel, a startup entry or a snapshot
    being restored. None = not given."""

    url: str
    model_name: str | None = None
    handler: str | None = None
    runtime: str | None = None
    initial_workers: int | None = None
    synchronous: bool = True
    loaded_at_startup: bool = False
    # The knobs the call gives (batch_size, timeouts …); min/max workers are not read.
    settings: VersionSettings = field(default_factory=VersionSettings)
    # Whether snapshots keep the version: a workflow's node models are not kept, as in
    # TorchServe (the workflow registers them again; restored alone they would serve
    # without it).
    in_snapshots: bool = True
    # An archive or directory the server prepared itself (a workflow's function nodes,
    # from its unpacked .war): registered from there, not looked up in the model store by
    # ``url``, which describe still shows.
    source: Path | None = None

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> RegisterOptions:
        """The call of a REST or gRPC register request, from its parameters as validated
        (``modelserve.parameters.REGISTER.parse``), by their TorchServe names."""
        return cls(
            url=values["url"] or "",
            model_name=values["model_name"],
            handler=values["handler"],
            runtime=values["runtime"],
            initial_workers=values["initial_workers"],
            synchronous=values["synchronous"],
            settings=VersionSettings(
                batch_size=values["batch_size"],
                max_batch_delay=values["max_batch_delay"],
                response_timeout=values["response_timeout"],
                startup_timeout=values["startup_timeout"],
            ),
        )


class Registration:
    """Turns register calls into model versions in ``registry``, one at a time."""

    def __init__(
        self,
        settings: Settings,
        metrics: ServerMetrics,
        runtime_dir: Path,
        registry: ModelRegistry,
        spare: SpareWorker | None = None,
    ) -> None:
        self._settings = settings
        self._spare = spare
        self._metrics = metrics
        self._runtime_dir = runtime_dir
        self._registry = registry
        self._worker_ids = itertools.count(FIRST_WORKER_ID)
        # How workers reach the inference plane (set once it is bound; see Engine).
        self.server_url = ""
        self.server_token = ""
        # Two registrations of one name must not both pass the 409 check.
        self._lock = asyncio.Lock()
        self.gpu_count = visible_gpu_count(settings.number_of_gpu, cuda_visible_devices())
        try:  # a --device naming a GPU that is not there is a startup error, not a model's
            self._server_placement = resolve_placement(self.gpu_count, settings.device)
        except DevicePlacementError as exc:
            raise ConfigError(f"device: {exc}") from exc

    async def add(self, options: RegisterOptions, dispatcher: Dispatcher) -> ModelVersion:
        """Register the version ``options`` describe, with no worker yet; its settings'
        min/max workers say how many to start."""
        if not options.url:
            raise BadRequestException("Parameter url is required.")
        if options.runtime is not None and options.runtime not in RUNTIMES:
            raise BadRequestException(f"Invalid RuntimeType value: {options.runtime}")
        # Outside the lock: a download may take minutes, and other calls must go on meanwhile.
        url, downloaded = await self._local_source(options.url)
        try:
            async with self._lock:
                model_version = await self._version_from(options, url, dispatcher)
                self._registry.add(model_version)
        except BaseException:
            if downloaded is not None:  # a failed registration keeps no download
                downloaded.unlink(missing_ok=True)
            raise
        return model_version

    async def _local_source(self, url: str) -> tuple[str, Path | None]:
        """The model-store url to register, and the file downloaded for it (if any).

        An http(s) url is downloaded into the store first; the version then records the
        stored file's name (snapshots, modelUrl), so a restart loads it without downloading.
        """
        if not url_policy.is_remote_url(url):
            return url, None
        # Imported here: the download's http client (httpx) costs a tenth of a second of
        # start-up, and most servers never register a remote url.
        from modelserve.engine.archive_download import download_archive

        archive_path = await download_archive(url, self._settings)
        return archive_path.name, archive_path

    async def _version_from(
        self, options: RegisterOptions, url: str, dispatcher: Dispatcher
    ) -> ModelVersion:
        """Resolve ``url`` in the model store, check and unpack the archive, set up its pool."""
        try:
            archive_path = options.source or archive.resolve_archive(
                url, self._settings.model_store, self._settings.allowed_urls
            )
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
        self._registry.check_free(name, version)
        model_dir = self._runtime_dir / "models" / f"{name}-{uuid.uuid4().hex}"
        try:
            await asyncio.to_thread(
                archive.extract_archive,
                archive_path,
                model_dir,
                model_name=name,
                handler=handler,
                max_uncompressed_bytes=self._settings.max_archive_size,
            )
        except archive.ArchiveError as exc:
            raise InvalidModelException(str(exc)) from exc
        try:
            config_path = model_dir / manifest.config_file if manifest.config_file else None
            model_config = load_model_config(config_path)
            settings = self._version_settings(options, name, version, model_config)
            sequences = sequence_policy(name, model_config, settings)
            placement = self._placement(name, model_config)
            python_path = await self._install_dependencies(
                name, model_dir, manifest, settings.startup_timeout
            )
        except ServingError:
            shutil.rmtree(model_dir, ignore_errors=True)
            raise
        version_metrics = self._metrics.for_version(name, version)
        pool = WorkerPool(
            f"{name}:{version}",
            WorkerLaunch(
                make_spec=lambda worker_id, gpu_id: WorkerSpec(
                    worker_id=worker_id,
                    endpoint=dispatcher.endpoint,
                    model_name=name,
                    model_version=version,
                    model_dir=str(model_dir),
                    handler=handler,
                    batch_size=settings.batch_size,
                    manifest=manifest.to_dict(),
                    gpu_id=gpu_id,
                    parent_pid=os.getpid(),
                    model_yaml_config=model_config.raw,
                    model_metrics=self._metrics.declared_model_metrics(),
                    python_path=python_path,
                    server_url=self.server_url,
                    server_token=self.server_token,
                    stream_window=self._settings.stream_window,
                    reuse_large_buffers=self._settings.reuse_large_buffers,
                ),
                next_worker_id=lambda: str(next(self._worker_ids)),
                spec_dir=self._runtime_dir / "specs",
                placement=placement,
                threads=self._settings.worker_threads,
                spare=self._spare,
            ),
            self._limits(settings, sequences),
            dispatcher,
            version_metrics,
        )
        return ModelVersion(
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
            in_snapshots=options.in_snapshots,
            pool=pool,
            metrics=version_metrics,
            declared_tensors={"inputs": model_config.inputs, "outputs": model_config.outputs},
            version_labels=model_config.version_labels,
            triton_config=model_config.triton_config,
        )

    def _version_settings(
        self, options: RegisterOptions, name: str, version: str, config: ModelConfig
    ) -> VersionSettings:
        """The call's, the YAML's, the ``models`` property's and the server's knobs, resolved."""
        server = self._settings
        sources = SettingsSources(
            api=options.settings,
            yaml=config.settings,
            startup=VersionSettings.from_torchserve(server.models.get(name, {}).get(version, {})),
            default=VersionSettings(
                batch_size=DEFAULT_BATCH_SIZE,
                max_batch_delay=DEFAULT_MAX_BATCH_DELAY_MS,
                response_timeout=server.default_response_timeout,
                startup_timeout=server.default_startup_timeout,
                job_queue_size=server.job_queue_size,
                max_retry_timeout=DEFAULT_MAX_RETRY_TIMEOUT_S,
            ),
        )
        workers = options.initial_workers
        if workers is None:
            workers = self._default_worker_count() if options.loaded_at_startup else 0
        return resolve_settings(sources, workers)

    def _limits(self, settings: VersionSettings, sequences: SequencePolicy | None) -> PoolLimits:
        return PoolLimits(
            batch_size=settings.batch_size,
            max_batch_delay_ms=settings.max_batch_delay,
            queue_capacity=settings.job_queue_size,
            max_response_size=self._settings.max_response_size,
            timeouts=PoolTimeouts(
                startup=settings.startup_timeout,
                response=settings.response_timeout,
                unregister=self._settings.unregister_model_timeout,
                max_retry=settings.max_retry_timeout,
            ),
            stream=StreamLimits(
                window=self._settings.stream_window,
                chunk_timeout_s=self._settings.stream_chunk_timeout,
                stream_timeout_s=self._settings.stream_timeout,
                max_response_size=self._settings.max_response_size,
            ),
            sequences=sequences,
        )

    def _default_worker_count(self) -> int:
        # TorchServe's rule: one worker per GPU where there are GPUs, else one per CPU core
        # (the cores the container's CPU quota allows, not the host's).
        return (
            self._settings.default_workers_per_model
            or len(self._server_placement.gpu_ids)
            or usable_cpus()
        )

    def _placement(self, name: str, config: ModelConfig) -> Placement:
        try:
            return resolve_placement(
                self.gpu_count,
                self._settings.device,
                config.device_type,
                config.settings.device_ids,
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
        if not self._settings.install_py_dep_per_model:
            log.info(
                "model %s: requirementsFile %s not installed (install_py_dep_per_model=false)",
                name,
                manifest.requirements_file,
            )
            return []
        target = await install_requirements(name, model_dir, manifest.requirements_file, timeout_s)
        return [str(target)]
