"""KServe v2 / Open Inference Protocol over REST, on the inference plane.

Health, server and model metadata are answered by the frontend; ``infer`` (and TorchServe's
``explain``) go through the ordinary predict path with the client's body and headers unchanged,
plus the header ``modelserve-protocol: v2`` that tells the handler which protocol it speaks.
The handler answers the v2 response: JSON, or a JSON header followed by binary output data
(the ``binary_tensor_data`` extension, with ``inference-header-content-length``).

Every error on these routes, the frontend's included (unknown model or version, full queue,
timeout, body too large), is the protocol's ``{"error": "<message>"}`` with its status code.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp

from modelserve import __version__
from modelserve.api.responses import (
    METHOD_NOT_ALLOWED_MESSAGE,
    NOT_FOUND_MESSAGE,
    handler_response,
)
from modelserve.engine.engine import Engine
from modelserve.engine.errors import BadRequestException, ServingError
from modelserve.engine.model_version import ModelVersion
from modelserve.protocol_contract import HEADER_LENGTH, PLATFORMS, PROTOCOL_HEADER, V2
from modelserve.wire import RequestParameter, WireRequest

SERVER_NAME = "modelserve"
EXTENSIONS = ["binary_tensor_data"]
# The v2 platform of any handler but the tensor handler (whose backends have their own).
DEFAULT_PLATFORM = "modelserve"
TENSOR_HANDLERS = frozenset({"tensor", "modelserve_handlers.tensor"})
JSON = "application/json"


def error_body(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": message}``: the error of the v2 and TF Serving protocols."""
    return Response(
        orjson.dumps({"error": message}), status_code=status, headers=headers, media_type=JSON
    )


def compact_json(body: Any, status: int = 200) -> Response:
    """A protocol response: compact JSON."""
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


async def _serving_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServingError)
    return error_body(exc.status, exc.message, exc.headers)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_body(404, NOT_FOUND_MESSAGE)
    if exc.status_code == 405:
        return error_body(405, METHOD_NOT_ALLOWED_MESSAGE, exc.headers)
    return error_body(exc.status_code, str(exc.detail), exc.headers)


def protocol_app(routes: list[BaseRoute]) -> ASGIApp:
    """A router whose errors, routing ones included, are ``{"error": ...}`` bodies."""
    return ExceptionMiddleware(
        Router(routes, redirect_slashes=False),
        handlers={ServingError: _serving_error, HTTPException: _http_error},
    )


async def protocol_request(
    request: Request, protocol: str, *, explain: bool = False
) -> WireRequest:
    """The request as the handler sees it: the client's headers and body, marked with the
    protocol. Only the body goes to the handler (no query parameters, no form parsing)."""
    headers = dict(request.headers)
    headers["url_path"] = ""
    headers["explain"] = "True" if explain else "False"
    headers[PROTOCOL_HEADER] = protocol
    mime = headers.get("content-type", "").partition(";")[0].strip().lower()
    body = await request.body()
    return WireRequest(str(uuid.uuid4()), headers, [RequestParameter("body", mime or None, body)])


def platform(version: ModelVersion) -> str:
    """The v2 ``platform`` of a version: its framework for the tensor handler."""
    if version.handler not in TENSOR_HANDLERS:
        return DEFAULT_PLATFORM
    from modelserve_handlers.backends.artifacts import detect_backend
    from modelserve_handlers.backends.model import ModelLoadError

    try:
        backend = detect_backend(version.model_dir, version.manifest.to_dict())
    except (ModelLoadError, OSError):
        return DEFAULT_PLATFORM
    return PLATFORMS.get(backend, DEFAULT_PLATFORM)


def check_header_length(request: Request, body_length: int | None = None) -> None:
    """400 for an ``Inference-Header-Content-Length`` that is not a length inside the body."""
    value = request.headers.get(HEADER_LENGTH)
    if value is None:
        return
    stripped = value.strip()
    if not stripped.isdigit():
        raise BadRequestException(f"{HEADER_LENGTH} must be a non-negative integer, got {value!r}")
    if body_length is not None and int(stripped) > body_length:
        raise BadRequestException(
            f"{HEADER_LENGTH} is {int(stripped)} but the body has only {body_length} bytes"
        )


def v2_routes(engine: Engine) -> list[BaseRoute]:
    """The v2 routes of the inference plane: ``GET /v2`` and everything under ``/v2/``."""

    async def server_metadata(_request: Request) -> Response:
        return compact_json({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})

    async def live(_request: Request) -> Response:
        return compact_json({"live": True})

    async def ready(_request: Request) -> Response:
        health = engine.health()
        if not health.ready:  # the spec: 200 for true, a 4xx for false
            reasons = "; ".join(f"{name}: {why}" for name, why in health.not_ready.items())
            return error_body(400, f"The server is not ready: {health.status} ({reasons})")
        return compact_json({"ready": True})

    async def model_metadata(request: Request) -> Response:
        name = request.path_params["model_name"]
        version = request.path_params.get("version")
        model_version = engine.registry.get(name, version)
        tensors = engine.tensor_metadata(name, version)
        return compact_json(
            {
                "name": name,
                "versions": sorted(engine.registry.entry(name).versions),
                "platform": platform(model_version),
                "inputs": tensors["inputs"],
                "outputs": tensors["outputs"],
            }
        )

    async def model_ready(request: Request) -> Response:
        name = request.path_params["model_name"]
        model_version = engine.registry.get(name, request.path_params.get("version"))
        if model_version.pool.ready_count() == 0:
            return error_body(
                400,
                f"Model {name} version {model_version.version} is not ready: "
                "it has no ready worker",
            )
        return compact_json({"name": name, "ready": True})

    async def run(request: Request, explain: bool) -> Response:
        name = request.path_params["model_name"]
        version = request.path_params.get("version")
        engine.registry.get(name, version)  # 404 before reading the body
        wire = await protocol_request(request, V2, explain=explain)
        check_header_length(request, len(wire.parameters[0].value))
        response = await engine.predict(name, version, wire)
        return handler_response(response, wire.request_id)

    async def infer(request: Request) -> Response:
        return await run(request, explain=False)

    async def explain(request: Request) -> Response:
        return await run(request, explain=True)

    model_routes: list[BaseRoute] = [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/", server_metadata, methods=["GET"]),
    ]
    for prefix in ("/models/{model_name}", "/models/{model_name}/versions/{version}"):
        model_routes += [
            Route(prefix, model_metadata, methods=["GET"]),
            Route(f"{prefix}/ready", model_ready, methods=["GET"]),
            Route(f"{prefix}/infer", infer, methods=["POST"]),
            Route(f"{prefix}/explain", explain, methods=["POST"]),
        ]

    async def root(request: Request) -> Response:
        # /v2 itself is outside the mount; its wrong methods get the protocol's error too.
        if request.method in ("GET", "HEAD"):
            return await server_metadata(request)
        return error_body(405, METHOD_NOT_ALLOWED_MESSAGE, {"Allow": "GET, HEAD"})

    return [
        Route("/v2", root, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        Mount("/v2", app=protocol_app(model_routes)),
    ]
