"""Runs the engine and the three HTTP planes on one event loop, and shuts them down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp

from modelserve.api.http_protocol import bounded_protocol
from modelserve.api.inference import build_inference_app
from modelserve.api.management import build_management_app
from modelserve.api.metrics import build_metrics_app
from modelserve.api.plane import SIMPLE_METHODS, CorsPolicy, PlaneAccess
from modelserve.config import Address, ConfigError, Settings
from modelserve.engine.engine import Engine
from modelserve.engine.snapshot import SnapshotError, latest_snapshot
from modelserve.grpc.server import build_grpc_planes, start_grpc_planes, stop_grpc_planes
from modelserve.security.exposure import AccessPolicy, access_policy
from modelserve.security.tokens import KeyKind
from modelserve.telemetry.frontend_metrics import ServerMetrics
from modelserve.telemetry.logs import flush_access_log
from modelserve.telemetry.metrics_config import MetricsConfigError, load_metrics_config

log = logging.getLogger("modelserve.server")
GRACEFUL_SHUTDOWN_S = 30
# Each request allocates dozens of short-lived objects; the default first-generation threshold
# (700) runs the collector every few requests, most of it for nothing.
GC_THRESHOLDS = (50_000, 20, 20)
# How stale an access-log line may get before it is written out.
ACCESS_LOG_FLUSH_S = 0.2


class _PlaneServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the orchestrator."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def bind_socket(key: str, address: Address) -> socket.socket:
    """Bind a listening socket now, so a busy port is a clear startup error."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address.host, address.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {key} {address}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def _load_models(engine: Engine, settings: Settings, startup_models: list[str]) -> None:
    """Restore the newest snapshot when there is one (startup models are then ignored, as in
    TorchServe); otherwise register the startup models."""
    snapshot = latest_snapshot(settings.snapshot_dir) if engine.snapshots is not None else None
    if snapshot is None:
        await engine.load_startup_models(startup_models)
        return
    if startup_models:
        log.warning("restoring %s; ignoring --models / load_models", snapshot)
    try:
        await engine.snapshots.restore(engine, snapshot)
    except SnapshotError as exc:
        raise ConfigError(str(exc)) from exc


async def _flush_logs_periodically() -> None:
    while True:
        await asyncio.sleep(ACCESS_LOG_FLUSH_S)
        flush_access_log()


def build_server_metrics(settings: Settings) -> ServerMetrics:
    """The metric families the configuration asks for."""
    try:
        config = load_metrics_config(settings.metrics_config, settings.metrics_mode)
    except MetricsConfigError as exc:
        raise ConfigError(f"metrics_config: {exc}") from exc
    return ServerMetrics(
        config,
        settings.metrics_mode,
        socket.gethostname(),
        settings.model_metrics_auto_detect,
        system_metrics=not settings.disable_system_metrics,
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


def _plane(app: ASGIApp, settings: Settings, plane: str) -> _PlaneServer:
    config = uvicorn.Config(
        app,
        loop="none",
        http=bounded_protocol(settings.max_header_size),
        lifespan="off",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
        proxy_headers=False,  # nothing sits in front by default; saves work per request
        **tls_files(settings, plane),
    )
    try:
        config.load()  # a bad certificate or key fails here, before the server says it started
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigError(f"{plane} TLS: {exc}") from exc
    return _PlaneServer(config)


def _accesses(settings: Settings, policy: AccessPolicy) -> dict[str, PlaneAccess]:
    """Each plane's key requirement and CORS policy; metrics needs no key, as in TorchServe."""
    cors = cors_policy(settings)
    return {
        "inference": PlaneAccess(policy.verifier, KeyKind.INFERENCE, cors),
        "management": PlaneAccess(policy.verifier, KeyKind.MANAGEMENT, cors),
        "metrics": PlaneAccess(None, KeyKind.INFERENCE, cors),
    }


def _announce(policy: AccessPolicy, settings: Settings) -> None:
    if policy.generated_keys is not None:
        log.info("token authorization is on: keys are in %s", policy.generated_keys.path.resolve())
    elif policy.verifier is not None:
        log.info("token authorization is on: the static auth_token is required")
    else:
        log.info("token authorization is off (every plane listens on loopback)")
    if policy.model_control_refusal is not None and settings.enable_model_api:
        log.warning("%s", policy.model_control_refusal)


async def run_server(
    settings: Settings,
    startup_models: list[str],
    on_started: Callable[[], None] = lambda: None,
) -> None:
    """Serve until SIGTERM or SIGINT; ``on_started`` runs once every plane listens."""
    planes = ["inference", "management"] + (["metrics"] if settings.enable_metrics_api else [])
    sockets = {plane: bind_socket(f"{plane}_address", settings.address(plane)) for plane in planes}
    policy = access_policy(settings)
    metrics = build_server_metrics(settings)
    engine = Engine(settings, metrics)
    count = metrics.count_response
    limit = settings.max_request_size
    access = _accesses(settings, policy)
    apps = {
        "inference": build_inference_app(engine, limit, count, access["inference"]),
        "management": build_management_app(
            engine, limit, policy.model_control_refusal, count, access["management"]
        ),
    }
    if settings.enable_metrics_api:
        collectors = metrics.collectors(engine.version_states)
        apps["metrics"] = build_metrics_app(collectors, count, limit, access["metrics"])
    servers = {plane: _plane(app, settings, plane) for plane, app in apps.items()}
    grpc_planes = build_grpc_planes(settings, engine, policy)
    _announce(policy, settings)
    if policy.generated_keys is not None:
        try:
            policy.generated_keys.write()
        except OSError as exc:
            raise ConfigError(f"key_file: cannot write {exc.filename}: {exc.strerror}") from exc
    await engine.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = [
        asyncio.create_task(server.serve(sockets=[sockets[plane]]), name=f"plane-{plane}")
        for plane, server in servers.items()
    ]
    flusher = asyncio.create_task(_flush_logs_periodically())
    try:
        await start_grpc_planes(grpc_planes)
        await _load_models(engine, settings, startup_models)
        for plane in servers:
            log.info("%s API listening on %s", plane, settings.address(plane))
        # Everything built so far lives as long as the server: keep it out of the cyclic
        # collector's full passes, which otherwise rescan it while requests allocate.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        on_started()
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        log.info("shutting down")
    finally:
        for server in servers.values():
            server.should_exit = True
        await asyncio.gather(
            *tasks, stop_grpc_planes(grpc_planes, GRACEFUL_SHUTDOWN_S), return_exceptions=True
        )
        await engine.stop()
        if policy.generated_keys is not None:
            policy.generated_keys.remove()
        flusher.cancel()
        flush_access_log()
