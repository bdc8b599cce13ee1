"""TensorFlow's ``TensorProto`` ↔ the protocol-neutral tensor form the handler receives.

A Predict input becomes a ``protocol_contract.Tensor`` with the same raw little-endian layout
gRPC ModelInfer's inputs have: ``tensor_content`` as it came, typed values (``float_val`` …)
packed with ``struct``. Outputs go back in the typed fields, as TF Serving answers by default,
so clients that read ``outputs["y"].float_val`` and those that call ``tf.make_ndarray`` both
work. No numpy: the frontend does not look into tensors beyond their element layout.
"""

from __future__ import annotations

import math
from typing import Any

from modelserve.engine.errors import BadRequestException
from modelserve.grpc.proto import tf_serving_pb2 as pb
from modelserve.grpc.v2_tensors import packed
from modelserve.protocol_contract import (
    BYTES,
    DATATYPES,
    Tensor,
    pack_bytes,
    unpack_values,
)

# v2 datatype by TensorFlow DataType name (DT_FLOAT → FP32).
BY_TF_NAME = {row.tf_name: name for name, row in DATATYPES.items()}
# The TensorProto field that holds each datatype's elements when not in tensor_content.
# FP16 and BF16 travel as their 16 bits in half_val.
VALUE_FIELDS = {
    "FP32": "float_val",
    "FP64": "double_val",
    "INT8": "int_val",
    "INT16": "int_val",
    "INT32": "int_val",
    "UINT8": "int_val",
    "UINT16": "int_val",
    "INT64": "int64_val",
    "UINT32": "uint32_val",
    "UINT64": "uint64_val",
    "BOOL": "bool_val",
    "FP16": "half_val",
    "BF16": "half_val",
    BYTES: "string_val",
}


def datatype_of(dtype: int, where: str) -> str:
    """The v2 datatype of a TensorFlow DataType number; 400 for one not served."""
    name = pb.DataType.Name(dtype) if dtype in pb.DataType.values() else f"DataType {dtype}"
    datatype = BY_TF_NAME.get(name)
    if datatype is None:
        raise BadRequestException(f"{where}: dtype {name} is not supported")
    return datatype


def tf_dtype(datatype: str) -> int:
    """The TensorFlow DataType number of a v2 datatype (DT_INVALID when it has none)."""
    row = DATATYPES.get(datatype)
    return pb.DataType.Value(row.tf_name) if row is not None else pb.DT_INVALID


def _raw_values(values: list[Any], datatype: str, where: str) -> bytes:
    """Typed values as raw bytes (FP16 / BF16: their bits as given)."""
    if datatype == BYTES:
        return pack_bytes(values)
    if datatype in ("FP16", "BF16"):
        return packed(values, "UINT16", where)
    return packed(values, datatype, where)


def input_tensor(name: str, proto: pb.TensorProto) -> Tensor:
    """One Predict input as a neutral tensor. A single typed value fills the whole shape, as
    TensorFlow's ``make_tensor_proto`` of a scalar does; any other count must match it."""
    where = f'input "{name}"'
    datatype = datatype_of(proto.dtype, where)
    if proto.tensor_shape.unknown_rank:
        raise BadRequestException(f"{where}: its shape has unknown rank")
    shape = [dim.size for dim in proto.tensor_shape.dim]
    if any(size < 0 for size in shape):
        raise BadRequestException(f"{where}: shape {shape} has a negative size")
    if proto.tensor_content:
        if datatype == BYTES:
            raise BadRequestException(f"{where}: DT_STRING values go in string_val")
        return Tensor(name, datatype, shape, proto.tensor_content)
    values = list(getattr(proto, VALUE_FIELDS[datatype]))
    count = math.prod(shape)
    if len(values) == 1 and count != 1:
        values *= count
    if len(values) != count:
        raise BadRequestException(
            f"{where}: {len(values)} values for shape {shape} ({count} elements)"
        )
    return Tensor(name, datatype, shape, _raw_values(values, datatype, where))


def output_proto(tensor: Tensor) -> pb.TensorProto:
    """One output tensor in the typed field of its dtype. Raises ValueError when its data
    does not hold its shape's elements."""
    proto = pb.TensorProto(dtype=tf_dtype(tensor.datatype))
    proto.tensor_shape.dim.extend(pb.TensorShapeProto.Dim(size=size) for size in tensor.shape)
    field = VALUE_FIELDS.get(tensor.datatype)
    if field is None:
        raise ValueError(f'output "{tensor.name}": datatype {tensor.datatype} has no TF dtype')
    # FP16 and BF16 travel as their bits: read them as 16-bit unsigned integers.
    layout = "UINT16" if field == "half_val" else tensor.datatype
    try:
        values = unpack_values(tensor.data, layout)
    except ValueError as exc:
        raise ValueError(f'output "{tensor.name}": {exc}') from exc
    count = math.prod(tensor.shape)
    if len(values) != count:
        raise ValueError(
            f'output "{tensor.name}": {len(values)} elements do not fill shape {tensor.shape}'
        )
    getattr(proto, field).extend(values)
    return proto
