"""grps's gRPC API: ``grps.protos.v1.GrpsService``, on the gRPC inference port, as grps's
clients (``grps_apis``' GrpsServiceStub) call it.

What each method does is ``grps.service``'s, shared with the HTTP API: Predict runs a
GrpsMessage's ``gtensors``, ``str_data`` or ``bin_data`` through the model its ``model`` names.
As in grps, every call ends with gRPC status OK and the outcome in the answer's ``status``
(``code`` 200 and SUCCESS, or the error's HTTP status, its message and FAILURE).
PredictStreaming answers with one GrpsMessage per part of the model's answer, as it comes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from modelserve.engine.errors import BadRequestException, ServingError
from modelserve.engine.streams import AnswerParts
from modelserve.grps.proto import grps_pb2 as pb
from modelserve.grps.proto import grps_pb2_grpc as pb_grpc
from modelserve.grps.service import GrpsService, Payload, answer_payload
from modelserve.grps.tensors import element_values, output_entry, proto_input


def answer(code: int = 200, message: str = "OK") -> pb.GrpsMessage:
    """A GrpsMessage with only its status."""
    flag = pb.Status.SUCCESS if code < 400 else pb.Status.FAILURE
    return pb.GrpsMessage(status=pb.Status(code=code, msg=message, status=flag))


def request_payload(request: pb.GrpsMessage) -> Payload:
    """A request's data; 400 for none, for ndarray (HTTP JSON only) or gmap."""
    kind = request.WhichOneof("data_oneof")
    if kind == "gtensors":
        tensors = request.gtensors.tensors
        if not tensors:
            raise BadRequestException("gtensors has no tensors")
        return Payload(tensors=[proto_input(tensor, index) for index, tensor in enumerate(tensors)])
    if kind == "str_data":
        return Payload(text=request.str_data)
    if kind == "bin_data":
        return Payload(data=request.bin_data)
    if kind == "ndarray":
        raise BadRequestException("ndarray is for HTTP JSON requests: send gtensors")
    if kind == "gmap":
        raise BadRequestException(
            "gmap is not served (modelserve's handlers take tensors, text or bytes): send "
            "gtensors, str_data or bin_data"
        )
    raise BadRequestException("the request has no data: set gtensors, str_data or bin_data")


def answer_message(payload: Payload) -> pb.GrpsMessage:
    """The model's answer as a successful GrpsMessage; ValueError for an output grps cannot
    carry."""
    reply = answer()
    if payload.data is not None:
        reply.bin_data = payload.data
    elif payload.text is not None:
        reply.str_data = payload.text
    else:
        reply.gtensors.tensors.extend(
            pb.GenericTensor(**output_entry(tensor, element_values(tensor)))
            for tensor in payload.tensors or []
        )
    return reply


class GrpsServicer(pb_grpc.GrpsServiceServicer):
    """``grps.protos.v1.GrpsService``."""

    def __init__(self, service: GrpsService) -> None:
        self.service = service

    async def Predict(
        self, request: pb.GrpsMessage, context: grpc.aio.ServicerContext
    ) -> pb.GrpsMessage:
        try:
            result = await self.service.predict(request_payload(request), request.model)
            return answer_message(result)
        except ServingError as exc:
            return answer(exc.status, exc.message)
        except ValueError as exc:  # an output grps's DataType cannot carry
            return answer(500, str(exc))

    async def PredictStreaming(
        self, request: pb.GrpsMessage, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GrpsMessage]:
        # One message per part of the answer, as the handler sends it (a handler that answers
        # whole: one); a failure, before or after the first, is a last message with its status.
        answering: list[AnswerParts] = []  # told when the call ends (the client cancelled)
        context.add_done_callback(lambda _context: [parts.cancel() for parts in answering])
        try:
            payload = request_payload(request)
            parts = self.service.stream(payload, request.model)
            answering.append(parts)
            async for part in parts:
                yield answer_message(answer_payload(part, payload))
        except ServingError as exc:
            yield answer(exc.status, exc.message)
        except ValueError as exc:  # an output grps's DataType cannot carry
            yield answer(500, str(exc))
        finally:
            for parts in answering:
                parts.cancel()  # the rest of a failed answer (nothing once it has ended)

    async def Online(
        self, request: pb.GrpsMessage, context: grpc.aio.ServicerContext
    ) -> pb.GrpsMessage:
        self.service.online = True
        return answer()

    async def Offline(
        self, request: pb.GrpsMessage, context: grpc.aio.ServicerContext
    ) -> pb.GrpsMessage:
        self.service.online = False
        return answer()

    async def CheckLiveness(
        self, request: pb.GrpsMessage, context: grpc.aio.ServicerContext
    ) -> pb.GrpsMessage:
        return answer()

    async def CheckReadiness(
        self, request: pb.GrpsMessage, context: grpc.aio.ServicerContext
    ) -> pb.GrpsMessage:
        reason = self.service.unready_reason()
        return answer() if reason is None else answer(503, f"Service Unavailable: {reason}")

    async def ServerMetadata(
        self, request: pb.GrpsMessage, context: grpc.aio.ServicerContext
    ) -> pb.GrpsMessage:
        reply = answer()
        reply.str_data = self.service.server_metadata()
        return reply

    async def ModelMetadata(
        self, request: pb.GrpsMessage, context: grpc.aio.ServicerContext
    ) -> pb.GrpsMessage:
        try:
            document = self.service.model_metadata(request.str_data)
        except ServingError as exc:
            return answer(exc.status, exc.message)
        reply = answer()
        reply.str_data = document
        return reply
