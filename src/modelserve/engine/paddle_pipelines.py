"""Paddle Serving pipeline services on the pipeline engine: a request's ``key``/``value``
through the service's ops, answered with Paddle's ``err_no`` / ``err_msg``.

Each op serves as the model ``<service>__<op>`` (the ``paddle_op`` handler runs its
preprocess → model → postprocess in its own workers), so an op is one pipeline step,
scheduled by ``run_steps``: it starts once the ops it reads from have answered, independent
ops run at once. What flows between ops is opaque to the frontend: the client's ``{key:
value}`` as JSON from the request op, then each op's output as its worker pickled it. The last
op answers the response's keys and values. A failure is a ``PaddleFailure`` here (so the
service's pipeline account counts it as any pipeline's), then an answer, not an HTTP error, as
in Paddle Serving: an op's own error code and message, ``UNKNOW`` naming an op whose worker
failed, ``TIMEOUT`` when the service takes longer than its timeout (tried again up to the
DAG's ``retry``). A service is described as the other pipelines are, each op with the model
its worker calls.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelserve.engine.errors import ServingError
from modelserve.engine.pipeline_description import dag_description, model_state
from modelserve.engine.pipeline_runner import PipelineTimeoutError, StepFinished, run_steps
from modelserve.engine.pipelines import Pipeline, PipelineStep, StepModels
from modelserve.engine.registry import ModelRegistry
from modelserve.engine.results import ServingState
from modelserve.protocol_contract import (
    PADDLE_DATA_ID,
    PADDLE_LOG_ID,
    PADDLE_OP_OUTPUT,
    PADDLE_REQUEST_OP,
    PaddleErrors,
)
from modelserve.wire import RequestParameter, WireRequest, WireResponse, failure_message

PLATFORM = "paddle"
JSON = "application/json"
# A step output's name: an op's answer is one value.
OUTPUT = "output"
# Paddle's data_id: unique per request within the server.
_data_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class PaddleService:
    """A served pipeline service: its ops as pipeline steps (each reads the ops it names),
    the op that answers, how often a request that timed out is tried, and the model each op
    with a ``model_config`` calls (op → model name)."""

    name: str
    pipeline: Pipeline
    last: str
    retry: int = 1
    op_models: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        name: str,
        ops: dict[str, tuple[str, list[str]]],
        last: str,
        timeout_s: float,
        retry: int = 1,
        op_models: dict[str, str] | None = None,
    ) -> PaddleService:
        """The service whose ``ops`` are op name → (its model, the ops it reads from; the
        request op is ``PADDLE_REQUEST_OP``); ``op_models``: the model each op calls."""
        steps = [
            PipelineStep(op, model, None, {before: before for before in inputs}, {OUTPUT: op})
            for op, (model, inputs) in ops.items()
        ]
        request = [{"name": PADDLE_REQUEST_OP, "datatype": "BYTES", "shape": [-1]}]
        response = [{"name": last, "datatype": "BYTES", "shape": [-1]}]
        pipeline = Pipeline(name, "1", PLATFORM, request, response, steps, timeout_s)
        return cls(name, pipeline, last, retry, dict(op_models or {}))


@dataclass(frozen=True, slots=True)
class PaddleRequest:
    """What a client sent: the service's name, ``key``/``value`` pairs, its ``logid``, and
    whether it sent tensors (not supported yet)."""

    name: str
    keys: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    logid: int = 0
    has_tensors: bool = False


@dataclass(frozen=True, slots=True)
class PaddleResponse:
    """Paddle's response: ``err_no`` 0 with ``key``/``value``, or an error code and message."""

    err_no: int
    err_msg: str = ""
    keys: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)


class PaddleFailure(Exception):
    """The request fails with this Paddle error (the other ops are cancelled)."""

    def __init__(self, err_no: int, err_msg: str) -> None:
        super().__init__(err_msg)
        self.err_no = int(err_no)
        self.err_msg = err_msg


class PaddleTimeout(PaddleFailure, PipelineTimeoutError):
    """The service did not answer within its timeout: Paddle's TIMEOUT, and a pipeline
    timeout to the metrics."""


async def run_paddle(
    service: PaddleService,
    request: PaddleRequest,
    models: StepModels,
    step_finished: StepFinished | None = None,
) -> PaddleResponse:
    """The service's answer to ``request``, tried again while it times out (the DAG's
    ``retry``); PaddleFailure for any answer but success. ``step_finished`` is told of each
    op that ends."""
    if request.has_tensors:
        raise PaddleFailure(
            PaddleErrors.RPC_PACKAGE_ERROR,
            "rpc package error: modelserve takes key/value requests only (tensors are not "
            "supported yet)",
        )
    if len(request.values) < len(request.keys):
        raise PaddleFailure(
            PaddleErrors.RPC_PACKAGE_ERROR,
            f"rpc package error: {len(request.keys)} keys but {len(request.values)} values",
        )
    received = orjson.dumps(dict(zip(request.keys, request.values, strict=False)))
    data_id = next(_data_ids)
    attempts_left = service.retry
    while True:
        try:
            return await _attempt(service, request.logid, data_id, received, models, step_finished)
        except PaddleFailure as failure:
            attempts_left -= 1
            if failure.err_no != PaddleErrors.TIMEOUT or attempts_left <= 0:
                raise


def describe_service(service: PaddleService, registry: ModelRegistry) -> dict[str, Any]:
    """The service's name and platform, then its ops as a pipeline's ``ready``, ``nodes``
    and ``edges`` (``dag_description``); an op with a model has it under ``model``
    (``modelName`` and its state), and the service is ready when those are too."""
    graph = dag_description(service.pipeline, registry)
    for node in graph["nodes"]:
        model = service.op_models.get(node["name"])
        if model is not None:
            node["model"] = {"modelName": model, **model_state(model, None, registry)}
            graph["ready"] &= node["model"]["state"] == ServingState.AVAILABLE
    return {"serviceName": service.name, "platform": PLATFORM, **graph}


async def _attempt(
    service: PaddleService,
    logid: int,
    data_id: int,
    received: bytes,
    models: StepModels,
    step_finished: StepFinished | None,
) -> PaddleResponse:
    pipeline = service.pipeline
    outputs = {PADDLE_REQUEST_OP: received}
    answer: dict[str, list[str]] = {}
    headers = {PADDLE_LOG_ID: str(logid), PADDLE_DATA_ID: str(data_id)}

    async def call(step: PipelineStep) -> dict[str, bytes]:
        parameters = [
            RequestParameter(
                name, JSON if name == PADDLE_REQUEST_OP else PADDLE_OP_OUTPUT, outputs[name]
            )
            for name in step.inputs
        ]
        wire = WireRequest(f"{data_id}/{step.name}", dict(headers), parameters)
        response = await _op_response(service, step, wire, models)
        if response.content_type == PADDLE_OP_OUTPUT:
            return {step.name: response.body}
        answer.update(_op_answer(service, step, response.body))
        return {step.name: b""}

    try:
        # wait_for, not asyncio.timeout: the server supports Python 3.10.
        await asyncio.wait_for(
            run_steps(pipeline.steps, outputs, call, step_finished), pipeline.timeout_s
        )
    except (TimeoutError, asyncio.TimeoutError):
        raise PaddleTimeout(
            PaddleErrors.TIMEOUT,
            f"service {service.name}: not finished within {pipeline.timeout_s:g} s",
        ) from None
    return PaddleResponse(0, "", answer["key"], answer["value"])


async def _op_response(
    service: PaddleService, step: PipelineStep, request: WireRequest, models: StepModels
) -> WireResponse:
    """The op model's answer; PaddleFailure (UNKNOW) naming the op when its worker failed."""
    where = f"service {service.name}: op {step.name} (model {step.model})"
    try:
        response = await models.infer(step.model, None, request)
    except ServingError as exc:
        raise PaddleFailure(PaddleErrors.UNKNOW, f"{where}: {exc.message}") from exc
    if response.status >= 400:
        raise PaddleFailure(
            PaddleErrors.UNKNOW, f"{where}: {response.status} {failure_message(response)}"
        )
    return response


def _op_answer(service: PaddleService, step: PipelineStep, body: bytes) -> dict[str, list[str]]:
    """An op's JSON answer: its error (PaddleFailure), or the response's keys and values."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("err_no"), int):
        raise PaddleFailure(
            PaddleErrors.UNKNOW,
            f"service {service.name}: op {step.name} answered no Paddle response: {body[:80]!r}",
        )
    if answer["err_no"] != PaddleErrors.OK:
        raise PaddleFailure(answer["err_no"], str(answer.get("err_msg", "")))
    return {"key": list(answer.get("key", [])), "value": list(answer.get("value", []))}
