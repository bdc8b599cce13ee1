"""The Open Inference Protocol (KServe v2) over gRPC: ``inference.GRPCInferenceService``.

Health and metadata are answered by the frontend, as on the REST ``/v2`` routes. ModelInfer
goes through the handler contract of the REST ``infer`` route: the request becomes the v2 REST
body with binary tensor data (a JSON header naming each input's datatype, shape and
``binary_data_size``, followed by the inputs' raw bytes) sent with ``modelserve-protocol: v2``
and ``inference-header-content-length``, every output asked for in binary. The handler's
answer (JSON header + output buffers) becomes ``raw_output_contents``, what tritonclient reads.
No numpy here: tensor bytes pass through untouched, and typed ``contents`` are packed with
``struct``.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

import grpc
import orjson

from modelserve import __version__
from modelserve.api.open_inference import EXTENSIONS, SERVER_NAME, platform
from modelserve.engine.engine import Engine
from modelserve.engine.errors import BadRequestException, ServingError
from modelserve.grpc.proto import open_inference_pb2 as pb
from modelserve.grpc.proto import open_inference_pb2_grpc as pb_grpc
from modelserve.grpc.status import abort_with, grpc_code
from modelserve.protocol_contract import (
    BINARY_DATA,
    BINARY_DATA_OUTPUT,
    BINARY_DATA_SIZE,
    BYTES,
    DATATYPES,
    HEADER_LENGTH,
    PROTOCOL_HEADER,
    V2,
    pack_bytes,
)
from modelserve.wire import RequestParameter, WireRequest, WireResponse

BINARY = "application/octet-stream"
_INT64_MAX = 2**63 - 1


# ----- parameters


def _parameter_value(parameter: pb.InferParameter) -> Any:
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def _parameters_json(parameters: Any, where: str) -> dict[str, Any]:
    """A protobuf parameter map as JSON; shared memory (not supported here) is refused."""
    values = {}
    for key, parameter in parameters.items():
        if key.startswith("shared_memory"):
            raise BadRequestException(f"{where}: shared memory is not supported ({key})")
        values[key] = _parameter_value(parameter)
    return values


def _set_parameters(target: Any, values: dict[str, Any]) -> None:
    """Fill a protobuf parameter map from JSON values (nested values travel as JSON text)."""
    for key, value in values.items():
        parameter = target[key]
        if isinstance(value, bool):
            parameter.bool_param = value
        elif isinstance(value, int):
            if value > _INT64_MAX:
                parameter.uint64_param = value
            else:
                parameter.int64_param = value
        elif isinstance(value, float):
            parameter.double_param = value
        elif isinstance(value, str):
            parameter.string_param = value
        else:
            parameter.string_param = orjson.dumps(value).decode()


# ----- tensor bytes


def _packed(values: list[Any], datatype: str, where: str) -> bytes:
    """Elements of ``datatype`` as little-endian raw bytes."""
    if datatype == BYTES:
        return pack_bytes(
            value.encode() if isinstance(value, str) else bytes(value) for value in values
        )
    row = DATATYPES.get(datatype)
    if row is None or row.struct_format is None:
        raise BadRequestException(f"{where}: datatype {datatype!r} cannot be sent as contents")
    try:
        return struct.pack(f"<{len(values)}{row.struct_format}", *values)
    except (struct.error, TypeError) as exc:
        raise BadRequestException(f"{where}: values do not fit datatype {datatype}") from exc


def _contents_bytes(tensor: pb.ModelInferRequest.InferInputTensor) -> bytes:
    """An input's typed ``contents`` as raw bytes."""
    where = f'input "{tensor.name}"'
    if tensor.datatype == BYTES:
        return pack_bytes(tensor.contents.bytes_contents)
    row = DATATYPES.get(tensor.datatype)
    field = None if row is None else row.contents_field
    if field is None:
        raise BadRequestException(
            f"{where}: datatype {tensor.datatype!r} has no contents field: "
            "send it in raw_input_contents"
        )
    return _packed(list(getattr(tensor.contents, field)), tensor.datatype, where)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    return [item for part in data for item in _flatten(part)]


# ----- the request and the response


def infer_body(request: pb.ModelInferRequest) -> tuple[bytes, int]:
    """The v2 REST request body with binary tensor data, and the length of its JSON part."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequestException(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs"
        )
    buffers: list[bytes] = []
    inputs = []
    for index, tensor in enumerate(request.inputs):
        where = f'input "{tensor.name}"'
        if raw and tensor.HasField("contents"):
            raise BadRequestException(f"{where}: contents given with raw_input_contents")
        data = raw[index] if raw else _contents_bytes(tensor)
        parameters = _parameters_json(tensor.parameters, where)
        parameters[BINARY_DATA_SIZE] = len(data)
        inputs.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "parameters": parameters,
            }
        )
        buffers.append(data)
    parameters = _parameters_json(request.parameters, "the request")
    parameters[BINARY_DATA_OUTPUT] = True
    header: dict[str, Any] = {"parameters": parameters, "inputs": inputs}
    if request.id:
        header["id"] = request.id
    if request.outputs:
        outputs = []
        for output in request.outputs:
            output_parameters = _parameters_json(output.parameters, f'output "{output.name}"')
            output_parameters[BINARY_DATA] = True
            outputs.append({"name": output.name, "parameters": output_parameters})
        header["outputs"] = outputs
    json_part = orjson.dumps(header)
    return b"".join([json_part, *buffers]), len(json_part)


def _header(headers: dict[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = {key.lower(): item for key, item in headers.items()}
        value = lowered.get(name)
    return value


def _failure_message(response: WireResponse) -> str:
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return response.body.decode("utf-8", errors="replace")
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str):
                return body[key]
    return response.body.decode("utf-8", errors="replace")


def infer_response(response: WireResponse, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
    """The handler's v2 answer (JSON header + binary outputs) as a ModelInferResponse."""
    body = response.body
    length_header = _header(response.headers, HEADER_LENGTH)
    try:
        split = len(body) if length_header is None else int(length_header)
        document = orjson.loads(body[:split])
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"the handler's answer is not a v2 response: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("outputs"), list):
        raise ValueError("the handler's answer is not a v2 response object")
    binary = memoryview(body)[split:]
    reply = pb.ModelInferResponse(
        model_name=str(document.get("model_name") or request.model_name),
        model_version=str(document.get("model_version") or request.model_version),
        id=str(document.get("id") or request.id),
    )
    if isinstance(document.get("parameters"), dict):
        _set_parameters(reply.parameters, document["parameters"])
    offset = 0
    for entry in document["outputs"]:
        parameters = dict(entry.get("parameters") or {})
        size = parameters.pop(BINARY_DATA_SIZE, None)
        output = reply.outputs.add(
            name=entry["name"], datatype=entry["datatype"], shape=entry["shape"]
        )
        _set_parameters(output.parameters, parameters)
        if size is not None:
            reply.raw_output_contents.append(bytes(binary[offset : offset + size]))
            offset += size
        else:
            where = f'output "{entry["name"]}"'
            data = _flatten(entry.get("data", []))
            reply.raw_output_contents.append(_packed(data, entry["datatype"], where))
    return reply


class OpenInferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """``inference.GRPCInferenceService``: KServe v2 / Triton clients."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.engine.health().ready)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        # An unknown model or version is "not ready", as the REST route's 4xx means false.
        try:
            version = self.engine.registry.get(request.name, request.version or None)
        except ServingError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=version.pool.ready_count() > 0)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=__version__, extensions=EXTENSIONS
        )

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        version = request.version or None
        try:
            model_version = self.engine.registry.get(request.name, version)
            tensors = self.engine.tensor_metadata(request.name, version)
            versions = sorted(self.engine.registry.entry(request.name).versions)
        except ServingError as exc:
            await abort_with(context, exc)
        reply = pb.ModelMetadataResponse(
            name=request.name, versions=versions, platform=platform(model_version)
        )
        for kind in ("inputs", "outputs"):
            for tensor in tensors[kind]:
                getattr(reply, kind).add(
                    name=str(tensor.get("name", "")),
                    datatype=str(tensor.get("datatype", "")),
                    shape=[-1 if size is None else int(size) for size in tensor.get("shape", [])],
                )
        return reply

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        try:
            body, json_length = infer_body(request)
            headers = {
                PROTOCOL_HEADER: V2,
                HEADER_LENGTH: str(json_length),
                "content-type": BINARY,
            }
            wire = WireRequest(str(uuid.uuid4()), headers, [RequestParameter("body", BINARY, body)])
            response = await self.engine.predict(
                request.model_name, request.model_version or None, wire
            )
        except ServingError as exc:
            await abort_with(context, exc)
        if response.status >= 400:
            await context.abort(grpc_code(response.status), _failure_message(response))
        try:
            return infer_response(response, request)
        except (ValueError, KeyError, TypeError, BadRequestException) as exc:
            message = getattr(exc, "message", None) or str(exc)
            await context.abort(grpc.StatusCode.INTERNAL, f"model {request.model_name}: {message}")
