"""What grps's methods do, over the data plane, for its HTTP and gRPC adapters alike.

A request names its model as grps does, ``NAME-VERSION`` (or just ``NAME``: its default
version); without one it goes to the server's only model. Tensors reach the handler in
protocol-neutral form, as gRPC ModelInfer's do (the tensor handler answers output tensors);
``str_data`` and ``bin_data`` reach it as the request body (text, or bytes), as a TorchServe
request's would, and its answer comes back as ``str_data`` (``bin_data`` for a ``bin_data``
request, or bytes that are not UTF-8 text).

The online/offline switch is grps's drain switch for load balancers: offline, readiness answers
503 until the server is set online again; requests are served all the while. A server starts
online (grps starts offline until told otherwise; docs/from-grps.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from modelserve.config import Settings
from modelserve.engine.dataplane import EXPLAIN_HEADER, DataPlane
from modelserve.engine.errors import BadRequestException, ModelNotFoundException, ServingError
from modelserve.engine.streams import AnswerParts, ResponseStream
from modelserve.grps.tensors import name_inputs
from modelserve.protocol_contract import Tensor, TensorInferRequest
from modelserve.wire import (
    RequestParameter,
    WireRequest,
    WireResponse,
    failure_message,
    new_request_id,
)

TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
ONLINE_HINT = "offline: /grps/v1/health/online (gRPC Online) sets it online"


@dataclass(slots=True)
class Payload:
    """What a request carries, or an answer: one of grps's data fields."""

    tensors: list[Tensor] | None = None
    text: str | None = None
    data: bytes | None = None


class GrpsService:
    """grps's methods over one server's data plane; both adapters share it (and its switch)."""

    def __init__(self, plane: DataPlane, settings: Settings) -> None:
        self.plane = plane
        self.settings = settings
        self.online = True

    # ----- health

    def unready_reason(self) -> str | None:
        """Why the server is not ready (offline, or a model that should serve does not);
        None when it is."""
        if not self.online:
            return ONLINE_HINT
        health = self.plane.health()
        if health.ready:
            return None
        return "; ".join(f"{name}: {why}" for name, why in health.not_ready.items())

    # ----- models

    def resolve(self, model: str) -> tuple[str, str | None]:
        """The model and version ``model`` names (``NAME-VERSION`` or ``NAME``; empty: the
        server's only model); 404 for one not served, 400 for none named among several."""
        if model and self._registered(model):
            return model, None
        served = [(entry.name, entry.version) for entry in self.plane.repository_index()]
        if not model:
            names = sorted({name for name, _ in served})
            if len(names) == 1:
                return names[0], None
            if not names:
                raise ModelNotFoundException("no model is served")
            raise BadRequestException(
                f"this server serves {len(names)} models ({', '.join(names)}): name one with "
                "model=NAME-VERSION"
            )
        if any(name == model for name, _ in served):
            return model, None
        for name, version in served:
            if f"{name}-{version}" == model:
                return name, version
        listing = ", ".join(f"{name}-{version}" for name, version in served) or "none"
        raise ModelNotFoundException(f"model {model!r} is not served (served: {listing})")

    def _registered(self, name: str) -> bool:
        """Whether ``name`` is a served model, asked of the registry itself: the common case
        on every request, without building the repository index."""
        try:
            self.plane.check_model(name, None)
        except ServingError:
            return False
        return True

    async def predict(self, payload: Payload, model: str) -> Payload:
        """Run the request through the model; a refusal or failure of the handler is raised
        as a ServingError with its status and message."""
        name, version, wire = self._wire_request(payload, model)
        return answer_payload(await self.plane.infer(name, version, wire), payload)

    async def predict_streaming(
        self, payload: Payload, model: str
    ) -> tuple[str, WireResponse | ResponseStream]:
        """As ``predict``, for a client that takes the answer's parts as they come (HTTP
        ``streaming=true``): the request's id, and the whole answer or the stream of its parts
        (each made a Payload by ``answer_payload``)."""
        name, version, wire = self._wire_request(payload, model)
        return wire.request_id, await self.plane.infer_streaming(name, version, wire)

    def stream(self, payload: Payload, model: str) -> AnswerParts:
        """Every part of the answer, in order (gRPC PredictStreaming); ``cancel()`` it when the
        client leaves."""
        name, version, wire = self._wire_request(payload, model)
        return self.plane.stream(name, version, wire)

    def _wire_request(self, payload: Payload, model: str) -> tuple[str, str | None, WireRequest]:
        """The model, version and handler's request ``payload`` makes."""
        name, version = self.resolve(model)
        request_id = new_request_id()
        if payload.tensors is not None:
            inputs = payload.tensors
            if any(not tensor.name for tensor in inputs):
                metadata = self.plane.model_metadata(name, version)
                inputs = name_inputs(inputs, [str(spec.get("name")) for spec in metadata.inputs])
            return name, version, WireRequest(request_id, {}, [], TensorInferRequest(inputs))
        binary = payload.data is not None
        body = payload.data if payload.data is not None else (payload.text or "").encode()
        mime = BINARY if binary else TEXT
        headers = {"content-type": mime, "url_path": "", EXPLAIN_HEADER: "False"}
        return (
            name,
            version,
            WireRequest(request_id, headers, [RequestParameter("body", mime, body)]),
        )

    # ----- metadata (YAML, as grps answers it)

    def server_metadata(self) -> str:
        """The server, its limits and every model it serves."""
        server = self.plane.server_metadata()
        settings = self.settings
        document = {
            "server": {"name": server.name, "version": server.version},
            "device": settings.device or "auto",
            "max_concurrency": settings.max_concurrency,
            "max_connections": settings.max_connections,
            "models": [
                self._model_document(entry.name, entry.version)
                for entry in self.plane.repository_index()
            ],
        }
        return yaml.safe_dump(document, sort_keys=False)

    def model_metadata(self, model: str) -> str:
        """One model (``NAME-VERSION`` or ``NAME``): its platform, state and tensors."""
        if not model:
            raise BadRequestException("name the model in str_data (NAME or NAME-VERSION)")
        name, version = self.resolve(model)
        return yaml.safe_dump(self._model_document(name, version), sort_keys=False)

    def _model_document(self, name: str, version: str | None) -> dict[str, Any]:
        metadata = self.plane.model_metadata(name, version)
        status = self.plane.version_status(name, version)
        return {
            "name": metadata.name,
            "version": metadata.version,
            "platform": metadata.platform,
            "state": status.state.value,
            "inputs": metadata.inputs,
            "outputs": metadata.outputs,
        }


def answer_payload(response: WireResponse, asked: Payload) -> Payload:
    """The handler's answer (or part) to ``asked`` as grps data: output tensors, text, or bytes
    (for a ``bin_data`` request, or an answer that is not UTF-8); its failure raised as a
    ServingError."""
    if response.status >= 400:
        raise ServingError(failure_message(response), status=response.status)
    if response.tensors is not None:
        return Payload(tensors=response.tensors.outputs)
    if asked.data is None:
        try:
            return Payload(text=response.body.decode())
        except UnicodeDecodeError:
            pass
    return Payload(data=response.body)
