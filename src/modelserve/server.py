"""Runs the engine and the three HTTP planes on one event loop, and shuts them down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil
import uvicorn
from starlette.types import ASGIApp

from modelserve.api.http_protocol import bounded_protocol
from modelserve.api.inference import build_inference_app
from modelserve.api.management import build_management_app
from modelserve.api.metrics import build_metrics_app
from modelserve.api.plane import SIMPLE_METHODS, CorsPolicy, PlaneAccess
from modelserve.config import Address, ConfigError, Settings, log_config_notices
from modelserve.engine.engine import Engine, StartupOutcome
from modelserve.engine.model_snapshots import RestoreReport
from modelserve.engine.snapshot import SnapshotError, latest_snapshot
from modelserve.grpc.server import (
    GrpcPlane,
    build_grpc_planes,
    start_grpc_planes,
    stop_grpc_planes,
)
from modelserve.instances import STARTED, InstanceFile, InstanceNameTaken, InstanceRecord
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


@dataclass
class StartupReport:
    """What the server did at start: the snapshot it restored, its startup models."""

    restore: RestoreReport | None = None
    startup: list[StartupOutcome] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        """The instance record's ``startup`` entry (``ps``, ``status`` and a background
        ``start`` show it)."""
        restore = self.restore
        return {
            "settled": False,
            "snapshot": str(restore.path.resolve()) if restore is not None else None,
            "restored": restore.restored if restore is not None else [],
            "notRestored": restore.failed if restore is not None else {},
            # entry -> why it was not registered (None: registered)
            "models": {outcome.entry: outcome.error for outcome in self.startup},
        }


class ServerEvents(Protocol):
    """What the command that runs the server is told, to show on its console. The record's
    ``startup`` entry says what happened (StartupReport.to_record, then ``settled``)."""

    def started(self, record: InstanceRecord) -> None:
        """Every plane listens and the startup models are registered (workers may load)."""

    def settled(self, record: InstanceRecord) -> None:
        """Every startup model has a ready worker, or has failed its first load."""


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


def _bound_address(address: Address, sock: socket.socket) -> Address:
    """``address`` with the port really bound (port 0 picks one)."""
    return Address(address.scheme, address.host, sock.getsockname()[1])


async def _load_models(engine: Engine, startup_models: list[str]) -> StartupReport:
    """Restore the newest snapshot when there is one, then register the startup models that
    it did not bring back: what the command line names is always served."""
    report = StartupReport()
    snapshots = engine.snapshots
    snapshot = latest_snapshot(snapshots.directory) if snapshots is not None else None
    if snapshot is not None:
        try:
            report.restore = await snapshots.restore(engine, snapshot)
        except SnapshotError as exc:
            raise ConfigError(str(exc)) from exc
    report.startup = await engine.load_startup_models(startup_models)
    return report


def _claim_instance(settings: Settings, name: str, console_log: Path | None) -> InstanceFile:
    """This server's record among the user's running servers; a name in use stops the start."""
    record = InstanceRecord(
        name=name,
        pid=os.getpid(),
        started_at=psutil.Process().create_time(),
        working_dir=os.getcwd(),
        model_store=str(settings.model_store.resolve()) if settings.model_store else None,
        log_dir=str(settings.log_dir.resolve()) if settings.log_dir else None,
        console_log=str(console_log.resolve()) if console_log else None,
        snapshot_dir=(
            str(settings.resolved_snapshot_dir(name).resolve())
            if settings.enable_snapshots
            else None
        ),
    )
    try:
        return InstanceFile.claim(settings.resolved_runtime_dir(), record)
    except InstanceNameTaken as taken:
        holder = taken.holder
        raise ConfigError(
            f"a modelserve named {name!r} is already running (pid {holder.pid}, "
            f"{holder.addresses.get('inference', 'starting')}): stop it with "
            f"'modelserve stop {name}', or name this one with --instance NAME"
        ) from None


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


def _listen_addresses(
    settings: Settings, sockets: dict[str, socket.socket], grpc_planes: list[GrpcPlane]
) -> dict[str, str]:
    addresses = {
        plane: str(_bound_address(settings.address(plane), sock)) for plane, sock in sockets.items()
    }
    addresses.update({f"grpc_{plane.name}": str(plane.address) for plane in grpc_planes})
    return addresses


async def _report_when_settled(
    engine: Engine, instance: InstanceFile, events: ServerEvents
) -> None:
    await engine.settle()
    health = engine.health()
    startup = {
        **instance.record.startup,
        "settled": True,
        "status": health.status,
        "notReady": health.not_ready,
    }
    instance.update(startup=startup)
    events.settled(instance.record)


async def run_server(
    settings: Settings,
    startup_models: list[str],
    events: ServerEvents,
    console_log: Path | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; ``events`` hears when every plane listens and when the
    startup models have settled. ``console_log``: where a background server's output goes,
    for its record."""
    log_config_notices(settings, log)
    # Configuration errors first: a bad token or metrics config is reported as such, whether
    # or not the ports are free.
    policy = access_policy(settings)
    metrics = build_server_metrics(settings)
    planes = ["inference", "management"] + (["metrics"] if settings.enable_metrics_api else [])
    sockets = {
        plane: bind_socket(f"{plane}_address", settings.address(plane), _how_to_move(plane))
        for plane in planes
    }
    name = settings.instance_name or str(sockets["inference"].getsockname()[1])
    instance = _claim_instance(settings, name, console_log)
    try:
        await _serve(settings, startup_models, events, sockets, instance, policy, metrics)
    finally:
        instance.release()


def _how_to_move(plane: str) -> str:
    flag = {"inference": "--port", "management": "--management-port"}.get(plane, f"--{plane}-port")
    return (
        f"another server holds it ('modelserve ps' lists yours): choose another port with "
        f"{flag}, MODELSERVE_{plane.upper()}_ADDRESS or {plane}_address in config.properties"
    )


async def _serve(
    settings: Settings,
    startup_models: list[str],
    events: ServerEvents,
    sockets: dict[str, socket.socket],
    instance: InstanceFile,
    policy: AccessPolicy,
    metrics: ServerMetrics,
) -> None:
    engine = Engine(settings, metrics, instance.record.name)
    engine.on_models_changed = lambda names: instance.update(models=names)
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
    settling: asyncio.Task | None = None
    try:
        await start_grpc_planes(grpc_planes)
        addresses = _listen_addresses(settings, sockets, grpc_planes)
        instance.update(addresses=addresses)
        report = await _load_models(engine, startup_models)
        instance.update(state=STARTED, models=engine.registry.names(), startup=report.to_record())
        for plane in servers:
            log.info("%s API listening on %s", plane, addresses[plane])
        # Everything built so far lives as long as the server: keep it out of the cyclic
        # collector's full passes, which otherwise rescan it while requests allocate.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        events.started(instance.record)
        settling = asyncio.create_task(_report_when_settled(engine, instance, events))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        log.info("shutting down")
    finally:
        if settling is not None:
            settling.cancel()
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
