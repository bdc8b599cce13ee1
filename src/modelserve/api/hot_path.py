"""The inference hot paths (``POST /predictions/{m}[/{v}]``, ``POST /v2/models/{m}[/versions/
{v}]/infer``) straight to their endpoints, around Starlette's middleware and router.

Starlette reaches an endpoint through its error middleware, the plane's access log, trailing
slashes, key check and body limit, an exception middleware, a router that tries some sixty
routes in turn (a mount and a second router for ``/v2``) and a per-route exception wrapper:
each a coroutine and most a ``send`` wrapper, about a fifth of the frontend's CPU per request
(docs/performance.md, "Frontend cost per request"). This ASGI app sits in front of the plane's
Starlette app and serves a hot request itself when it is the plain case: the exact path, no
CORS policy, the plane's key when one is required, a ``Content-Length`` within the limit and a
body the endpoint reads whole. It then does what those layers would do, in one place: the
access log and status counter, the endpoint (the same function the router calls), and the
error rendering of the route's protocol. Any other request, a refusal included, goes to the
Starlette app, whose layers answer it as before; so every answer is the same either way.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from modelserve.api.access_log import access_log, log_request
from modelserve.api.auth import admitted
from modelserve.api.plane import PlaneAccess
from modelserve.api.streaming import PartsResponse
from modelserve.engine.errors import ServingError

Endpoint = Callable[[Request], Awaitable[Response | PartsResponse]]
# How a route's protocol renders an engine error: TorchServe's {"code", "type", "message"},
# or v2's {"error"}.
ErrorRenderer = Callable[[ServingError], Response]
# Bodies the endpoints parse as forms (multipart, urlencoded): the full stack reads those.
_FORM_TYPES = (b"multipart/", b"application/x-www-form-urlencoded")
_INTERNAL_ERROR = PlainTextResponse("Internal Server Error", status_code=500)


@dataclass(frozen=True)
class HotRoute:
    """A ``POST`` route served on the hot path: its Starlette path template (the same as the
    router's), the endpoint, and its protocol's error rendering."""

    path: str
    endpoint: Endpoint
    render_error: ErrorRenderer

    def pattern(self) -> re.Pattern[str]:
        """The path's regular expression, as Starlette's router compiles it."""
        return compile_path(self.path)[0]


class HotPath:
    """ASGI app: serves the plain case of ``routes`` itself, everything else through ``app``
    (the plane's full Starlette app, which answers those requests exactly as it would all)."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[HotRoute],
        count_response: Callable[[int], None],
        max_request_size: int,
        access: PlaneAccess,
    ) -> None:
        self.app = app
        self._routes = [(route.pattern(), route) for route in routes]
        self._count = count_response
        self._max_request_size = max_request_size
        self._access = access
        # With a CORS policy every request goes through CORSMiddleware.
        self._enabled = access.cors is None

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if self._enabled and scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            for pattern, route in self._routes:
                match = pattern.match(path)
                if match is not None:
                    if self._plain(scope):
                        return self._serve(route, match.groupdict(), scope, receive, send)
                    break
        return self.app(scope, receive, send)

    def _plain(self, scope: Scope) -> bool:
        """Whether the request passes every check of the full stack and reads like any body:
        its key (when required), a declared length within the limit, no form."""
        length = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type" and value.lower().lstrip().startswith(_FORM_TYPES):
                return False
        if not length.isdigit() or int(length) > self._max_request_size:
            return False
        access = self._access
        return access.verifier is None or admitted(
            scope, access.verifier, access.kind, access.open_paths
        )

    async def _serve(
        self,
        route: HotRoute,
        path_params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        started = time.perf_counter()
        scope["path_params"] = path_params
        status = 500
        try:
            try:
                response = await route.endpoint(Request(scope, receive, send))
            except ServingError as exc:
                response = route.render_error(exc)
            except Exception:
                # Nothing was sent: the answer of Starlette's error middleware; uvicorn logs
                # the exception, as it does for the full stack.
                self._count(500)
                await _INTERNAL_ERROR(scope, receive, send)
                raise
            status = response.status_code if isinstance(response, Response) else response.status
            self._count(status)
            await response(scope, receive, send)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                log_request(scope, status, (time.perf_counter() - started) * 1000)
