"""The access log and the response counters: one observer of every HTTP response of a plane.

Both need the response status, so one ASGI wrapper serves both: a second wrapper around every
request would cost more than the work it does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelserve.telemetry.logs import ACCESS_LOGGER, log_access

access_log = logging.getLogger(ACCESS_LOGGER)


class AccessLog:
    """ASGI middleware: counts each response's status with ``count(status)`` and logs client,
    method, path, status and latency of each request.

    Pure ASGI (no Request object) because it sits on the inference hot path; with the access
    logger off for INFO it only counts.
    """

    def __init__(self, app: ASGIApp, count: Callable[[int], None]) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        count = self.count
        if not access_log.isEnabledFor(logging.INFO):

            async def counting_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    count(message["status"])
                await send(message)

            await self.app(scope, receive, counting_send)
            return
        started = time.perf_counter()
        status = 0
        logged = False

        async def logging_send(message: Message) -> None:
            nonlocal status, logged
            if message["type"] == "http.response.start":
                status = message["status"]
                count(status)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                latency_ms = (time.perf_counter() - started) * 1000
                await send(message)
                logged = True
                log_request(scope, status, latency_ms)
                return
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        finally:
            if not logged:
                # The app raised or returned before finishing a response; the server
                # answers 500 for one that never started.
                if not status:
                    count(500)
                log_request(scope, status or 500, (time.perf_counter() - started) * 1000)


def log_request(scope: Scope, status: int, latency_ms: float) -> None:
    """The access-log line of the request in ``scope``, answered with ``status``."""
    client = scope.get("client")
    client_text = f"{client[0]}:{client[1]}" if client else "-"
    protocol = f"HTTP/{scope['http_version']}"
    log_access(client_text, scope["method"], scope["path"], protocol, status, latency_ms)
