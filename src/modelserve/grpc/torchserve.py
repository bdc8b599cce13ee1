"""TorchServe's gRPC services: adapters over the data plane the REST planes use.

Each call maps onto its REST twin: the same validation (``modelserve.parameters``), the same
data plane call, the same messages. Describe and list answer the REST JSON document in
``msg``; the other management calls answer the REST status message, as TorchServe does. Errors
end the call with TorchServe's HTTP → gRPC status mapping (``status.grpc_code``) and the REST
error message.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import orjson
from google.protobuf import empty_pb2

from modelserve.engine.dataplane import DataPlane
from modelserve.engine.errors import (
    BadRequestException,
    MethodNotAllowedException,
    ServingError,
)
from modelserve.engine.registration import RegisterOptions
from modelserve.engine.streams import AnswerParts
from modelserve.grpc.access import StreamAccess
from modelserve.grpc.proto import (
    inference_pb2,
    inference_pb2_grpc,
    management_pb2,
    management_pb2_grpc,
)
from modelserve.grpc.status import abort_with, grpc_code
from modelserve.parameters import REGISTER, SCALE
from modelserve.protocol_contract import SEQUENCE_ID_HEADER
from modelserve.wire import RequestParameter, WireRequest, WireResponse, new_request_id

Request = TypeVar("Request")
Reply = TypeVar("Reply")
Method = Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Reply]]

# The register fields that are integers or strings: 0 / "" means "not given" (proto3).
_REGISTER_FIELDS = (
    "url",
    "model_name",
    "handler",
    "runtime",
    "batch_size",
    "max_batch_delay",
    "initial_workers",
    "response_timeout",
    "startup_timeout",
)


def _answers_errors(method: Method) -> Method:
    """End the call with the engine error's gRPC status when ``method`` raises one."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except ServingError as exc:
            await abort_with(context, exc)

    return wrapper


def _json(document: Any) -> str:
    """TorchServe's pretty JSON (Gson: two-space indent, no trailing newline)."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()


def _handler_failure(response: WireResponse) -> tuple[grpc.StatusCode, str] | None:
    """A handler's error answer (status >= 400) as a gRPC status and message."""
    if response.status < 400:
        return None
    return grpc_code(response.status), response.body.decode("utf-8", errors="replace")


class InferenceServicer(inference_pb2_grpc.InferenceAPIsServiceServicer):
    """``org.pytorch.serve.grpc.inference.InferenceAPIsService``."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def _predict(self, request: inference_pb2.PredictionsRequest) -> WireResponse:
        """Run one prediction; the inputs become the handler's request parameters, as bytes."""
        wire = _wire_request(request)
        return await self.plane.infer(request.model_name, request.model_version or None, wire)

    def _parts(self, request: inference_pb2.PredictionsRequest) -> AnswerParts:
        """Every part of one prediction's answer, as the handler sends them."""
        wire = _wire_request(request)
        return self.plane.stream(request.model_name, request.model_version or None, wire)

    async def Ping(
        self, request: empty_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> inference_pb2.TorchServeHealthResponse:
        return inference_pb2.TorchServeHealthResponse(health=_json(self.plane.health().body()))

    @_answers_errors
    async def Predictions(
        self, request: inference_pb2.PredictionsRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.PredictionResponse:
        response = await self._predict(request)
        failure = _handler_failure(response)
        if failure is not None:
            await context.abort(*failure)
        return inference_pb2.PredictionResponse(prediction=response.body)

    async def StreamPredictions(
        self, request: inference_pb2.PredictionsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[inference_pb2.PredictionResponse]:
        # One message per part of the answer, sent as the handler sends it; an error after
        # the first part ends the call with its status.
        access = StreamAccess(context, "StreamPredictions")
        try:
            parts = self._parts(request)
            # The call may end while the generator waits to be resumed: the handler is told.
            context.add_done_callback(lambda _context: parts.cancel())
            async for part in parts:
                failure = _handler_failure(part)
                if failure is not None:
                    access.status = part.status
                    await context.abort(*failure)
                yield inference_pb2.PredictionResponse(prediction=part.body)
        except ServingError as exc:
            access.status = exc.status
            await abort_with(context, exc)
        access.status = 200

    async def StreamPredictions2(
        self,
        request_iterator: AsyncIterator[inference_pb2.PredictionsRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[inference_pb2.PredictionResponse]:
        # Requests are answered one at a time, in order, each with every part of its answer
        # as the handler sends it; a failed one is answered with its status and the stream
        # goes on. Each response echoes its request's sequence_id, which names the request's
        # sequence (the handler's context.get_sequence_id): a stateful model keeps each
        # sequence on one worker.
        access = StreamAccess(context, "StreamPredictions2")
        answering: list[AnswerParts] = []  # the answer under way, told when the call ends
        context.add_done_callback(lambda _context: [parts.cancel() for parts in answering])
        async for request in request_iterator:
            sequence = request.sequence_id if request.HasField("sequence_id") else None
            try:
                parts = self._parts(request)
                answering[:] = [parts]
                async for part in parts:
                    failure = _handler_failure(part)
                    if failure is not None:
                        parts.cancel()
                        yield _failed(sequence, *failure)
                        break
                    yield inference_pb2.PredictionResponse(
                        prediction=part.body, sequence_id=sequence
                    )
            except ServingError as exc:
                yield _failed(sequence, grpc_code(exc.status), exc.message)
        access.status = 200


def _wire_request(request: inference_pb2.PredictionsRequest) -> WireRequest:
    """The handler's request: the inputs as parameters (bytes), the sequence as TorchServe's
    sequence header (a stateful model keeps the sequence on one worker)."""
    if not request.model_name:
        raise BadRequestException("Parameter model_name is required.")
    headers = {SEQUENCE_ID_HEADER: request.sequence_id} if request.HasField("sequence_id") else {}
    return WireRequest(
        new_request_id(),
        headers,
        [RequestParameter(name, None, value) for name, value in request.input.items()],
    )


def _failed(
    sequence: str | None, code: grpc.StatusCode, message: str
) -> inference_pb2.PredictionResponse:
    """A StreamPredictions2 request's failure: its status in the response, the stream goes on."""
    status = inference_pb2.RpcStatus(code=code.value[0], message=message)
    return inference_pb2.PredictionResponse(sequence_id=sequence, status=status)


class ManagementServicer(management_pb2_grpc.ManagementAPIsServiceServicer):
    """``org.pytorch.serve.grpc.management.ManagementAPIsService``.

    ``model_control_refusal`` says why RegisterModel and UnregisterModel are refused (the
    REST 405, here FAILED_PRECONDITION), or is None when they are allowed.
    """

    def __init__(self, plane: DataPlane, model_control_refusal: str | None) -> None:
        self.plane = plane
        self.model_control_refusal = model_control_refusal

    def _require_model_api(self) -> None:
        if self.model_control_refusal is not None:
            raise MethodNotAllowedException(self.model_control_refusal)

    @_answers_errors
    async def DescribeModel(
        self, request: management_pb2.DescribeModelRequest, context: grpc.aio.ServicerContext
    ) -> management_pb2.ManagementResponse:
        description = self.plane.describe(
            request.model_name, request.model_version or None, request.customized
        )
        return management_pb2.ManagementResponse(msg=_json(description))

    @_answers_errors
    async def ListModels(
        self, request: management_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> management_pb2.ManagementResponse:
        listing = self.plane.list_models(request.limit or 100, request.next_page_token)
        return management_pb2.ManagementResponse(msg=_json(listing))

    @_answers_errors
    async def RegisterModel(
        self, request: management_pb2.RegisterModelRequest, context: grpc.aio.ServicerContext
    ) -> management_pb2.ManagementResponse:
        self._require_model_api()
        params: dict[str, Any] = {
            name: getattr(request, name) for name in _REGISTER_FIELDS if getattr(request, name)
        }
        params["synchronous"] = request.synchronous
        options = RegisterOptions.from_parameters(REGISTER.parse(params))
        outcome = await self.plane.register(options)
        return management_pb2.ManagementResponse(msg=outcome.message)

    @_answers_errors
    async def ScaleWorker(
        self, request: management_pb2.ScaleWorkerRequest, context: grpc.aio.ServicerContext
    ) -> management_pb2.ManagementResponse:
        values = SCALE.parse(
            {
                "min_worker": request.min_worker or None,
                "max_worker": request.max_worker or None,
                "synchronous": request.synchronous,
            }
        )
        outcome = await self.plane.scale(
            request.model_name,
            request.model_version or None,
            values["min_worker"],
            values["max_worker"],
            values["synchronous"],
        )
        return management_pb2.ManagementResponse(msg=outcome.message)

    @_answers_errors
    async def SetDefault(
        self, request: management_pb2.SetDefaultRequest, context: grpc.aio.ServicerContext
    ) -> management_pb2.ManagementResponse:
        if not request.model_version:
            raise BadRequestException("Parameter model_version is required.")
        outcome = await self.plane.set_default(request.model_name, request.model_version)
        return management_pb2.ManagementResponse(msg=outcome.message)

    @_answers_errors
    async def UnregisterModel(
        self, request: management_pb2.UnregisterModelRequest, context: grpc.aio.ServicerContext
    ) -> management_pb2.ManagementResponse:
        self._require_model_api()
        if not request.model_name:
            raise BadRequestException("Parameter model_name is required.")
        outcome = await self.plane.unregister(request.model_name, request.model_version or None)
        return management_pb2.ManagementResponse(msg=outcome.message)
