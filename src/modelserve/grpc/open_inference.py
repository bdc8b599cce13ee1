"""The Open Inference Protocol (KServe v2) over gRPC: ``inference.GRPCInferenceService``.

Health, metadata and Triton's extensions (model configuration, statistics, repository index,
load and unload) are the data plane's answers, as on the REST ``/v2`` routes. ModelInfer
hands the handler the request's tensors in protocol-neutral form (see ``v2_tensors``): raw
input contents pass through untouched, and the handler's output tensors become
``raw_output_contents``, what tritonclient reads; no JSON on the way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf import json_format

from modelserve.engine.dataplane import FILE_PARAMETER_PREFIX, DataPlane
from modelserve.engine.errors import ServingError
from modelserve.grpc import v2_stream, v2_tensors
from modelserve.grpc.access import StreamAccess
from modelserve.grpc.proto import open_inference_pb2 as pb
from modelserve.grpc.proto import open_inference_pb2_grpc as pb_grpc
from modelserve.grpc.status import abort_with
from modelserve.repository.proto import model_config_pb2
from modelserve.wire import WireRequest, new_request_id


class OpenInferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService``: KServe v2 / Triton clients."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.plane.live())

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.plane.health().ready)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        # An unknown model or version is "not ready", as the REST route's 4xx means false.
        try:
            ready = self.plane.model_ready(request.name, request.version or None)
        except ServingError:
            ready = False
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        server = self.plane.server_metadata()
        return pb.ServerMetadataResponse(
            name=server.name, version=server.version, extensions=server.extensions
        )

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        try:
            metadata = self.plane.model_metadata(request.name, request.version or None)
        except ServingError as exc:
            await abort_with(context, exc)
        reply = pb.ModelMetadataResponse(
            name=metadata.name, versions=metadata.versions, platform=metadata.platform
        )
        for tensors, field in ((metadata.inputs, reply.inputs), (metadata.outputs, reply.outputs)):
            for tensor in tensors:
                field.add(
                    name=str(tensor.get("name", "")),
                    datatype=str(tensor.get("datatype", "")),
                    shape=[-1 if size is None else int(size) for size in tensor.get("shape", [])],
                )
        return reply

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        try:
            self.plane.refuse_decoupled(
                request.model_name, request.model_version or None, "ModelInfer RPC"
            )
            wire = WireRequest(new_request_id(), {}, [], v2_tensors.tensor_request(request))
            response = await self.plane.infer(
                request.model_name, request.model_version or None, wire
            )
        except ServingError as exc:
            await abort_with(context, exc)
        rendered = v2_stream.render(response, request)
        if isinstance(rendered, tuple):
            await context.abort(*rendered)
        return rendered

    async def ModelStreamInfer(
        self,
        request_iterator: AsyncIterator[pb.ModelInferRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        # Requests are answered in turn, each with every response as the model sends it; the
        # request under way is cancelled in its worker when the call ends early.
        access = StreamAccess(context, "ModelStreamInfer", v2_stream.SERVICE)
        answers = v2_stream.StreamAnswers(self.plane)
        context.add_done_callback(lambda _context: answers.cancel())
        async for request in request_iterator:
            async for reply in answers.answer(request):
                yield reply
        access.status = 200

    # ----- Triton's extensions

    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelConfigResponse:
        try:
            config = self.plane.model_config(request.name, request.version or None)
        except ServingError as exc:
            await abort_with(context, exc)
        try:
            message = json_format.ParseDict(config, model_config_pb2.ModelConfig())
        except json_format.ParseError as exc:
            await context.abort(
                grpc.StatusCode.INTERNAL, f"model {request.name}: its configuration: {exc}"
            )
        return pb.ModelConfigResponse(config=message.SerializeToString())

    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        try:
            entries = self.plane.statistics(request.name or None, request.version or None)
        except ServingError as exc:
            await abort_with(context, exc)
        reply = pb.ModelStatisticsResponse()
        for entry in entries:
            json_format.ParseDict(entry.triton_json(), reply.model_stats.add())
        return reply

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        reply = pb.RepositoryIndexResponse()
        for entry in self.plane.repository_index(ready_only=request.ready):
            reply.models.add(
                name=entry.name, version=entry.version, state=entry.state, reason=entry.reason
            )
        return reply

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        # Triton's parameters: "config" (a JSON string), "file:<version>/<path>" (bytes).
        config = None
        files = {}
        for key, parameter in request.parameters.items():
            kind = parameter.WhichOneof("parameter_choice")
            if key == "config" and kind == "string_param":
                config = parameter.string_param
            elif key.startswith(FILE_PARAMETER_PREFIX) and kind == "bytes_param":
                files[key.removeprefix(FILE_PARAMETER_PREFIX)] = parameter.bytes_param
            elif key == "config" or key.startswith(FILE_PARAMETER_PREFIX):
                wanted = "a JSON string" if key == "config" else "bytes"
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f'parameter "{key}" must be {wanted}'
                )
        try:
            await self.plane.load_model(request.model_name, config, files)
        except ServingError as exc:
            await abort_with(context, exc)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        # unload_dependents: no model depends on another here (ensembles: a later issue).
        try:
            await self.plane.unload_model(request.model_name)
        except ServingError as exc:
            await abort_with(context, exc)
        return pb.RepositoryModelUnloadResponse()
