"""Pipelines of models: a DAG of steps, each a request to one model version, wired together
by named tensors. One definition serves every front door (Triton ensembles first).

A pipeline's tensors are named once: its inputs, and what each step's ``outputs`` map
produces. A step runs once every tensor its ``inputs`` map reads exists. ``check`` validates a
definition against the models that serve, at registration, so that a bad map or a cycle is a
400 naming it instead of a request that never finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from modelserve.engine.errors import BadRequestException, ServingError
from modelserve.engine.results import ModelMetadata
from modelserve.wire import WireRequest, WireResponse


@dataclass(frozen=True, slots=True)
class PipelineStep:
    """One step: a request to ``model`` (``version`` None: its default version). ``inputs``:
    the step model's input name → the pipeline tensor it reads; ``outputs``: the step model's
    output name → the pipeline tensor it produces."""

    name: str
    model: str
    version: str | None
    inputs: dict[str, str]
    outputs: dict[str, str]


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A served pipeline: its v2 metadata tensors (``{name, datatype, shape}``), its steps,
    the configuration its front door answers (Triton's JSON for an ensemble) and the time one
    request may take end to end."""

    name: str
    version: str
    platform: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    steps: list[PipelineStep]
    timeout_s: float
    config: dict[str, Any] = field(default_factory=dict)

    def producers(self) -> dict[str, PipelineStep]:
        """Pipeline tensor → the step that produces it."""
        return {tensor: step for step in self.steps for tensor in step.outputs.values()}


class StepModels(Protocol):
    """What a pipeline needs of the data plane: its step models' metadata and inference."""

    def model_metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        """The step model's tensors; a ServingError when it does not serve."""

    async def infer(self, name: str, version: str | None, request: WireRequest) -> WireResponse:
        """One request to the step model, through its queue, batching and workers."""


def check(pipeline: Pipeline, models: StepModels) -> None:
    """400 naming the first problem: a step model that does not serve, a tensor produced
    twice, a tensor nothing produces, a step input left unmapped, a cycle."""
    where = f"{pipeline.platform} {pipeline.name}"
    for step in pipeline.steps:
        _check_model(where, step, models)
    check_graph(pipeline)


def check_graph(pipeline: Pipeline) -> None:
    """``check`` without the step models (a front door that registers them itself checks
    its graph first): 400 for a tensor produced twice, a tensor nothing produces, a cycle."""
    where = f"{pipeline.platform} {pipeline.name}"
    _check_produced_once(where, pipeline)
    produced = {tensor["name"] for tensor in pipeline.inputs} | set(pipeline.producers())
    for step in pipeline.steps:
        for tensor in step.inputs.values():
            if tensor not in produced:
                raise BadRequestException(
                    f"{where}: step {step.name} reads tensor {tensor!r}, which no step "
                    "produces and is not an input"
                )
    for tensor in pipeline.outputs:
        if tensor["name"] not in produced:
            raise BadRequestException(f"{where}: output {tensor['name']!r} is produced by no step")
    _check_acyclic(where, pipeline)


def _check_model(where: str, step: PipelineStep, models: StepModels) -> None:
    """The step's model serves, and its map names each of its inputs and only those (when
    the model's tensors are known: an auto-completed model reports them once it loads)."""
    try:
        metadata = models.model_metadata(step.model, step.version)
    except ServingError as exc:
        raise BadRequestException(
            f"{where}: step {step.name}: model {step.model}"
            f"{'' if step.version is None else f' version {step.version}'} does not serve "
            f"({exc.message})"
        ) from exc
    for side, declared, mapped in (
        ("input", metadata.inputs, step.inputs),
        ("output", metadata.outputs, step.outputs),
    ):
        names = {str(tensor["name"]) for tensor in declared}
        if not names:
            continue
        unknown = sorted(set(mapped) - names)
        if unknown:
            raise BadRequestException(
                f"{where}: step {step.name} maps {side} {unknown[0]!r}, which model "
                f"{step.model} does not have (it has {', '.join(sorted(names))})"
            )
        if side == "input" and (unmapped := sorted(names - set(mapped))):
            raise BadRequestException(
                f"{where}: step {step.name} leaves input {unmapped[0]!r} of model "
                f"{step.model} unmapped"
            )


def _check_produced_once(where: str, pipeline: Pipeline) -> None:
    producer = {tensor["name"]: "the pipeline's inputs" for tensor in pipeline.inputs}
    for step in pipeline.steps:
        for tensor in step.outputs.values():
            if tensor in producer:
                raise BadRequestException(
                    f"{where}: tensor {tensor!r} is produced twice (by {producer[tensor]} "
                    f"and by step {step.name})"
                )
            producer[tensor] = f"step {step.name}"


def _check_acyclic(where: str, pipeline: Pipeline) -> None:
    """Kahn's algorithm over the steps: what never becomes runnable is on a cycle."""
    available = {tensor["name"] for tensor in pipeline.inputs}
    waiting = list(pipeline.steps)
    while True:
        runnable = [step for step in waiting if set(step.inputs.values()) <= available]
        if not runnable:
            break
        for step in runnable:
            available |= set(step.outputs.values())
            waiting.remove(step)
    if waiting:
        names = ", ".join(step.name for step in waiting)
        raise BadRequestException(
            f"{where}: a cycle: steps {names} wait on each other's outputs and never run"
        )
