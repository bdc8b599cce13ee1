"""Messages exchanged between the frontend and worker processes over ZeroMQ.

Every message is a multipart ZeroMQ message: one msgpack header frame followed by zero or more
raw body frames. Payload bytes never pass through msgpack, so bodies travel without re-encoding.
The frontend's ROUTER socket sees a leading identity frame (the worker id) in addition.

Kinds (header key ``k``):

* ``ready``       worker → frontend: model loaded, the worker is idle and wants work; may
  carry the model's tensor metadata.
* ``load_failed`` worker → frontend: the handler failed to load (error type, message, traceback).
* ``batch``       frontend → worker: one batch of requests; its parameter values are the frames.
* ``result``      worker → frontend: the batch's responses (or one batch-level error); bodies
  are the frames. Sending a result also means "idle again".
* ``part``        worker → frontend: one part of a request's answer, sent while its batch runs
  (streaming): the batch id, the request's index in the batch and its request id, the
  response described as in a result, its body a frame. The request's entry in the result
  that ends the batch is then its final part, or ``None``: nothing more. An entry ``0``
  says the request was answered with nothing at all (``EmptyAnswer``).
* ``credit``      frontend → worker: the client took parts of a request; the worker may send
  that many more (each request starts with ``WorkerSpec.stream_window``).
* ``cancel``      frontend → worker: the client of a request went away, or its stream timed
  out; the handler sees it (``context.is_cancelled``) and its parts are dropped.
* ``stop``        frontend → worker: finish and exit.

A request or response may carry tensors in protocol-neutral form (``protocol_contract``'s
TensorInferRequest / TensorInferResponse: gRPC ModelInfer). Their names, datatypes, shapes and
parameters go in the header; each tensor's raw data is one more frame, after the request's
parameter values (after the response's body), so tensor bytes are never re-encoded. A batch
header that describes tensors is marked ``tf`` (the worker then receives it uncopied). A
request or response without tensors is encoded exactly as before they existed.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import orjson
import zmq

from modelserve.protocol_contract import (
    Buffer,
    RequestedOutput,
    Tensor,
    TensorInferRequest,
    TensorInferResponse,
)

READY = "ready"
LOAD_FAILED = "load_failed"
BATCH = "batch"
RESULT = "result"
PART = "part"
CREDIT = "credit"
CANCEL = "cancel"
STOP = "stop"
# What a spare worker (``python -m modelserve.worker --spare``) prints on its output once its
# imports are done; it then reads the path of its worker spec from its stdin (no socket yet).
SPARE_FLAG = "--spare"
SPARE_READY = "modelserve spare worker ready"
# A batch header's mark that tensor data frames follow.
TENSOR_FRAMES = "tf"


@dataclass(slots=True)
class RequestParameter:
    """One named input of a request (the body, a form field, a query parameter)."""

    name: str
    content_type: str | None
    value: bytes


# A request's id: this process's random UUID with its last 48 bits counting requests. As unique
# as a uuid4 each (2^48 requests before one repeats), at an eighth of its cost: uuid4 asks the
# kernel for 16 random bytes on every request.
_ID_PREFIX = str(uuid.uuid4())[:24]
_id_counter = itertools.count(int(uuid.uuid4().hex[-12:], 16))


def new_request_id() -> str:
    """A new request id, UUID-shaped (``x-request-id``, the handler's ``request_id``)."""
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFFFFFFFFFF:012x}"


@dataclass(slots=True)
class WireRequest:
    """One request inside a batch; ``tensors`` set for a protocol-neutral tensor request (the
    worker hands it to the handler as its row's ``TENSOR_REQUEST`` value)."""

    request_id: str
    headers: dict[str, str]
    parameters: list[RequestParameter]
    tensors: TensorInferRequest | None = None


@dataclass(slots=True)
class WireResponse:
    """The handler's answer to one request of a batch; ``tensors`` set when it answered
    output tensors (to a tensor request)."""

    status: int = 200
    reason: str = ""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    tensors: TensorInferResponse | None = None

    def size(self) -> int:
        """The answer's size in bytes: its body and output tensors' data."""
        if self.tensors is None:
            return len(self.body)
        return len(self.body) + sum(len(tensor.data) for tensor in self.tensors.outputs)


class EmptyAnswer(WireResponse):
    """An answer with no response at all: a Triton decoupled model that sent a request only
    its FINAL flag. A streaming client gets an empty stream; any other, an empty 204."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(204, "No Content")


# A result entry for an ``EmptyAnswer`` (``None`` is "the parts were the whole answer").
EMPTY_ANSWER_ENTRY = 0


def failure_message(response: WireResponse) -> str:
    """What a handler's refusal says: its JSON ``error`` or ``message``, else its body as text."""
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return response.body.decode("utf-8", errors="replace")
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str):
                return body[key]
    return response.body.decode("utf-8", errors="replace")


@dataclass(slots=True)
class BatchError:
    """A failure of the whole batch: every request in it gets this error."""

    code: int
    error_type: str
    message: str


# pyzmq's flags and options as plain ints: ``int & IntFlag`` (and ``SNDMORE | flags`` inside
# send_multipart) run Python's enum machinery, about a microsecond each, where two ints take
# a machine instruction.
EVENTS = int(zmq.EVENTS)
POLLIN = int(zmq.POLLIN)
NOBLOCK = int(zmq.NOBLOCK)
RCVMORE = int(zmq.RCVMORE)
_SNDMORE = int(zmq.SNDMORE)


def send_frames(socket: zmq.Socket, frames: Sequence[Buffer], flags: int = 0) -> None:
    """``socket.send_multipart(frames, flags, copy=False)`` at half its cost for the few frames
    of a message (its enum arithmetic per frame)."""
    send, more = socket.send, flags | _SNDMORE
    for frame in frames[:-1]:
        send(frame, more, copy=False)
    send(frames[-1], flags, copy=False)


def receive_frames(socket: zmq.Socket, flags: int = 0) -> list[bytes]:
    """``socket.recv_multipart(flags)``, without its enum arithmetic."""
    frames = [socket.recv(flags)]
    while socket.getsockopt(RCVMORE):
        frames.append(socket.recv())
    return frames


def encode_header(header: dict[str, Any]) -> bytes:
    """Serialise a header frame."""
    return msgpack.packb(header, use_bin_type=True)


def decode_header(frame: bytes) -> dict[str, Any]:
    """Deserialise a header frame."""
    return msgpack.unpackb(frame, raw=False)


def encode_ready(
    worker_id: str, pid: int, load_ms: float, tensors: dict[str, Any] | None = None
) -> list[bytes]:
    """The message a worker sends once its model is loaded.

    ``tensors``, when the handler can tell, describes the model's tensors as the KServe v2
    metadata does: ``{"inputs": [{"name", "datatype", "shape"}], "outputs": [...]}``.
    """
    header = {"k": READY, "wid": worker_id, "pid": pid, "load_ms": load_ms}
    if tensors is not None:
        header["tensors"] = tensors
    return [encode_header(header)]


def encode_load_failed(error_type: str, message: str, traceback_text: str) -> list[bytes]:
    """The message a worker sends when its handler could not be loaded."""
    header = {"k": LOAD_FAILED, "type": error_type, "msg": message, "tb": traceback_text}
    return [encode_header(header)]


def encode_stop() -> list[bytes]:
    """Ask a worker to exit once it is idle."""
    return [encode_header({"k": STOP})]


def encode_batch(batch_id: int, requests: list[WireRequest]) -> list[Buffer]:
    """One batch as header + one frame per parameter value (then per input tensor), in request
    order."""
    frames: list[Buffer] = [b""]
    described = []
    header: dict[str, Any] = {"k": BATCH, "id": batch_id, "r": described}
    for request in requests:
        params = []
        for parameter in request.parameters:
            params.append((parameter.name, parameter.content_type))
            frames.append(parameter.value)
        if request.tensors is None:
            described.append((request.request_id, request.headers, params))
            continue
        tensors = request.tensors
        described.append(
            (
                request.request_id,
                request.headers,
                params,
                (
                    tensors.id,
                    tensors.parameters,
                    [(output.name, output.parameters) for output in tensors.outputs],
                    _describe_tensors(tensors.inputs),
                ),
            )
        )
        frames.extend(tensor.data for tensor in tensors.inputs)
        header[TENSOR_FRAMES] = True
    frames[0] = encode_header(header)
    return frames


def carries_tensors(header: dict[str, Any]) -> bool:
    """Whether a batch holds tensor requests (then the worker receives it uncopied)."""
    return TENSOR_FRAMES in header


def decode_batch(header: dict[str, Any], frames: Sequence[Buffer]) -> list[WireRequest]:
    """Rebuild the requests of a batch from its header and value frames.

    Parameter values become ``bytes`` (as they already are when received as bytes); tensor
    data are the frames themselves, uncopied.
    """
    values = iter(frames)
    return [_decode_request(entry, values) for entry in header["r"]]


def _decode_request(entry: list[Any], values: Iterator[Buffer]) -> WireRequest:
    request_id, headers, params = entry[0], entry[1], entry[2]
    parameters = [
        RequestParameter(name, content_type, bytes(next(values))) for name, content_type in params
    ]
    if len(entry) == 3:
        return WireRequest(request_id, headers, parameters)
    infer_id, infer_parameters, outputs, inputs = entry[3]
    request = TensorInferRequest(
        _rebuild_tensors(inputs, values),
        infer_id,
        infer_parameters,
        [RequestedOutput(name, output_parameters) for name, output_parameters in outputs],
    )
    return WireRequest(request_id, headers, parameters, request)


def _describe_tensors(tensors: list[Tensor]) -> list[tuple[Any, ...]]:
    return [(tensor.name, tensor.datatype, tensor.shape, tensor.parameters) for tensor in tensors]


def _rebuild_tensors(described: list[list[Any]], values: Iterator[Buffer]) -> list[Tensor]:
    return [
        Tensor(name, datatype, shape, next(values), parameters)
        for name, datatype, shape, parameters in described
    ]


@dataclass(slots=True)
class BatchTelemetry:
    """What a worker measured on one batch: the handler's metric updates (see
    worker/metrics.py) and its own timings (HandlerTime, PredictionTime), in ms."""

    metrics: list[list[Any]]
    handler_ms: float
    prediction_ms: float

    def fields(self) -> dict[str, Any]:
        """The header fields carrying it."""
        return {"m": self.metrics, "t": (self.handler_ms, self.prediction_ms)}


def encode_result(
    batch_id: int, responses: Sequence[WireResponse | None], telemetry: BatchTelemetry
) -> list[Buffer]:
    """A successful batch: header describing each response + one body frame each (then one
    frame per output tensor). ``None``: the request's parts were its whole answer (no frame);
    an ``EmptyAnswer`` has no frame either."""
    frames: list[Buffer] = [b""]
    described: list[Any] = []
    for response in responses:
        if response is None:
            described.append(None)
        elif isinstance(response, EmptyAnswer):
            described.append(EMPTY_ANSWER_ENTRY)
        else:
            described.append(_describe_response(response, frames))
    header = {"k": RESULT, "id": batch_id, "code": 200, "r": described, **telemetry.fields()}
    frames[0] = encode_header(header)
    return frames


def _describe_response(response: WireResponse, frames: list[Buffer]) -> tuple[Any, ...]:
    """A response's header entry; its body (then its output tensors' data) go to ``frames``."""
    frames.append(response.body)
    if response.tensors is None:
        return (response.status, response.reason, response.content_type, response.headers)
    tensors = response.tensors
    frames.extend(tensor.data for tensor in tensors.outputs)
    return (
        response.status,
        response.reason,
        response.content_type,
        response.headers,
        (
            tensors.model_name,
            tensors.model_version,
            tensors.id,
            tensors.parameters,
            _describe_tensors(tensors.outputs),
        ),
    )


def encode_part(batch_id: int, index: int, request_id: str, response: WireResponse) -> list[Buffer]:
    """One part of the answer to request ``index`` (``request_id``) of batch ``batch_id``."""
    frames: list[Buffer] = [b""]
    described = _describe_response(response, frames)
    frames[0] = encode_header(
        {"k": PART, "id": batch_id, "i": index, "rid": request_id, "r": described}
    )
    return frames


def decode_part(header: dict[str, Any], frames: Sequence[Buffer]) -> WireResponse:
    """The response a part message carries."""
    return _decode_response(header["r"], iter(frames))


def encode_credit(request_id: str, count: int) -> list[bytes]:
    """Let the worker send ``count`` more parts of ``request_id``'s answer."""
    return [encode_header({"k": CREDIT, "rid": request_id, "n": count})]


def encode_cancel(request_id: str) -> list[bytes]:
    """Tell the worker that nobody wants ``request_id``'s answer any more."""
    return [encode_header({"k": CANCEL, "rid": request_id})]


def encode_batch_error(batch_id: int, error: BatchError, telemetry: BatchTelemetry) -> list[bytes]:
    """A failed batch: every request of it gets ``error``."""
    header = {
        "k": RESULT,
        "id": batch_id,
        "code": error.code,
        "type": error.error_type,
        "msg": error.message,
        **telemetry.fields(),
    }
    return [encode_header(header)]


def decode_result(
    header: dict[str, Any], frames: Sequence[Buffer]
) -> list[WireResponse | None] | BatchError:
    """The responses of a result message (``None``: that request's parts were its answer), or
    its batch-level error."""
    if header["code"] != 200:
        return BatchError(header["code"], header["type"], header["msg"])
    values = iter(frames)
    return [_decode_entry(entry, values) for entry in header["r"]]


def _decode_entry(entry: Any, values: Iterator[Buffer]) -> WireResponse | None:
    if entry is None:
        return None
    if entry == EMPTY_ANSWER_ENTRY:
        return EmptyAnswer()
    return _decode_response(entry, values)


def _decode_response(entry: list[Any], values: Iterator[Buffer]) -> WireResponse:
    body = next(values)
    if len(entry) == 4:  # status, reason, content type, headers
        return WireResponse(*entry, body)
    model_name, model_version, infer_id, parameters, outputs = entry[4]
    answer = TensorInferResponse(
        _rebuild_tensors(outputs, values), model_name, model_version, infer_id, parameters
    )
    return WireResponse(*entry[:4], body, answer)


@dataclass(slots=True)
class WorkerSpec:
    """Everything a worker process needs to load its model version; written as JSON at spawn."""

    worker_id: str
    endpoint: str
    model_name: str
    model_version: str
    model_dir: str
    handler: str
    batch_size: int
    manifest: dict[str, Any]
    gpu_id: int | None = None
    parent_pid: int = 0
    model_yaml_config: dict[str, Any] = field(default_factory=dict)
    # Handler metrics declared in the metrics config: {name: {kind, unit, dimensions}}.
    model_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Directories put first on the worker's PYTHONPATH (the model's own pip packages).
    python_path: list[str] = field(default_factory=list)
    # Where code in the worker reaches this server's inference plane (Triton's BLS calls),
    # and the token it presents there ("" when none is needed or none can be given).
    server_url: str = ""
    server_token: str = ""
    # Parts of one request's answer the worker may send ahead of its client (streaming); the
    # frontend's credit messages let it send more.
    stream_window: int = 16
    # Keep freed large buffers for reuse (the setting reuse_large_buffers, allocator.py).
    reuse_large_buffers: bool = True
