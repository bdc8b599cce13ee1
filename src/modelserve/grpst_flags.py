"""grpst's quick-deploy flags (grps's ``grpst torch_serve | tf_serve | trt_serve``), on
``modelserve serve`` and on its grps-named commands, and what each sets.

``modelserve serve FILE`` takes every flag below beside its own, each unset flag leaving
serve's default. ``modelserve torch_serve | tf_serve | trt_serve FILE`` run ``serve`` as grpst
does: the flags of grpst's command of that name with grpst's defaults (``--port 7080,7081``,
``--max_concurrency 32`` …), ``--name`` naming the server, started in the background and its
log followed until Ctrl-C (``--no_logging``: not followed).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelserve.cli_flags import whole_number
from modelserve.config import PortFlags
from modelserve.engine.settings import VersionSettings
from modelserve.protocol_contract import SAVED_MODEL_FILE, TENSORRT_SUFFIXES, TORCHSCRIPT_SUFFIXES
from modelserve.quick_deploy import QuickDeployError

GRPS_NAME = "my_grps"
GRPS_PORTS = "7080,7081"
HTTP_AND_GRPC = "http+grpc"
INTERFACES = ("http", HTTP_AND_GRPC, "http+brpc")
BATCHING_TYPES = ("none", "dynamic")
GPU_INDEXES = re.compile(r"\d+(,\d+)*")
# grpst's device names: gpu and gpu:N are cuda and cuda:N; original, the device the model
# was saved on, is left to the server (the GPUs when there are any).
GRPS_DEVICE = re.compile(r"cpu|original|(gpu|cuda)(:\d+)?")


@dataclass(frozen=True)
class Command:
    """A grps-named command: grpst's command of the same name."""

    name: str
    help: str
    # The model files it serves, for the error naming what else to use.
    formats: str
    accepts: Callable[[Path], bool]
    flags: frozenset[str]


# Every command's flags, and those of one command only (grpst's own split).
_COMMON = frozenset(
    {
        "interface_framework",
        "port",
        "device",
        "batching_type",
        "max_batch_size",
        "batch_timeout_us",
        "max_connections",
        "max_concurrency",
        "gpu_devices_idx",
        "customized_op_paths",
        "log_dir",
        "log_backup_count",
        "output_path",
        "timeout",
    }
)
COMMANDS = {
    command.name: command
    for command in (
        Command(
            "torch_serve",
            "serve a TorchScript file as grpst torch_serve does",
            "TorchScript files (.pt, .pth)",
            lambda path: path.is_file() and path.suffix.lower() in TORCHSCRIPT_SUFFIXES,
            _COMMON
            | {"inp_device", "gpu_mem_limit_mib", "gpu_mem_gc_enable", "gpu_mem_gc_interval"},
        ),
        Command(
            "tf_serve",
            "serve a TensorFlow SavedModel as grpst tf_serve does",
            f"TensorFlow SavedModel directories (with {SAVED_MODEL_FILE})",
            lambda path: (path / SAVED_MODEL_FILE).is_file(),
            _COMMON | {"gpu_mem_limit_mib"},
        ),
        Command(
            "trt_serve",
            "serve a TensorRT engine as grpst trt_serve does",
            "TensorRT engines (.engine, .plan, .trt)",
            lambda path: path.is_file() and path.suffix.lower() in TENSORRT_SUFFIXES,
            _COMMON | {"streams"},
        ),
    )
}
# serve's own --port, --device and --output take grpst's forms of those flags.
SERVE_FLAGS = frozenset().union(*(command.flags for command in COMMANDS.values())) - {
    "port",
    "device",
    "output_path",
}
# grpst's defaults where serve has none of its own.
DEFAULT_MAX_BATCH_SIZE = 16
DEFAULT_BATCH_TIMEOUT_US = 1000
DEFAULT_GC_INTERVAL_S = 60


def port_pair(text: str) -> tuple[int, int | None]:
    """An argparse type: ``HTTP`` or grpst's ``HTTP,GRPC`` (0: any free port)."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) > 2:
        raise argparse.ArgumentTypeError(f"expected PORT or HTTP_PORT,GRPC_PORT, got {text!r}")
    port = whole_number(0, 65535)
    http = port(parts[0])
    grpc = port(parts[1]) if len(parts) == 2 else None
    if grpc is not None and grpc == http and http:
        raise argparse.ArgumentTypeError(f"the HTTP and gRPC ports must differ, got {text!r}")
    return http, grpc


def _gpu_indexes(text: str) -> tuple[int, ...]:
    if not GPU_INDEXES.fullmatch(text.replace(" ", "")):
        raise argparse.ArgumentTypeError(f"expected GPU indexes split by commas, got {text!r}")
    return tuple(int(index) for index in text.replace(" ", "").split(","))


def grps_device(text: str) -> str:
    if not GRPS_DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected cpu, cuda, cuda:N, gpu, gpu:N or original, got {text!r}"
        )
    return text


def _paths(text: str) -> tuple[Path, ...]:
    return tuple(Path(part.strip()).resolve() for part in text.split(",") if part.strip())


def _flag_specs(defaults: bool) -> dict[str, tuple[tuple[str, ...], dict[str, Any]]]:
    """Each flag: its names and argparse options, with grpst's default when ``defaults``."""

    def default(value: Any) -> Any:
        return value if defaults else None

    return {
        "interface_framework": (
            ("--interface_framework",),
            {
                "choices": INTERFACES,
                "default": default(HTTP_AND_GRPC),
                "help": "http, or http+grpc: gRPC on the second --port (grps's brpc is not served)",
            },
        ),
        "port": (
            ("--port",),
            {
                "type": port_pair,
                "metavar": "HTTP[,GRPC]",
                "default": port_pair(GRPS_PORTS) if defaults else None,
                "help": "the HTTP inference port, and the gRPC one (grps's API on both; "
                f"0: any free port){' (default ' + GRPS_PORTS + ')' if defaults else ''}",
            },
        ),
        "device": (
            ("--device",),
            {
                "type": grps_device,
                "help": "cpu, cuda (= gpu), cuda:N (= gpu:N) or original; default: the GPUs "
                "when there are any, else the CPU (grps: cuda)",
            },
        ),
        "inp_device": (
            ("--inp_device",),
            {
                "type": grps_device,
                "help": "accepted for grpst scripts: inputs go to the model's device",
            },
        ),
        "batching_type": (
            ("--batching_type",),
            {
                "choices": BATCHING_TYPES,
                "default": default("none"),
                "help": "dynamic: requests that queue while the model is busy leave together, "
                "up to --max_batch_size",
            },
        ),
        "max_batch_size": (
            ("--max_batch_size",),
            {
                "type": whole_number(1),
                "default": default(16),
                "metavar": "N",
                "help": "largest dynamic batch",
            },
        ),
        "batch_timeout_us": (
            ("--batch_timeout_us",),
            {
                "type": whole_number(0),
                "default": default(1000),
                "metavar": "US",
                "help": "longest a request waits for batch-mates, in µs (rounded up to whole ms)",
            },
        ),
        "max_connections": (
            ("--max_connections",),
            {
                "type": whole_number(1),
                "default": default(1000),
                "metavar": "N",
                "help": "inference requests in flight, waiting ones included; more get 503",
            },
        ),
        "max_concurrency": (
            ("--max_concurrency",),
            {
                "type": whole_number(1),
                "default": default(32),
                "metavar": "N",
                "help": "inference requests in the model at once; more wait their turn",
            },
        ),
        "gpu_devices_idx": (
            ("--gpu_devices_idx",),
            {
                "type": _gpu_indexes,
                "metavar": "I[,J…]",
                "help": "the GPUs --gpu_mem_limit_mib applies to (default: every GPU)",
            },
        ),
        "gpu_mem_limit_mib": (
            ("--gpu_mem_limit_mib",),
            {
                "type": whole_number(-1),
                "default": default(-1),
                "metavar": "MIB",
                "help": "GPU memory the model may take (torch: per-process memory fraction; "
                "TensorFlow: memory limit); -1: no limit",
            },
        ),
        "gpu_mem_gc_enable": (
            ("--gpu_mem_gc_enable",),
            {"action": "store_true", "help": "torch: return cached GPU memory periodically"},
        ),
        "gpu_mem_gc_interval": (
            ("--gpu_mem_gc_interval",),
            {
                "type": whole_number(1),
                "default": default(60),
                "metavar": "S",
                "help": "seconds between two returns of cached GPU memory",
            },
        ),
        "customized_op_paths": (
            ("--customized_op_paths",),
            {
                "type": _paths,
                "metavar": "LIB[,LIB…]",
                "help": "custom op libraries to load first (torch.ops.load_library, "
                "tf.load_op_library, TensorRT plugins)",
            },
        ),
        "streams": (
            ("--streams",),
            {
                "type": whole_number(1),
                "default": default(1),
                "metavar": "N",
                "help": "TensorRT: N workers, each with its own execution context",
            },
        ),
        "log_dir": (
            ("--log_dir",),
            {
                "type": Path,
                "metavar": "DIR",
                "help": "where the logs go, rotated daily (default for the grps commands: "
                "logs/NAME)",
            },
        ),
        "log_backup_count": (
            ("--log_backup_count",),
            {
                "type": whole_number(1),
                "default": default(7),
                "metavar": "N",
                "help": "daily log files kept",
            },
        ),
        "output_path": (
            ("--output_path", "--output"),
            {
                "dest": "output",
                "type": Path,
                "metavar": "FILE.mar",
                "help": "also write the model archive here, for a later modelserve start",
            },
        ),
        "timeout": (
            ("--timeout",),
            {
                "type": whole_number(1),
                "default": default(300),
                "metavar": "S",
                "help": "seconds the model may take to load",
            },
        ),
    }


def add_flags(parser: argparse.ArgumentParser, names: frozenset[str], defaults: bool) -> None:
    """grpst's flags ``names``, with grpst's defaults when ``defaults``, else None (serve's
    own)."""
    group = parser.add_argument_group("grpst's flags (grps)")
    for name, (flags, options) in _flag_specs(defaults).items():
        if name in names:
            group.add_argument(*flags, **options)


def check_format(command: Command, path: Path) -> None:
    """QuickDeployError unless ``command`` serves ``path`` (as grpst's of that name would)."""
    if path.exists() and not command.accepts(path):
        raise QuickDeployError(
            f"{command.name} serves {command.formats}, not {path}: serve other models with "
            "modelserve serve"
        )


def ports(args: argparse.Namespace, grps_command: bool) -> PortFlags:
    """Where the server listens: ``--port HTTP[,GRPC]`` and ``--interface_framework`` over
    the other port flags. A grps command's other planes (management, metrics, gRPC
    management), which grps does not have, take free ports unless their flags say."""
    http, grpc = args.port if args.port is not None else (None, None)
    framework = args.interface_framework
    if framework == "http+brpc":
        raise QuickDeployError(
            "--interface_framework http+brpc: brpc is not served; use http+grpc (grps's gRPC "
            "API on the second --port)"
        )
    if framework == HTTP_AND_GRPC and args.port is not None and grpc is None:
        raise QuickDeployError("--interface_framework http+grpc needs --port HTTP_PORT,GRPC_PORT")
    if framework == "http" and grpc is not None:
        raise QuickDeployError("--interface_framework http takes one port: --port HTTP_PORT")
    unset = 0 if grps_command else None

    def port(name: str) -> int | None:
        value = getattr(args, name, None)
        return unset if value is None else value

    return PortFlags(
        inference=http,
        management=port("management_port"),
        metrics=port("metrics_port"),
        grpc_inference=grpc if grpc is not None else getattr(args, "grpc_port", None),
        grpc_management=port("grpc_management_port"),
        no_grpc=getattr(args, "no_grpc", False) or framework == "http",
    )


def device(args: argparse.Namespace) -> str | None:
    """``--device`` in modelserve's terms: gpu is cuda; original and unset: the default."""
    value = args.device
    if value is None or value == "original":
        return None
    return value.replace("gpu", "cuda")


def version_settings(args: argparse.Namespace, workers: int) -> VersionSettings:
    """The model's batching, workers and load timeout: grpst's flags where given, else
    serve's."""
    batch_size = getattr(args, "batch_size", None)
    delay_ms = getattr(args, "max_batch_delay", None)
    if args.batching_type == "dynamic":
        batch_size = args.max_batch_size or DEFAULT_MAX_BATCH_SIZE
        timeout_us = args.batch_timeout_us
        delay_ms = math.ceil(
            (DEFAULT_BATCH_TIMEOUT_US if timeout_us is None else timeout_us) / 1000
        )
    elif args.batching_type == "none":
        batch_size = 1
    return VersionSettings(
        batch_size=batch_size,
        max_batch_delay=delay_ms,
        startup_timeout=args.timeout,
        min_workers=workers,
        max_workers=workers,
    )


def server_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The server settings grpst's flags set (None: as configured)."""
    return {
        "max_concurrency": args.max_concurrency,
        "max_connections": args.max_connections,
        "log_dir": args.log_dir,
        "log_backup_count": args.log_backup_count,
    }


def handler_options(args: argparse.Namespace) -> dict[str, Any]:
    """The model config's ``handler:`` entries grpst's flags set (see the tensor handler's
    ``framework_setup``)."""
    options: dict[str, Any] = {}
    if args.customized_op_paths:
        options["custom_op_libraries"] = [str(path) for path in args.customized_op_paths]
    limit = getattr(args, "gpu_mem_limit_mib", None)
    if limit is not None and limit != -1:
        if limit < 1:
            raise QuickDeployError("--gpu_mem_limit_mib must be at least 1, or -1 for no limit")
        options["gpu_memory_limit_mib"] = limit
        if args.gpu_devices_idx is not None:
            options["gpu_memory_devices"] = list(args.gpu_devices_idx)
    if getattr(args, "gpu_mem_gc_enable", False):
        options["gpu_memory_gc_interval_s"] = args.gpu_mem_gc_interval or DEFAULT_GC_INTERVAL_S
    return options
