"""Model repositories in other servers' layouts, served unchanged: Triton's
(``modelserve start --model-repository DIR``, or ``tritonserver``'s own flags) and TensorFlow
Serving's (``--model_name``/``--model_base_path``, ``--model_config_file``); catalogs.py reads
either.

Each served version of each model is packed for the built-in ``tensor`` handler into a private
store (packing.py) and registered; control.py keeps what is served in step with the
repositories (at start, by polling, or on request through the repository API). A model that
cannot be served is named, with why, and the others serve.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from modelserve.cli_flags import whole_number
from modelserve.config import ConfigError

CONTROL_MODES = ("none", "poll", "explicit")


def triton_bool(text: str) -> bool:
    """An argparse type: a boolean as Triton spells it (true/on/1, false/off/0)."""
    lowered = text.lower()
    if lowered in ("true", "on", "1"):
        return True
    if lowered in ("false", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_arguments(start: argparse.ArgumentParser) -> None:
    """The repository flags of ``modelserve start``, under Triton's names."""
    start.add_argument(
        "--model-repository",
        action="append",
        type=Path,
        metavar="DIR",
        help="serve a Triton model repository (<DIR>/<model>/config.pbtxt, numeric versions); "
        "repeatable",
    )
    start.add_argument(
        "--model-control-mode",
        choices=CONTROL_MODES,
        help="none (default): load every model at start; poll: also follow the repositories' "
        "changes; explicit: load --load-model at start, the rest through the repository API",
    )
    start.add_argument(
        "--repository-poll-secs",
        type=float,
        metavar="S",
        help="how often poll mode rescans the repositories (default 15)",
    )
    start.add_argument(
        "--load-model",
        action="append",
        metavar="NAME",
        help="in explicit mode, a model to load at start ('*': every model); repeatable",
    )
    start.add_argument(
        "--strict-model-config",
        nargs="?",
        const=True,
        type=triton_bool,
        metavar="BOOL",
        help="require config.pbtxt (by default a model without one is served from its file); "
        "alone: true; Triton's --strict-model-config=false also works",
    )
    start.add_argument(
        "--disable-auto-complete-config",
        dest="strict_model_config",
        action="store_const",
        const=True,
        help="the same as --strict-model-config",
    )
    start.add_argument(
        "--model-config-name",
        metavar="NAME",
        help="read <model>/configs/NAME instead of config.pbtxt where it exists",
    )
    start.add_argument(
        "--http-port",
        dest="port",
        type=whole_number(0, 65535),
        metavar="PORT",
        help="Triton's name for --port",
    )
    # TensorFlow Serving's flags, with its underscore spellings too.
    for flag, kind, metavar, text in (
        ("model-name", str, "NAME", "serve one TF Serving model under this name"),
        ("model-base-path", Path, "DIR", "its <DIR>/<version>/saved_model.pb"),
        ("model-config-file", Path, "FILE", "a TF Serving ModelServerConfig file"),
        (
            "file-system-poll-wait-seconds",
            float,
            "S",
            "how often the base paths are read for new versions (default 1; 0: at start only)",
        ),
        (
            "model-config-file-poll-wait-seconds",
            float,
            "S",
            "how often the config file is read again (default 0: at start only)",
        ),
    ):
        dest = flag.replace("-", "_")
        start.add_argument(
            f"--{flag}", f"--{dest}", dest=dest, type=kind, metavar=metavar, help=text
        )
    start.add_argument(
        "--rest-api-port",
        "--rest_api_port",
        type=whole_number(0, 65535),
        metavar="PORT",
        help="TF Serving's REST API port (the inference port); with it, --port is its gRPC port",
    )


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the flags of ``add_arguments`` set (None: as configured)."""
    return {
        "model_repository": getattr(args, "model_repository", None),
        "model_control_mode": getattr(args, "model_control_mode", None),
        "repository_poll_secs": getattr(args, "repository_poll_secs", None),
        "load_model": getattr(args, "load_model", None),
        "strict_model_config": getattr(args, "strict_model_config", None),
        "model_config_name": getattr(args, "model_config_name", None),
        "model_name": getattr(args, "model_name", None),
        "model_base_path": getattr(args, "model_base_path", None),
        "model_config_file": getattr(args, "model_config_file", None),
        "file_system_poll_wait_seconds": getattr(args, "file_system_poll_wait_seconds", None),
        "model_config_file_poll_wait_seconds": getattr(
            args, "model_config_file_poll_wait_seconds", None
        ),
    }


def inference_ports(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """The HTTP and gRPC inference ports the flags give (None: as configured). As in a
    ``tensorflow_model_server`` command line, ``--port`` next to ``--rest-api-port`` is TF
    Serving's gRPC port; without it, ``--port`` is modelserve's (the HTTP one)."""
    port, grpc = getattr(args, "port", None), getattr(args, "grpc_port", None)
    rest = getattr(args, "rest_api_port", None)
    if rest is None:
        return port, grpc
    if port is not None and grpc is not None:
        raise ConfigError(
            "next to --rest-api-port, --port is TF Serving's gRPC port: give it or --grpc-port, "
            "not both"
        )
    return rest, port if grpc is None else grpc
