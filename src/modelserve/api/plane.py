"""What every plane's Starlette app shares: error rendering, the response observer, access
control and limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from modelserve.api.access_log import AccessLog
from modelserve.api.auth import RequireKey
from modelserve.api.limits import BodySizeLimit
from modelserve.api.responses import EXCEPTION_HANDLERS
from modelserve.security.tokens import KeyKind, KeyVerifier

# Methods a browser may use cross-origin without a preflight; the default when
# cors_allowed_methods is unset.
SIMPLE_METHODS = ("GET", "HEAD", "POST")


def request_headers(request: Request) -> dict[str, str]:
    """The request's headers as a dict, the first value of a repeated name kept (as
    ``dict(request.headers)`` has it), read straight from the ASGI scope: Starlette's
    ``Headers`` looks each name up again in the whole list, a cost per header squared."""
    headers: dict[str, str] = {}
    for name, value in request.scope["headers"]:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


class TrailingSlashes:
    """ASGI middleware: a path with trailing slashes is served as the path without them
    (``/ping/`` as ``/ping``), on every route, as TorchServe does. Starlette would answer 307
    instead, with an empty body that curl without -L prints as nothing.

    It costs a string check per request (about 0.15 µs); the access log, outside it, shows
    the path as sent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    # Not async: handing back the inner app's coroutine spares a coroutine of its own per
    # request (about 0.1 µs, 40 % of this layer's cost).
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        path = scope.get("path", "")
        if path.endswith("/") and path != "/":
            scope = {**scope, "path": path.rstrip("/") or "/"}
            if "raw_path" in scope:
                scope["raw_path"] = scope["raw_path"].rstrip(b"/") or b"/"
        return self.app(scope, receive, send)


@dataclass(frozen=True)
class CorsPolicy:
    """TorchServe's cors_allowed_* keys: which web origins may call the planes, and how."""

    origins: list[str]
    methods: list[str] = field(default_factory=lambda: list(SIMPLE_METHODS))
    headers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlaneAccess:
    """Who may call a plane: the key it requires (if any) and the web origins allowed."""

    verifier: KeyVerifier | None = None
    kind: KeyKind = KeyKind.INFERENCE
    cors: CorsPolicy | None = None
    # Paths answered without a key (open_health_checks).
    open_paths: frozenset[str] = frozenset()


def build_plane(
    routes: list[BaseRoute],
    count_response: Callable[[int], None],
    max_request_size: int | None = None,
    access: PlaneAccess | None = None,
) -> Starlette:
    """A plane's app. Outermost first: access log and status counters (so refusals are logged
    and counted), trailing slashes (so that every later step sees the path it is served as),
    CORS (a browser's preflight carries no key), the key check, then the body limit; each only
    when configured."""
    access = access or PlaneAccess()
    middleware = [Middleware(AccessLog, count=count_response), Middleware(TrailingSlashes)]
    if access.cors is not None:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=access.cors.origins,
                allow_methods=access.cors.methods,
                allow_headers=access.cors.headers,
            )
        )
    if access.verifier is not None:
        middleware.append(
            Middleware(
                RequireKey,
                verifier=access.verifier,
                kind=access.kind,
                open_paths=access.open_paths,
            )
        )
    if max_request_size is not None:
        middleware.append(Middleware(BodySizeLimit, limit=max_request_size))
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, middleware=middleware)
    # No path reaches the router with a trailing slash; its redirects would only loop
    # ("/v1" to "/v1/" and back).
    app.router.redirect_slashes = False
    return app
