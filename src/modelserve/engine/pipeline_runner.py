"""Runs one request through a pipeline: each step is a normal request to its model version
through the data plane's ``infer`` (so it keeps that model's queue, dynamic batching, workers,
metrics and errors), with tensors in protocol-neutral form, as gRPC ModelInfer hands them to a
handler.

Steps start as soon as every tensor they read exists, so independent branches run
concurrently. The first step that fails fails the request, naming the step, with its status;
the steps still running are cancelled, as they are when the request itself is cancelled (the
client went away). The pipeline's timeout bounds the whole request. Whoever runs a pipeline
may be told when each step ends, with its time (``StepFinished``): the pipeline metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from modelserve.engine.errors import BadRequestException, ServingError
from modelserve.engine.pipelines import Pipeline, PipelineStep, StepModels
from modelserve.protocol_contract import (
    RequestedOutput,
    Tensor,
    TensorInferRequest,
    TensorInferResponse,
)
from modelserve.wire import WireRequest, WireResponse, failure_message

# What flows between steps: protocol-neutral tensors, or a workflow's request bodies.
V = TypeVar("V")
# Told when a step's call ends, with its seconds and whether it failed (not when cancelled).
StepFinished = Callable[[PipelineStep, float, bool], None]


class PipelineStepError(ServingError):
    """A step failed: the pipeline answers with the step's status and names the step."""


class PipelineTimeoutError(ServingError):
    """The pipeline did not finish within its timeout."""

    status = 504


async def run_pipeline(
    pipeline: Pipeline,
    request: WireRequest,
    models: StepModels,
    step_finished: StepFinished | None = None,
) -> WireResponse:
    """The pipeline's answer to a tensor request: its outputs (those asked for, else all)."""
    where = f"{pipeline.platform} {pipeline.name}"
    if request.tensors is None:
        raise BadRequestException(
            f"{where} answers KServe v2 infer requests only (REST or gRPC), not this protocol"
        )
    tensors = _inputs(pipeline, request.tensors, where)
    try:
        # wait_for, not asyncio.timeout: the server supports Python 3.10.
        await asyncio.wait_for(
            run_steps(
                pipeline.steps,
                tensors,
                lambda step: _call_step(pipeline, step, request.request_id, tensors, models),
                step_finished,
            ),
            pipeline.timeout_s,
        )
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise PipelineTimeoutError(
            f"{where}: not finished within {pipeline.timeout_s:g} s"
        ) from exc
    wanted = [output.name for output in request.tensors.outputs] or [
        tensor["name"] for tensor in pipeline.outputs
    ]
    declared = {tensor["name"] for tensor in pipeline.outputs}
    unknown = [name for name in wanted if name not in declared]
    if unknown:
        raise BadRequestException(f"{where}: no output {unknown[0]!r}")
    outputs = [tensors[name] for name in wanted]
    answer = TensorInferResponse(outputs, pipeline.name, pipeline.version, request.tensors.id)
    return WireResponse(tensors=answer)


def _inputs(pipeline: Pipeline, request: TensorInferRequest, where: str) -> dict[str, Tensor]:
    """The request's inputs by name: exactly the pipeline's."""
    given = {tensor.name: tensor for tensor in request.inputs}
    declared = [tensor["name"] for tensor in pipeline.inputs]
    missing = [name for name in declared if name not in given]
    if missing:
        raise BadRequestException(f"{where}: input {missing[0]!r} is missing")
    extra = sorted(set(given) - set(declared))
    if extra:
        raise BadRequestException(f"{where}: it has no input {extra[0]!r}")
    return given


async def run_steps(
    steps: list[PipelineStep],
    values: dict[str, V],
    call: Callable[[PipelineStep], Awaitable[dict[str, V]]],
    step_finished: StepFinished | None = None,
) -> None:
    """Run every step through ``call``, each once the values it reads exist; ``values``
    gains what each produces. Front doors differ only in ``call`` (tensors, request bodies).
    ``step_finished`` is told of each step that ends, failed or not."""
    waiting = list(steps)
    running: dict[asyncio.Task[dict[str, V]], tuple[PipelineStep, float]] = {}
    try:
        while waiting or running:
            for step in [s for s in waiting if set(s.inputs.values()) <= values.keys()]:
                waiting.remove(step)
                task = asyncio.create_task(call(step), name=f"step {step.name}")
                running[task] = (step, time.perf_counter())
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            ended = time.perf_counter()
            for task in done:  # every step that ended is told of before a failure raises
                step, started = running.pop(task)
                if step_finished is not None:
                    failed = task.cancelled() or task.exception() is not None
                    step_finished(step, ended - started, failed)
            for task in done:
                values.update(task.result())  # a failed step raises here
    finally:
        # A failure, a timeout or a cancelled request: the steps still running are not needed.
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def _call_step(
    pipeline: Pipeline,
    step: PipelineStep,
    request_id: str,
    tensors: dict[str, Tensor],
    models: StepModels,
) -> dict[str, Tensor]:
    """One step's request; its outputs renamed to the pipeline tensors they become."""
    where = f"{pipeline.platform} {pipeline.name}: step {step.name} (model {step.model})"
    inputs = [_renamed(tensors[tensor], name) for name, tensor in step.inputs.items()]
    asked = [RequestedOutput(name) for name in step.outputs]
    wire = WireRequest(
        f"{request_id}/{step.name}", {}, [], TensorInferRequest(inputs, outputs=asked)
    )
    try:
        response = await models.infer(step.model, step.version, wire)
    except ServingError as exc:
        raise PipelineStepError(f"{where}: {exc.message}", status=exc.status) from exc
    if response.status >= 400:
        raise PipelineStepError(f"{where}: {failure_message(response)}", status=response.status)
    produced = {} if response.tensors is None else {t.name: t for t in response.tensors.outputs}
    missing = [name for name in step.outputs if name not in produced]
    if missing:
        raise PipelineStepError(f"{where}: it did not answer output {missing[0]!r}")
    return {tensor: _renamed(produced[name], tensor) for name, tensor in step.outputs.items()}


def _renamed(tensor: Tensor, name: str) -> Tensor:
    """``tensor``'s data under another name, without its protocol parameters."""
    return Tensor(name, tensor.datatype, tensor.shape, tensor.data)
