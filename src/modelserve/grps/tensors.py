"""grps's GenericTensor ↔ the protocol-neutral ``Tensor`` the handler receives.

A grps tensor names its element type (``dtype``: a DataType name such as ``DT_FLOAT32``, or its
number) and holds its elements, row-major, in the one ``flat_*`` field of that type. An input
becomes a ``Tensor`` of the matching v2 datatype, its elements packed little-endian with
``struct`` (the layout gRPC ModelInfer's raw contents have); an output's raw data is read back
into the flat field of its dtype. The field names and DataType names are the generated
descriptor's. In HTTP JSON a field may also have its lowerCamelCase JSON name, and numbers may
come as proto3 JSON strings ("12", "NaN", "Infinity"), as protobuf's own JSON parser allows.
No numpy: the frontend does not look into tensors beyond their element layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from modelserve.engine.errors import BadRequestException
from modelserve.grps.proto import grps_pb2 as pb
from modelserve.protocol_contract import BYTES, Tensor, pack_values, unpack_values

# grps DataType name → the v2 datatype of the same elements.
V2_DATATYPES = {
    "DT_UINT8": "UINT8",
    "DT_INT8": "INT8",
    "DT_INT16": "INT16",
    "DT_INT32": "INT32",
    "DT_INT64": "INT64",
    "DT_FLOAT16": "FP16",
    "DT_FLOAT32": "FP32",
    "DT_FLOAT64": "FP64",
    "DT_STRING": BYTES,
}
GRPS_DATATYPES = {datatype: dtype for dtype, datatype in V2_DATATYPES.items()}
_FIELDS = pb.GenericTensor.DESCRIPTOR.fields
# DataType name → the GenericTensor field its elements go in (DT_FLOAT32 → flat_float32).
FLAT_FIELDS = {
    f"DT_{field.name.removeprefix('flat_').upper()}": field.name
    for field in _FIELDS
    if field.name.startswith("flat_")
}
_FLAT = frozenset(FLAT_FIELDS.values())
# A GenericTensor's JSON keys: each field's name and its lowerCamelCase JSON name.
_JSON_KEYS = {field.name: field.name for field in _FIELDS} | {
    field.json_name: field.name for field in _FIELDS
}
_FLOATS = ("FP16", "FP32", "FP64")
_UINT32_MAX = 2**32 - 1


def _where(index: int, name: str) -> str:
    return f'tensor {index} ("{name}")' if name else f"tensor {index}"


def json_input(entry: Any, index: int) -> Tensor:
    """One tensor of ``{"gtensors": {"tensors": [...]}}``; 400 naming what is wrong."""
    if not isinstance(entry, dict):
        raise BadRequestException(
            f"tensor {index}: expected an object with dtype, shape and a flat_* field"
        )
    fields = {}
    for key, value in entry.items():
        canonical = _JSON_KEYS.get(key)
        if canonical is None:
            flat = ", ".join(FLAT_FIELDS.values())
            raise BadRequestException(
                f'tensor {index}: unknown field "{key}" (a tensor has name, dtype, shape and '
                f"one of {flat})"
            )
        fields[canonical] = value
    name = fields.get("name") or ""
    if not isinstance(name, str):
        raise BadRequestException(f'tensor {index}: "name" must be a string')
    where = _where(index, name)
    dtype = _json_dtype(fields.get("dtype", 0), where)
    shape = _json_shape(fields.get("shape") or [], where)
    # proto3 JSON: a null field is the field left out.
    flat = {key: value for key, value in fields.items() if key in _FLAT and value is not None}
    for key, values in flat.items():
        if not isinstance(values, list):
            raise BadRequestException(f'{where}: "{key}" must be a list of values')
    return _tensor(name, dtype, shape, flat, where)


def proto_input(message: pb.GenericTensor, index: int) -> Tensor:
    """One tensor of a GrpsMessage's ``gtensors``; 400 naming what is wrong."""
    where = _where(index, message.name)
    dtype = _dtype_name(message.dtype)
    flat = {field.name: value for field, value in message.ListFields() if field.name in _FLAT}
    return _tensor(message.name, dtype, list(message.shape), flat, where)


def ndarray_input(value: Any) -> Tensor:
    """grps's HTTP ``ndarray``: a JSON number or a nested list of numbers, all rows of a level
    the same length, as one unnamed DT_FLOAT32 tensor of that shape."""
    shape: list[int] = []
    level = [value]
    while all(isinstance(item, list) for item in level):
        size = len(level[0])
        if size == 0:
            raise BadRequestException(f"ndarray: an empty list at depth {len(shape)}")
        if any(len(item) != size for item in level):
            raise BadRequestException(
                f"ndarray: the lists at depth {len(shape)} differ in length (not a rectangular "
                "array)"
            )
        shape.append(size)
        level = [element for item in level for element in item]
    if any(isinstance(item, list) for item in level):
        raise BadRequestException(f"ndarray: numbers and lists mixed at depth {len(shape)}")
    return Tensor("", "FP32", shape, _pack(level, "DT_FLOAT32", "ndarray", "ndarray"))


def name_inputs(inputs: list[Tensor], model_inputs: list[str]) -> list[Tensor]:
    """The request's tensors with names: unnamed ones are the model's inputs in order, as in
    grps (one unnamed tensor is the model's first input). They must all have a name or none."""
    named = [bool(tensor.name) for tensor in inputs]
    if all(named) or not model_inputs:
        return inputs
    if any(named):
        raise BadRequestException(
            "the tensors must all have a name or all have none (unnamed tensors are the "
            "model's inputs in order)"
        )
    if len(inputs) > len(model_inputs):
        raise BadRequestException(
            f"{len(inputs)} unnamed tensors, but the model takes {len(model_inputs)} inputs "
            f"({', '.join(model_inputs)})"
        )
    for tensor, name in zip(inputs, model_inputs, strict=False):
        tensor.name = name
    return inputs


def element_values(tensor: Tensor) -> list[Any]:
    """An output's elements as Python values (DT_STRING: text). Raises ValueError when its
    data does not hold whole elements, or DT_STRING elements are not UTF-8 text."""
    values = unpack_values(tensor.data, tensor.datatype)
    if tensor.datatype != BYTES:
        return values
    try:
        return [value.decode() for value in values]
    except UnicodeDecodeError as exc:
        raise ValueError(
            f'output "{tensor.name}": its BYTES elements are not UTF-8 text, which DT_STRING '
            "carries"
        ) from exc


def output_entry(tensor: Tensor, values: list[Any]) -> dict[str, Any]:
    """An output as a GenericTensor's fields (what JSON shows and protobuf's constructor
    takes), ``values`` being its elements as the adapter renders them. Raises ValueError for a
    datatype grps has no DataType for, or elements that do not fill the shape."""
    dtype = GRPS_DATATYPES.get(tensor.datatype)
    if dtype is None:
        raise ValueError(
            f'output "{tensor.name}" is {tensor.datatype}, which grps has no DataType for '
            f"(it has {', '.join(V2_DATATYPES)})"
        )
    count = math.prod(tensor.shape)
    if len(values) != count:
        raise ValueError(
            f'output "{tensor.name}": {len(values)} elements do not fill shape {tensor.shape}'
        )
    return {"name": tensor.name, "dtype": dtype, "shape": tensor.shape, FLAT_FIELDS[dtype]: values}


def _dtype_name(number: int) -> str:
    return pb.DataType.Name(number) if number in pb.DataType.values() else f"DataType {number}"


def _json_dtype(value: Any, where: str) -> str:
    """A JSON ``dtype``: its name, or its number as proto3 JSON allows."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _dtype_name(value)
    if isinstance(value, str):
        return value
    raise BadRequestException(f'{where}: "dtype" must be a DataType name such as DT_FLOAT32')


def _json_shape(value: Any, where: str) -> list[int]:
    if isinstance(value, list):
        try:
            shape = [_whole(size) for size in value]
        except ValueError:
            pass
        else:
            if all(0 <= size <= _UINT32_MAX for size in shape):
                return shape
    raise BadRequestException(f'{where}: "shape" must be a list of non-negative integers')


def _whole(value: Any) -> int:
    """A proto3 JSON integer: a number without a fraction, or the same as a string."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value)
    raise ValueError(value)


def _tensor(
    name: str, dtype: str, shape: list[int], flat: dict[str, Sequence[Any]], where: str
) -> Tensor:
    datatype = V2_DATATYPES.get(dtype)
    if datatype is None:
        raise BadRequestException(f"{where}: dtype {dtype} is not one of {', '.join(V2_DATATYPES)}")
    field = FLAT_FIELDS[dtype]
    others = sorted(set(flat) - {field})
    if others:
        raise BadRequestException(
            f"{where}: {others[0]} holds values, but a {dtype} tensor takes them in {field}"
        )
    values = flat.get(field, [])
    count = math.prod(shape)
    if len(values) != count:
        raise BadRequestException(
            f"{where}: shape {shape} holds {count} elements, but {field} has {len(values)}"
        )
    return Tensor(name, datatype, shape, _pack(values, dtype, where, field))


def _pack(values: Sequence[Any], dtype: str, where: str, field: str) -> bytes:
    """Elements as raw data (``struct`` at C speed); where a value does not fit, proto3 JSON's
    strings are read as numbers and the first value that still does not fit is named."""
    datatype = V2_DATATYPES[dtype]
    if datatype == BYTES:
        for position, value in enumerate(values):
            if not isinstance(value, str):
                raise BadRequestException(f"{where}: {field}[{position}] = {value!r} is not text")
        return pack_values(list(values), BYTES)
    try:
        return pack_values(list(values), datatype)
    except ValueError:
        pass
    read = float if datatype in _FLOATS else _whole
    converted = []
    for position, value in enumerate(values):
        try:
            element = read(value) if isinstance(value, str) else value
            pack_values([element], datatype)
        except ValueError:
            raise BadRequestException(
                f"{where}: {field}[{position}] = {value!r} is not a {dtype} value"
            ) from None
        converted.append(element)
    return pack_values(converted, datatype)
