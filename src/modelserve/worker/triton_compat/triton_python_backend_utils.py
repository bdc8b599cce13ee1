"""Triton's ``triton_python_backend_utils``, for Triton Python-backend models served by modelserve.

A Triton ``model.py`` does ``import triton_python_backend_utils as pb_utils`` and uses the
names below with the signatures and behaviour that Triton's Python backend documents. In
Triton, part of this module is C++ (tensors, requests, responses, errors, the logger); here
all of it is Python on numpy. Tensors always live in host memory: ``is_cpu()`` is True, and a
GPU tensor handed to ``Tensor.from_dlpack`` is copied to the host (through PyTorch).

This file is loaded as the top-level module ``triton_python_backend_utils`` from user code, so
it imports only the standard library and numpy; PyTorch is imported lazily, and only for the
DLPack cases numpy cannot take (bfloat16, GPU memory). It imports nothing of modelserve.

What modelserve's worker calls (models never need these):

* ``InferenceRequest.from_client(...)`` builds the request for a client's inference;
  ``request.mark_cancelled()`` makes ``is_cancelled()`` true.
* A response the model sends through ``request.get_response_sender()`` is kept by the sender:
  ``sender.response()`` and ``sender.is_closed()`` (the FINAL flag arrived). Triton counts a
  response returned from ``execute`` as ``send(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL)``
  on the same sender; doing exactly that for each returned response applies Triton's rules
  (one response per request, no response after FINAL) and prunes unrequested outputs.
* A decoupled model's request (``from_client(..., decoupled=True)``) may get any number of
  responses, from any thread, until the FINAL flag: its sender hands each to the callback
  given to ``sender.deliver_to(callback)`` as ``callback(response_or_None, final)``, in order.
* ``set_bls_executor(executor)`` installs what runs business logic scripting (BLS) requests
  and the model loading API; see ``BLSExecutor``.
"""

from __future__ import annotations

import asyncio
import ctypes
import enum
import json
import logging
import struct
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

# ---------------------------------------------------------------------------------------------
# Constants, with the values of Triton's C API (tritonserver.h)
# ---------------------------------------------------------------------------------------------

TRITONSERVER_REQUEST_FLAG_SEQUENCE_START = 1
TRITONSERVER_REQUEST_FLAG_SEQUENCE_END = 2
TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
TRITONSERVER_REQUEST_RELEASE_ALL = 1
TRITONSERVER_REQUEST_RELEASE_RESCHEDULE = 2

# TRITONSERVER_DataType, the numbers Tensor.triton_dtype() returns. Triton's module does not
# export these names; they are here so that code can compare triton_dtype() with a name.
TRITONSERVER_TYPE_INVALID = 0
TRITONSERVER_TYPE_BOOL = 1
TRITONSERVER_TYPE_UINT8 = 2
TRITONSERVER_TYPE_UINT16 = 3
TRITONSERVER_TYPE_UINT32 = 4
TRITONSERVER_TYPE_UINT64 = 5
TRITONSERVER_TYPE_INT8 = 6
TRITONSERVER_TYPE_INT16 = 7
TRITONSERVER_TYPE_INT32 = 8
TRITONSERVER_TYPE_INT64 = 9
TRITONSERVER_TYPE_FP16 = 10
TRITONSERVER_TYPE_FP32 = 11
TRITONSERVER_TYPE_FP64 = 12
TRITONSERVER_TYPE_BYTES = 13
TRITONSERVER_TYPE_BF16 = 14


class _MemoryType(enum.IntEnum):
    """Where a BLS caller prefers its output tensors (Triton's PreferredMemory.MemoryType)."""

    GPU = 0
    CPU = 1
    DEFAULT = 2


TRITONSERVER_MEMORY_GPU = _MemoryType.GPU
TRITONSERVER_MEMORY_CPU = _MemoryType.CPU

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class TritonModelException(Exception):
    """Raised by this module where Triton raises, and by models to fail initialize, execute or
    finalize."""


class _ErrorCode(enum.IntEnum):
    """TRITONSERVER_Error_Code."""

    UNKNOWN = 0
    INTERNAL = 1
    NOT_FOUND = 2
    INVALID_ARG = 3
    UNAVAILABLE = 4
    UNSUPPORTED = 5
    ALREADY_EXISTS = 6
    CANCELLED = 7


class TritonError:
    """The error of one response: a message and a code (``TritonError.INTERNAL`` unless given).

    Not an exception: it travels in ``InferenceResponse(error=...)``."""

    UNKNOWN = _ErrorCode.UNKNOWN
    INTERNAL = _ErrorCode.INTERNAL
    NOT_FOUND = _ErrorCode.NOT_FOUND
    INVALID_ARG = _ErrorCode.INVALID_ARG
    UNAVAILABLE = _ErrorCode.UNAVAILABLE
    UNSUPPORTED = _ErrorCode.UNSUPPORTED
    ALREADY_EXISTS = _ErrorCode.ALREADY_EXISTS
    CANCELLED = _ErrorCode.CANCELLED

    def __init__(self, message: str, code: int = _ErrorCode.INTERNAL) -> None:
        if not isinstance(message, str):
            raise TypeError(f"TritonError message must be a str, got {type(message)}")
        self._message = message
        self._code = _ErrorCode(code)  # ValueError for a number that is no error code

    def message(self) -> str:
        return self._message

    def code(self) -> _ErrorCode:
        return self._code

    def __repr__(self) -> str:
        return f"TritonError({self._message!r}, TritonError.{self._code.name})"


# ---------------------------------------------------------------------------------------------
# Data types
# ---------------------------------------------------------------------------------------------

# Model configuration data_type strings to numpy types; TYPE_BOOL maps to Python's bool, as in
# Triton.
TRITON_STRING_TO_NUMPY: dict[str, type] = {
    "TYPE_BOOL": bool,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}

_TRITON_TO_NUMPY: dict[int, type] = {
    TRITONSERVER_TYPE_BOOL: np.bool_,
    TRITONSERVER_TYPE_UINT8: np.uint8,
    TRITONSERVER_TYPE_UINT16: np.uint16,
    TRITONSERVER_TYPE_UINT32: np.uint32,
    TRITONSERVER_TYPE_UINT64: np.uint64,
    TRITONSERVER_TYPE_INT8: np.int8,
    TRITONSERVER_TYPE_INT16: np.int16,
    TRITONSERVER_TYPE_INT32: np.int32,
    TRITONSERVER_TYPE_INT64: np.int64,
    TRITONSERVER_TYPE_FP16: np.float16,
    TRITONSERVER_TYPE_FP32: np.float32,
    TRITONSERVER_TYPE_FP64: np.float64,
    TRITONSERVER_TYPE_BYTES: np.object_,
}
_NUMPY_TO_TRITON: dict[type, int] = {
    numpy_type: triton_type
    for triton_type, numpy_type in _TRITON_TO_NUMPY.items()
    if numpy_type is not np.object_
}


def triton_string_to_numpy(triton_type_string: str) -> type:
    """The numpy type of a configuration data_type such as ``"TYPE_FP32"``; KeyError for an
    unknown one."""
    return TRITON_STRING_TO_NUMPY[triton_type_string]


def triton_to_numpy_type(data_type: int) -> type | None:
    """The numpy type of a TRITONSERVER_DataType number, None for one numpy cannot hold."""
    return _TRITON_TO_NUMPY.get(data_type)


def numpy_to_triton_type(data_type: Any) -> int | None:
    """The TRITONSERVER_DataType number of a numpy type or dtype, None for an unsupported one.
    Object and bytes (``S``) arrays are BYTES."""
    if data_type is None:  # np.dtype(None) would be float64
        return None
    try:
        dtype = np.dtype(data_type)
    except TypeError:
        return None
    if dtype.kind in "OS":
        return TRITONSERVER_TYPE_BYTES
    return _NUMPY_TO_TRITON.get(dtype.type)


# ---------------------------------------------------------------------------------------------
# BYTES tensors: each element is a 4-byte little-endian length followed by its bytes
# ---------------------------------------------------------------------------------------------


def serialize_byte_tensor(input_tensor: np.ndarray) -> bytes | None:
    """The wire form of a BYTES tensor: its elements in C order, each a 4-byte little-endian
    length then the bytes. Elements that are not bytes are written as their UTF-8 ``str``.
    None for an array that is neither object nor ``S`` dtype.

    Prefer object arrays: numpy drops trailing NUL bytes from ``S`` elements."""
    if input_tensor.dtype.kind not in "OS":
        return None
    parts = []
    for element in input_tensor.reshape(-1, order="C"):
        data = element if isinstance(element, bytes) else str(element).encode("utf-8")
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def deserialize_bytes_tensor(encoded_tensor: bytes) -> np.ndarray:
    """The 1-D object array of bytes elements that ``serialize_byte_tensor`` wrote."""
    view = memoryview(encoded_tensor).cast("B")
    elements = []
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise TritonModelException("Invalid bytes tensor data: incomplete length field")
        (length,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + length > len(view):
            raise TritonModelException("Invalid bytes tensor data: string extends beyond buffer")
        elements.append(bytes(view[offset : offset + length]))
        offset += length
    return np.array(elements, dtype=np.object_)


# ---------------------------------------------------------------------------------------------
# DLPack: reading a capsule's header, and the imports numpy cannot do
# ---------------------------------------------------------------------------------------------

_DL_CPU = 1
_DL_CUDA_HOST = 3  # pinned host memory, which numpy reads as it does CPU memory
_DL_BFLOAT = 4  # DLDataTypeCode kDLBfloat
_HOST_DEVICES = (_DL_CPU, _DL_CUDA_HOST)


class _DLTensorHead(ctypes.Structure):
    """The leading fields of DLPack's DLTensor (the head of a "dltensor" capsule's
    DLManagedTensor): enough to choose between numpy and PyTorch before consuming it."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device_type", ctypes.c_int32),
        ("device_id", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("dtype_code", ctypes.c_uint8),
        ("dtype_bits", ctypes.c_uint8),
        ("dtype_lanes", ctypes.c_uint16),
    ]


# Prototypes of our own, so that ctypes.pythonapi's shared function objects stay untouched.
_capsule_is_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_IsValid", ctypes.pythonapi)
)
_capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)

_NOT_CONTIGUOUS = (
    "DLPack tensor is not contiguous. Only contiguous DLPack tensors that are stored in "
    "C-Order are supported."
)


def _is_capsule(value: Any) -> bool:
    return type(value).__name__ == "PyCapsule"


def _capsule_head(capsule: Any) -> _DLTensorHead:
    if not _capsule_is_valid(capsule, b"dltensor"):
        raise TritonModelException(
            "The DLPack capsule cannot be used: it is not a 'dltensor' capsule, or it was "
            "consumed already (a capsule can make one tensor only)."
        )
    return _DLTensorHead.from_address(_capsule_pointer(capsule, b"dltensor"))


class _CapsuleProducer:
    """Hands a raw capsule to np.from_dlpack, which takes only objects with ``__dlpack__``."""

    def __init__(self, capsule: Any, device_type: int) -> None:
        self._capsule = capsule
        self._device_type = device_type

    def __dlpack__(self, **_request: Any) -> Any:
        # Whatever version numpy asks for, an unversioned capsule is a valid answer.
        return self._capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (self._device_type, 0)


def _import_torch(purpose: str) -> Any:
    try:
        import torch
    except ImportError as error:
        raise TritonModelException(f"{purpose} needs PyTorch, which is not installed") from error
    return torch


# ---------------------------------------------------------------------------------------------
# Tensor
# ---------------------------------------------------------------------------------------------


def _check_tensor_name(name: Any) -> None:
    if not isinstance(name, str):
        raise TypeError(f"Tensor name must be a str, got {type(name)}")
    if not name:
        raise TritonModelException("Tensor name cannot be an empty string.")


class Tensor:
    """A named tensor in host memory, backed by a numpy array.

    BYTES tensors are object arrays of ``bytes`` (or ``S`` arrays). bfloat16 tensors, which
    numpy cannot hold, exist only through DLPack: ``as_numpy()`` refuses them as Triton does.
    """

    def __init__(self, name: str, numpy_array: Any) -> None:
        _check_tensor_name(name)
        array = np.asarray(numpy_array)
        dtype = numpy_to_triton_type(array.dtype)
        if dtype is None:
            raise TritonModelException("NumPy dtype is not supported.")
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        self._name = name
        self._array: np.ndarray | None = array
        self._bf16: Any = None  # a CPU torch tensor, for bfloat16 only
        self._dtype = dtype

    @classmethod
    def _of_bfloat16(cls, name: str, torch_tensor: Any) -> Tensor:
        tensor = cls.__new__(cls)
        tensor._name = name
        tensor._array = None
        tensor._bf16 = torch_tensor
        tensor._dtype = TRITONSERVER_TYPE_BF16
        return tensor

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        """The tensor's numpy array (not a copy)."""
        if self._array is None:
            raise TritonModelException(
                "Tensor dtype is BF16 and cannot be converted to NumPy. Use to_dlpack() and "
                "from_dlpack() instead."
            )
        return self._array

    def shape(self) -> list[int]:
        source = self._bf16 if self._array is None else self._array
        return [int(extent) for extent in source.shape]

    def triton_dtype(self) -> int:
        """The TRITONSERVER_DataType number, e.g. ``TRITONSERVER_TYPE_FP32`` (11)."""
        return self._dtype

    def is_cpu(self) -> bool:
        return True  # modelserve keeps every tensor in host memory

    def to_dlpack(self) -> Any:
        """A DLPack capsule over the tensor's memory, e.g. for ``torch.from_dlpack``."""
        if self._dtype == TRITONSERVER_TYPE_BYTES:
            raise TritonModelException("DLPack does not have support for string tensors.")
        if self._array is None:
            return self._bf16.__dlpack__()
        if not self._array.flags.writeable:
            # An unversioned capsule cannot say "read-only", so numpy will not export one over
            # read-only memory; such a tensor is exported as a copy.
            return self._array.copy().__dlpack__()
        return self._array.__dlpack__()

    def __dlpack__(self, stream: Any = None) -> Any:
        return self.to_dlpack()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (_DL_CPU, 0)

    @staticmethod
    def from_dlpack(name: str, tensor: Any) -> Tensor:
        """A Tensor over a DLPack capsule or an object with ``__dlpack__`` and
        ``__dlpack_device__`` (a torch tensor, a numpy array …), without a copy when it is in
        host memory. GPU memory is copied to the host. Only C-contiguous tensors are taken."""
        _check_tensor_name(name)
        if not _is_capsule(tensor):
            if not (hasattr(tensor, "__dlpack__") and hasattr(tensor, "__dlpack_device__")):
                raise TritonModelException(
                    "Provided tensor is not supported. Tensor must be a DLPack capsule or have "
                    "`__dlpack__` and `__dlpack_device__` attributes"
                )
            if int(tensor.__dlpack_device__()[0]) not in _HOST_DEVICES:
                return Tensor._through_torch(name, tensor)
            tensor = tensor.__dlpack__(stream=None)  # None: the only stream a host tensor takes
        head = _capsule_head(tensor)
        if head.device_type not in _HOST_DEVICES or head.dtype_code == _DL_BFLOAT:
            return Tensor._through_torch(name, tensor)
        array = np.from_dlpack(_CapsuleProducer(tensor, head.device_type))
        if not array.flags.c_contiguous:
            raise TritonModelException(_NOT_CONTIGUOUS)
        return Tensor(name, array)

    @staticmethod
    def _through_torch(name: str, producer: Any) -> Tensor:
        """Import what numpy cannot: bfloat16, and memory on a GPU (copied to the host)."""
        torch = _import_torch("A bfloat16 or GPU DLPack tensor")
        imported = torch.from_dlpack(producer)
        if not imported.is_contiguous():
            raise TritonModelException(_NOT_CONTIGUOUS)
        imported = imported.cpu()  # a copy when on a GPU: tensors here live in host memory
        if imported.dtype == torch.bfloat16:
            return Tensor._of_bfloat16(name, imported)
        return Tensor(name, imported.numpy())

    def __repr__(self) -> str:
        return f"Tensor({self._name!r}, shape={self.shape()}, triton_dtype={self._dtype})"


# ---------------------------------------------------------------------------------------------
# Parameters: requests and responses expose them as a JSON string
# ---------------------------------------------------------------------------------------------


def _parameters_json(parameters: Mapping[str, Any] | None) -> str:
    """The JSON of parameters a model gives: a dict of str keys to bool, int or str values."""
    if parameters is None:
        return "{}"
    if not isinstance(parameters, dict):
        raise TritonModelException(f"Expect dict, got {type(parameters)}")
    for key, value in parameters.items():
        if not isinstance(key, str):
            raise TritonModelException(
                f"Expect parameters keys to have type str, found type {type(key)}"
            )
        if not isinstance(value, (bool, int, str)):
            raise TritonModelException(
                f"Expect parameters values to have type bool/int/str, found type {type(value)}"
            )
    return json.dumps(parameters)


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------


def _tensor_list(tensors: Iterable[Tensor], empty_message: str) -> list[Tensor]:
    result = []
    for tensor in tensors:
        if tensor is None:
            raise TritonModelException(empty_message)
        if not isinstance(tensor, Tensor):
            raise TypeError(f"expected a pb_utils.Tensor, got {type(tensor)}")
        result.append(tensor)
    return result


class InferenceResponse:
    """The outputs of one request, or its error (outputs given with an error are ignored)."""

    def __init__(
        self,
        output_tensors: Sequence[Tensor] = (),
        error: TritonError | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        if error is not None and not isinstance(error, TritonError):
            raise TypeError(f"error must be a pb_utils.TritonError, got {type(error)}")
        self._output_tensors = _tensor_list(
            output_tensors, "Output tensor for inference response should not be empty."
        )
        self._error = error
        self._parameters = _parameters_json(parameters)

    def output_tensors(self) -> list[Tensor]:
        return list(self._output_tensors)

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error

    def parameters(self) -> str:
        """The response's parameters as a JSON string."""
        return self._parameters

    def _keep_only(self, names: set[str]) -> None:
        self._output_tensors = [t for t in self._output_tensors if t.name() in names]


class InferenceResponseSender:
    """Sends the responses of one request (``get_response_sender()``).

    For a model that is not decoupled, as in Triton, a request gets exactly one response, and
    the ``TRITONSERVER_RESPONSE_COMPLETE_FINAL`` flag with it or in a flag-only send after it;
    the sender keeps what was sent for modelserve to deliver. A decoupled model's request gets
    any number (none included), from ``execute`` or any thread after it, until the FINAL
    flag; each send goes at once to the callback given to ``deliver_to``.
    """

    def __init__(
        self, request: InferenceRequest, *, serves_client: bool, decoupled: bool = False
    ) -> None:
        self._request = request
        self._serves_client = serves_client
        self._decoupled = decoupled
        self._lock = threading.Lock()  # a model may send from a thread of its own
        self._sends = 0
        self._closed = False
        self._response: InferenceResponse | None = None
        self._deliver: Callable[[InferenceResponse | None, bool], None] | None = None

    def send(self, response: InferenceResponse | None = None, flags: int = 0) -> None:
        """Send ``response``; ``flags=TRITONSERVER_RESPONSE_COMPLETE_FINAL`` ends the request."""
        if flags not in (0, TRITONSERVER_RESPONSE_COMPLETE_FINAL):
            raise TritonModelException("Unable to send response. Unsupported flag provided.")
        if flags == 0 and response is None:
            raise TritonModelException(
                "Inference Response object must be provided when the response flags is set to zero."
            )
        if not self._serves_client:
            raise TritonModelException(
                "Unable to send response. Response sender has no reference to the decoupled "
                "state of the model."
            )
        with self._lock:
            if self._decoupled:
                self._send_decoupled(response, flags == TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                return
            if response is not None and self._sends > 0:
                raise TritonModelException(
                    "Unable to send response. Non-decoupled model cannot send more than one "
                    "response."
                )
            if response is None and self._sends == 0:
                raise TritonModelException(
                    "Unable to send response. Non-decoupled model cannot send complete final "
                    "before sending a response."
                )
            if self._closed:
                raise TritonModelException(
                    "Unable to send response. Response sender has been closed."
                )
            if response is not None:
                self._prune(response)
                self._response = response
            self._closed = flags == TRITONSERVER_RESPONSE_COMPLETE_FINAL
            self._sends += 1

    def is_cancelled(self) -> bool:
        return self._request.is_cancelled()

    def _send_decoupled(self, response: InferenceResponse | None, final: bool) -> None:
        """Hand one send of a decoupled model on, in order (called with the lock held)."""
        if self._closed:
            raise TritonModelException("Unable to send response. Response sender has been closed.")
        if self._deliver is None:
            raise TritonModelException(
                "Unable to send response. The response sender is not connected to a client."
            )
        if response is not None:
            self._prune(response)
        self._closed = final
        self._sends += 1
        self._deliver(response, final)

    def _prune(self, response: InferenceResponse) -> None:
        requested = self._request.requested_output_names()
        if requested:  # none requested means all, as a client asking for none gets
            response._keep_only(requested)

    # -- for modelserve ------------------------------------------------------------------------

    def deliver_to(self, callback: Callable[[InferenceResponse | None, bool], None]) -> None:
        """Where a decoupled model's sends go: ``callback(response, final)`` (modelserve, not
        Triton)."""
        with self._lock:
            self._deliver = callback

    def response(self) -> InferenceResponse | None:
        """The response sent, if any (modelserve, not Triton)."""
        return self._response

    def is_closed(self) -> bool:
        """Whether the FINAL flag was sent (modelserve, not Triton)."""
        return self._closed


class ResponseIterator:
    """The responses of ``exec(decoupled=True)``. A model served by modelserve answers once, so
    this yields that one response; iterating again starts over, as Triton's does once done."""

    def __init__(self, responses: Sequence[InferenceResponse]) -> None:
        self._responses = list(responses)
        self._index = 0

    def __iter__(self) -> ResponseIterator:
        if self._index >= len(self._responses):
            self._index = 0
        return self

    def __next__(self) -> InferenceResponse:
        if self._index >= len(self._responses):
            raise StopIteration
        self._index += 1
        return self._responses[self._index - 1]

    def cancel(self) -> None:
        """Cancel the BLS request: nothing to do, all of its responses are here already."""


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


class PreferredMemory:
    """Where a BLS caller wants its output tensors; modelserve's are always in host memory."""

    def __init__(self, preferred_memory_type: int, preferred_device_id: int = 0) -> None:
        self.preferred_memory_type = _MemoryType(preferred_memory_type)
        self.preferred_device_id = int(preferred_device_id)


class InferenceTrace:
    """The trace of a request; ``get_context()`` is its trace context, None when not traced."""

    def __init__(self, context: str | None = None) -> None:
        self._context = context or None

    def get_context(self) -> str | None:
        return self._context


def _text(value: Any, what: str) -> str:
    # pybind11 takes bytes for a C++ std::string, and models do pass names read from BYTES
    # tensors (Triton's BLS example does), so bytes are decoded as Triton would take them.
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value)}")
    return value


class InferenceRequest:
    """An inference request: one that ``execute`` receives, or a BLS request a model builds
    and runs with ``exec()`` / ``async_exec()``.

    The constructor is Triton's, for BLS; modelserve builds received requests with
    ``InferenceRequest.from_client``.
    """

    def __init__(
        self,
        request_id: str = "",
        correlation_id: int | str = 0,
        inputs: Sequence[Tensor] | None = None,
        requested_output_names: Sequence[str] | None = None,
        model_name: str | None = None,
        model_version: int = -1,
        flags: int = 0,
        timeout: int = 0,
        preferred_memory: PreferredMemory | None = None,
        trace: InferenceTrace | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        # Required, as in Triton, yet after defaulted ones to keep Triton's positional order.
        for name, value in (
            ("inputs", inputs),
            ("requested_output_names", requested_output_names),
            ("model_name", model_name),
        ):
            if value is None:
                raise TypeError(f"InferenceRequest() missing required argument: '{name}'")
        self._setup(
            request_id=request_id,
            correlation_id=correlation_id,
            inputs=inputs,
            requested_output_names=requested_output_names,
            model_name=model_name,
            model_version=model_version,
            flags=flags,
            timeout=timeout,
            preferred_memory=preferred_memory,
            trace=trace,
            parameters_json=_parameters_json(parameters),
            serves_client=False,
        )

    @classmethod
    def from_client(
        cls,
        *,
        inputs: Sequence[Tensor],
        model_name: str,
        model_version: int = -1,
        request_id: str = "",
        correlation_id: int | str = 0,
        flags: int = 0,
        requested_output_names: Iterable[str] = (),
        parameters: Mapping[str, Any] | None = None,
        timeout: int = 0,
        trace: InferenceTrace | None = None,
        decoupled: bool = False,
        cancelled: Callable[[], bool] | None = None,
    ) -> InferenceRequest:
        """The request modelserve hands to ``execute`` for a client's inference (modelserve,
        not Triton); ``decoupled`` for a decoupled model's (its sender takes many responses);
        ``cancelled`` tells whether the client went away (``is_cancelled()`` asks it).

        ``requested_output_names`` should name every output when the client asked for none,
        as Triton's core does. ``parameters`` are the client's (any JSON values, floats
        included); ``parameters()`` returns them as compact JSON, as Triton's backend writes
        them. ``timeout`` is in microseconds.
        """
        request = cls.__new__(cls)
        request._setup(
            request_id=request_id,
            correlation_id=correlation_id,
            inputs=inputs,
            requested_output_names=requested_output_names,
            model_name=model_name,
            model_version=model_version,
            flags=flags,
            timeout=timeout,
            preferred_memory=None,
            trace=trace,
            parameters_json=json.dumps(dict(parameters or {}), separators=(",", ":")),
            serves_client=True,
            decoupled=decoupled,
        )
        request._cancel_check = cancelled
        return request

    def _setup(
        self,
        *,
        request_id: Any,
        correlation_id: Any,
        inputs: Iterable[Tensor],
        requested_output_names: Iterable[str],
        model_name: Any,
        model_version: int,
        flags: int,
        timeout: int,
        preferred_memory: PreferredMemory | None,
        trace: InferenceTrace | None,
        parameters_json: str,
        serves_client: bool,
        decoupled: bool = False,
    ) -> None:
        self._request_id = _text(request_id, "request_id")
        self._model_name = _text(model_name, "model_name")
        where = f"for request with id '{self._request_id}' and model name '{self._model_name}'"
        self._inputs = _tensor_list(inputs, f"Input tensor {where} should not be empty.")
        if isinstance(requested_output_names, (str, bytes)):  # one name is no list of names
            raise TypeError("requested_output_names must be a list of names, not one name")
        self._requested_output_names = set()
        for output_name in requested_output_names:
            output_name = _text(output_name, "requested output name")
            if not output_name:
                raise TritonModelException(f"Requested output name {where} should not be empty.")
            self._requested_output_names.add(output_name)
        # bool is an int, and Triton (pybind11) takes it as one too.
        if isinstance(correlation_id, int):
            if correlation_id < 0:
                raise TritonModelException("Correlation ID must be an unsigned integer or string")
        elif not isinstance(correlation_id, str):
            raise TritonModelException("Correlation ID must be integer or string")
        self._correlation_id = correlation_id
        self._model_version = int(model_version)
        self._flags = int(flags)
        self._timeout = int(timeout)
        self._preferred_memory = preferred_memory or PreferredMemory(_MemoryType.DEFAULT)
        self._trace = trace or InferenceTrace()
        self._parameters = parameters_json
        self._cancelled = threading.Event()
        self._cancel_check: Callable[[], bool] | None = None
        self._response_sender = InferenceResponseSender(
            self, serves_client=serves_client, decoupled=decoupled
        )

    # -- Triton's accessors --------------------------------------------------------------------

    def inputs(self) -> list[Tensor]:
        return list(self._inputs)

    def request_id(self) -> str:
        return self._request_id

    def correlation_id(self) -> int | str:
        return self._correlation_id

    def flags(self) -> int:
        """TRITONSERVER_REQUEST_FLAG_SEQUENCE_START / _END bits."""
        return self._flags

    def set_flags(self, flags: int) -> None:
        self._flags = int(flags)

    def timeout(self) -> int:
        """The timeout in microseconds, 0 for none."""
        return self._timeout

    def parameters(self) -> str:
        """The request's parameters as a JSON string (``json.loads`` it)."""
        return self._parameters

    def trace(self) -> InferenceTrace:
        return self._trace

    def requested_output_names(self) -> set[str]:
        return set(self._requested_output_names)

    def get_response_sender(self) -> InferenceResponseSender:
        return self._response_sender

    def is_cancelled(self) -> bool:
        check = self._cancel_check
        if not self._cancelled.is_set() and check is not None and check():
            self._cancelled.set()
        return self._cancelled.is_set()

    def set_release_flags(self, flags: int) -> None:
        """Only ``TRITONSERVER_REQUEST_RELEASE_ALL``: rescheduling a request needs iterative
        sequence batching, which modelserve does not have."""
        if flags != TRITONSERVER_REQUEST_RELEASE_ALL:
            raise TritonModelException(
                f"Request release flags {flags} are not supported: modelserve has no iterative "
                "sequence batching to reschedule a request with."
            )

    # -- BLS -----------------------------------------------------------------------------------

    def exec(self, decoupled: bool = False) -> InferenceResponse | ResponseIterator:
        """Run this request on ``model_name`` and wait for the response.

        A failed inference comes back as a response with ``has_error()``; this raises only
        when no BLS is possible here. ``decoupled=True`` returns an iterator of responses."""
        executor = _executor("BLS (InferenceRequest.exec)")
        try:
            response = executor.execute(self)
        except TritonModelException:
            raise
        except Exception as error:
            response = _error_response(error)
        return ResponseIterator([response]) if decoupled else response

    def async_exec(self, decoupled: bool = False) -> asyncio.Task[Any]:
        """``exec`` without blocking: an awaitable, started at once, that gives the response
        (or the iterator, with ``decoupled=True``). Call it from a coroutine (``async def
        execute``): it runs on the running event loop."""
        executor = _executor("BLS (InferenceRequest.async_exec)")
        loop = asyncio.get_running_loop()  # raises outside a coroutine, as Triton's does
        return loop.create_task(self._async_exec(executor, decoupled))

    async def _async_exec(
        self, executor: BLSExecutor, decoupled: bool
    ) -> InferenceResponse | ResponseIterator:
        try:
            response = await executor.async_execute(self)
        except TritonModelException:
            raise
        except Exception as error:
            response = _error_response(error)
        return ResponseIterator([response]) if decoupled else response

    # -- for modelserve ------------------------------------------------------------------------

    def model_name(self) -> str:
        """The model this request is for (modelserve, not Triton)."""
        return self._model_name

    def model_version(self) -> int:
        """The model version, -1 for the one the version policy picks (modelserve, not
        Triton)."""
        return self._model_version

    def preferred_memory(self) -> PreferredMemory:
        """Where the BLS caller wants its outputs (modelserve, not Triton)."""
        return self._preferred_memory

    def mark_cancelled(self) -> None:
        """The client cancelled: ``is_cancelled()`` turns true (modelserve, not Triton; safe
        from any thread)."""
        self._cancelled.set()


def _error_response(error: Exception) -> InferenceResponse:
    return InferenceResponse(error=TritonError(str(error) or type(error).__name__))


# ---------------------------------------------------------------------------------------------
# BLS and the model loading API: run by an executor that modelserve installs
# ---------------------------------------------------------------------------------------------


class BLSExecutor(Protocol):
    """What runs BLS requests and the model loading API for this process's model.

    ``execute`` / ``async_execute`` return the response, or one with an error; an exception
    they raise becomes such an error response, except TritonModelException, which reaches
    the model as Triton raises for BLS outside ``execute``. Exceptions of the other three
    methods reach the model as TritonModelException, as Triton's do.
    """

    def execute(self, request: InferenceRequest) -> InferenceResponse: ...

    async def async_execute(self, request: InferenceRequest) -> InferenceResponse: ...

    def load_model(self, model_name: str, config: str, files: dict[str, bytes] | None) -> None:
        """``config``: a JSON model configuration, "" for none; ``files``: Triton's
        ``"file:<version>/<path>"`` keys to contents."""

    def unload_model(self, model_name: str, unload_dependents: bool) -> None: ...

    def is_model_ready(self, model_name: str, model_version: int) -> bool:
        """``model_version`` -1: the version the policy picks."""


_bls_executor: BLSExecutor | None = None


def set_bls_executor(executor: BLSExecutor | None) -> None:
    """Install (or, with None, remove) the executor of BLS requests and the model loading API
    (modelserve, not Triton)."""
    global _bls_executor
    _bls_executor = executor


def _executor(feature: str) -> BLSExecutor:
    if _bls_executor is None:
        raise TritonModelException(
            f"{feature} is not available: no model server is attached to this process "
            "(modelserve attaches one when it serves the model)."
        )
    return _bls_executor


def load_model(model_name: str, config: str = "", files: dict[str, bytes] | None = None) -> None:
    """Load (or reload) ``model_name``, optionally with a JSON ``config`` and ``files``, a dict
    of ``"file:<version>/<path>"`` to bytes that then make up the model directory."""
    if files is not None and not (
        isinstance(files, dict)
        and all(isinstance(k, str) and isinstance(v, bytes) for k, v in files.items())
    ):
        raise TritonModelException(
            f"failed to load model '{model_name}', files should be a dictionary of file paths "
            "and file contents"
        )
    executor = _executor("The model loading API")
    try:
        executor.load_model(model_name, config, files)
    except Exception as error:
        raise TritonModelException(f"Failed to load model: {error}") from error


def unload_model(model_name: str, unload_dependents: bool = False) -> None:
    """Unload ``model_name``, and the models that depend on it with ``unload_dependents``."""
    executor = _executor("The model loading API")
    try:
        executor.unload_model(model_name, unload_dependents)
    except Exception as error:
        raise TritonModelException(f"Failed to unload model: {error}") from error


def is_model_ready(model_name: str, model_version: str = "") -> bool:
    """Whether ``model_name`` is ready; ``model_version`` is a version number as a string, ""
    for the one the version policy picks."""
    failed = "Failed to check model readiness: "
    version = -1
    if model_version:
        try:
            version = int(model_version)
        except ValueError as error:
            raise TritonModelException(
                f"{failed}failed to get model version from specified version string "
                f"'{model_version}' (details: {error}), version should be an integral value > 0"
            ) from error
        if version < 0:
            raise TritonModelException(
                f"{failed}failed to get model version from specified version string "
                f"'{model_version}', version should be an integral value > 0"
            )
    executor = _executor("The model loading API")
    try:
        return bool(executor.is_model_ready(model_name, version))
    except Exception as error:
        raise TritonModelException(f"{failed}{error}") from error


# ---------------------------------------------------------------------------------------------
# Lookups by name
# ---------------------------------------------------------------------------------------------


def get_input_tensor_by_name(inference_request: InferenceRequest, name: str) -> Tensor | None:
    """The request's input called ``name``, None when it has none."""
    return next((t for t in inference_request.inputs() if t.name() == name), None)


def get_output_tensor_by_name(inference_response: InferenceResponse, name: str) -> Tensor | None:
    """The response's output called ``name``, None when it has none."""
    return next((t for t in inference_response.output_tensors() if t.name() == name), None)


def get_input_config_by_name(model_config: Mapping[str, Any], name: str) -> dict | None:
    """The configuration of input ``name`` in a model configuration dict, None when absent."""
    return next((i for i in model_config.get("input", ()) if i["name"] == name), None)


def get_output_config_by_name(model_config: Mapping[str, Any], name: str) -> dict | None:
    """The configuration of output ``name`` in a model configuration dict, None when absent."""
    return next((o for o in model_config.get("output", ()) if o["name"] == name), None)


def using_decoupled_model_transaction_policy(model_config: Mapping[str, Any]) -> bool:
    """Whether a model configuration dict makes the model decoupled."""
    return bool(model_config.get("model_transaction_policy", {}).get("decoupled", False))


# ---------------------------------------------------------------------------------------------
# ModelConfig: what auto_complete_config receives and returns
# ---------------------------------------------------------------------------------------------

# The properties auto_complete_config may give an input or output, and how errors list them.
_TENSOR_PROPERTIES = {
    "input": (
        ("name", "data_type", "dims", "optional"),
        "'name', 'data_type', 'dims' and 'optional'",
    ),
    "output": (("name", "data_type", "dims"), "'name', 'data_type' and 'dims'"),
}


class ModelConfig:
    """The model configuration that ``auto_complete_config`` may complete: max_batch_size,
    dynamic batching, inputs, outputs and the transaction policy. Its errors (ValueError) are
    worded as Triton's."""

    def __init__(self, model_config: str) -> None:
        self._config: dict[str, Any] = json.loads(model_config)

    def as_dict(self) -> dict[str, Any]:
        """The configuration as a dict; read it, change it only through the methods."""
        return self._config

    def _model(self) -> str:
        return str(self._config.get("name", ""))

    def set_max_batch_size(self, max_batch_size: int) -> None:
        """ValueError if the configuration already has a larger one."""
        configured = self._config.get("max_batch_size", 0)
        if configured > max_batch_size:
            raise ValueError(
                f"configuration specified max_batch_size {configured}, but in "
                f"auto-complete-config function for model '{self._model()}' specified "
                f"max_batch_size {max_batch_size}"
            )
        self._config["max_batch_size"] = max_batch_size

    def set_dynamic_batching(self) -> None:
        """Use the dynamic batcher unless already set; ValueError if another scheduler is."""
        for scheduler in ("sequence_batching", "ensemble_scheduling"):
            if scheduler in self._config:
                raise ValueError(
                    f"Configuration specified scheduling_choice as '{scheduler}', but "
                    f"auto-complete-config function for model '{self._model()}' tries to set "
                    "scheduling_choice as 'dynamic_batching'"
                )
        self._config.setdefault("dynamic_batching", {})

    def add_input(self, input: Mapping[str, Any]) -> None:
        """Add an input ({name, data_type, dims[, optional]}), or complete the configured one
        of that name; ValueError when it contradicts the configuration."""
        self._add_tensor("input", input)

    def add_output(self, output: Mapping[str, Any]) -> None:
        """Add an output ({name, data_type, dims}), or complete the configured one of that
        name; ValueError when it contradicts the configuration."""
        self._add_tensor("output", output)

    def _add_tensor(self, kind: str, tensor: Mapping[str, Any]) -> None:
        allowed, allowed_words = _TENSOR_PROPERTIES[kind]
        where = f"in auto-complete-config function for model '{self._model()}'"
        if "name" not in tensor:
            raise ValueError(f"{kind} {where} is missing 'name' property.")
        name = tensor["name"]
        if any(key not in allowed for key in tensor):
            raise ValueError(
                f"{kind} '{name}' {where} contains property other than {allowed_words}."
            )
        for required in ("data_type", "dims"):
            if required not in tensor:
                raise ValueError(f"{kind} '{name}' {where} is missing '{required}' property.")

        configured = self._config.setdefault(kind, [])
        existing = next((t for t in configured if t["name"] == name), None)
        if existing is None:
            configured.append(dict(tensor))
            return
        # A tensor the configuration names already: fill it in unless it says otherwise.
        data_type = existing.get("data_type", "TYPE_INVALID")
        if data_type not in ("TYPE_INVALID", tensor["data_type"]):
            raise ValueError(
                f"unable to load model '{self._model()}', configuration expects datatype "
                f"{data_type} for {kind} '{name}', model provides {tensor['data_type']}"
            )
        if existing.get("dims") and existing["dims"] != tensor["dims"]:
            raise ValueError(
                f"model '{self._model()}', tensor '{name}': the model expects dims "
                f"{tensor['dims']} but the model configuration specifies dims {existing['dims']}"
            )
        both_say_optional = "optional" in existing and "optional" in tensor
        if both_say_optional and existing["optional"] != tensor["optional"]:
            raise ValueError(
                f"model '{self._model()}', tensor '{name}': the model expects optional "
                f"{tensor['optional']} but the model configuration specifies optional "
                f"{existing['optional']}"
            )
        existing["data_type"] = tensor["data_type"]
        existing["dims"] = tensor["dims"]
        if "optional" in tensor:
            existing["optional"] = tensor["optional"]

    def set_model_transaction_policy(self, transaction_policy_dict: Mapping[str, Any]) -> None:
        """Set model_transaction_policy ({"decoupled": bool}); ValueError for other keys or to
        change a decoupled value the configuration has."""
        if any(key != "decoupled" for key in transaction_policy_dict):
            raise ValueError(
                "model transaction property in auto-complete-config function for model "
                f"'{self._model()}' contains property other than 'decoupled'."
            )
        policy = self._config.setdefault("model_transaction_policy", {})
        if "decoupled" in transaction_policy_dict:
            wanted = transaction_policy_dict["decoupled"]
            if "decoupled" in policy and policy["decoupled"] != wanted:
                raise ValueError(
                    "trying to change decoupled property in auto-complete-config for model "
                    f"'{self._model()}', which is already set to '{policy['decoupled']}'."
                )
            policy["decoupled"] = wanted


# ---------------------------------------------------------------------------------------------
# Logging: to Python's logging, logger "triton.model", so the worker's log carries it
# ---------------------------------------------------------------------------------------------


class LogLevel(enum.IntEnum):
    """Triton's log levels (``pb_utils.Logger.LogLevel``; ``Logger.INFO`` … too)."""

    INFO = 0
    WARNING = 1
    ERROR = 2
    VERBOSE = 3


# VERBOSE is DEBUG: shown only when the worker logs at DEBUG, as Triton shows verbose messages
# only at a verbose log level.
_PYTHON_LEVELS = {
    LogLevel.INFO: logging.INFO,
    LogLevel.WARNING: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
    LogLevel.VERBOSE: logging.DEBUG,
}
_model_log = logging.getLogger("triton.model")


def _emit(message: str, level: int) -> None:
    # stacklevel 3: the record points at the model's line, past _emit and the Logger method.
    _model_log.log(_PYTHON_LEVELS[LogLevel(level)], "%s", message, stacklevel=3)


class Logger:
    """``pb_utils.Logger.log_info("…")``; all static."""

    LogLevel = LogLevel
    INFO = LogLevel.INFO
    WARNING = LogLevel.WARNING
    ERROR = LogLevel.ERROR
    VERBOSE = LogLevel.VERBOSE

    @staticmethod
    def log(message: str, level: int = LogLevel.INFO) -> None:
        _emit(message, level)

    @staticmethod
    def log_info(message: str) -> None:
        _emit(message, LogLevel.INFO)

    @staticmethod
    def log_warn(message: str) -> None:
        _emit(message, LogLevel.WARNING)

    @staticmethod
    def log_error(message: str) -> None:
        _emit(message, LogLevel.ERROR)

    @staticmethod
    def log_verbose(message: str) -> None:
        _emit(message, LogLevel.VERBOSE)
