"""Bearer keys on the gRPC ports: metadata ``authorization: Bearer <key>``, as TorchServe reads.

A call without the port's key (inference key on the inference port, management key on the
management port) ends UNAUTHENTICATED, which matches the REST planes' 401; TorchServe answers
PERMISSION_DENIED.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from modelserve.security.tokens import AUTH_FAILED_MESSAGE, KeyKind, KeyVerifier

_BEARER = re.compile(r"^Bearer\s+(\S+)$", re.IGNORECASE)


def presented_key(metadata: tuple[tuple[str, Any], ...] | None) -> str | None:
    """The key of the call's ``authorization`` metadata, if it has a Bearer one."""
    for name, value in metadata or ():
        if name == "authorization" and isinstance(value, str):
            match = _BEARER.match(value.strip())
            return match.group(1) if match else None
    return None


async def _refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, AUTH_FAILED_MESSAGE)


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that refuses the call before reading it."""
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_refuse)
    return grpc.unary_unary_rpc_method_handler(_refuse)


# What open_health_checks lets through without a key: whether the server serves, nothing more.
HEALTH_METHODS = frozenset(
    {
        "/inference.GRPCInferenceService/ServerLive",
        "/inference.GRPCInferenceService/ServerReady",
        "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Ping",
        "/grps.protos.v1.GrpsService/CheckLiveness",
        "/grps.protos.v1.GrpsService/CheckReadiness",
    }
)


class RequireKey(grpc.aio.ServerInterceptor):
    """Lets a call through only with the current key of ``kind``, or to one of ``open_methods``
    (full method names)."""

    def __init__(
        self, verifier: KeyVerifier, kind: KeyKind, open_methods: frozenset[str] = frozenset()
    ) -> None:
        self.verifier = verifier
        self.kind = kind
        self.open_methods = open_methods

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method in self.open_methods:
            return handler  # None: an unknown method, which grpc answers UNIMPLEMENTED
        key = presented_key(handler_call_details.invocation_metadata)
        if key is not None and self.verifier.verify(self.kind, key):
            return handler
        return _refusal(handler)
