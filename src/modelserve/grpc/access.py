"""The access-log line of a gRPC streaming call, written at its end (as the HTTP planes write
one per request, and per stream, at its end)."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

import grpc

from modelserve.telemetry.logs import log_access

# What the line says of a call the client cancelled (nginx's "client closed request").
CLIENT_CLOSED = 499
SERVICE = "/org.pytorch.serve.grpc.inference.InferenceAPIsService"


class StreamAccess:
    """``with StreamAccess(context, method) as access:`` around a streaming call logs it when
    it ends: its peer, method, status (HTTP's numbers: ``access.status``, set by the call
    where it fails; 499 when the client cancelled) and duration."""

    def __init__(self, context: grpc.aio.ServicerContext, method: str) -> None:
        self._context = context
        self._path = f"{SERVICE}/{method}"
        self.status = 200
        self._started = 0.0

    def __enter__(self) -> StreamAccess:
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None and issubclass(kind, asyncio.CancelledError | GeneratorExit):
            self.status = CLIENT_CLOSED
        elif kind is not None and self.status < 400:
            self.status = 500
        latency_ms = (time.perf_counter() - self._started) * 1000
        log_access(
            _client(self._context.peer()), "POST", self._path, "gRPC", self.status, latency_ms
        )


def _client(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` as ``127.0.0.1:5000`` (ipv6 keeps its brackets)."""
    for prefix in ("ipv4:", "ipv6:"):
        if peer.startswith(prefix):
            return peer[len(prefix) :]
    return peer
