"""The data plane: what every protocol asks of the server, with typed answers.

The REST routes and gRPC servicers are adapters over this one object: they parse their
protocol's request, call a method here and render its answer. None of them reads the
registry, a worker pool or a worker; the answers they render (``Health``, ``VersionStatus``,
``ModelMetadata`` …) are written once, here and in the engine objects it asks.

Errors are the engine's ``ServingError`` subclasses (a 404 for an unknown model or version,
…); each adapter renders them in its protocol's shape.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

from modelserve import __version__
from modelserve.engine.concurrency import InferenceLimit
from modelserve.engine.engine import Engine
from modelserve.engine.errors import (
    BadRequestException,
    ConflictStatusException,
    InternalServerException,
    ModelVersionNotFoundException,
    ServiceNotFoundException,
    ServingError,
)
from modelserve.engine.health import Health, health_of
from modelserve.engine.jobs import InferenceJob
from modelserve.engine.model_version import ModelVersion
from modelserve.engine.outcomes import Outcome
from modelserve.engine.paddle_pipelines import PLATFORM as PADDLE_PLATFORM
from modelserve.engine.paddle_pipelines import (
    PaddleFailure,
    PaddleRequest,
    PaddleResponse,
    PaddleService,
    describe_service,
    run_paddle,
)
from modelserve.engine.pipeline_accounts import PipelineAccount
from modelserve.engine.pipeline_description import dag_description
from modelserve.engine.pipeline_runner import run_pipeline
from modelserve.engine.pipelines import Pipeline, check
from modelserve.engine.registration import RegisterOptions
from modelserve.engine.results import (
    ModelMetadata,
    ModelStatistics,
    RepositoryEntry,
    ServerMetadata,
    ServingState,
    VersionStatus,
)
from modelserve.engine.statistics import VersionStatistics
from modelserve.engine.streams import AnswerParts, ResponseStream, StreamSummary
from modelserve.engine.workflow_runner import run_workflow
from modelserve.engine.workflows import Workflows
from modelserve.protocol_contract import PaddleErrors
from modelserve.telemetry.dashboard_readings import VersionReadout
from modelserve.telemetry.frontend_metrics import VersionState
from modelserve.wire import WireRequest, WireResponse

# What REST and gRPC both answer (binary_tensor_data: gRPC's raw contents are its counterpart).
SERVER = ServerMetadata(
    "modelserve",
    __version__,
    ("binary_tensor_data", "model_repository", "model_configuration", "statistics"),
)
# The v2 platform of a model whose worker names none (every handler but the tensor handler).
DEFAULT_PLATFORM = "modelserve"
# The handler-input header that tells a handler to explain instead of predict; the frontend
# sends it as "True" or "False" on every TorchServe-style request.
EXPLAIN_HEADER = "explain"
LIST_LIMIT_MAX = 100


# Triton's repository load parameters that carry a model file: "file:<version>/<path>".
FILE_PARAMETER_PREFIX = "file:"


class ModelRepository(Protocol):
    """Loads and unloads models of a model repository (Triton's repository API)."""

    async def load(self, name: str, config: str | None, files: dict[str, bytes]) -> None:
        """Serve ``name`` as the repository holds it (``config``: JSON over its config;
        ``files``: ``<version>/<path>`` → contents instead of the repository's files)."""

    async def reload_config(self, serialized: bytes) -> None:
        """Serve what a serialized TF Serving ModelServerConfig lists (and only that)."""

    async def unload(self, name: str) -> None:
        """Stop serving every version of ``name``."""


class DataPlane:
    """The protocol-neutral API of one server's engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._registry = engine.registry
        # Set when the server serves model repositories (--model-repository).
        self.repository: ModelRepository | None = None
        # Pipelines (Triton ensembles) by name: no worker of their own, answered here.
        self._pipelines: dict[str, Pipeline] = {}
        # What each pipeline has answered (metrics, Triton statistics), by name.
        self._pipeline_accounts: dict[str, PipelineAccount] = {}
        self._workflows = Workflows(engine)
        # Paddle Serving pipeline services by name (their ops are models of the registry),
        # and what each has answered.
        self._paddle_services: dict[str, PaddleService] = {}
        self._paddle_accounts: dict[str, PipelineAccount] = {}
        settings = engine.settings
        self._limit = InferenceLimit.of(settings.max_concurrency, settings.max_connections)

    # ----- the server

    def server_metadata(self) -> ServerMetadata:
        """Name, version and protocol extensions."""
        return SERVER

    def live(self) -> bool:
        """The server answers (it does whenever this runs)."""
        return True

    def health(self) -> Health:
        """Can the default version of each model that should serve (it has workers, or it is
        a startup model) take requests? Never ready before the startup models are registered."""
        serving: dict[str, bool] = {}
        reasons: dict[str, str] = {}
        startup = self._engine.startup
        if startup.loading:
            serving["*"], reasons["*"] = False, "the server is loading its startup models"
        registry = self._registry
        for name in registry.names():
            version = registry.get(name)
            state = version.serving_state()
            if state is ServingState.END:
                continue
            ready = serving[name] = state is ServingState.AVAILABLE
            if not ready:
                reasons[name] = version.status().error or "loading"
        for name, error in startup.failures.items():
            serving.setdefault(name, False)
            reasons.setdefault(name, error)
        return health_of(serving, reasons)

    def waiting_for_slot(self) -> int:
        """Inference requests waiting for one of the ``max_concurrency`` slots."""
        return 0 if self._limit is None else self._limit.waiting

    def version_states(self) -> list[VersionState]:
        """Queue depth and worker states of every version, for the scrape-time gauges."""
        return [version.state() for version in self._registry.all_versions()]

    def version_readouts(self) -> list[VersionReadout]:
        """Every version's counters, gauges, latencies since the last call and model-table
        row, by name then version: what the dashboard samples once a second."""
        registry = self._registry
        versions = sorted(registry.all_versions(), key=lambda v: (v.name, v.version))
        return [version.readout(registry.get(version.name) is version) for version in versions]

    # ----- models

    def check_model(self, name: str, version: str | None) -> None:
        """404 unless the version (the default one when ``version`` is None) is registered:
        for routes that answer it before reading a request body."""
        if self._pipeline(name, version) is None:
            self._registry.get(name, version)

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """Whether the version can take inference requests now (a pipeline: every step
        model can); 404 when unknown."""
        return self.version_status(name, version).ready

    def version_status(self, name: str, version: str | None = None) -> VersionStatus:
        """The serving state of one version (the default one when ``version`` is None); a
        pipeline's is its step models' (available when every one is)."""
        pipeline = self._pipeline(name, version)
        if pipeline is None:
            return self._registry.get(name, version).status()
        for step in pipeline.steps:
            try:
                ready = self.model_ready(step.model, step.version)
            except ServingError:  # the step model went away since the pipeline was registered
                ready = False
            if not ready:
                why = f"step {step.name}: model {step.model} is not ready"
                return VersionStatus(pipeline.version, ServingState.LOADING, why)
        return VersionStatus(pipeline.version, ServingState.AVAILABLE)

    def version_statuses(self, name: str) -> list[VersionStatus]:
        """The serving state of every version of ``name``, by version."""
        versions = self._registry.entry(name).versions
        return [versions[key].status() for key in sorted(versions)]

    def model_metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        """The version's v2 metadata: its tensors, the platform its worker reported (else
        ``DEFAULT_PLATFORM``) and every registered version of the model. A pipeline's come
        from its definition."""
        pipeline = self._pipeline(name, version)
        if pipeline is not None:
            return ModelMetadata(
                name,
                pipeline.version,
                [pipeline.version],
                pipeline.platform,
                pipeline.inputs,
                pipeline.outputs,
            )
        model_version = self._registry.get(name, version)
        tensors = model_version.tensor_metadata()
        return ModelMetadata(
            name=name,
            version=model_version.version,
            versions=sorted(self._registry.entry(name).versions),
            platform=model_version.platform() or DEFAULT_PLATFORM,
            inputs=tensors["inputs"],
            outputs=tensors["outputs"],
        )

    def model_config(self, name: str, version: str | None = None) -> dict[str, Any]:
        """The version's Triton model configuration (JSON, proto field names): its
        config.pbtxt when it comes from a Triton repository, else what its metadata says."""
        pipeline = self._pipeline(name, version)
        if pipeline is not None:
            return pipeline.config
        model_version = self._registry.get(name, version)
        if model_version.triton_config is not None:
            return model_version.triton_config
        metadata = self.model_metadata(name, version)
        return {
            "name": name,
            "platform": metadata.platform,
            "max_batch_size": 0,  # the shapes below carry the batch dimension, if any
            "input": [_config_tensor(tensor) for tensor in metadata.inputs],
            "output": [_config_tensor(tensor) for tensor in metadata.outputs],
        }

    def decoupled(self, name: str, version: str | None = None) -> bool:
        """Whether the version is a Triton decoupled model (``model_transaction_policy {
        decoupled: true }``): its answers come in any number of responses."""
        if self._pipeline(name, version) is not None:
            return False
        config = self._registry.get(name, version).triton_config or {}
        return bool((config.get("model_transaction_policy") or {}).get("decoupled"))

    def refuse_decoupled(self, name: str, version: str | None, endpoint: str) -> None:
        """501, as Triton answers, when ``endpoint`` (one answer per request) is asked of a
        decoupled model: those are served by streaming (ModelStreamInfer, generate_stream)."""
        if self.decoupled(name, version):
            raise ServingError(
                f"{endpoint} doesn't support models with decoupled transaction policy",
                status=501,
            )

    def repository_index(self, ready_only: bool = False) -> list[RepositoryEntry]:
        """Every registered version (and pipeline), by name then version, with Triton's
        state."""
        entries = []
        for name in self._pipelines:
            status = self.version_status(name)
            if status.ready:
                entries.append(RepositoryEntry(name, status.version, "READY"))
            elif not ready_only:
                entries.append(
                    RepositoryEntry(name, status.version, "UNAVAILABLE", status.error or "")
                )
        for name in self._registry.names():
            versions = self._registry.entry(name).versions
            for key in sorted(versions):
                status = versions[key].status()
                if status.ready:
                    entries.append(RepositoryEntry(name, key, "READY"))
                elif not ready_only:
                    state = "LOADING" if status.state is ServingState.LOADING else "UNAVAILABLE"
                    reason = status.error or ("loading" if state == "LOADING" else "no worker")
                    entries.append(RepositoryEntry(name, key, state, reason))
        return sorted(entries, key=lambda entry: (entry.name, entry.version))

    def statistics(
        self, name: str | None = None, version: str | None = None
    ) -> list[ModelStatistics]:
        """Triton's statistics: of one version, of every version of ``name``, or of every
        version of every model (by name, then version); 404 for an unknown model or version.
        A pipeline counts its own requests, as Triton's ensembles do."""
        if name is not None and self._pipeline(name, version) is not None:
            return [self._pipeline_statistics(name)]
        if name is not None and version is not None:
            chosen = [self._registry.get(name, version)]
        elif name is not None:
            versions = self._registry.entry(name).versions
            chosen = [versions[key] for key in sorted(versions)]
        else:
            chosen = self._registry.all_versions()
        entries = [
            ModelStatistics(each.name, each.version, each.statistics, each.state().queued)
            for each in chosen
        ]
        if name is None:
            entries += [self._pipeline_statistics(pipeline) for pipeline in self._pipelines]
            entries.sort(key=lambda entry: (entry.name, entry.version))
        return entries

    def _pipeline_statistics(self, name: str) -> ModelStatistics:
        statistics = self._pipeline_accounts[name].statistics
        assert statistics is not None  # every pipeline served as a model keeps them
        # Nothing waits in a pipeline's own queue: its steps queue at their models.
        return ModelStatistics(name, self._pipelines[name].version, statistics, 0)

    def registered_versions(self, name: str) -> list[str]:
        """The registered versions of ``name``, by version; empty when it has none."""
        if name not in self._registry.names():
            return []
        return sorted(self._registry.entry(name).versions)

    async def load_model(
        self, name: str, config: str | None = None, files: dict[str, bytes] | None = None
    ) -> None:
        """Triton's repository load: serve ``name`` from the model repository (400 when the
        server serves none, 404 when no repository holds the model); ``config`` (Triton's
        JSON) overrides its config.pbtxt, ``files`` (``<version>/<path>`` → contents, with
        ``config``) its files."""
        await self._model_repository().load(name, config, files or {})

    async def reload_config(self, serialized: bytes) -> None:
        """TF Serving's HandleReloadConfigRequest: serve the models a serialized
        ModelServerConfig lists, and only those (400 when the server serves none, or when a
        listed model does not load)."""
        await self._model_repository().reload_config(serialized)

    async def unload_model(self, name: str) -> None:
        """Triton's repository unload: stop serving every version of ``name``."""
        await self._model_repository().unload(name)

    # ----- pipelines

    def register_pipeline(self, pipeline: Pipeline) -> None:
        """Serve ``pipeline`` under its name (replacing an earlier definition of it): 400
        naming what is wrong with it (see ``pipelines.check``), 409 when a model has the name."""
        if pipeline.name in self._registry.names():
            raise ConflictStatusException(f"a model named {pipeline.name} is already registered")
        check(pipeline, self)
        self._pipelines[pipeline.name] = pipeline
        # A new definition counts afresh, as Triton's statistics of a reloaded model do
        # (the metrics plane's counters go on).
        metrics = self._engine.metrics.for_pipeline(pipeline.name, pipeline.platform)
        self._pipeline_accounts[pipeline.name] = PipelineAccount(metrics, VersionStatistics())

    def unregister_pipeline(self, name: str) -> None:
        """Stop serving the pipeline ``name``, if it serves."""
        self._pipelines.pop(name, None)
        self._pipeline_accounts.pop(name, None)

    def is_pipeline(self, name: str, version: str | None = None) -> bool:
        """Whether ``name`` is a pipeline, which takes tensor requests only (the frontend
        decodes a REST body for it); 404 for a version it does not have."""
        return self._pipeline(name, version) is not None

    def _pipeline(self, name: str, version: str | None) -> Pipeline | None:
        """The pipeline ``name`` (None when no pipeline has the name); 404 for a version
        it does not have."""
        pipeline = self._pipelines.get(name)
        if pipeline is not None and version not in (None, pipeline.version):
            raise ModelVersionNotFoundException(
                f"Model version: {version} does not exist for model: {name}"
            )
        return pipeline

    def _model_repository(self) -> ModelRepository:
        if self.repository is None:
            raise BadRequestException(
                "this server serves no model repository (start it with --model-repository DIR)"
            )
        return self.repository

    def resolve_label(self, name: str, label: str) -> str:
        """The version a TF Serving label names (the model configs' ``versionLabels``; the
        default version's config first, then the others by version). 404 for an unknown
        model or label, or a label naming a version that is not registered."""
        entry = self._registry.entry(name)
        default_first = sorted(entry.versions, key=lambda key: (key != entry.default_version, key))
        for key in default_first:
            target = entry.versions[key].version_labels.get(label)
            if target is None:
                continue
            if target not in entry.versions:
                raise ModelVersionNotFoundException(
                    f"Label {label} of model {name} names version {target}, which is not registered"
                )
            return target
        raise ModelVersionNotFoundException(f"Unknown version label {label} for model {name}")

    # ----- inference

    async def infer(self, name: str, version: str | None, request: WireRequest) -> WireResponse:
        """Queue one request on the version (the default one when ``version`` is None) and
        wait for the handler's answer; 404 for an unknown model or version, 503 when it has
        no worker or its queue is full, or the server has ``max_connections`` in flight. A
        pipeline runs its steps, each such a request (each taking a ``max_concurrency`` slot
        of its own, the pipeline none: steps never wait for their own pipeline's slot). An
        answer the handler sent in parts comes joined (``engine.streams.GatheredParts``)."""
        # Never a stream: the job does not take parts as they come.
        return cast(WireResponse, await self._answer(name, version, request, streaming=False))

    async def infer_streaming(
        self, name: str, version: str | None, request: WireRequest
    ) -> WireResponse | ResponseStream:
        """As ``infer``, for a client that takes parts as they come: the whole answer, or,
        when the handler answers in parts, the stream of them (its first part has come)."""
        return await self._answer(name, version, request, streaming=True)

    def stream(self, name: str, version: str | None, request: WireRequest) -> AnswerParts:
        """Every part of the answer, in order, as the handler sends them (one, when it answers
        whole). ``cancel()`` it when the client leaves and the handler is told."""
        return AnswerParts(functools.partial(self.infer_streaming, name, version, request))

    async def _answer(
        self, name: str, version: str | None, request: WireRequest, streaming: bool
    ) -> WireResponse | ResponseStream:
        pipeline = self._pipeline(name, version)
        if pipeline is not None:
            account = self._pipeline_accounts[name]
            return await account.run(functools.partial(run_pipeline, pipeline, request, self))
        model_version = self._registry.get(name, version)
        explicit = version is not None
        limit = self._limit
        if limit is None:
            return await self._run(model_version, request, explicit, streaming)
        await limit.acquire()
        try:
            answer = await self._run(model_version, request, explicit, streaming, limit.release)
        except BaseException:
            limit.release()
            raise
        if not isinstance(answer, ResponseStream):
            limit.release()
        return answer

    async def _run(
        self,
        model_version: ModelVersion,
        request: WireRequest,
        explicit: bool,
        streaming: bool,
        release: Callable[[], None] | None = None,
    ) -> WireResponse | ResponseStream:
        """Submit the request to the version's batcher and wait for its answer, counted. An
        answer in parts is counted at its end, when ``release`` (its ``max_concurrency``
        slot) is called too."""
        metrics = model_version.metrics
        metrics.received(explicit)
        future = asyncio.get_running_loop().create_future()
        job = InferenceJob(request, future, time.perf_counter(), explicit, streaming)
        succeeded = handed_over = False
        try:
            model_version.submit(job)
            answer: WireResponse | ResponseStream | None = await future
            if isinstance(answer, ResponseStream):
                # Its end is measured when the adapter has taken it all (or gave up).
                answer.on_end = functools.partial(_stream_ended, model_version, explicit, release)
                handed_over = True
                return answer
            if answer is None:  # the worker ended an answer whose parts nobody took
                raise InternalServerException("The handler ended its answer without any part")
            succeeded = answer.status < 400
            return answer
        except asyncio.CancelledError:
            # The client went away: the worker holding the request is told.
            if isinstance(job.parts, ResponseStream):
                job.parts.cancel()
            else:
                job.cancel()
            raise
        finally:
            if not handed_over:
                elapsed = time.perf_counter() - job.enqueued_at
                metrics.finished(explicit, elapsed)
                model_version.statistics.request_ended(succeeded, elapsed)

    async def explain(self, name: str, version: str | None, request: WireRequest) -> WireResponse:
        """As ``infer``, with the handler asked to explain its prediction."""
        request.headers[EXPLAIN_HEADER] = "True"
        return await self.infer(name, version, request)

    # ----- management (TorchServe's management API)

    async def register(self, options: RegisterOptions) -> Outcome:
        """Resolve, validate and extract the archive, then start its workers."""
        return await self._engine.register(options)

    async def scale(
        self,
        name: str,
        version: str | None,
        min_workers: int,
        max_workers: int | None,
        synchronous: bool,
    ) -> Outcome:
        """Run between ``min_workers`` and ``max_workers`` (None: ``min_workers``) workers;
        200 once they are up when ``synchronous``, else 202 at once."""
        high = min_workers if max_workers is None else max_workers
        return await self._engine.scale(name, version, min_workers, high, synchronous)

    async def set_default(self, name: str, version: str) -> Outcome:
        """Make ``version`` the default version of ``name``."""
        return await self._engine.set_default(name, version)

    async def unregister(self, name: str, version: str | None) -> Outcome:
        """Stop the version's workers and forget it (403 for a default with siblings)."""
        return await self._engine.unregister(name, version)

    def describe(
        self, name: str, version: str | None, customized: bool = False
    ) -> list[dict[str, Any]]:
        """TorchServe's description: one entry per described version (``version`` "all":
        every version, by version). ``customized`` (the handler's own description) cannot be
        asked of all versions. A pipeline's: its nodes, edges and state (``dag_description``)."""
        pipeline = self._pipeline(name, None if version == "all" else version)
        if pipeline is not None:
            if customized:
                raise BadRequestException(
                    f"{pipeline.platform} {name} has no handler to describe it (customized=true)"
                )
            description = {
                "modelName": name,
                "modelVersion": pipeline.version,
                "platform": pipeline.platform,
            }
            return [{**description, **dag_description(pipeline, self._registry)}]
        if version == "all":
            if customized:
                raise BadRequestException("customized=true cannot be combined with all versions")
            versions = self._registry.entry(name).versions
            return [versions[key].describe() for key in sorted(versions)]
        return [self._registry.get(name, version).describe()]

    def list_models(self, limit: int, page_token: int) -> dict[str, Any]:
        """TorchServe's listing: default versions sorted by name, ``limit`` (at most
        ``LIST_LIMIT_MAX``; out of range: that) from ``page_token`` on, with the next token
        while more follow."""
        names, next_token = _page(self._registry.names(), limit, page_token)
        body: dict[str, Any] = {}
        if next_token is not None:
            body["nextPageToken"] = next_token
        body["models"] = [
            {"modelName": name, "modelUrl": self._registry.get(name).url} for name in names
        ]
        return body

    # ----- TorchServe workflows

    async def register_workflow(self, url: str | None, name: str | None) -> Outcome:
        """Serve the .war at ``url`` (under ``name``, else its manifest's) with its node
        models; 404 for no such archive, 400 for a bad spec, a node's failure naming it."""
        return await self._workflows.register(url, name)

    async def unregister_workflow(self, name: str) -> Outcome:
        """Stop serving the workflow and its node models; 404 when unknown."""
        return await self._workflows.unregister(name)

    def list_workflows(self, limit: int, page_token: int) -> dict[str, Any]:
        """TorchServe's workflow listing, paged as ``list_models``."""
        names, next_token = _page(self._workflows.names(), limit, page_token)
        return self._workflows.listing(names, next_token)

    def describe_workflow(self, name: str) -> list[dict[str, Any]]:
        """TorchServe's workflow description; 404 when unknown."""
        return self._workflows.describe(name)

    async def predict_workflow(self, name: str, request: WireRequest) -> WireResponse:
        """Run ``request`` through the workflow's nodes; 404 when unknown."""
        served = self._workflows.served(name)
        return await served.account.run(
            functools.partial(run_workflow, served.workflow, request, self)
        )

    # ----- Paddle Serving pipeline services

    def register_paddle_service(self, service: PaddleService) -> None:
        """Serve ``service`` under its name: 400 naming an op model that does not serve or a
        cycle (see ``pipelines.check``)."""
        check(service.pipeline, self)
        self._paddle_services[service.name] = service
        metrics = self._engine.metrics.for_pipeline(service.name, PADDLE_PLATFORM)
        self._paddle_accounts[service.name] = PipelineAccount(metrics)

    def describe_paddle_service(self, name: str) -> list[dict[str, Any]]:
        """The service's ops as a pipeline's nodes, edges and state (``describe_service``);
        404 when no service has the name."""
        service = self._paddle_services.get(name)
        if service is None:
            raise ServiceNotFoundException(f"Paddle Serving service not found: {name}")
        return [describe_service(service, self._registry)]

    async def predict_paddle(self, request: PaddleRequest) -> PaddleResponse:
        """Run ``request`` through the service it names (no name: the only one), answered
        in Paddle's terms; an unknown name is Paddle's NO_SERVICE."""
        service = self._paddle_services.get(request.name)
        if not request.name and len(self._paddle_services) == 1:
            service = next(iter(self._paddle_services.values()))
        if service is None:
            return PaddleResponse(
                PaddleErrors.NO_SERVICE, "Failed to inference: Service name error."
            )
        account = self._paddle_accounts[service.name]
        try:
            return await account.run(functools.partial(run_paddle, service, request, self))
        except PaddleFailure as failure:  # counted as failed; Paddle answers it
            return PaddleResponse(failure.err_no, failure.err_msg)


def _stream_ended(
    model_version: ModelVersion,
    explicit: bool,
    release: Callable[[], None] | None,
    summary: StreamSummary,
) -> None:
    """A stream's end: its request's latency and statistics, the stream metrics, and its
    ``max_concurrency`` slot given back (``release``, when it holds one)."""
    if release is not None:
        release()
    model_version.metrics.finished(explicit, summary.duration_s)
    model_version.metrics.stream_ended(summary.first_part_s, summary.parts, summary.duration_s)
    model_version.statistics.request_ended(summary.succeeded, summary.duration_s)


def _page(names: list[str], limit: int, page_token: int) -> tuple[list[str], str | None]:
    """TorchServe's paging of a sorted listing: ``limit`` names (at most ``LIST_LIMIT_MAX``;
    out of range: that) from ``page_token`` on, and the next token while more may follow."""
    if limit > LIST_LIMIT_MAX or limit < 0:
        limit = LIST_LIMIT_MAX
    page_token = max(page_token, 0)
    last = page_token + limit
    return names[page_token:last], str(last) if last <= len(names) else None


def _config_tensor(tensor: dict[str, Any]) -> dict[str, Any]:
    """A v2 metadata tensor as a Triton config tensor (``TYPE_FP32``; BYTES is TYPE_STRING)."""
    datatype = tensor["datatype"]
    return {
        "name": tensor["name"],
        "data_type": "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}",
        "dims": tensor["shape"],
    }
