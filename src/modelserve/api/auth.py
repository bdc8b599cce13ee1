"""Bearer-key checks on the inference and management planes, and the key regeneration API."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modelserve.api.responses import error_response, json_response
from modelserve.parameters import TOKEN, TOKEN_KINDS
from modelserve.security.tokens import AUTH_FAILED_MESSAGE, GeneratedKeys, KeyKind, KeyVerifier

# TorchServe's header form; the scheme name is case-insensitive (RFC 9110).
_BEARER = re.compile(rb"^Bearer\s+(\S+)$", re.IGNORECASE)
TOKEN_API_PATH = "/token"
# What open_health_checks lets through without a key: whether the server serves, nothing more.
HEALTH_PATHS = frozenset(
    {
        "/ping",
        "/v2/health/live",
        "/v2/health/ready",
        "/grps/v1/health/live",
        "/grps/v1/health/ready",
    }
)


def presented_key(scope: Scope) -> str | None:
    """The key in the request's ``Authorization: Bearer`` header, if there is one."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            match = _BEARER.match(value.strip())
            return match.group(1).decode("latin-1") if match else None
    return None


def unauthorized() -> Response:
    """401 with TorchServe's error type and a challenge naming the scheme."""
    return error_response(
        401, "InvalidKeyException", AUTH_FAILED_MESSAGE, {"WWW-Authenticate": "Bearer"}
    )


def _describes_api(scope: Scope) -> bool:
    # As in TorchServe, the API description stays readable without a key.
    path = scope["path"]
    return path == "/api-description" or (path == "/" and scope["method"] == "OPTIONS")


class RequireKey:
    """ASGI middleware: 401 unless the request carries the plane's key.

    The token API checks the API key itself, so it is let through here; so are the health
    checks in ``open_paths``.
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: KeyVerifier,
        kind: KeyKind,
        open_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.kind = kind
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not admitted(scope, self.verifier, self.kind, self.open_paths):
            await unauthorized()(scope, receive, send)
            return
        await self.app(scope, receive, send)


def admitted(
    scope: Scope, verifier: KeyVerifier, kind: KeyKind, open_paths: frozenset[str]
) -> bool:
    """Whether :class:`RequireKey` lets the request in: it carries the plane's key, or its
    path needs none (the API description, ``open_paths``, the token API)."""
    path = scope["path"]
    if (
        scope["type"] != "http"
        or _describes_api(scope)
        or path in open_paths
        or (kind is KeyKind.MANAGEMENT and path == TOKEN_API_PATH)
    ):
        return True
    key = presented_key(scope)
    return key is not None and verifier.verify(kind, key)


def token_endpoint(verifier: KeyVerifier) -> Callable[[Request], Awaitable[Response]]:
    """``GET /token?type=management|inference``: a new key for that plane, API key required.
    A query parameter ``parameters.TOKEN`` does not list is a 400."""

    async def regenerate(request: Request) -> Response:
        key = presented_key(request.scope)
        if key is None or not verifier.verify(KeyKind.API, key):
            return unauthorized()
        kind = TOKEN.parse(request.query_params)["type"] or ""
        if not isinstance(verifier, GeneratedKeys):
            return error_response(
                400,
                "BadRequestException",
                "Keys cannot be regenerated: a static auth_token is configured. "
                "Change the token and restart instead.",
            )
        if kind not in TOKEN_KINDS:
            return error_response(
                400,
                "BadRequestException",
                f"Token Authentication failed. Invalid type {kind!r}: "
                "expected type=management or type=inference",
            )
        return json_response(verifier.regenerate(KeyKind(kind)))

    return regenerate
