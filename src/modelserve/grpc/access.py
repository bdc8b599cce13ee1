"""The access-log line of a gRPC streaming call, written at its end (as the HTTP planes write
one per request, and so per stream, at its end)."""

from __future__ import annotations

import time

import grpc

from modelserve.telemetry.logs import log_access

# What the line says of a call the client cancelled (nginx's "client closed request").
CLIENT_CLOSED = 499
SERVICE = "/org.pytorch.serve.grpc.inference.InferenceAPIsService"


class StreamAccess:
    """Logs a streaming call when it ends: its peer, method, status and duration. The status
    is HTTP's number the call sets (``status``): 200 once it has answered everything, the
    error's where it fails, and 499 while unset: the call ended before it could finish (the
    client cancelled)."""

    def __init__(
        self, context: grpc.aio.ServicerContext, method: str, service: str = SERVICE
    ) -> None:
        self.status = CLIENT_CLOSED
        self._path = f"{service}/{method}"
        self._started = time.perf_counter()
        context.add_done_callback(self._ended)

    def _ended(self, context: grpc.aio.ServicerContext) -> None:
        latency_ms = (time.perf_counter() - self._started) * 1000
        log_access(_client(context.peer()), "POST", self._path, "gRPC", self.status, latency_ms)


def _client(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` as ``127.0.0.1:5000`` (ipv6 keeps its brackets)."""
    for prefix in ("ipv4:", "ipv6:"):
        if peer.startswith(prefix):
            return peer[len(prefix) :]
    return peer
