"""Raw tensor data ↔ numpy arrays, for every request form that carries tensors as bytes: the
v2 REST binary extension and the protocol-neutral tensor requests of gRPC.

Fixed-size datatypes are little-endian row-major values (BOOL one byte each); BYTES elements
each follow a 4-byte little-endian length (``protocol_contract.pack_bytes``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modelserve.protocol_contract import (
    BYTES,
    TENSOR_DATATYPES,
    Buffer,
    BytesFormatError,
    pack_bytes,
    unpack_bytes,
)
from modelserve_handlers.errors import BadInputError

from . import Tensors
from .datatypes import OBJECT, as_bytes, numpy_dtype


def element_count(shape: Any, datatype: Any, where: str) -> int:
    """How many elements a tensor of ``shape`` holds, once shape and datatype are known good."""
    if not isinstance(shape, list) or not all(map(whole_number, shape)):
        raise BadInputError(f'{where}: "shape" must be a list of non-negative integers')
    if datatype not in TENSOR_DATATYPES:
        raise BadInputError(
            f"{where}: unsupported datatype {datatype!r} (supported: {', '.join(TENSOR_DATATYPES)})"
        )
    return math.prod(shape)


def whole_number(value: Any) -> bool:
    """Whether ``value`` is a non-negative integer (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def array_from_buffer(raw: Buffer, datatype: str, count: int, where: str, size: str) -> np.ndarray:
    """``count`` elements of ``datatype`` as a flat array; a view of ``raw`` where the layout
    allows (fixed-size datatypes on a little-endian machine), so it is as writable as ``raw``.

    ``size`` names where the data's length came from, for the error when it does not match.
    """
    if datatype == BYTES:
        return object_array(_split_bytes(bytes(raw), count, where))
    dtype = numpy_dtype(datatype).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise BadInputError(
            f"{where}: {count} {datatype} values take {count * dtype.itemsize} bytes, "
            f"{size} is {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)


def _split_bytes(raw: bytes, count: int, where: str) -> list[bytes]:
    try:
        items = unpack_bytes(raw)
    except BytesFormatError as exc:
        raise BadInputError(f"{where}: {exc}") from None
    if len(items) != count:
        raise BadInputError(f"{where}: the shape needs {count} BYTES elements, got {len(items)}")
    return items


def object_array(items: list[bytes]) -> np.ndarray:
    """BYTES elements as a flat object array."""
    # Built element by element: np.array() would turn equal-length items into a 2-D array.
    array = np.empty(len(items), dtype=OBJECT)
    array[:] = items
    return array


def raw_data(array: np.ndarray, datatype: str) -> Buffer:
    """An output's data in the binary layout: a view of ``array`` where it already has it."""
    flat = np.ascontiguousarray(array).reshape(-1)
    if datatype == BYTES:
        return pack_bytes(as_bytes(item) for item in flat.tolist())
    # One byte per item, so that len() is the size whoever reads it.
    return memoryview(flat.astype(flat.dtype.newbyteorder("<"), copy=False).view(np.uint8))


def check_outputs(names: list[str], outputs: Tensors) -> None:
    """Refuse a request that asks for an output the model does not have."""
    unknown = [name for name in names if name not in outputs]
    if unknown:
        raise BadInputError(
            f'unknown output "{unknown[0]}" (the model has {", ".join(outputs) or "none"})'
        )
