"""KServe's generate extension over REST (Triton's ``extension_generate.md``):
``POST /v2/models/{m}[/versions/{v}]/generate`` answers one JSON object,
``…/generate_stream`` answers server-sent events, one ``data:`` event per part as the handler
sends it.

The handler gets the client's JSON object as its body (``{"text_input": …, "parameters": …}``),
marked ``modelserve-protocol: generate``. Each part it answers becomes a generate response:
a JSON object answer gives its fields, anything else is the ``text_output``; ``model_name``,
``model_version`` and the request's ``id`` are added. ``/generate`` joins a handler's parts
into one answer. Errors before the first part are the v2 ``{"error": …}`` JSON with their
status; after it, an error event ends the stream (its status was already sent).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelserve.api.protocol_routes import error_body, json_object, protocol_request
from modelserve.api.streaming import PartsResponse, parts_response
from modelserve.engine.dataplane import DataPlane
from modelserve.engine.errors import BadRequestException, ServingError
from modelserve.engine.streams import ResponseStream
from modelserve.protocol_contract import GENERATE
from modelserve.wire import WireResponse, failure_message

EVENT_STREAM = "text/event-stream; charset=utf-8"
JSON_TYPES = ("application/json",)


class GenerateAnswer:
    """How one request's parts become generate responses: the model, version and id they
    name."""

    def __init__(self, model: str, version: str, request_id: str | None) -> None:
        self._named: dict[str, Any] = {} if request_id is None else {"id": request_id}
        self._named |= {"model_name": model, "model_version": version}

    def json(self, part: WireResponse) -> bytes:
        """One part as a generate response object."""
        return orjson.dumps({**self._named, **_fields(part)})

    def event(self, part: WireResponse) -> bytes:
        """One part as a server-sent event."""
        return b"data: " + self.json(part) + b"\n\n"


def error_event(error: ServingError) -> bytes:
    """An error after the first part, as the last event of the stream."""
    return b"data: " + orjson.dumps({"error": error.message}) + b"\n\n"


def _fields(part: WireResponse) -> dict[str, Any]:
    """A JSON object answer's fields; anything else is the generated text."""
    if (part.content_type or "").partition(";")[0].strip() in JSON_TYPES:
        try:
            value = orjson.loads(part.body)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
    return {"text_output": part.body.decode("utf-8", errors="replace")}


def generate_routes(plane: DataPlane, prefixes: tuple[str, ...]) -> list[BaseRoute]:
    """``generate`` and ``generate_stream`` under each model path prefix of the v2 mount."""

    async def answer_for(request: Request) -> tuple[str, str | None, GenerateAnswer, Any]:
        name = request.path_params["model_name"]
        version = request.path_params.get("version")
        plane.check_model(name, version)  # 404 before reading the body
        if plane.is_pipeline(name, version):
            raise BadRequestException(f"{name} is a pipeline, which takes tensors only: use /infer")
        body = await json_object(request)
        request_id = body.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise BadRequestException('"id" must be a string')
        served = plane.version_status(name, version).version
        wire = await protocol_request(request, GENERATE)
        return name, version, GenerateAnswer(name, served, request_id), wire

    async def generate(request: Request) -> Response:
        name, version, answer, wire = await answer_for(request)
        response = await plane.infer(name, version, wire)
        if response.status >= 400:
            return error_body(response.status, failure_message(response))
        return Response(answer.json(response), media_type="application/json")

    async def generate_stream(request: Request) -> Response | PartsResponse:
        name, version, answer, wire = await answer_for(request)
        first = await plane.infer_streaming(name, version, wire)
        if isinstance(first, ResponseStream):
            return parts_response(first, wire.request_id, answer.event, error_event, EVENT_STREAM)
        if first.status >= 400:  # failed before any part: the v2 JSON error
            return error_body(first.status, failure_message(first))
        return Response(answer.event(first), media_type=EVENT_STREAM)

    routes: list[BaseRoute] = []
    for prefix in prefixes:
        routes += [
            Route(f"{prefix}/generate", generate, methods=["POST"]),
            Route(f"{prefix}/generate_stream", generate_stream, methods=["POST"]),
        ]
    return routes
