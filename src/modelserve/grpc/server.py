"""The two gRPC servers: bound at startup (a busy port is a clear error), started beside the
HTTP planes on the same event loop, stopped gracefully at shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

import grpc

from modelserve.config import Address, ConfigError, Settings
from modelserve.engine.dataplane import DataPlane
from modelserve.grpc.auth import HEALTH_METHODS, RequireKey
from modelserve.grpc.grps import GrpsServicer
from modelserve.grpc.open_inference import OpenInferenceServicer
from modelserve.grpc.paddle_pipeline import PipelineServicer
from modelserve.grpc.proto import (
    inference_pb2_grpc,
    management_pb2_grpc,
    open_inference_pb2_grpc,
    paddle_pipeline_pb2_grpc,
    tf_serving_pb2_grpc,
)
from modelserve.grpc.tf_serving import ModelServicer, PredictionServicer
from modelserve.grpc.torchserve import InferenceServicer, ManagementServicer
from modelserve.grps.proto import grps_pb2_grpc
from modelserve.grps.service import GrpsService
from modelserve.security.exposure import AccessPolicy
from modelserve.security.tokens import KeyKind

log = logging.getLogger("modelserve.grpc")
# Room for the protobuf framing around a response body of max_response_size.
RESPONSE_FRAMING_BYTES = 64 * 1024


@dataclass
class GrpcPlane:
    """One gRPC server and where it listens."""

    name: str
    server: grpc.aio.Server
    address: Address


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from certificate_file / private_key_file when enable_grpc_ssl is set."""
    if not settings.enable_grpc_ssl:
        return None
    files = {
        "certificate_file": settings.certificate_file,
        "private_key_file": settings.private_key_file,
    }
    for key, path in files.items():
        if path is None:
            raise ConfigError(f"enable_grpc_ssl is true: set {key}")
        if not path.is_file():
            raise ConfigError(f"{key}: no such file {path}")
    try:
        chain = settings.certificate_file.read_bytes()
        key = settings.private_key_file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"gRPC TLS: cannot read {exc.filename}: {exc.strerror}") from exc
    return grpc.ssl_server_credentials([(key, chain)])


def _server(settings: Settings, policy: AccessPolicy, kind: KeyKind) -> grpc.aio.Server:
    options = [
        # Without this, a second server could bind the same port and share its traffic.
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", settings.max_request_size),
        ("grpc.max_send_message_length", settings.max_response_size + RESPONSE_FRAMING_BYTES),
    ]
    health = HEALTH_METHODS if settings.open_health_checks else frozenset()
    interceptors = [] if policy.verifier is None else [RequireKey(policy.verifier, kind, health)]
    return grpc.aio.server(interceptors=interceptors, options=options)


def _busy_port_error(plane: str, address: Address, reason: str) -> ConfigError:
    flag = "--grpc-port" if plane == "inference" else "--grpc-management-port"
    return ConfigError(
        f"cannot listen on grpc_{plane}_port {address}: {reason}; another server holds it "
        f"('modelserve ps' lists yours): choose another port with {flag}, "
        f"MODELSERVE_GRPC_{plane.upper()}_PORT or grpc_{plane}_port in config.properties, "
        "or serve without gRPC (--no-grpc)"
    )


def _check_port_free(plane: str, address: Address) -> None:
    """Fail with one clear line when the port is taken, before gRPC's C core tries it (it
    would print its own multi-line error to stderr first)."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the gRPC core binds: a port left in TIME_WAIT by a stopped server is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address.host, address.port))
        except OSError as exc:
            raise _busy_port_error(plane, address, exc.strerror or str(exc)) from exc


def _bind(
    server: grpc.aio.Server,
    plane: str,
    address: Address,
    credentials: grpc.ServerCredentials | None,
) -> Address:
    """Bind now; returns the address with the port actually bound (for port 0)."""
    if address.port:
        _check_port_free(plane, address)
    host = f"[{address.host}]" if ":" in address.host else address.host
    target = f"{host}:{address.port}"
    try:
        if credentials is None:
            port = server.add_insecure_port(target)
        else:
            port = server.add_secure_port(target, credentials)
    except RuntimeError as exc:
        port = 0
        reason = str(exc)
    else:
        reason = "address in use or unavailable"
    if not port:
        raise _busy_port_error(plane, address, reason)
    return Address(address.scheme, address.host, port)


def build_grpc_planes(
    settings: Settings,
    plane: DataPlane,
    grps: GrpsService,
    policy: AccessPolicy,
    paddle: bool = False,
) -> list[GrpcPlane]:
    """The inference and management gRPC servers, bound but not started; none when
    ``enable_grpc`` is false. ``paddle``: with Paddle Serving's PipelineService, for a server
    that serves pipeline services."""
    if not settings.enable_grpc:
        return []
    credentials = _credentials(settings)
    inference = _server(settings, policy, KeyKind.INFERENCE)
    inference_pb2_grpc.add_InferenceAPIsServiceServicer_to_server(
        InferenceServicer(plane), inference
    )
    open_inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        OpenInferenceServicer(plane), inference
    )
    tf_serving_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(plane), inference
    )
    tf_serving_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(plane, policy.model_control_refusal), inference
    )
    grps_pb2_grpc.add_GrpsServiceServicer_to_server(GrpsServicer(grps), inference)
    if paddle:
        paddle_pipeline_pb2_grpc.add_PipelineServiceServicer_to_server(
            PipelineServicer(plane), inference
        )
    management = _server(settings, policy, KeyKind.MANAGEMENT)
    management_pb2_grpc.add_ManagementAPIsServiceServicer_to_server(
        ManagementServicer(plane, policy.model_control_refusal), management
    )
    planes = []
    for name, server in (("inference", inference), ("management", management)):
        address = _bind(server, name, settings.grpc_address(name), credentials)
        planes.append(GrpcPlane(name, server, address))
    return planes


async def start_grpc_planes(planes: list[GrpcPlane]) -> None:
    """Start serving on every bound server."""
    for plane in planes:
        await plane.server.start()
        log.info("gRPC %s API listening on %s", plane.name, plane.address)


async def stop_grpc_planes(planes: list[GrpcPlane], grace_s: float) -> None:
    """Refuse new calls and give running ones up to ``grace_s`` seconds to finish."""
    await asyncio.gather(*(plane.server.stop(grace_s) for plane in planes))
