"""Runs one ``/wfpredict`` request through a workflow, as TorchServe does: each node is a
request to its model ``<workflow>__<node>`` through the data plane (its own queue, batching
and workers), scheduled by the pipeline engine's ``run_steps``.

What a node receives (TorchServe's request bodies, not tensors): the start node the client's
request (headers and every parameter); a node with one predecessor that node's answer as
``body``; a node with several their answers, each under the predecessor's name. Each attempt
is bounded by the node's ``timeout-ms``; a failed or late attempt is retried up to
``retry-attempts`` times. The answer: the only leaf's body, else a JSON object of each leaf's
answer (parsed as JSON) by leaf name.
"""

from __future__ import annotations

import asyncio

import orjson

from modelserve.engine.errors import ServingError
from modelserve.engine.pipeline_runner import PipelineStepError, StepFinished, run_steps
from modelserve.engine.pipelines import PipelineStep, StepModels
from modelserve.engine.workflow_spec import Workflow
from modelserve.wire import RequestParameter, WireRequest, WireResponse, failure_message

JSON = "application/json"


async def run_workflow(
    workflow: Workflow,
    request: WireRequest,
    models: StepModels,
    step_finished: StepFinished | None = None,
) -> WireResponse:
    """The workflow's answer to ``request``; PipelineStepError naming the node that failed.
    ``step_finished`` is told of each node that ends."""
    bodies: dict[str, bytes] = {}
    pipeline = workflow.pipeline(timeout_s=0)

    async def call(step: PipelineStep) -> dict[str, bytes]:
        node_request = _node_request(workflow, step, request, bodies)
        return {step.name: await _call_node(workflow, step, node_request, models)}

    await run_steps(pipeline.steps, bodies, call, step_finished)
    leaves = workflow.leaves()
    if len(leaves) == 1:
        return WireResponse(content_type=JSON, body=bodies[leaves[0]])
    answer = {}
    for leaf in leaves:
        try:
            answer[leaf] = orjson.loads(bodies[leaf])
        except orjson.JSONDecodeError as exc:
            raise PipelineStepError(
                f"workflow {workflow.name}: node {leaf} answered no JSON, so its answer "
                f"cannot be joined with the other leaves' ({exc})"
            ) from None
    return WireResponse(content_type=JSON, body=orjson.dumps(answer))


def _node_request(
    workflow: Workflow, step: PipelineStep, request: WireRequest, bodies: dict[str, bytes]
) -> WireRequest:
    request_id = f"{request.request_id}/{step.name}"
    before = list(step.inputs)
    if not before:
        return WireRequest(request_id, dict(request.headers), list(request.parameters))
    names = ["body"] if len(before) == 1 else before
    parameters = [
        RequestParameter(name, None, bodies[node]) for name, node in zip(names, before, strict=True)
    ]
    return WireRequest(request_id, dict(request.headers), parameters)


async def _call_node(
    workflow: Workflow, step: PipelineStep, request: WireRequest, models: StepModels
) -> bytes:
    """The node's answer; its last failure, naming the node, once its attempts are spent."""
    node = workflow.nodes[step.name]
    attempts = node.knobs["retry-attempts"] + 1
    timeout_s = node.knobs["timeout-ms"] / 1000
    where = f"workflow {workflow.name}: node {step.name} (model {step.model})"
    failure, status = "", 500
    for _ in range(attempts):
        try:
            # wait_for, not asyncio.timeout: the server supports Python 3.10.
            response = await asyncio.wait_for(models.infer(step.model, None, request), timeout_s)
        except (TimeoutError, asyncio.TimeoutError):
            failure, status = f"no answer within {timeout_s:g} s", 504
        except ServingError as exc:
            failure, status = exc.message, exc.status
        else:
            if response.status < 400:
                return response.body
            failure, status = failure_message(response), response.status
    raise PipelineStepError(
        f"{where} failed after {attempts} attempt{'s' if attempts > 1 else ''}: {failure}",
        status=status,
    )
