"""Keeps what the server serves in step with its Triton model repositories, as Triton's model
control modes do: ``none`` loads every model at start; ``poll`` does too, then rescans every
``repository_poll_secs``; ``explicit`` loads ``load_model`` at start and the rest through the
repository API (load / unload). TF Serving's models are polled always: their base paths
every ``file_system_poll_wait_seconds``, its config file every
``model_config_file_poll_wait_seconds`` (0: once, at start).

A load compares each version's fingerprint (its config and its model file's size and mtime)
with what serves:

* a new version is registered, becomes the default if it is the newest, and versions the
  policy no longer serves are unregistered after it, so the model never stops serving;
* a changed config or model file reloads the model: the new archives are packed and checked
  first, then the old versions go and the new ones come; if the new ones fail to load, the
  old archives are registered again, so a broken change leaves the model serving as it was;
* a model gone from the repositories (poll) is unloaded.

An ensemble has no archive: it is registered as a pipeline of the data plane, after the
models it runs (the step models load first, at start and on every rescan).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import math
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from google.protobuf.message import DecodeError

from modelserve.config import ConfigError, Settings
from modelserve.engine.dataplane import DataPlane
from modelserve.engine.errors import BadRequestException, ModelNotFoundException, ServingError
from modelserve.engine.registration import RegisterOptions
from modelserve.engine.startup_models import StartupModels
from modelserve.repository.catalogs import (
    Catalog,
    ModelNotInCatalog,
    TfServingCatalog,
    catalog_for,
)
from modelserve.repository.ensembles import ensemble_pipeline
from modelserve.repository.packing import config_json, instance_count, pack_model
from modelserve.repository.proto.model_server_config_pb2 import ModelServerConfig
from modelserve.repository.triton import ENSEMBLE, RepositoryError, TritonModel, read_model
from modelserve.repository.uploads import write_model_directory

log = logging.getLogger("modelserve.repository")
# The key of TF Serving's config file among the failures told (model names are the others).
CONFIG_FILE = "model_config_file"


def model_catalog(settings: Settings) -> Catalog | None:
    """The source of models the settings name, if any (ConfigError for two at once)."""
    try:
        return catalog_for(settings)
    except RepositoryError as exc:
        raise ConfigError(str(exc)) from exc


@contextlib.contextmanager
def repository_settings(settings: Settings) -> Iterator[Settings]:
    """``settings`` as a server of model repositories runs: its model store a private
    temporary directory the versions are packed into (removed at the end), no snapshots
    (the repositories say what to serve). Unchanged without ``model_repository``."""
    if model_catalog(settings) is None:
        yield settings
        return
    store = Path(tempfile.mkdtemp(prefix="modelserve-repository-"))
    try:
        yield settings.model_copy(update={"model_store": store, "enable_snapshots": False})
    finally:
        shutil.rmtree(store, ignore_errors=True)


@dataclass(frozen=True)
class Served:
    """One served version: what it was packed from, and its archive in the store."""

    fingerprint: str
    archive: Path
    workers: int


class ModelControl:
    """Serves the repositories' models through the data plane (the server's ModelRepository)."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        plane: DataPlane,
        startup: StartupModels,
        store: Path,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        # How often polling rescans the models (0: never), and reads TF Serving's config file
        # again (0: never). TF Serving follows its base paths always; Triton as its control
        # mode says.
        self._config_file: TfServingCatalog | None = None
        self._reread_s = 0.0
        if isinstance(catalog, TfServingCatalog):
            self._mode = "poll"
            self._rescan_s = settings.file_system_poll_wait_seconds
            if settings.model_config_file is not None:
                self._config_file = catalog
                self._reread_s = settings.model_config_file_poll_wait_seconds
        else:
            self._mode = settings.model_control_mode
            self._rescan_s = settings.repository_poll_secs if self._mode == "poll" else 0.0
        self._plane = plane
        self._startup = startup
        self._store = store
        self._served: dict[str, dict[str, Served]] = {}
        # The ensembles served as pipelines: name → fingerprint of their config.
        self._ensembles: dict[str, str] = {}
        self._tags = itertools.count(1)
        self._lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        # The last failure told per model, so that polling says a failure once.
        self._told: dict[str, str] = {}

    # ----- lifecycle

    async def start(self) -> None:
        """Load the models the mode loads at start; a model that fails is recorded as a
        startup failure (the server is then not ready, as Triton's strict readiness).
        ConfigError for a repository that is not a directory."""
        try:
            self._catalog.check()
        except RepositoryError as exc:
            raise ConfigError(str(exc)) from exc
        for name in self._names_at_start():
            try:
                await self._load_locked(name, None)
            except ServingError as exc:
                log.error("model %s not served: %s", name, exc.message)
                self._startup.failures[name] = exc.message
        if self._rescan_s or self._reread_s:
            self._poller = asyncio.create_task(self._poll(), name="repository-poll")

    async def close(self) -> None:
        """Stop polling."""
        if self._poller is not None:
            self._poller.cancel()

    # ----- the repository API (explicit mode)

    async def load(self, name: str, config: str | None, files: dict[str, bytes]) -> None:
        """Load (or reload) ``name`` on request; only in explicit mode, as in Triton. With
        ``files`` (``<version>/<path>`` → contents) the model is read from them and ``config``
        instead of the repository, which must still hold the model."""
        self._require_explicit("load")
        if not files:
            await self._load_locked(name, config)
            return
        if config is None:
            raise BadRequestException(
                f"model {name}: file: contents need the config parameter too, as in Triton"
            )
        if name not in self._repository_names():
            raise ModelNotFoundException(f"no model {name} in the model repositories")
        with tempfile.TemporaryDirectory(prefix="modelserve-upload-") as staging:
            directory = Path(staging) / name
            try:
                write_model_directory(directory, files)
                model = read_model(directory, self._settings.strict_model_config, None, config)
            except RepositoryError as exc:
                raise BadRequestException(str(exc)) from exc
            async with self._lock:
                await self._serve(name, model)

    async def unload(self, name: str) -> None:
        """Unload every version of ``name`` on request (explicit mode)."""
        self._require_explicit("unload")
        if not self._plane.registered_versions(name) and name not in self._ensembles:
            raise ModelNotFoundException(f"Model not found: {name}")
        async with self._lock:
            await self._forget(name)

    async def reload_config(self, serialized: bytes) -> None:
        """TF Serving's HandleReloadConfigRequest: serve what the serialized ModelServerConfig
        lists, unload what it does not; returns once every listed model serves (400 naming
        the models that do not)."""
        catalog = self._catalog
        if not isinstance(catalog, TfServingCatalog):
            raise BadRequestException(
                "this server serves no TF Serving models (start it with --model_config_file or "
                "--model_name and --model_base_path)"
            )
        try:
            catalog.replace(ModelServerConfig.FromString(serialized))
        except DecodeError as exc:
            raise BadRequestException(f"the config is not a ModelServerConfig: {exc}") from exc
        except RepositoryError as exc:
            raise BadRequestException(str(exc)) from exc
        failures = await self._sync()
        if failures:
            reasons = "; ".join(f"{name}: {why}" for name, why in sorted(failures.items()))
            raise BadRequestException(f"the new config does not fully load: {reasons}")

    # ----- internals

    def _require_explicit(self, what: str) -> None:
        mode = self._mode
        if mode != "explicit":
            raise BadRequestException(
                f"cannot {what} models: the model control mode is {mode} (start with "
                "--model-control-mode explicit)"
            )

    def _names_at_start(self) -> list[str]:
        available = self._repository_names()
        if self._mode != "explicit":
            return available
        wanted = self._settings.load_model
        return available if "*" in wanted else list(dict.fromkeys(wanted))

    def _repository_names(self) -> list[str]:
        """The catalog's models, ensembles last: they are checked against their steps."""
        try:
            names = self._catalog.names()
        except RepositoryError as exc:
            raise BadRequestException(str(exc)) from exc
        return sorted(names, key=self._is_ensemble)

    def _is_ensemble(self, name: str) -> bool:
        try:
            return self._catalog.read(name, None).backend == ENSEMBLE
        except RepositoryError:  # its load says why
            return False

    async def _load_locked(self, name: str, config: str | None) -> None:
        async with self._lock:
            await self._load(name, config)

    async def _load(self, name: str, config: str | None) -> None:
        try:
            model = self._catalog.read(name, config)
        except ModelNotInCatalog as exc:
            raise ModelNotFoundException(str(exc)) from exc
        except RepositoryError as exc:
            raise BadRequestException(str(exc)) from exc
        await self._serve(name, model)

    async def _serve(self, name: str, model: TritonModel) -> None:
        """Serve ``model``'s versions as ``name``: new ones added, changed ones reloaded."""
        if model.backend == ENSEMBLE:
            await self._serve_ensemble(name, model)
            return
        wanted = {v.version: _fingerprint(model, v.model_path) for v in model.versions}
        current = self._served.get(name, {})
        if {v: s.fingerprint for v, s in current.items()} == wanted:
            return
        # Only new and changed versions are packed: an unchanged one keeps its archive.
        unchanged = {v for v in wanted if v in current and current[v].fingerprint == wanted[v]}
        to_pack = [v for v in model.versions if v.version not in unchanged]
        try:
            archives = pack_model(
                replace(model, versions=to_pack), self._store, str(next(self._tags))
            )
        except RepositoryError as exc:
            raise BadRequestException(str(exc)) from exc
        workers = instance_count(model.config)
        fresh = {
            v: current[v] if v in unchanged else Served(wanted[v], archives[v], workers)
            for v in wanted
        }
        changed = [v for v in wanted if v in current and v not in unchanged]
        if changed:
            await self._reload(name, current, fresh)
        else:
            await self._add_and_retire(name, current, fresh)
        self._served[name] = fresh
        self._remove_unused_archives()
        self._startup.registered(name)
        log.info("model %s serves versions %s", name, ", ".join(sorted(fresh, key=int)))

    async def _serve_ensemble(self, name: str, model: TritonModel) -> None:
        """Register the ensemble as a pipeline (again when its config changed); a bad one is
        a 400 naming the problem, and leaves what served before serving."""
        fingerprint = _fingerprint(model, model.versions[-1].model_path)
        if self._ensembles.get(name) == fingerprint:
            return
        if self._plane.registered_versions(name):
            await self._unregister_all(name)  # a model became an ensemble
            self._served.pop(name, None)
        try:
            pipeline = ensemble_pipeline(model, self._settings.default_response_timeout)
        except RepositoryError as exc:
            raise BadRequestException(str(exc)) from exc
        self._plane.register_pipeline(pipeline)
        self._ensembles[name] = fingerprint
        self._startup.registered(name)
        log.info("ensemble %s serves version %s", name, pipeline.version)

    async def _forget(self, name: str) -> None:
        """Stop serving ``name``: its versions, or its pipeline."""
        await self._unregister_all(name)
        self._served.pop(name, None)
        if self._ensembles.pop(name, None) is not None:
            self._plane.unregister_pipeline(name)

    async def _add_and_retire(
        self, name: str, current: dict[str, Served], fresh: dict[str, Served]
    ) -> None:
        """New versions first (newest first: it becomes the default), then the ones the
        policy no longer serves: the model keeps serving throughout."""
        await self._register_all(name, {v: fresh[v] for v in set(fresh) - set(current)})
        await self._plane.set_default(name, max(fresh, key=int))
        for version in set(current) - set(fresh):
            await self._plane.unregister(name, version)

    async def _reload(
        self, name: str, current: dict[str, Served], fresh: dict[str, Served]
    ) -> None:
        """Replace every version; put the previous ones back if the new ones do not load."""
        await self._unregister_all(name)
        try:
            await self._register_all(name, fresh)
        except ServingError:
            await self._unregister_all(name)
            await self._register_all(name, current)
            log.error("model %s: the change did not load; the previous versions serve", name)
            raise

    async def _register_all(self, name: str, versions: dict[str, Served]) -> None:
        """Register ``versions`` newest first (the first registered is the default)."""
        for version in sorted(versions, key=int, reverse=True):
            served = versions[version]
            options = RegisterOptions(
                url=served.archive.name,
                model_name=name,
                initial_workers=served.workers,
                synchronous=True,
            )
            await self._plane.register(options)

    async def _unregister_all(self, name: str) -> None:
        versions = self._plane.registered_versions(name)
        if not versions:
            return
        default = self._plane.version_status(name).version
        for version in [v for v in versions if v != default] + [default]:
            await self._plane.unregister(name, version)

    def _tell(self, name: str, message: str) -> None:
        """Log a polling failure once, until it changes or goes away."""
        if self._told.get(name) != message:
            log.error("model repository: %s", message)
            self._told[name] = message

    def _remove_unused_archives(self) -> None:
        # Registered versions run from their extracted copies; an archive is kept only to put
        # a version back after a failed reload.
        kept = {
            served.archive for versions in self._served.values() for served in versions.values()
        }
        for archive in self._store.glob("*.mar"):
            if archive not in kept:
                archive.unlink()

    async def _poll(self) -> None:
        """Rescan every ``_rescan_s``; read the config file again every ``_reread_s``, and
        rescan then too (a model the file adds is read at once)."""
        clock = asyncio.get_running_loop().time
        rescan_at = clock() + self._rescan_s if self._rescan_s else math.inf
        reread_at = clock() + self._reread_s if self._reread_s else math.inf
        while True:
            now = clock()
            if now < min(rescan_at, reread_at):
                await asyncio.sleep(min(rescan_at, reread_at) - now)
                continue
            if now >= reread_at:
                reread_at = now + self._reread_s
                self._reread_config()
            if now >= rescan_at:
                rescan_at = now + self._rescan_s
            await self._sync()

    def _reread_config(self) -> None:
        """Read TF Serving's config file again; one that cannot be read or parsed is told
        once, and the last one read stands."""
        if self._config_file is None:
            return
        try:
            self._config_file.reread()
        except RepositoryError as exc:
            self._tell(CONFIG_FILE, str(exc))
            return
        self._told.pop(CONFIG_FILE, None)

    async def _sync(self) -> dict[str, str]:
        """Serve what the catalog holds now; returns why each model that failed did."""
        try:
            present = set(self._repository_names())
        except ServingError as exc:  # a repository went away: keep serving what serves
            self._tell("*", exc.message)
            return {"*": exc.message}
        self._told.pop("*", None)
        failures = {}
        for name in sorted(present):
            try:
                await self._load_locked(name, None)
                self._told.pop(name, None)
            except ServingError as exc:
                self._tell(name, exc.message)
                failures[name] = exc.message
        for name in sorted((set(self._served) | set(self._ensembles)) - present):
            async with self._lock:
                await self._forget(name)
            log.info("model %s left the repository: unloaded", name)
        return failures


def _fingerprint(model: TritonModel, path: Path) -> str:
    """What a version serves: its config and version labels, and its model file's (or
    directory's) sizes and modification times."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    text = json.dumps([config_json(model.config), model.version_labels, stats], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
