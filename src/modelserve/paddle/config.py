"""A Paddle Serving pipeline service's ``config.yml``, read with PyYAML and checked key by key
against the keys Paddle Serving 0.9 knows, with its defaults.

A key of the wrong type or out of range is an error naming it; a key modelserve has no use
for (Paddle Inference's tuning, the gRPC gateway's threads …) is a notice saying why, and so
is a key Paddle does not know either. What is used:

| config.yml | modelserve |
| --- | --- |
| ``http_port`` | the inference port (``POST /{service}/prediction``) |
| ``rpc_port`` | the gRPC inference port (Paddle's ``PipelineService`` among its services) |
| ``dag.retry`` | attempts of a request that timed out |
| ``op.<op>.concurrency`` | the op's workers, and its model's |
| ``op.<op>.timeout`` / ``retry`` | each model call's time limit (ms) and attempts |
| ``op.<op>.batch_size`` / ``auto_batching_timeout`` | the op model's batchSize / maxBatchDelay |
| ``op.<op>.fetch_list`` | the model outputs the op asks for |
| ``op.<op>.local_service_conf.model_config`` | the op's model: the one model file in it |
| ``…local_service_conf.device_type`` / ``devices`` | the model's CPU or GPUs |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelserve.config import ConfigError

# Paddle's device_type values, by what they name; 0 and 3 are CPUs, 1 and 2 NVIDIA GPUs.
CPU_DEVICE_TYPES = {0: "CPU", 3: "ARM CPU"}
GPU_DEVICE_TYPES = {1: "GPU", 2: "GPU with TensorRT"}
OTHER_DEVICE_TYPES = {4: "Kunlun XPU", 5: "Ascend 310", 6: "Ascend 910", 7: "Jetson"}
CLIENT_TYPES = ("local_predictor", "brpc", "grpc")
PORTS = range(1024, 65536)


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a section: its type, a check of its value (with the words the error
    uses), and why modelserve ignores it (None: it is used)."""

    kind: type | tuple[type, ...]
    check: Callable[[Any], bool] = lambda _value: True
    expected: str = ""
    ignored: str | None = None


def _whole(minimum: int) -> Key:
    return Key(int, lambda value: value >= minimum, f"a whole number ≥ {minimum}")


PORT = Key(int, lambda value: value in PORTS, "a port number from 1024 to 65535")
INTEGER = Key(int, expected="a whole number")
FLAG = Key(bool, expected="true or false")
TEXT = Key(str, expected="a string")
MAPPING = Key(dict, expected="a mapping")
NAMES = Key(list, lambda value: all(isinstance(item, str) for item in value), "a list of names")


def _ignored(key: Key, why: str) -> Key:
    return Key(key.kind, key.check, key.expected, why)


GATEWAY = "the frontend serves every request on its event loop"
INFERENCE = "Paddle Inference's own tuning; the op's model runs with its framework's defaults"
PROFILING = (
    "modelserve's metrics plane reports the service's requests and latency, and each op's "
    "(modelserve_pipeline_*)"
)
SERVER_KEYS = {
    "http_port": PORT,
    "rpc_port": PORT,
    "worker_num": _ignored(_whole(1), GATEWAY),
    "build_dag_each_worker": _ignored(FLAG, GATEWAY),
    "grpc_gateway_port": _ignored(INTEGER, "the HTTP API is served on http_port"),
    "dag": MAPPING,
    "op": MAPPING,
}
DAG_KEYS = {
    "retry": _whole(1),
    "client_type": _ignored(TEXT, "ops call their models through the server itself"),
    "is_thread_op": _ignored(FLAG, "every op runs in worker processes of its own"),
    "use_profile": _ignored(FLAG, PROFILING),
    "tracer": _ignored(MAPPING, PROFILING),
    "enable_prometheus": _ignored(FLAG, PROFILING),
    "prometheus_port": _ignored(INTEGER, PROFILING),
    "channel_size": _ignored(_whole(0), "ops are called, not fed through channels"),
    "channel_recv_frist_arrive": _ignored(FLAG, "ops are called, not fed through channels"),
}
OP_KEYS = {
    "concurrency": _whole(1),
    "timeout": INTEGER,
    "retry": _whole(1),
    "batch_size": _whole(1),
    "auto_batching_timeout": INTEGER,
    "fetch_list": NAMES,
    "local_service_conf": MAPPING,
    "server_endpoints": Key(
        list,
        lambda value: not value,
        "empty: remote Paddle Serving "
        "servers are not supported; give local_service_conf.model_config",
    ),
    "client_config": _ignored(TEXT, "the model's own metadata names its inputs and outputs"),
    "use_encryption_model": _ignored(FLAG, "encrypted models are not supported"),
    "encryption_key": _ignored(TEXT, "encrypted models are not supported"),
}
LOCAL_SERVICE_KEYS = {
    "model_config": TEXT,
    "client_type": Key(str, lambda value: value in CLIENT_TYPES, " or ".join(CLIENT_TYPES)),
    "device_type": INTEGER,
    "devices": Key((str, int), expected="GPU numbers separated by commas, or empty"),
    "fetch_list": NAMES,
    **{
        key: _ignored(kind, INFERENCE)
        for key, kind in (
            ("workdir", TEXT),
            ("thread_num", _whole(1)),
            ("mem_optim", FLAG),
            ("ir_optim", FLAG),
            ("precision", TEXT),
            ("use_calib", FLAG),
            ("use_mkldnn", FLAG),
            ("mkldnn_cache_capacity", INTEGER),
            ("mkldnn_op_list", NAMES),
            ("mkldnn_bf16_op_list", NAMES),
            ("min_subgraph_size", INTEGER),
            ("use_trt", FLAG),
            ("use_lite", FLAG),
            ("use_xpu", FLAG),
        )
    },
}


@dataclass(frozen=True, slots=True)
class OpConfig:
    """One op's settings (Paddle's defaults where config.yml is silent). ``timeout`` and
    ``auto_batching_timeout`` are in ms, ≤ 0 meaning none; ``gpus`` is empty on a CPU."""

    concurrency: int = 1
    timeout: int = -1
    retry: int = 1
    batch_size: int = 1
    auto_batching_timeout: int = -1
    fetch_list: list[str] | None = None
    model_config: str | None = None
    client_type: str = "local_predictor"
    device_type: int = -1
    devices: str = ""
    gpus: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """The settings of a service, and what config.yml says that modelserve does not use."""

    http_port: int | None = None
    rpc_port: int | None = None
    retry: int = 1
    ops: dict[str, OpConfig] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


def load_config(path: Path | None, document: Any = None) -> ServiceConfig:
    """The service config in the YAML file at ``path``, or in ``document`` (what
    ``prepare_pipeline_config(yml_dict=...)`` gave); ConfigError naming a bad key."""
    where = path.name if path is not None else "yml_dict"
    if path is not None:
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where} is not valid YAML: {exc}") from None
    notices: list[str] = []
    server = _section(document, SERVER_KEYS, where, "", notices)
    dag = _section(server.get("dag") or {}, DAG_KEYS, where, "dag.", notices)
    ops = {
        str(name): _op_config(conf, where, f"op.{name}.", notices)
        for name, conf in (server.get("op") or {}).items()
    }
    return ServiceConfig(
        http_port=server.get("http_port"),
        rpc_port=server.get("rpc_port"),
        retry=dag.get("retry", 1),
        ops=ops,
        notices=notices,
    )


def _op_config(conf: Any, where: str, prefix: str, notices: list[str]) -> OpConfig:
    op = _section(conf or {}, OP_KEYS, where, prefix, notices)
    local = _section(
        op.get("local_service_conf") or {},
        LOCAL_SERVICE_KEYS,
        where,
        f"{prefix}local_service_conf.",
        notices,
    )
    device_type = local.get("device_type", -1)
    devices = str(local.get("devices", "") or "")
    knobs = {key: op[key] for key in OP_KEYS if key in op and OP_KEYS[key].ignored is None}
    knobs.pop("local_service_conf", None)
    knobs.pop("server_endpoints", None)
    if "fetch_list" not in knobs and "fetch_list" in local:
        knobs["fetch_list"] = local["fetch_list"]
    return OpConfig(
        **knobs,
        model_config=local.get("model_config"),
        client_type=local.get("client_type", "local_predictor"),
        device_type=device_type,
        devices=devices,
        gpus=_gpus(device_type, devices, where, f"{prefix}local_service_conf."),
    )


def _gpus(device_type: int, devices: str, where: str, prefix: str) -> tuple[int, ...]:
    """The GPUs a model runs on (empty: the CPU), as Paddle reads device_type and devices:
    -1 leaves it to devices ("": the CPU)."""
    if device_type in OTHER_DEVICE_TYPES:
        raise ConfigError(
            f"{where}: {prefix}device_type {device_type} ({OTHER_DEVICE_TYPES[device_type]}) "
            "is not supported: use 0 (CPU) or 1 (GPU)"
        )
    known = (-1, *CPU_DEVICE_TYPES, *GPU_DEVICE_TYPES)
    if device_type not in known:
        raise ConfigError(f"{where}: {prefix}device_type must be one of {known}, not {device_type}")
    pieces = [piece.strip() for piece in devices.split(",") if piece.strip()]
    if not all(piece.isdigit() for piece in pieces):
        raise ConfigError(
            f"{where}: {prefix}devices must be GPU numbers separated by commas, not {devices!r}"
        )
    if device_type in CPU_DEVICE_TYPES or (device_type == -1 and not pieces):
        return ()
    if not pieces:
        raise ConfigError(f"{where}: {prefix}device_type {device_type} needs devices (GPU numbers)")
    return tuple(int(piece) for piece in pieces)


def _section(
    document: Any, keys: dict[str, Key], where: str, prefix: str, notices: list[str]
) -> dict[str, Any]:
    """``document`` checked against ``keys``: ConfigError for a value of the wrong type or
    range; a notice for a key modelserve ignores or does not know. Null values count as
    absent, as in Paddle."""
    if not isinstance(document, dict):
        what = prefix.rstrip(".") or "the document"
        raise ConfigError(f"{where}: {what} must be a mapping")
    checked = {}
    for name, value in document.items():
        key = keys.get(str(name))
        path = f"{prefix}{name}"
        if key is None:
            notices.append(f"{where}: {path} is not a key modelserve knows; ignored")
            continue
        if value is None:
            continue
        if (isinstance(value, bool) and bool not in _kinds(key)) or not isinstance(value, key.kind):
            raise ConfigError(f"{where}: {path} must be {key.expected}, not {value!r}")
        if not key.check(value):
            raise ConfigError(f"{where}: {path} must be {key.expected}, not {value!r}")
        if key.ignored is not None:
            notices.append(f"{where}: {path} is ignored: {key.ignored}")
            continue
        checked[str(name)] = value
    return checked


def _kinds(key: Key) -> tuple[type, ...]:
    return key.kind if isinstance(key.kind, tuple) else (key.kind,)
