"""The DAG engine without a server: step models stand in for the data plane, so the order
steps run in, their concurrency, cancellation and the pipeline's timeout are observed
directly; the checks a definition passes at registration; and what a pipeline's account
counts of each request and step."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import pytest

from modelserve.engine.errors import BadRequestException, ModelNotFoundException
from modelserve.engine.pipeline_accounts import PipelineAccount
from modelserve.engine.pipeline_runner import (
    PipelineStepError,
    PipelineTimeoutError,
    run_pipeline,
)
from modelserve.engine.pipelines import Pipeline, PipelineStep, check
from modelserve.engine.results import ModelMetadata
from modelserve.engine.statistics import VersionStatistics
from modelserve.protocol_contract import Tensor, TensorInferRequest, TensorInferResponse
from modelserve.telemetry.frontend_metrics import (
    PIPELINE_FAILURES,
    PIPELINE_REQUESTS,
    PIPELINE_STEP_LATENCY,
    ServerMetrics,
)
from modelserve.telemetry.metrics_config import load_metrics_config
from modelserve.telemetry.store import HistogramFamily, MetricFamily, MetricStore
from modelserve.wire import WireRequest, WireResponse


def _tensor(name: str) -> dict[str, Any]:
    return {"name": name, "datatype": "BYTES", "shape": [1]}


class Models:
    """Step models that echo their one input ``in`` as their one output ``out``, appending
    their name; ``hold`` names models that wait until released, ``fail`` ones that refuse."""

    def __init__(self, hold: tuple[str, ...] = (), fail: tuple[str, ...] = ()) -> None:
        self.hold = hold
        self.fail = fail
        self.release = asyncio.Event()
        self.started: list[str] = []
        self.cancelled: list[str] = []

    def model_metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        if name == "missing":
            raise ModelNotFoundException(f"Model not found: {name}")
        return ModelMetadata(name, "1", ["1"], "test", [_tensor("in")], [_tensor("out")])

    async def infer(self, name: str, version: str | None, request: WireRequest) -> WireResponse:
        assert request.tensors is not None
        self.started.append(name)
        if name in self.fail:
            return WireResponse(status=422, body=b'{"error": "no"}')
        if name in self.hold:
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.append(name)
                raise
        data = bytes(request.tensors.inputs[0].data) + name.encode()
        return WireResponse(tensors=TensorInferResponse([Tensor("out", "BYTES", [1], data)]))


def _step(model: str, reads: str, produces: str) -> PipelineStep:
    return PipelineStep(model, model, None, {"in": reads}, {"out": produces})


# a → (b, c) → … : b and c both read a's output, independent of each other.
DIAMOND = [_step("a", "x", "ax"), _step("b", "ax", "bx"), _step("c", "ax", "cx")]


def _pipeline(steps: list[PipelineStep], outputs: list[str], timeout_s: float = 5) -> Pipeline:
    tensors = [_tensor(name) for name in outputs]
    return Pipeline("p", "1", "ensemble", [_tensor("x")], tensors, steps, timeout_s)


def _request() -> WireRequest:
    return WireRequest("r", {}, [], TensorInferRequest([Tensor("x", "BYTES", [1], b"x")]))


def test_outputs_flow_through_the_steps_and_branches_run_together() -> None:
    async def scenario() -> WireResponse:
        models = Models(hold=("b", "c"))
        pending = asyncio.create_task(
            run_pipeline(_pipeline(DIAMOND, ["bx", "cx"]), _request(), models)
        )
        async with asyncio.timeout(5):  # b and c both start before either finishes
            while len(models.started) < 3:
                await asyncio.sleep(0)
        models.release.set()
        return await pending

    answer = asyncio.run(scenario()).tensors
    assert answer is not None
    assert [(t.name, bytes(t.data)) for t in answer.outputs] == [("bx", b"xab"), ("cx", b"xac")]


def test_a_failing_step_names_itself_and_cancels_the_others() -> None:
    async def scenario() -> Models:
        models = Models(hold=("b",), fail=("c",))
        with pytest.raises(PipelineStepError) as failure:
            await run_pipeline(_pipeline(DIAMOND, ["bx", "cx"]), _request(), models)
        assert failure.value.status == 422
        assert failure.value.message == "ensemble p: step c (model c): no"
        return models

    assert asyncio.run(scenario()).cancelled == ["b"]


def test_the_timeout_bounds_the_whole_pipeline() -> None:
    async def scenario() -> Models:
        models = Models(hold=("b",))
        with pytest.raises(PipelineTimeoutError, match=r"within 0\.05 s"):
            await run_pipeline(_pipeline(DIAMOND, ["bx"], timeout_s=0.05), _request(), models)
        return models

    assert asyncio.run(scenario()).cancelled == ["b"]


@pytest.mark.parametrize(
    ("steps", "named"),
    [
        ([_step("missing", "x", "y")], "step missing: model missing does not serve"),
        ([_step("a", "x", "y"), _step("b", "x", "y")], "tensor 'y' is produced twice"),
        ([_step("a", "ghost", "y")], "reads tensor 'ghost', which no step produces"),
        ([_step("a", "y", "z"), _step("b", "z", "y")], "a cycle: steps a, b"),
        ([PipelineStep("a", "a", None, {}, {"out": "y"})], "leaves input 'in' of model a unmapped"),
        (
            [PipelineStep("a", "a", None, {"in": "x", "other": "x"}, {"out": "y"})],
            "maps input 'other'",
        ),
    ],
)
def test_a_bad_definition_is_refused_naming_the_problem(
    steps: list[PipelineStep], named: str
) -> None:
    with pytest.raises(BadRequestException, match=named):
        check(_pipeline(steps, ["y"]), Models())


def _account() -> tuple[PipelineAccount, MetricStore]:
    """An ensemble's account, with its own metric store."""
    config = load_metrics_config(None, "prometheus")
    metrics = ServerMetrics(config, "prometheus", "host", True, system_metrics=False)
    account = PipelineAccount(metrics.for_pipeline("p", "ensemble"), VersionStatistics())
    return account, metrics.store


def _counter(store: MetricStore, name: str) -> dict[tuple[str, ...], float]:
    """A counter family's values by label tuple."""
    family = store.get(name)
    assert isinstance(family, MetricFamily)
    return family.values


def test_the_account_counts_each_step_and_each_failure_by_its_reason() -> None:
    account, store = _account()

    async def scenario() -> None:
        run = account.run
        await run(partial(run_pipeline, _pipeline(DIAMOND, ["bx", "cx"]), _request(), Models()))
        with pytest.raises(PipelineStepError):
            models = Models(fail=("c",))
            await run(partial(run_pipeline, _pipeline(DIAMOND, ["bx"]), _request(), models))
        with pytest.raises(PipelineTimeoutError):
            slow = _pipeline(DIAMOND, ["bx"], timeout_s=0.05)
            await run(partial(run_pipeline, slow, _request(), Models(hold=("b",))))
        with pytest.raises(BadRequestException):  # the request lacks the pipeline's input
            bare = WireRequest("r", {}, [], TensorInferRequest([]))
            await run(partial(run_pipeline, _pipeline(DIAMOND, ["bx"]), bare, Models()))
        models = Models(hold=("b",))
        chain = _pipeline(DIAMOND[:2], ["bx"])  # a, then b
        left = asyncio.create_task(run(partial(run_pipeline, chain, _request(), models)))
        async with asyncio.timeout(5):  # b waits, as the client goes away
            while "b" not in models.started:
                await asyncio.sleep(0)
        left.cancel()
        with pytest.raises(asyncio.CancelledError):
            await left

    asyncio.run(scenario())
    labels = ("p", "ensemble", "host")
    assert _counter(store, PIPELINE_REQUESTS) == {labels: 5}
    assert _counter(store, PIPELINE_FAILURES) == {
        ("p", "ensemble", "step", "c", "host"): 1,
        ("p", "ensemble", "timeout", "", "host"): 1,
        ("p", "ensemble", "other", "", "host"): 1,
        ("p", "ensemble", "cancelled", "", "host"): 1,
    }
    steps = store.get(PIPELINE_STEP_LATENCY)
    assert isinstance(steps, HistogramFamily)
    # Every request but the bad one ran a; b and c then ran at once, but for the last
    # request's chain a → b; b was held (and cancelled) in the third and the last.
    answered = {key[3]: sum(counts) for key, counts in steps.counts.items()}
    assert answered == {"a": 4, "b": 2, "c": 3}
    assert account.statistics is not None
    assert (account.statistics.success.count, account.statistics.fail.count) == (1, 4)
    assert account.statistics.execution_count == 1
