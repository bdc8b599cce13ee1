"""The three HTTP planes' listeners: sockets bound up front (a busy port is one clear line),
uvicorn servers with TLS, the bounded request head and no signal handling of their own, and
each plane's access policy (keys, CORS)."""

from __future__ import annotations

import contextlib
import socket

import uvicorn
from starlette.types import ASGIApp

from modelserve.api.auth import HEALTH_PATHS
from modelserve.api.dashboard import PAGE_PATHS
from modelserve.api.http_protocol import bounded_protocol
from modelserve.api.plane import SIMPLE_METHODS, CorsPolicy, PlaneAccess
from modelserve.config import Address, ConfigError, Settings
from modelserve.security.exposure import AccessPolicy
from modelserve.security.tokens import KeyKind


class PlaneServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the orchestrator."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def bind_socket(key: str, address: Address, how_to_change: str) -> socket.socket:
    """Bind a listening socket now, so a busy port is a clear startup error."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address.host, address.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {key} {address}: {exc.strerror}; {how_to_change}"
        ) from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def bound_address(address: Address, sock: socket.socket) -> Address:
    """``address`` with the port really bound (port 0 picks one)."""
    return Address(address.scheme, address.host, sock.getsockname()[1])


def local_url(address: Address, sock: socket.socket) -> str:
    """The URL a process on this machine reaches the bound ``address`` at: a wildcard host
    (0.0.0.0, ::) is reached on loopback."""
    bound = bound_address(address, sock)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bound.host, bound.host)
    return str(Address(bound.scheme, host, bound.port))


def how_to_move(plane: str) -> str:
    flag = {"inference": "--port", "management": "--management-port"}.get(plane, f"--{plane}-port")
    return (
        f"another server holds it ('modelserve ps' lists yours): choose another port with "
        f"{flag}, MODELSERVE_{plane.upper()}_ADDRESS or {plane}_address in config.properties"
    )


def cors_policy(settings: Settings) -> CorsPolicy | None:
    """TorchServe's cors_allowed_* keys as a policy; None when no origin is allowed."""
    if not settings.cors_allowed_origin:
        return None

    def items(value: str | None) -> list[str]:
        return [item.strip() for item in (value or "").split(",") if item.strip()]

    return CorsPolicy(
        origins=items(settings.cors_allowed_origin),
        methods=items(settings.cors_allowed_methods) or list(SIMPLE_METHODS),
        headers=items(settings.cors_allowed_headers),
    )


def tls_files(settings: Settings, plane: str) -> dict[str, str]:
    """uvicorn's certificate options for a plane whose address is https://, else none."""
    if settings.address(plane).scheme != "https":
        return {}
    files = {"ssl_certfile": settings.certificate_file, "ssl_keyfile": settings.private_key_file}
    for option, path in files.items():
        key = "certificate_file" if option == "ssl_certfile" else "private_key_file"
        if path is None:
            raise ConfigError(f"{plane}_address is https: set {key}")
        if not path.is_file():
            raise ConfigError(f"{key}: no such file {path}")
    return {option: str(path) for option, path in files.items()}


def plane_server(app: ASGIApp, settings: Settings, plane: str) -> PlaneServer:
    config = uvicorn.Config(
        app,
        loop="none",
        # Said, not guessed: uvicorn takes an app whose __call__ is no coroutine function (the
        # inference plane's HotPath) for ASGI 2.
        interface="asgi3",
        http=bounded_protocol(settings.max_header_size),
        # No plane speaks WebSocket; "auto" would import a WebSocket library at every start.
        ws="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=settings.drain_timeout,
        server_header=False,
        proxy_headers=False,  # nothing sits in front by default; saves work per request
        **tls_files(settings, plane),
    )
    try:
        config.load()  # a bad certificate or key fails here, before the server says it started
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigError(f"{plane} TLS: {exc}") from exc
    return PlaneServer(config)


def plane_accesses(settings: Settings, policy: AccessPolicy) -> dict[str, PlaneAccess]:
    """Each plane's key requirement and CORS policy; metrics needs no key, as in TorchServe."""
    cors = cors_policy(settings)
    health = HEALTH_PATHS if settings.open_health_checks else frozenset()
    # The dashboard page on the inference plane (grps mode): its series stay keyed.
    page = PAGE_PATHS if settings.inference_dashboard else frozenset()
    return {
        "inference": PlaneAccess(policy.verifier, KeyKind.INFERENCE, cors, health | page),
        "management": PlaneAccess(policy.verifier, KeyKind.MANAGEMENT, cors),
        "metrics": PlaneAccess(None, KeyKind.INFERENCE, cors),
    }
