"""What the KServe v2 and TF Serving REST routes share: their ``{"error": "<message>"}`` error
body (the frontend's errors included: unknown model, full queue, timeout, routing), compact
JSON, and the request they hand the handler (the client's headers and body, marked with the
protocol in ``modelserve-protocol``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp

from modelserve.api.plane import request_headers
from modelserve.api.responses import METHOD_NOT_ALLOWED_MESSAGE, NOT_FOUND_MESSAGE
from modelserve.engine.dataplane import EXPLAIN_HEADER
from modelserve.engine.errors import BadRequestException, ServingError
from modelserve.protocol_contract import PROTOCOL_HEADER
from modelserve.wire import RequestParameter, WireRequest, new_request_id

JSON = "application/json"
PathRoute = TypeVar("PathRoute", Mount, Route)


def error_body(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": message}``: the error of the v2 and TF Serving protocols."""
    return Response(
        orjson.dumps({"error": message}), status_code=status, headers=headers, media_type=JSON
    )


def compact_json(body: Any, status: int = 200) -> Response:
    """A protocol response: compact JSON."""
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


# A protocol's error response: (status, message, headers) → its body.
ErrorRenderer = Callable[[int, str, dict[str, str] | None], Response]


def render_serving_error(exc: ServingError) -> Response:
    """An engine error as :func:`protocol_app` renders it by default (``{"error": ...}``), for
    the hot paths (api/hot_path.py) that serve a protocol's routes around its router."""
    return error_body(exc.status, exc.message, exc.headers)


def protocol_app(routes: list[BaseRoute], render: ErrorRenderer = error_body) -> ASGIApp:
    """A router whose errors, routing ones included, are rendered by ``render`` (by default
    ``{"error": ...}`` bodies)."""

    async def serving_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServingError)
        return render(exc.status, exc.message, exc.headers)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return render(404, NOT_FOUND_MESSAGE, None)
        if exc.status_code == 405:
            return render(405, METHOD_NOT_ALLOWED_MESSAGE, exc.headers)
        return render(exc.status_code, str(exc.detail), exc.headers)

    return ExceptionMiddleware(
        Router(routes, redirect_slashes=False),
        handlers={ServingError: serving_error, HTTPException: http_error},
    )


def any_path(route: PathRoute) -> PathRoute:
    """``route``, matching paths with any characters in its ``.*`` part, newlines included.

    Starlette's path patterns stop at a newline, so a path like ``/v2/models/a%0Ab/ready``
    (naming a model no registration accepts) would fall through to the plane's
    TorchServe-shaped 404 instead of this protocol's ``{"error"}``.
    """
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return route


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body; ``{}`` when there is none (400 for anything else)."""
    body = await request.body()
    try:
        value = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise BadRequestException(f"the request body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadRequestException("the request body must be a JSON object")
    return value


async def protocol_request(request: Request, protocol: str) -> WireRequest:
    """The request as the handler sees it: the client's headers and body, marked with the
    protocol. Only the body goes to the handler (no query parameters, no form parsing)."""
    headers = request_headers(request)
    headers["url_path"] = ""
    headers[EXPLAIN_HEADER] = "False"  # the data plane's explain sets it
    headers[PROTOCOL_HEADER] = protocol
    mime = headers.get("content-type", "").partition(";")[0].strip().lower()
    body = await request.body()
    return WireRequest(new_request_id(), headers, [RequestParameter("body", mime or None, body)])
