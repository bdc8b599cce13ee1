"""JSON rendering shared by the planes: TorchServe's pretty-printed bodies and error shape."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from modelserve.engine.errors import ServingError
from modelserve.wire import WireResponse

JSON_MEDIA_TYPE = "application/json"
NOT_FOUND_MESSAGE = "Requested resource is not found, please refer to API document."
METHOD_NOT_ALLOWED_MESSAGE = "Requested method is not allowed, please refer to API document."


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Pretty-printed JSON with a trailing newline, as TorchServe's Gson output."""
    content = orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"
    return Response(content, status_code=status, headers=headers, media_type=JSON_MEDIA_TYPE)


def handler_response(response: WireResponse, request_id: str) -> Response:
    """The handler's answer as an HTTP response: its status, body, content type and headers
    (``inference-header-content-length`` among them), with the request's ``x-request-id``."""
    return Response(
        response.body,
        status_code=response.status,
        headers={**response.headers, "x-request-id": request_id},
        media_type=response.content_type,
    )


def status_response(message: str, status: int = 200) -> Response:
    """``{"status": message}``."""
    return json_response({"status": message}, status)


def error_response(
    status: int, type_name: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """``{"code", "type", "message"}``, the error body of every plane."""
    return json_response({"code": status, "type": type_name, "message": message}, status, headers)


def serving_error_response(exc: ServingError) -> Response:
    """An engine error as the planes' ``{"code", "type", "message"}`` body."""
    return error_response(exc.status, exc.type_name, exc.message, exc.headers)


async def serving_error_handler(_request: Request, exc: Exception) -> Response:
    """Render an engine error."""
    assert isinstance(exc, ServingError)
    return serving_error_response(exc)


async def http_error_handler(_request: Request, exc: Exception) -> Response:
    """Render Starlette's routing errors the way TorchServe does."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(404, "ResourceNotFoundException", NOT_FOUND_MESSAGE)
    if exc.status_code == 405:
        return error_response(405, "MethodNotAllowedException", METHOD_NOT_ALLOWED_MESSAGE)
    return error_response(exc.status_code, "BadRequestException", str(exc.detail))


EXCEPTION_HANDLERS = {ServingError: serving_error_handler, HTTPException: http_error_handler}
