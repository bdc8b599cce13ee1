"""TorchServe's HTTP → gRPC status mapping, and aborting a call with an engine error."""

from __future__ import annotations

from typing import NoReturn

import grpc

from modelserve.engine.errors import ServingError

_BY_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    416: grpc.StatusCode.OUT_OF_RANGE,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code(http_status: int) -> grpc.StatusCode:
    """The gRPC status TorchServe (``GRPCUtils.getGRPCStatusCode``) gives an HTTP status."""
    code = _BY_HTTP_STATUS.get(http_status)
    if code is not None:
        return code
    if 200 <= http_status < 300:
        return grpc.StatusCode.OK
    if 400 <= http_status < 500:
        return grpc.StatusCode.FAILED_PRECONDITION
    if 500 <= http_status < 600:
        return grpc.StatusCode.INTERNAL
    return grpc.StatusCode.UNKNOWN


async def abort_with(context: grpc.aio.ServicerContext, error: ServingError) -> NoReturn:
    """End the call with the engine error's status and message (what REST puts in its body)."""
    await context.abort(grpc_code(error.status), error.message)
