"""KServe v2 REST infer bodies ↔ protocol-neutral tensors, for the requests the frontend answers
itself (pipelines: no handler reads their body).

A request's inputs come as JSON ``data`` (packed little-endian with ``struct``, BYTES as UTF-8
text) or as binary data after the JSON (``inference-header-content-length``, each input's
``binary_data_size``), as the tensor handler reads them in a worker. Outputs are answered as
JSON ``data``, or as binary data where the request asks (``binary_data_output``, an output's
``binary_data``) or where BYTES elements are not UTF-8 text. No numpy: tensor bytes are only
packed and unpacked.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelserve.engine.errors import BadRequestException
from modelserve.protocol_contract import (
    BINARY_DATA,
    BINARY_DATA_OUTPUT,
    BINARY_DATA_SIZE,
    BYTES,
    DATATYPES,
    RequestedOutput,
    Tensor,
    TensorInferRequest,
    TensorInferResponse,
    pack_values,
    unpack_values,
)


@dataclass(frozen=True)
class ShortFloat:
    """A float datatype narrower than Python's float: its element layout, the most decimal
    digits that every decimal of which reads back as itself (C's ``FLT_DIG``: an element's
    shortest decimal of at most that many digits is its rounding to that many; not for
    subnormal elements), the digits that always read back as the same element
    (``FLT_DECIMAL_DIG``) and its smallest normal value."""

    element: struct.Struct
    exact_digits: int
    enough_digits: int
    smallest_normal: float


SHORT_FLOATS = {
    "FP32": ShortFloat(struct.Struct("<f"), 6, 9, 2.0**-126),
    "FP16": ShortFloat(struct.Struct("<e"), 3, 5, 2.0**-14),
}


@dataclass
class InferBody:
    """A decoded request, and how its outputs are to be answered."""

    tensors: TensorInferRequest
    binary_output: bool = False
    # Output name → binary_data, for the outputs that say.
    binary: dict[str, bool] = field(default_factory=dict)


@dataclass
class EncodedBody:
    """An encoded answer; ``json_length`` is set when binary data follows the JSON."""

    body: bytes
    json_length: int | None = None


def decode_infer_body(body: bytes, header_length: str | None) -> InferBody:
    """The request's inputs, requested outputs, id and parameters; 400 naming what is wrong."""
    split = len(body)
    if header_length is not None:
        if not header_length.strip().isdigit() or int(header_length) > len(body):
            raise BadRequestException(f"inference-header-content-length {header_length!r} is wrong")
        split = int(header_length)
    try:
        document = orjson.loads(body[:split])
    except orjson.JSONDecodeError as exc:
        raise BadRequestException(f"the request body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequestException("an inference request must be a JSON object")
    entries = document.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise BadRequestException('"inputs" must be a non-empty list of tensors')
    binary = memoryview(body)[split:]
    inputs = []
    offset = 0
    for entry in entries:
        tensor, offset = _input(entry, binary, offset)
        inputs.append(tensor)
    if offset != len(binary):
        raise BadRequestException(
            f"{len(binary) - offset} bytes of binary data follow the inputs' binary_data_size"
        )
    parameters = _parameters(document, "the request")
    binary_output = bool(parameters.pop(BINARY_DATA_OUTPUT, False))
    outputs, choices = _requested(document.get("outputs"))
    request_id = document.get("id")
    identifier = "" if request_id is None else str(request_id)
    return InferBody(
        TensorInferRequest(inputs, identifier, parameters, outputs), binary_output, choices
    )


def encode_infer_body(answer: TensorInferResponse, asked: InferBody) -> EncodedBody:
    """The v2 response: JSON, or JSON followed by the binary outputs."""
    entries = []
    buffers = []
    for tensor in answer.outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": tensor.shape,
        }
        values = None
        if not asked.binary.get(tensor.name, asked.binary_output):
            values = json_values(tensor)
        if values is None:
            entry["parameters"] = {BINARY_DATA_SIZE: len(tensor.data)}
            buffers.append(bytes(tensor.data))
        else:
            entry["data"] = values
        entries.append(entry)
    document: dict[str, Any] = {"model_name": answer.model_name}
    if answer.model_version:
        document["model_version"] = answer.model_version
    if answer.id:
        document["id"] = answer.id
    document["outputs"] = entries
    header = orjson.dumps(document)
    if not buffers:
        return EncodedBody(header)
    return EncodedBody(header + b"".join(buffers), len(header))


def _input(entry: Any, binary: memoryview, offset: int) -> tuple[Tensor, int]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise BadRequestException('each input must be an object with a "name"')
    name = entry["name"]
    where = f'input "{name}"'
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape
    ):
        raise BadRequestException(f'{where}: "shape" must be a list of non-negative integers')
    datatype = entry.get("datatype")
    if datatype not in DATATYPES:
        raise BadRequestException(f"{where}: unknown datatype {datatype!r}")
    parameters = _parameters(entry, where)
    size = parameters.pop(BINARY_DATA_SIZE, None)
    try:
        if size is not None:
            if not isinstance(size, int) or offset + size > len(binary):
                raise BadRequestException(f"{where}: binary_data_size runs past the binary data")
            data = bytes(binary[offset : offset + size])
            offset += size
        else:
            data = pack_values(_flatten(entry.get("data"), where), datatype)
        elements = _element_count(data, datatype)
    except ValueError as exc:
        raise BadRequestException(f"{where}: {exc}") from exc
    count = math.prod(shape)
    if elements != count:
        raise BadRequestException(f"{where}: shape {shape} needs {count} elements, got {elements}")
    return Tensor(name, datatype, shape, data, parameters), offset


def _element_count(data: bytes, datatype: str) -> int:
    """How many elements raw data holds (ValueError when not whole ones)."""
    width = DATATYPES[datatype].size
    if width is None:  # BYTES: each element says its length
        return len(unpack_values(data, BYTES))
    if len(data) % width:
        raise ValueError(f"{len(data)} bytes are not whole {datatype} elements")
    return len(data) // width


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise BadRequestException(f'{where}: "data" must be a list (or send binary data)')
    flat: list[Any] = []
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(reversed(item))
        else:
            flat.append(item)
    return flat


def _parameters(entry: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = entry.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequestException(f'{where}: "parameters" must be an object')
    return dict(parameters)


def _requested(value: Any) -> tuple[list[RequestedOutput], dict[str, bool]]:
    if value is None:
        return [], {}
    if not isinstance(value, list):
        raise BadRequestException('"outputs" must be a list of {"name": ...} objects')
    outputs = []
    choices = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequestException('each requested output must be an object with a "name"')
        parameters = _parameters(item, f'output "{item["name"]}"')
        if BINARY_DATA in parameters:
            choices[item["name"]] = bool(parameters.pop(BINARY_DATA))
        outputs.append(RequestedOutput(item["name"], parameters))
    return outputs, choices


def json_values(tensor: Tensor) -> list[Any] | None:
    """An output's elements for JSON ``data``; None where only binary data can carry them
    (BYTES that are not UTF-8, BF16)."""
    try:
        values = unpack_values(tensor.data, tensor.datatype)
    except ValueError:
        return None
    if tensor.datatype in SHORT_FLOATS:
        return [_shortest(value, SHORT_FLOATS[tensor.datatype]) for value in values]
    if tensor.datatype != BYTES:
        return values
    try:
        return [value.decode() for value in values]
    except UnicodeDecodeError:
        return None


def _shortest(value: float, kind: ShortFloat) -> float:
    """The shortest decimal that reads back as the same FP32 / FP16 element, as numpy writes
    it (Python's repr of the widened double would print digits the element does not have)."""
    if not math.isfinite(value):
        return value
    exact = kind.element.pack(value)

    def fits(digits: int) -> bool:
        try:
            return kind.element.pack(float(f"{value:.{digits}g}")) == exact
        except OverflowError:  # rounded up past the element's largest value
            return False

    # More digits are never farther from the value, so the digit counts that read back form a
    # run up to enough_digits, found by bisection. Not at a power of two: the element's
    # rounding interval is narrower below it than above, so a shorter decimal may fit where a
    # longer one, on the narrow side, does not; those are tried one count after another.
    # Subnormal elements are coarser than their digits: those start from one digit.
    fewest = kind.exact_digits if abs(value) >= kind.smallest_normal else 1
    most = kind.enough_digits
    if math.frexp(value)[0] == 0.5:
        return float(f"{value:.{next(filter(fits, range(fewest, most)), most)}g}")
    while fewest < most:
        middle = (fewest + most) // 2
        if fits(middle):
            most = middle
        else:
            fewest = middle + 1
    return float(f"{value:.{fewest}g}")
