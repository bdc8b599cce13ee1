"""Paddle Serving's HTTP API of pipeline services, as its grpc-gateway answers it:
``POST /{service}/{method}`` with a JSON ``Request`` (``{"key": [...], "value": [...],
"logid": N}``) → ``{"err_no", "err_msg", "key", "value", "tensors"}``, 200 whatever the
``err_no`` (a service that fails a request still answers it). Only a body that is not a
``Request`` is an HTTP error: 400 with the gateway's ``{"error", "code", "message",
"details"}`` (gRPC's INVALID_ARGUMENT, 3). Unknown fields are ignored, as the gateway
ignores them; ``method`` is not looked at (Paddle's servicer does not either). A client that
goes away cancels the ops not yet answered.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelserve.api.disconnects import unless_disconnected
from modelserve.api.responses import JSON_MEDIA_TYPE
from modelserve.engine.dataplane import DataPlane
from modelserve.engine.paddle_pipelines import PaddleRequest, PaddleResponse

# gRPC's INVALID_ARGUMENT: what the gateway answers a body it cannot read into a Request.
INVALID_ARGUMENT = 3
# A proto3 JSON int64 is a number or a decimal string.
INT64_RANGE = range(-(2**63), 2**63)


class BadPaddleRequest(ValueError):
    """The body is not a pipeline ``Request``; the message says which field is wrong."""


def paddle_routes(plane: DataPlane) -> list[Route]:
    """The route of every pipeline service the plane serves (add it last: it takes any
    two-segment path)."""

    async def prediction(request: Request) -> Response:
        try:
            parsed = parse_request(request.path_params["service"], await request.body())
        except BadPaddleRequest as exc:
            message = str(exc)
            error = {"error": message, "code": INVALID_ARGUMENT, "message": message, "details": []}
            return Response(orjson.dumps(error), 400, media_type=JSON_MEDIA_TYPE)
        answer = await unless_disconnected(request, plane.predict_paddle(parsed))
        return Response(orjson.dumps(render(answer)), media_type=JSON_MEDIA_TYPE)

    return [Route("/{service}/{method}", prediction, methods=["POST"])]


def parse_request(service: str, body: bytes) -> PaddleRequest:
    """The ``Request`` in ``body`` (empty: an empty one) for the service the path names."""
    if not body.strip():
        return PaddleRequest(service)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPaddleRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadPaddleRequest(f"the body must be a JSON object, not {_json_type(document)}")
    tensors = document.get("tensors")
    if tensors is not None and not isinstance(tensors, list):
        raise BadPaddleRequest(f"tensors must be a list, not {_json_type(tensors)}")
    return PaddleRequest(
        service,
        _strings(document, "key"),
        _strings(document, "value"),
        _int64(document),
        has_tensors=bool(tensors),
    )


def render(response: PaddleResponse) -> dict[str, Any]:
    """Paddle's ``Response`` as the gateway writes it (every field, in proto order)."""
    return {
        "err_no": int(response.err_no),
        "err_msg": response.err_msg,
        "key": response.keys,
        "value": response.values,
        "tensors": [],
    }


def _strings(document: dict[str, Any], field: str) -> list[str]:
    value = document.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadPaddleRequest(f"{field} must be a list of strings, not {_json_type(value)}")
    return value


def _int64(document: dict[str, Any]) -> int:
    value = document.get("logid")
    if value is None:
        return 0
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise BadPaddleRequest(f"logid must be an integer, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value not in INT64_RANGE:
        raise BadPaddleRequest(f"logid must be a 64-bit integer, not {value!r}")
    return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "null")
