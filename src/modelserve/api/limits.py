"""Request body size limit for a plane, enforced before and while the body is read."""

from __future__ import annotations

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelserve.api.responses import JSON_MEDIA_TYPE, error_response
from modelserve.engine.errors import ServingError


class RequestTooLargeException(ServingError):
    """The request body is larger than max_request_size."""

    status = 413


class BodySizeLimit:
    """ASGI middleware: 413 for a declared or streamed body above ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.limit:
                    response = _too_large(scope["path"], self._message())
                    await response(scope, receive, send)
                    return
                break
        await self.app(scope, self._counting(receive), send)

    def _message(self) -> str:
        return f"Request body exceeds max_request_size ({self.limit} bytes)"

    def _counting(self, receive: Receive) -> Receive:
        # A chunked upload declares no length: count what arrives and stop at the limit.
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise RequestTooLargeException(self._message())
            return message

        return counted_receive


def _too_large(path: str, message: str) -> Response:
    # The KServe v2 and TF Serving routes answer their protocols' {"error": ...} body.
    if path.startswith(("/v1/", "/v2/")):
        body = orjson.dumps({"error": message})
        return Response(body, status_code=413, media_type=JSON_MEDIA_TYPE)
    return error_response(413, "RequestTooLargeException", message)
