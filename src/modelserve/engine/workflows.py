"""TorchServe workflows on the management plane: register a .war from the model store (its
node models registered as ``<workflow>__<node>`` with the spec's worker and batch knobs),
list, describe (with the engine's description of its nodes, edges and state added) and
unregister, as TorchServe 0.12 answers them. Running one is ``workflow_runner``'s job.

A function node serves from the unpacked .war, with the handler ``<handler file>:<node>``:
the worker calls ``node(data, context)`` like any function entry point, as TorchServe runs a
function node in a worker of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelserve import archive
from modelserve.engine.engine import Engine
from modelserve.engine.errors import (
    ConflictStatusException,
    ModelNotFoundException,
    ServingError,
    WorkflowNotFoundException,
)
from modelserve.engine.outcomes import Outcome
from modelserve.engine.pipeline_accounts import PipelineAccount
from modelserve.engine.pipeline_description import dag_description
from modelserve.engine.registration import RegisterOptions
from modelserve.engine.settings import VersionSettings
from modelserve.engine.workflow_spec import (
    PLATFORM,
    InvalidWorkflowError,
    Workflow,
    WorkflowNode,
    parse_workflow,
)

WORKFLOW_MANIFEST = "WAR-INF/MANIFEST.json"


@dataclass(frozen=True, slots=True)
class RegisteredWorkflow:
    """A served workflow, the directory its .war is unpacked in, and what it has answered."""

    workflow: Workflow
    directory: Path
    account: PipelineAccount


class Workflows:
    """The workflows one server serves, by name."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._served: dict[str, RegisteredWorkflow] = {}
        # Two registrations of one name must not both pass the 409 check.
        self._lock = asyncio.Lock()

    def get(self, name: str) -> Workflow:
        """The workflow ``name``; 404 when none is registered under it."""
        return self.served(name).workflow

    def served(self, name: str) -> RegisteredWorkflow:
        """The workflow ``name`` as it serves; 404 when none is registered under it."""
        served = self._served.get(name)
        if served is None:
            raise WorkflowNotFoundException(f"Workflow not found: {name}")
        return served

    def names(self) -> list[str]:
        """The registered workflows' names, sorted."""
        return sorted(self._served)

    async def register(self, url: str | None, name: str | None) -> Outcome:
        """Unpack and check the .war, then register its node models (all or none): 404 for a
        url that names no archive, 400 for a bad archive or spec, 409 for a taken name, the
        failing node model's status (naming it) when one does not register."""
        if not url:
            raise InvalidWorkflowError("Parameter url is required.")
        async with self._lock:
            directory = self._engine.runtime_dir / "workflows" / uuid.uuid4().hex
            workflow = await asyncio.to_thread(self._unpack, url, name, directory)
            try:
                if workflow.name in self._served:
                    raise ConflictStatusException(
                        f"Workflow {workflow.name} is already registered."
                    )
                await self._register_nodes(workflow, directory)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            metrics = self._engine.metrics.for_pipeline(workflow.name, PLATFORM)
            account = PipelineAccount(metrics)
            self._served[workflow.name] = RegisteredWorkflow(workflow, directory, account)
        return Outcome(
            200, f"Workflow {workflow.name} has been registered and scaled successfully."
        )

    async def unregister(self, name: str) -> Outcome:
        """Forget the workflow and unregister its node models."""
        async with self._lock:
            self.get(name)
            served = self._served.pop(name)
            await self._unregister_models(list(served.workflow.nodes.values()))
            shutil.rmtree(served.directory, ignore_errors=True)
        return Outcome(200, f'Workflow "{name}" unregistered')

    def listing(self, names: list[str], next_page_token: str | None) -> dict[str, Any]:
        """TorchServe's listing of the workflows ``names`` (one page of them)."""
        body: dict[str, Any] = {}
        if next_page_token is not None:
            body["nextPageToken"] = next_page_token
        body["workflows"] = [
            {"workflowName": name, "workflowUrl": self.get(name).url} for name in names
        ]
        return body

    def describe(self, name: str) -> list[dict[str, Any]]:
        """TorchServe's description (the global knobs and the dag as the spec gives them),
        then the engine's: ``ready``, ``nodes`` (each with its model's state and workers) and
        ``edges``."""
        workflow = self.get(name)
        graph = dag_description(workflow.pipeline(timeout_s=0), self._engine.registry)
        return [
            {
                "workflowName": name,
                "workflowUrl": workflow.url,
                "minWorkers": workflow.knobs["min-workers"],
                "maxWorkers": workflow.knobs["max-workers"],
                "batchSize": workflow.knobs["batch-size"],
                "maxBatchDelay": workflow.knobs["max-batch-delay"],
                "workflowDag": workflow.dag_text(),
                **graph,
            }
        ]

    def _unpack(self, url: str, name: str | None, directory: Path) -> Workflow:
        """The checked workflow of the .war at ``url``, unpacked into ``directory``."""
        settings = self._engine.settings
        try:
            source = archive.resolve_archive(url, settings.model_store, settings.allowed_urls)
        except archive.ArchiveError as exc:  # TorchServe answers 404 for every such url
            raise WorkflowNotFoundException(str(exc)) from exc
        try:
            archive.unpack_archive(source, directory, settings.max_archive_size)
        except archive.ArchiveError as exc:
            raise InvalidWorkflowError(f"{url}: {exc}") from exc
        try:
            manifest = _workflow_manifest(directory, url)
            name = name or manifest["workflowName"]
            handler = manifest["handler"]
            return parse_workflow(
                name,
                url,
                handler,
                _archive_file(directory, manifest["specFile"], url),
                _archive_file(directory, handler, url),
            )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise

    async def _register_nodes(self, workflow: Workflow, directory: Path) -> None:
        """Register every node model at once; on any failure unregister those that did and
        raise the first failure, naming its node."""
        nodes = list(workflow.nodes.values())
        results = await asyncio.gather(
            *(self._engine.register(_node_options(workflow, node, directory)) for node in nodes),
            return_exceptions=True,
        )
        failures = [
            (n, r) for n, r in zip(nodes, results, strict=True) if isinstance(r, BaseException)
        ]
        if not failures:
            return
        registered = [
            n for n, r in zip(nodes, results, strict=True) if not isinstance(r, BaseException)
        ]
        await self._unregister_models(registered)
        node, error = failures[0]
        if not isinstance(error, ServingError):
            raise error
        raise type(error)(
            f"Workflow {workflow.name} has failed to register: node {node.name} "
            f"(model {node.model}): {error.message}",
            status=error.status,
        ) from error

    async def _unregister_models(self, nodes: list[WorkflowNode]) -> None:
        for node in nodes:
            with contextlib.suppress(ModelNotFoundException):  # unregistered by hand meanwhile
                await self._engine.unregister(node.model, None)


def _node_options(workflow: Workflow, node: WorkflowNode, directory: Path) -> RegisterOptions:
    """The register call of one node: TorchServe starts ``max-workers`` workers per node."""
    settings = VersionSettings(
        batch_size=node.knobs["batch-size"], max_batch_delay=node.knobs["max-batch-delay"]
    )
    if node.is_function:
        return RegisterOptions(
            url=workflow.url,
            model_name=node.model,
            handler=f"{workflow.handler}:{node.name}",
            initial_workers=node.knobs["max-workers"],
            settings=settings,
            source=directory,
            in_snapshots=False,
        )
    return RegisterOptions(
        url=node.url or "",
        model_name=node.model,
        initial_workers=node.knobs["max-workers"],
        settings=settings,
        in_snapshots=False,
    )


def _workflow_manifest(directory: Path, url: str) -> dict[str, str]:
    """WAR-INF/MANIFEST.json's workflow entry, checked as TorchServe checks it."""
    path = directory / WORKFLOW_MANIFEST
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidWorkflowError(f"{url}: no readable {WORKFLOW_MANIFEST} ({exc})") from None
    workflow = manifest.get("workflow") if isinstance(manifest, dict) else None
    if not isinstance(workflow, dict):
        raise InvalidWorkflowError(f"{url}: Missing Workflow entry in manifest file.")
    for key, what in (
        ("workflowName", "Workflow name"),
        ("specFile", "Workflow spec file"),
        ("handler", "Workflow handler"),
    ):
        if not isinstance(workflow.get(key), str) or not workflow[key]:
            raise InvalidWorkflowError(f"{url}: {what} is not defined.")
    for key, what in (("archiverVersion", "version"), ("createdOn", "createdOn")):
        if key not in manifest:
            raise InvalidWorkflowError(f"{url}: Workflow archive {what} is not defined.")
    return workflow


def _archive_file(directory: Path, name: str, url: str) -> bytes:
    """A file the manifest names, read from the archive's root (never outside it)."""
    path = directory / Path(name).name
    if not path.is_file():
        raise InvalidWorkflowError(f"{url}: the manifest names {name}, which is not in it")
    return path.read_bytes()
