"""KServe v2 gRPC tensors ↔ the protocol-neutral tensor form the handler receives.

ModelInfer's inputs become ``protocol_contract.TensorInferRequest`` tensors: each
``raw_input_contents`` entry is the tensor's data as it came (the wire sends it as its own
ZeroMQ frame), and typed ``contents`` are packed into the same little-endian layout with
``struct``. The handler's output tensors become ``raw_output_contents`` as they came back. No
JSON is built or parsed on the way, and no numpy is needed: tensor bytes are not looked into.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelserve.engine.errors import BadRequestException
from modelserve.grpc.proto import open_inference_pb2 as pb
from modelserve.protocol_contract import (
    BYTES,
    DATATYPES,
    RequestedOutput,
    Tensor,
    TensorInferRequest,
    TensorInferResponse,
    pack_bytes,
    pack_values,
)

_INT64_MAX = 2**63 - 1


# ----- parameters


def _parameter_value(parameter: pb.InferParameter) -> Any:
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def _parameter_values(parameters: Any, where: str) -> dict[str, Any]:
    """A protobuf parameter map as plain values; shared memory (not supported) is refused."""
    if not parameters:  # the usual case: skips the map's Python-level items() view
        return {}
    values = {}
    for key, parameter in parameters.items():
        if key.startswith("shared_memory"):
            raise BadRequestException(f"{where}: shared memory is not supported ({key})")
        values[key] = _parameter_value(parameter)
    return values


def _set_parameters(target: Any, values: dict[str, Any]) -> None:
    """Fill a protobuf parameter map from plain values (nested values travel as JSON text)."""
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


def packed(values: list[Any], datatype: str, where: str) -> bytes:
    """Elements of ``datatype`` as raw bytes; 400 naming ``where`` when they do not fit."""
    try:
        return pack_values(values, datatype)
    except ValueError as exc:
        raise BadRequestException(f"{where}: {exc}") from exc


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
    return packed(list(getattr(tensor.contents, field)), tensor.datatype, where)


# ----- the request and the response


def tensor_request(request: pb.ModelInferRequest) -> TensorInferRequest:
    """The request's tensors in protocol-neutral form; raw contents are not copied again."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequestException(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs"
        )
    inputs = []
    for index, tensor in enumerate(request.inputs):
        where = f'input "{tensor.name}"'
        if raw and tensor.HasField("contents"):
            raise BadRequestException(f"{where}: contents given with raw_input_contents")
        data = raw[index] if raw else _contents_bytes(tensor)
        parameters = _parameter_values(tensor.parameters, where)
        inputs.append(Tensor(tensor.name, tensor.datatype, list(tensor.shape), data, parameters))
    outputs = [
        RequestedOutput(
            output.name, _parameter_values(output.parameters, f'output "{output.name}"')
        )
        for output in request.outputs
    ]
    parameters = _parameter_values(request.parameters, "the request")
    return TensorInferRequest(inputs, request.id, parameters, outputs)


def infer_response(
    answer: TensorInferResponse, request: pb.ModelInferRequest
) -> pb.ModelInferResponse:
    """The handler's output tensors as a ModelInferResponse, their data as raw contents.

    Raises ValueError or TypeError when the handler described a tensor protobuf cannot hold.
    """
    reply = pb.ModelInferResponse(
        model_name=answer.model_name or request.model_name,
        model_version=answer.model_version or request.model_version,
        id=answer.id or request.id,
    )
    _set_parameters(reply.parameters, answer.parameters)
    for tensor in answer.outputs:
        output = reply.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        _set_parameters(output.parameters, tensor.parameters)
    reply.raw_output_contents.extend(tensor.data for tensor in answer.outputs)
    return reply
