"""A pipeline described on the management API: its nodes (each step, the model version that
serves it, that version's state and workers), its edges (which step's outputs another step
reads) and whether it can take requests now. Triton ensembles, TorchServe workflows and Paddle
Serving services answer the same shape, inside their own description.
"""

from __future__ import annotations

from typing import Any

from modelserve.engine.errors import ServingError
from modelserve.engine.pipelines import Pipeline, PipelineStep
from modelserve.engine.registry import ModelRegistry
from modelserve.engine.results import ServingState

# A node whose model is not registered (unregistered by hand since the pipeline was).
UNREGISTERED = "UNREGISTERED"


def dag_description(pipeline: Pipeline, registry: ModelRegistry) -> dict[str, Any]:
    """``ready`` (every node's model can take requests), ``nodes`` (in definition order) and
    ``edges`` (``from`` step → ``to`` step, with the ``tensors`` that flow along it)."""
    nodes = [_node(step, registry) for step in pipeline.steps]
    return {
        "ready": all(node["state"] == ServingState.AVAILABLE for node in nodes),
        "nodes": nodes,
        "edges": _edges(pipeline),
    }


def _node(step: PipelineStep, registry: ModelRegistry) -> dict[str, Any]:
    """The step, its maps (step model tensor → pipeline tensor) and its model's state."""
    node: dict[str, Any] = {
        "name": step.name,
        "modelName": step.model,
        "modelVersion": step.version,
        "inputMap": step.inputs,
        "outputMap": step.outputs,
    }
    node.update(model_state(step.model, step.version, registry))
    return node


def model_state(model: str, version: str | None, registry: ModelRegistry) -> dict[str, Any]:
    """A node model's ``modelVersion`` (the default one, where ``version`` is None),
    ``state``, ``error`` (when it has one) and ``workers``; ``UNREGISTERED`` without a
    version when it is not registered."""
    try:
        served = registry.get(model, version)
    except ServingError as exc:
        return {"state": UNREGISTERED, "error": exc.message, "workers": []}
    status = served.status()
    state: dict[str, Any] = {"modelVersion": served.version, "state": status.state.value}
    if status.error:
        state["error"] = status.error
    state["workers"] = served.worker_descriptions()
    return state


def _edges(pipeline: Pipeline) -> list[dict[str, Any]]:
    """Producer → consumer pairs, in the consumers' definition order (tensors the pipeline's
    inputs supply come from no step, so they are on no edge)."""
    producers = pipeline.producers()
    edges: dict[tuple[str, str], list[str]] = {}
    for step in pipeline.steps:
        for tensor in step.inputs.values():
            producer = producers.get(tensor)
            if producer is not None:
                edges.setdefault((producer.name, step.name), []).append(tensor)
    return [
        {"from": source, "to": target, "tensors": tensors}
        for (source, target), tensors in edges.items()
    ]
