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
* ``stop``        frontend → worker: finish and exit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

READY = "ready"
LOAD_FAILED = "load_failed"
BATCH = "batch"
RESULT = "result"
STOP = "stop"


@dataclass(slots=True)
class RequestParameter:
    """One named input of a request (the body, a form field, a query parameter)."""

    name: str
    content_type: str | None
    value: bytes


@dataclass(slots=True)
class WireRequest:
    """One request inside a batch."""

    request_id: str
    headers: dict[str, str]
    parameters: list[RequestParameter]


@dataclass(slots=True)
class WireResponse:
    """The handler's answer to one request of a batch."""

    status: int = 200
    reason: str = ""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(slots=True)
class BatchError:
    """A failure of the whole batch: every request in it gets this error."""

    code: int
    error_type: str
    message: str


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


def encode_batch(batch_id: int, requests: list[WireRequest]) -> list[bytes]:
    """One batch as header + one frame per parameter value, in request order."""
    frames: list[bytes] = [b""]
    described = []
    for request in requests:
        params = []
        for parameter in request.parameters:
            params.append((parameter.name, parameter.content_type))
            frames.append(parameter.value)
        described.append((request.request_id, request.headers, params))
    frames[0] = encode_header({"k": BATCH, "id": batch_id, "r": described})
    return frames


def decode_batch(header: dict[str, Any], frames: list[bytes]) -> list[WireRequest]:
    """Rebuild the requests of a batch from its header and value frames."""
    values = iter(frames)
    return [
        WireRequest(
            request_id,
            headers,
            [RequestParameter(name, content_type, next(values)) for name, content_type in params],
        )
        for request_id, headers, params in header["r"]
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
    batch_id: int, responses: list[WireResponse], telemetry: BatchTelemetry
) -> list[bytes]:
    """A successful batch: header describing each response + one body frame each."""
    described = [
        (response.status, response.reason, response.content_type, response.headers)
        for response in responses
    ]
    header = {"k": RESULT, "id": batch_id, "code": 200, "r": described, **telemetry.fields()}
    return [encode_header(header), *(response.body for response in responses)]


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


def decode_result(header: dict[str, Any], frames: list[bytes]) -> list[WireResponse] | BatchError:
    """The responses of a result message, or its batch-level error."""
    if header["code"] != 200:
        return BatchError(header["code"], header["type"], header["msg"])
    return [
        WireResponse(status, reason, content_type, headers, body)
        for (status, reason, content_type, headers), body in zip(header["r"], frames, strict=True)
    ]


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
