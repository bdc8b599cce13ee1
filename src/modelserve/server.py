"""Runs the engine and the three HTTP planes on one event loop, and shuts them down cleanly."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Sequence
from pathlib import Path

from starlette.routing import BaseRoute

from modelserve.allocator import reuse_freed_buffers
from modelserve.api.dashboard import dashboard_routes
from modelserve.api.inference import build_inference_app
from modelserve.api.management import build_management_app
from modelserve.api.metrics import build_metrics_app
from modelserve.api.statistics import triton_collector
from modelserve.config import ConfigError, Settings, log_config_notices
from modelserve.engine.dataplane import DataPlane
from modelserve.engine.engine import Engine
from modelserve.engine.errors import ServingError
from modelserve.engine.paddle_pipelines import PaddleService
from modelserve.grpc.server import (
    build_grpc_planes,
    start_grpc_planes,
    stop_grpc_planes,
)
from modelserve.grps.service import GrpsService
from modelserve.http_planes import (
    bind_socket,
    how_to_move,
    local_url,
    plane_accesses,
    plane_server,
)
from modelserve.instances import STARTED, InstanceFile
from modelserve.repository.control import ModelControl, model_catalog, repository_settings
from modelserve.security.exposure import AccessPolicy, access_policy, worker_token
from modelserve.startup import (
    ServerEvents,
    claim_instance,
    listen_addresses,
    load_models,
    report_when_settled,
)
from modelserve.telemetry.dashboard_series import DashboardRecorder
from modelserve.telemetry.frontend_metrics import ServerMetrics
from modelserve.telemetry.logs import flush_access_log
from modelserve.telemetry.metrics_config import MetricsConfigError, load_metrics_config
from modelserve.telemetry.process_usage import ProcessUsage

log = logging.getLogger("modelserve.server")
# Each request allocates dozens of short-lived objects; the default first-generation threshold
# (700) runs the collector every few requests, most of it for nothing.
GC_THRESHOLDS = (50_000, 20, 20)
# How stale an access-log line may get before it is written out.
ACCESS_LOG_FLUSH_S = 0.2
# After the drain, how long workers get to finish a batch no request waits for any more.
STOP_WORKERS_GRACE_S = 1.0


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


def _announce(policy: AccessPolicy, settings: Settings) -> None:
    if policy.generated_keys is not None:
        log.info("token authorization is on: keys are in %s", policy.generated_keys.path.resolve())
    elif policy.verifier is not None:
        log.info("token authorization is on: the static auth_token is required")
    elif settings.disable_token_authorization:
        log.info("token authorization is off (disable_token_authorization=true)")
    else:
        log.info("token authorization is off (every plane listens on loopback)")
    if settings.open_health_checks and policy.verifier is not None:
        log.info("health checks answer without a key (open_health_checks=true)")
    if policy.model_control_refusal is not None and settings.enable_model_api:
        log.warning("%s", policy.model_control_refusal)


async def run_server(
    settings: Settings,
    startup_models: list[str],
    events: ServerEvents,
    console_log: Path | None = None,
    paddle_services: Sequence[PaddleService] = (),
) -> None:
    """Serve until SIGTERM or SIGINT; ``events`` hears when every plane listens and when the
    startup models have settled. ``console_log``: where a background server's output goes,
    for its record. ``paddle_services``: Paddle Serving pipeline services whose op models
    are among the startup models, served once those are registered."""
    log_config_notices(settings, log)
    if settings.reuse_large_buffers:
        reuse_freed_buffers()
    # Configuration errors first: a bad token or metrics config is reported as such, whether
    # or not the ports are free.
    policy = access_policy(settings)
    metrics = build_server_metrics(settings)
    planes = ["inference", "management"] + (["metrics"] if settings.enable_metrics_api else [])
    sockets = {
        plane: bind_socket(f"{plane}_address", settings.address(plane), how_to_move(plane))
        for plane in planes
    }
    name = settings.instance_name or str(sockets["inference"].getsockname()[1])
    instance = claim_instance(settings, name, console_log)
    try:
        with repository_settings(settings) as served_settings:
            await _serve(
                served_settings,
                startup_models,
                events,
                sockets,
                instance,
                policy,
                metrics,
                paddle_services,
            )
    finally:
        instance.release()


async def _serve(
    settings: Settings,
    startup_models: list[str],
    events: ServerEvents,
    sockets: dict[str, socket.socket],
    instance: InstanceFile,
    policy: AccessPolicy,
    metrics: ServerMetrics,
    paddle_services: Sequence[PaddleService],
) -> None:
    engine = Engine(settings, metrics, instance.record.name)
    engine.on_models_changed = lambda names: instance.update(models=names)
    engine.set_server_endpoint(
        local_url(settings.address("inference"), sockets["inference"]), worker_token(policy)
    )
    data_plane = DataPlane(engine)
    model_control = None
    catalog = model_catalog(settings)
    if catalog is not None:
        store = settings.model_store
        model_control = ModelControl(settings, catalog, data_plane, engine.startup, store)
        data_plane.repository = model_control
    count = metrics.count_response
    limit = settings.max_request_size
    access = plane_accesses(settings, policy)
    grps = GrpsService(data_plane, settings)
    recorder: DashboardRecorder | None = None
    dashboard: list[BaseRoute] = []
    if settings.enable_metrics_api or settings.inference_dashboard:
        # Before any model registers: versions keep their latencies for the dashboard.
        metrics.keep_latencies()
        recorder = DashboardRecorder(data_plane.version_readouts, ProcessUsage())
        dashboard = dashboard_routes(recorder, instance.record.name)
    apps = {
        # settings.inference_dashboard (the grps commands): the dashboard joins this plane at
        # GET /, where grps users look for it.
        "inference": build_inference_app(
            data_plane,
            grps,
            limit,
            count,
            access["inference"],
            paddle=bool(paddle_services),
            dashboard=dashboard if settings.inference_dashboard else (),
        ),
        "management": build_management_app(
            data_plane, limit, policy.model_control_refusal, count, access["management"]
        ),
    }
    if settings.enable_metrics_api:
        collectors = metrics.collectors(data_plane.version_states, data_plane.waiting_for_slot)
        if settings.metrics_mode == "prometheus":  # legacy: TorchServe's three; log: none
            collectors.append(triton_collector(data_plane))
        apps["metrics"] = build_metrics_app(collectors, count, limit, access["metrics"], dashboard)
    servers = {plane: plane_server(app, settings, plane) for plane, app in apps.items()}
    grpc_planes = build_grpc_planes(
        settings, data_plane, grps, policy, paddle=bool(paddle_services)
    )
    _announce(policy, settings)
    if policy.generated_keys is not None:
        try:
            policy.generated_keys.write()
        except OSError as exc:
            raise ConfigError(
                f"key_file: cannot write {policy.generated_keys.path.resolve()}: {exc.strerror}; "
                "make its directory writable, or give a fixed token (auth_token_file, "
                "MODELSERVE_AUTH_TOKEN)"
            ) from exc
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
    sampler = asyncio.create_task(recorder.run()) if recorder is not None else None
    settling: asyncio.Task | None = None
    try:
        await start_grpc_planes(grpc_planes)
        addresses = listen_addresses(settings, sockets, grpc_planes)
        instance.update(addresses=addresses)
        if model_control is not None:
            await model_control.start()
        report = await load_models(engine, startup_models, settings)
        for service in paddle_services:
            try:
                data_plane.register_paddle_service(service)
            except ServingError as exc:
                raise ConfigError(f"Paddle service {service.name}: {exc.message}") from exc
        instance.update(state=STARTED, models=engine.model_names(), startup=report.to_record())
        for plane in servers:
            log.info("%s API listening on %s", plane, addresses[plane])
        # Everything built so far lives as long as the server: keep it out of the cyclic
        # collector's full passes, which otherwise rescan it while requests allocate. No
        # collection first: it found a few hundred objects (some kB) of cyclic garbage and took
        # 20-80 ms of the start, before /ping could answer Healthy.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        events.started(instance.record)
        settling = asyncio.create_task(report_when_settled(engine, instance, events))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        log.info("shutting down")
    finally:
        if settling is not None:
            settling.cancel()
        if model_control is not None:
            await model_control.close()
        for server in servers.values():
            server.should_exit = True
        drain_s = settings.drain_timeout
        await asyncio.gather(*tasks, stop_grpc_planes(grpc_planes, drain_s), return_exceptions=True)
        # The requests in flight have had the drain; what a worker still runs gets a moment.
        await engine.stop(grace_s=STOP_WORKERS_GRACE_S)
        if policy.generated_keys is not None:
            policy.generated_keys.remove()
        flusher.cancel()
        if sampler is not None:
            sampler.cancel()
        flush_access_log()
