"""KServe v2 / Open Inference Protocol over REST, on the inference plane: an adapter over the
data plane.

Health, server and model metadata are the data plane's answers as v2 JSON; ``infer`` (and
TorchServe's ``explain``) hand the client's body and headers to the handler unchanged, plus the
header ``modelserve-protocol: v2`` that tells it which protocol it speaks. The handler answers
the v2 response: JSON, or a JSON header followed by binary output data (the
``binary_tensor_data`` extension, with ``inference-header-content-length``).

Every error on these routes, the frontend's included (unknown model or version, full queue,
timeout, body too large), is the protocol's ``{"error": "<message>"}`` with its status code.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from modelserve.api.disconnects import unless_disconnected
from modelserve.api.generate import generate_routes
from modelserve.api.hot_path import HotRoute
from modelserve.api.protocol_routes import (
    any_path,
    compact_json,
    error_body,
    json_object,
    protocol_app,
    protocol_request,
    render_serving_error,
)
from modelserve.api.responses import METHOD_NOT_ALLOWED_MESSAGE, handler_response
from modelserve.api.tensor_bodies import decode_infer_body, encode_infer_body
from modelserve.engine.dataplane import FILE_PARAMETER_PREFIX, DataPlane
from modelserve.engine.errors import BadRequestException
from modelserve.protocol_contract import HEADER_LENGTH, V2
from modelserve.wire import WireRequest, new_request_id


def check_header_length(request: Request, body_length: int) -> None:
    """400 for an ``Inference-Header-Content-Length`` that is not a length inside the body."""
    value = request.headers.get(HEADER_LENGTH)
    if value is None:
        return
    stripped = value.strip()
    if not stripped.isdigit():
        raise BadRequestException(f"{HEADER_LENGTH} must be a non-negative integer, got {value!r}")
    if int(stripped) > body_length:
        raise BadRequestException(
            f"{HEADER_LENGTH} is {int(stripped)} but the body has only {body_length} bytes"
        )


def _base64(key: str, value: Any) -> bytes:
    """A ``file:`` parameter's contents, base64 in JSON as Triton takes them."""
    if not isinstance(value, str):
        raise BadRequestException(f'"parameters.{key}" must be a base64 string')
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise BadRequestException(f'"parameters.{key}" is not base64: {exc}') from exc


def v2_routes(plane: DataPlane) -> tuple[list[BaseRoute], list[HotRoute]]:
    """The v2 routes of the inference plane: ``GET /v2`` and everything under ``/v2/``; and
    the infer routes again, for the hot path."""
    server = plane.server_metadata()
    server_body = {
        "name": server.name,
        "version": server.version,
        "extensions": list(server.extensions),
    }

    async def server_metadata(_request: Request) -> Response:
        return compact_json(server_body)

    async def live(_request: Request) -> Response:
        return compact_json({"live": plane.live()})

    async def ready(_request: Request) -> Response:
        health = plane.health()
        if not health.ready:  # the spec: 200 for true, a 4xx for false
            reasons = "; ".join(f"{name}: {why}" for name, why in health.not_ready.items())
            return error_body(400, f"The server is not ready: {health.status} ({reasons})")
        return compact_json({"ready": True})

    async def model_metadata(request: Request) -> Response:
        path = request.path_params
        metadata = plane.model_metadata(path["model_name"], path.get("version"))
        return compact_json(
            {
                "name": metadata.name,
                "versions": metadata.versions,
                "platform": metadata.platform,
                "inputs": metadata.inputs,
                "outputs": metadata.outputs,
            }
        )

    async def model_ready(request: Request) -> Response:
        name = request.path_params["model_name"]
        status = plane.version_status(name, request.path_params.get("version"))
        if not status.ready:
            return error_body(
                400, f"Model {name} version {status.version} is not ready: it has no ready worker"
            )
        return compact_json({"name": name, "ready": True})

    async def run(request: Request, explain: bool) -> Response:
        name = request.path_params["model_name"]
        version = request.path_params.get("version")
        plane.check_model(name, version)  # 404 before reading the body
        if plane.is_pipeline(name, version) and not explain:
            return await run_pipeline(request, name, version)
        plane.refuse_decoupled(name, version, "HTTP end point")
        wire = await protocol_request(request, V2)
        check_header_length(request, len(wire.parameters[0].value))
        call = plane.explain if explain else plane.infer
        return handler_response(await call(name, version, wire), wire.request_id)

    async def run_pipeline(request: Request, name: str, version: str | None) -> Response:
        # No handler reads a pipeline's body: the frontend decodes it, and encodes the answer.
        asked = decode_infer_body(await request.body(), request.headers.get(HEADER_LENGTH))
        wire = WireRequest(new_request_id(), {}, [], asked.tensors)
        # A client that goes away cancels the steps not yet answered.
        answer = await unless_disconnected(request, plane.infer(name, version, wire))
        if answer.tensors is None:
            return handler_response(answer, wire.request_id)
        encoded = encode_infer_body(answer.tensors, asked)
        headers = {"x-request-id": wire.request_id}
        if encoded.json_length is None:
            return Response(encoded.body, media_type="application/json", headers=headers)
        headers[HEADER_LENGTH] = str(encoded.json_length)
        return Response(encoded.body, media_type="application/octet-stream", headers=headers)

    async def model_config(request: Request) -> Response:
        path = request.path_params
        return compact_json(plane.model_config(path["model_name"], path.get("version")))

    async def repository_index(request: Request) -> Response:
        # Triton's body is optional: {"ready": true} lists only the versions ready to serve.
        asked = await json_object(request)
        if not isinstance(asked.get("ready", False), bool):
            raise BadRequestException('"ready" must be true or false')
        entries = plane.repository_index(ready_only=asked.get("ready", False))
        return compact_json(
            [
                {"name": e.name, "version": e.version, "state": e.state, "reason": e.reason}
                for e in entries
            ]
        )

    async def statistics(request: Request) -> Response:
        path = request.path_params
        entries = plane.statistics(path.get("model_name"), path.get("version"))
        return compact_json({"model_stats": [entry.triton_json() for entry in entries]})

    async def load(request: Request) -> Response:
        # Triton's {"parameters": {"config": "<JSON>", "file:1/model.onnx": "<base64>"}}
        # loads with that config and those files instead.
        parameters = (await json_object(request)).get("parameters") or {}
        if not isinstance(parameters, dict):
            raise BadRequestException('"parameters" must be a JSON object')
        config = parameters.get("config")
        if config is not None and not isinstance(config, str):
            raise BadRequestException('"parameters.config" must be a JSON string')
        files = {
            key.removeprefix(FILE_PARAMETER_PREFIX): _base64(key, value)
            for key, value in parameters.items()
            if key.startswith(FILE_PARAMETER_PREFIX)
        }
        await plane.load_model(request.path_params["model_name"], config, files)
        return Response(status_code=200)

    async def unload(request: Request) -> Response:
        await json_object(request)  # unload_dependents: no model depends on another here
        await plane.unload_model(request.path_params["model_name"])
        return Response(status_code=200)

    async def infer(request: Request) -> Response:
        return await run(request, explain=False)

    async def explain(request: Request) -> Response:
        return await run(request, explain=True)

    prefixes = ("/models/{model_name}", "/models/{model_name}/versions/{version}")
    # The hot path first: Starlette tries routes in order (about 1 µs each), and no other
    # route's path matches an infer path.
    model_routes: list[BaseRoute] = [
        Route(f"{prefix}/infer", infer, methods=["POST"]) for prefix in prefixes
    ]
    model_routes += [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/", server_metadata, methods=["GET"]),
        Route("/repository/index", repository_index, methods=["POST"]),
        # Before /models/{model_name}: Triton's path for every model's statistics.
        Route("/models/stats", statistics, methods=["GET"]),
        Route("/repository/models/{model_name}/load", load, methods=["POST"]),
        Route("/repository/models/{model_name}/unload", unload, methods=["POST"]),
    ]
    model_routes += generate_routes(plane, prefixes)
    for prefix in prefixes:
        model_routes += [
            Route(prefix, model_metadata, methods=["GET"]),
            Route(f"{prefix}/ready", model_ready, methods=["GET"]),
            Route(f"{prefix}/config", model_config, methods=["GET"]),
            Route(f"{prefix}/stats", statistics, methods=["GET"]),
            Route(f"{prefix}/explain", explain, methods=["POST"]),
        ]

    async def root(request: Request) -> Response:
        # /v2 itself is outside the mount; its wrong methods get the protocol's error too.
        if request.method in ("GET", "HEAD"):
            return await server_metadata(request)
        return error_body(405, METHOD_NOT_ALLOWED_MESSAGE, {"Allow": "GET, HEAD"})

    routes: list[BaseRoute] = [
        Route("/v2", root, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        any_path(Mount("/v2", app=protocol_app(model_routes))),
    ]
    hot = [HotRoute(f"/v2{prefix}/infer", infer, render_serving_error) for prefix in prefixes]
    return routes, hot
