"""The protocol contract: what the frontend and the handlers must agree on, in one place.

Both sides import this module: the frontend (``modelserve.api``, ``modelserve.grpc``,
``modelserve.engine``, ``modelserve.quick_deploy``) and ``modelserve_handlers``, which imports
nothing else of ``modelserve``. So it is a leaf: standard library only, no numpy, no grpc.

It holds the KServe v2 datatypes with their numpy, ``struct``, TensorFlow and gRPC
``InferTensorContents`` names; the request header that tells a handler which protocol a body
is in; the binary tensor data extension's header and parameters; the BYTES element layout;
the tensor handler's backends as v2 platform names; the model files it recognises; how a
Paddle Serving op request and its answer look; and the protocol-neutral tensor request and
response that gRPC ModelInfer hands a handler.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple


class Datatype(NamedTuple):
    """One KServe v2 tensor datatype and its names elsewhere."""

    name: str
    # The numpy dtype name; None where numpy has no such type (BF16). BYTES elements are
    # numpy objects (one ``bytes`` each), as fixed-width ``S`` dtypes would pad them.
    numpy_name: str | None
    # One element as a ``struct`` format character (little-endian with "<"); None for BYTES,
    # whose elements vary in length, and BF16, which ``struct`` cannot read.
    struct_format: str | None
    # Bytes per element in binary tensor data; None for BYTES (length-prefixed elements).
    size: int | None
    # TensorFlow's DataType enum name, as TF Serving's metadata writes it.
    tf_name: str
    # The ``InferTensorContents`` field of the v2 gRPC protocol; None where it has none.
    contents_field: str | None


BYTES = "BYTES"
DATATYPES: dict[str, Datatype] = {
    row.name: row
    for row in (
        Datatype("BOOL", "bool", "?", 1, "DT_BOOL", "bool_contents"),
        Datatype("UINT8", "uint8", "B", 1, "DT_UINT8", "uint_contents"),
        Datatype("UINT16", "uint16", "H", 2, "DT_UINT16", "uint_contents"),
        Datatype("UINT32", "uint32", "I", 4, "DT_UINT32", "uint_contents"),
        Datatype("UINT64", "uint64", "Q", 8, "DT_UINT64", "uint64_contents"),
        Datatype("INT8", "int8", "b", 1, "DT_INT8", "int_contents"),
        Datatype("INT16", "int16", "h", 2, "DT_INT16", "int_contents"),
        Datatype("INT32", "int32", "i", 4, "DT_INT32", "int_contents"),
        Datatype("INT64", "int64", "q", 8, "DT_INT64", "int64_contents"),
        Datatype("FP16", "float16", "e", 2, "DT_HALF", None),
        Datatype("BF16", None, None, 2, "DT_BFLOAT16", None),
        Datatype("FP32", "float32", "f", 4, "DT_FLOAT", "fp32_contents"),
        Datatype("FP64", "float64", "d", 8, "DT_DOUBLE", "fp64_contents"),
        Datatype(BYTES, "object", None, None, "DT_STRING", "bytes_contents"),
    )
}
# The datatypes the tensor handler decodes and a model config may declare: those numpy holds.
TENSOR_DATATYPES: tuple[str, ...] = tuple(
    name for name, row in DATATYPES.items() if row.numpy_name is not None
)

# The request header that tells the handler which protocol the body is in; the frontend sets
# it on its protocol routes (a client-sent value is overwritten).
PROTOCOL_HEADER = "modelserve-protocol"
V2 = "v2"
TF_SERVING = "tfserving"
# KServe's generate extension (/v2/models/{m}/generate[_stream]): the body is its JSON object.
GENERATE = "generate"

# A stateful model's request headers, TorchServe's names (a TorchServe handler reads the id
# with ``context.get_sequence_id``): the sequence, and "true" on its first and last request.
# The frontend sets them on every request of a sequence, whichever protocol named it.
SEQUENCE_ID_HEADER = "ts_request_sequence_id"
SEQUENCE_START_HEADER = "ts_request_sequence_start"
SEQUENCE_END_HEADER = "ts_request_sequence_end"
# Triton's request parameters naming a sequence (KServe v2 REST and gRPC).
SEQUENCE_ID_PARAMETER = "sequence_id"
SEQUENCE_START_PARAMETER = "sequence_start"
SEQUENCE_END_PARAMETER = "sequence_end"
SEQUENCE_PARAMETERS = (SEQUENCE_ID_PARAMETER, SEQUENCE_START_PARAMETER, SEQUENCE_END_PARAMETER)

# The binary tensor data extension: the byte length of the JSON part that starts the body,
# and the parameters that say which tensors travel as raw bytes after it.
HEADER_LENGTH = "inference-header-content-length"
BINARY_DATA_SIZE = "binary_data_size"  # an input's or output's byte count in the binary part
BINARY_DATA_OUTPUT = "binary_data_output"  # the request's default for its outputs
BINARY_DATA = "binary_data"  # one requested output's choice

# Each BYTES element is a 4-byte little-endian length, then the element's bytes.
BYTES_LENGTH = struct.Struct("<I")


class BytesFormatError(ValueError):
    """Binary BYTES data that is not a sequence of length-prefixed elements."""


def pack_bytes(items: Iterable[bytes]) -> bytes:
    """BYTES elements as binary tensor data."""
    parts = []
    for item in items:
        parts += [BYTES_LENGTH.pack(len(item)), item]
    return b"".join(parts)


def unpack_bytes(raw: bytes) -> list[bytes]:
    """The elements of binary BYTES data; BytesFormatError where it is cut short."""
    items = []
    offset = 0
    while offset < len(raw):
        if offset + BYTES_LENGTH.size > len(raw):
            raise BytesFormatError("BYTES data end inside an element's length prefix")
        (length,) = BYTES_LENGTH.unpack_from(raw, offset)
        offset += BYTES_LENGTH.size
        if offset + length > len(raw):
            raise BytesFormatError(
                "a BYTES element runs past the end of the data (its length prefix says "
                f"{length} bytes, {len(raw) - offset} remain)"
            )
        items.append(raw[offset : offset + length])
        offset += length
    return items


def pack_values(values: list[Any], datatype: str) -> bytes:
    """Elements as raw tensor data (BYTES: text as UTF-8). ValueError when ``datatype`` cannot
    be packed from values (BF16) or a value does not fit it."""
    if datatype == BYTES:
        try:
            return pack_bytes(v.encode() if isinstance(v, str) else bytes(v) for v in values)
        except TypeError as exc:
            raise ValueError("BYTES elements must be text or bytes") from exc
    row = DATATYPES.get(datatype)
    if row is None or row.struct_format is None:
        raise ValueError(f"datatype {datatype!r} cannot be sent as values")
    try:
        return struct.pack(f"<{len(values)}{row.struct_format}", *values)
    except (struct.error, TypeError, OverflowError) as exc:  # Overflow: too large for FP32/FP16
        raise ValueError(f"values do not fit datatype {datatype}") from exc


def unpack_values(data: Buffer, datatype: str) -> list[Any]:
    """Raw tensor data as a flat list of elements (BYTES: ``bytes``). ValueError when the
    data does not hold whole elements of ``datatype``, or it cannot be read (BF16)."""
    if datatype == BYTES:
        try:
            return list(unpack_bytes(bytes(data)))
        except BytesFormatError as exc:
            raise ValueError(str(exc)) from exc
    row = DATATYPES.get(datatype)
    if row is None or row.struct_format is None or row.size is None:
        raise ValueError(f"datatype {datatype!r} cannot be read as values")
    if len(data) % row.size:
        raise ValueError(f"{len(data)} bytes are not whole {datatype} elements")
    return list(struct.unpack(f"<{len(data) // row.size}{row.struct_format}", data))


# The tensor handler's backends as v2 ``platform`` names (Triton's where Triton has one).
PLATFORMS = {
    "torchscript": "pytorch_libtorch",
    "eager": "pytorch",
    "onnx": "onnxruntime_onnx",
    "tensorflow": "tensorflow_savedmodel",
    "tensorrt": "tensorrt_plan",
    "paddle": "paddle_inference",
}

# The model files the tensor handler recognises (``modelserve serve`` takes the same).
TORCHSCRIPT_SUFFIXES = (".pt", ".pth")
ONNX_SUFFIXES = (".onnx",)
TENSORRT_SUFFIXES = (".engine", ".plan", ".trt")
SAVED_MODEL_FILE = "saved_model.pb"  # what makes a directory a TensorFlow SavedModel
# A Paddle inference model: its program (.pdmodel; Paddle 3 writes .json) and, beside it
# under the same stem, its parameters.
PADDLE_SUFFIXES = (".pdmodel", ".json")
PADDLE_PARAMS_SUFFIX = ".pdiparams"


def is_paddle_model(path: Path) -> bool:
    """Whether ``path`` is a Paddle inference model's program, its parameters beside it."""
    return (
        path.suffix.lower() in PADDLE_SUFFIXES and path.with_suffix(PADDLE_PARAMS_SUFFIX).is_file()
    )


# ----- Paddle Serving pipeline ops (the frontend's paddle runner and the paddle_op handler)

# An op request's inputs are parameters named after the op each comes from: the client's
# ``{key: value}`` as JSON from the request op (Paddle's name for it), the output of any other
# op as that op's worker pickled it (the frontend passes it on unread).
PADDLE_REQUEST_OP = "@DAGExecutor"
PADDLE_OP_OUTPUT = "application/x-modelserve-paddle-op"
# Request headers: Paddle's per-request ids, handed to preprocess and postprocess.
PADDLE_LOG_ID = "paddle-logid"
PADDLE_DATA_ID = "paddle-data-id"
# The section of an op's model config that names its service file, op and knobs.
PADDLE_SETTINGS = "paddle"


class PaddleErrors(enum.IntEnum):
    """Paddle Serving's pipeline ``err_no`` values (its CustomExceptionCode) that modelserve
    answers; an op's own product codes pass through as it returns them."""

    OK = 0
    NO_SERVICE = 3002
    INPUT_PARAMS_ERROR = 5000
    TIMEOUT = 6000
    TYPE_ERROR = 7000
    RPC_PACKAGE_ERROR = 8000
    UNKNOW = 10000  # Paddle's spelling


# ----- tensors in protocol-neutral form
#
# gRPC ModelInfer reaches the handler as a TensorInferRequest, not as a REST body: each input's
# raw data travels as its own ZeroMQ frame, so ``raw_input_contents`` bytes are never copied
# into a JSON document and back. It is the value of this key in the handler's ``data`` row
# (a gRPC row has no other key); a handler answers it with a TensorInferResponse, whose output
# buffers become ``raw_output_contents`` as they are.
TENSOR_REQUEST = "tensor_request"

# Raw tensor data: little-endian, row-major, ``DATATYPES[datatype].size`` bytes per element
# (BYTES: ``pack_bytes`` elements); one byte per item, so ``len()`` is its size in bytes.
Buffer = bytes | bytearray | memoryview


@dataclass(slots=True)
class Tensor:
    """One named tensor: its v2 datatype, shape and raw data."""

    name: str
    datatype: str
    shape: list[int]
    data: Buffer
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RequestedOutput:
    """An output the client asked for by name."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TensorInferRequest:
    """A v2 infer request in protocol-neutral form. ``id`` is the client's ("" when none);
    ``outputs`` empty means every output of the model."""

    inputs: list[Tensor]
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] = field(default_factory=list)


@dataclass(slots=True)
class TensorInferResponse:
    """A handler's answer to a TensorInferRequest; empty strings are "not said" (the frontend
    fills in the request's model name, version and id)."""

    outputs: list[Tensor]
    model_name: str = ""
    model_version: str = ""
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
