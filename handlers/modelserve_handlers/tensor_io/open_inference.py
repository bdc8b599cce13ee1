"""The Open Inference Protocol (KServe v2) REST infer request and response, with Triton's
binary tensor data extension.

A request is JSON, or — when ``inference-header-content-length: N`` is sent — N bytes of JSON
followed by the raw data of each input whose ``parameters.binary_data_size`` is set, in input
order. Fixed-size datatypes travel as little-endian row-major values, BOOL as one byte each,
and BYTES as a 4-byte little-endian length before each element. Responses use the same layout
for the outputs asked for in binary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from modelserve.protocol_contract import (
    BINARY_DATA,
    BINARY_DATA_OUTPUT,
    BINARY_DATA_SIZE,
    BYTES,
    HEADER_LENGTH,
    Buffer,
)
from modelserve_handlers.errors import BadInputError

from . import Tensors
from .buffers import (
    array_from_buffer,
    check_outputs,
    element_count,
    object_array,
    raw_data,
    whole_number,
)
from .datatypes import as_bytes, numpy_dtype, output_datatype
from .json_body import parse_json_body

JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"


@dataclass
class RequestedOutput:
    """An output the client named; ``binary`` None: as the request-level default says."""

    name: str
    binary: bool | None = None


@dataclass
class InferRequest:
    """One decoded infer request: its tensors by input name and how to answer it."""

    tensors: dict[str, np.ndarray]
    request_id: Any = None
    outputs: list[RequestedOutput] | None = None  # None: every output of the model
    binary_output: bool = False
    # The request's own "parameters" (binary_data_output among them).
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class InferResponse:
    """An encoded answer; ``json_length`` is set when binary data follows the JSON."""

    body: bytes
    content_type: str
    json_length: int | None = None


def decode_infer_request(payload: Any, header_length: str | None) -> InferRequest:
    """Parse one request: ``payload`` is the body, or the JSON the worker already parsed."""
    binary: Buffer = b""
    if isinstance(payload, str):
        payload = payload.encode()
    if isinstance(payload, bytes | bytearray):
        raw = bytes(payload)
        split = len(raw) if header_length is None else _json_length(header_length, len(raw))
        payload = parse_json_body(raw[:split], "a JSON inference request")
        binary = memoryview(raw)[split:]  # the inputs' data are copied out once, each alone
    if not isinstance(payload, dict):
        raise BadInputError("an inference request must be a JSON object")
    entries = payload.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise BadInputError('"inputs" must be a non-empty list of tensors')
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for entry in entries:
        name, array, offset = _decode_input(entry, binary, offset)
        if name in tensors:
            raise BadInputError(f'input "{name}" is given twice')
        tensors[name] = array
    if offset != len(binary):
        raise BadInputError(
            f"{len(binary) - offset} bytes of binary data follow the inputs' binary_data_size"
        )
    parameters = _parameters(payload, "the request")
    return InferRequest(
        tensors,
        request_id=payload.get("id"),
        outputs=_requested_outputs(payload.get("outputs")),
        binary_output=_flag(parameters, BINARY_DATA_OUTPUT, "the request"),
        parameters=parameters,
    )


def encode_infer_response(
    request: InferRequest, outputs: Tensors, model_name: str, model_version: str | None
) -> InferResponse:
    """The v2 response: JSON, or JSON followed by the outputs asked for in binary."""
    wanted = request.outputs or [RequestedOutput(name) for name in outputs]
    check_outputs([item.name for item in wanted], outputs)
    entries = []
    buffers = []
    for item in wanted:
        binary = request.binary_output if item.binary is None else item.binary
        entry, buffer = _encode_output(item.name, outputs[item.name], binary)
        entries.append(entry)
        if buffer is not None:
            buffers.append(buffer)
    body: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        body["model_version"] = model_version
    if request.request_id is not None:
        body["id"] = request.request_id
    body["outputs"] = entries
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    if not buffers:
        return InferResponse(header, JSON_CONTENT_TYPE)
    return InferResponse(b"".join([header, *buffers]), BINARY_CONTENT_TYPE, len(header))


def _json_length(value: str, body_length: int) -> int:
    length = value.strip()
    if not length.isdigit() or int(length) > body_length:
        raise BadInputError(
            f"{HEADER_LENGTH} must be the byte length of the JSON part of the body "
            f"(at most {body_length}), got {value!r}"
        )
    return int(length)


def _parameters(entry: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = entry.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadInputError(f'{where}: "parameters" must be a JSON object')
    return parameters


def _flag(parameters: dict[str, Any], key: str, where: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise BadInputError(f"{where}: parameter {key} must be true or false")
    return value


def _decode_input(entry: Any, binary: Buffer, offset: int) -> tuple[str, np.ndarray, int]:
    """One input tensor, and where the next input's binary data starts."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise BadInputError('each of "inputs" must be an object with a "name"')
    name = entry["name"]
    where = f'input "{name}"'
    shape, datatype = entry.get("shape"), entry.get("datatype")
    count = element_count(shape, datatype, where)
    size = _parameters(entry, where).get(BINARY_DATA_SIZE)
    if size is not None:
        if not whole_number(size):
            raise BadInputError(f"{where}: binary_data_size must be a non-negative integer")
        if "data" in entry:
            raise BadInputError(f'{where}: "data" and binary_data_size both given')
        if offset + size > len(binary):
            raise BadInputError(
                f"{where}: binary_data_size is {size} but only {len(binary) - offset} bytes "
                "of binary data remain"
            )
        raw = binary[offset : offset + size]
        # A copy: a view would keep the whole body alive (and bytes are read-only).
        array = array_from_buffer(raw, datatype, count, where, BINARY_DATA_SIZE).copy()
        return name, array.reshape(shape), offset + size
    if "data" not in entry:
        raise BadInputError(f'{where}: no "data" and no binary_data_size')
    array = _from_json(entry["data"], datatype, where)
    if array.size != count:
        raise BadInputError(f"{where}: shape {shape} needs {count} values, got {array.size}")
    return name, array.reshape(shape), offset


def _from_json(data: Any, datatype: str, where: str) -> np.ndarray:
    if datatype == BYTES:
        flat = _flatten(data)
        if not all(isinstance(item, str) for item in flat):
            raise BadInputError(f"{where}: BYTES data must be strings")
        return object_array([item.encode() for item in flat])
    try:
        array = np.asarray(data)
    except ValueError as exc:  # numpy refuses ragged nested lists
        raise BadInputError(f"{where}: data rows of different lengths") from exc
    dtype = numpy_dtype(datatype)
    if array.size and array.dtype.kind in "iu" and dtype.kind in "iu":
        # JSON integers into any integer type (UINT8 included) when every value fits.
        limits = np.iinfo(dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise BadInputError(
                f"{where}: values from {array.min()} to {array.max()} do not fit {datatype}"
            )
        return array.astype(dtype, copy=False)
    # Same kind only: 1.5 sent as INT64 is a mistake to report, not a value to truncate.
    if array.size and (
        array.dtype.kind not in "biuf" or not np.can_cast(array.dtype, dtype, "same_kind")
    ):
        raise BadInputError(f"{where}: datatype {datatype}, but the data are {array.dtype}")
    return array.astype(dtype, copy=False)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    return [item for part in data for item in _flatten(part)]


def _requested_outputs(value: Any) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(item, dict) and isinstance(item.get("name"), str) for item in value
    ):
        raise BadInputError('"outputs" must be a list of {"name": ...} objects')
    requested = []
    for item in value:
        where = f'output "{item["name"]}"'
        parameters = _parameters(item, where)
        binary = _flag(parameters, BINARY_DATA, where) if BINARY_DATA in parameters else None
        requested.append(RequestedOutput(item["name"], binary))
    return requested


def _encode_output(
    name: str, array: np.ndarray, binary: bool
) -> tuple[dict[str, Any], Buffer | None]:
    datatype = output_datatype(name, array)
    entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if binary:
        buffer = raw_data(array, datatype)
        entry["parameters"] = {BINARY_DATA_SIZE: len(buffer)}
        return entry, buffer
    flat = np.ascontiguousarray(array).ravel()
    if datatype == BYTES:
        entry["data"] = [_text(item, name) for item in flat.tolist()]
    else:
        entry["data"] = flat
    return entry, None


def _text(item: Any, name: str) -> str:
    if isinstance(item, str):
        return item
    try:
        return as_bytes(item).decode()
    except UnicodeDecodeError as exc:
        # JSON strings are text: raw bytes can only travel in binary.
        raise BadInputError(
            f'output "{name}" holds bytes that are not UTF-8 text: ask for it with '
            '"parameters": {"binary_data": true}'
        ) from exc
