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

CONTROL_MODES = ("none", "poll", "explicit")


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
        "--disable-auto-complete-config",
        dest="strict_model_config",
        action="store_true",
        help="require config.pbtxt (by default a model without one is served from its file)",
    )
    start.add_argument(
        "--model-config-name",
        metavar="NAME",
        help="read <model>/configs/NAME instead of config.pbtxt where it exists",
    )
    start.add_argument(
        "--http-port", dest="port", type=whole_number(0, 65535), help="Triton's name for --port"
    )
    # TensorFlow Serving's flags, with its underscore spellings too.
    for flag, dest, kind, text in (
        ("model-name", "model_name", str, "serve one TF Serving model under this name"),
        ("model-base-path", "model_base_path", Path, "its <base>/<version>/saved_model.pb"),
        ("model-config-file", "model_config_file", Path, "a TF Serving ModelServerConfig file"),
        (
            "file-system-poll-wait-seconds",
            "file_system_poll_wait_seconds",
            float,
            "how often the base paths are read for new versions (default 1; 0: at start only)",
        ),
        (
            "model-config-file-poll-wait-seconds",
            "model_config_file_poll_wait_seconds",
            float,
            "how often the config file is read again (default 0: at start only)",
        ),
    ):
        underscored = "--" + flag.replace("-", "_")
        start.add_argument(f"--{flag}", underscored, dest=dest, type=kind, help=text)
    start.add_argument(
        "--rest-api-port",
        "--rest_api_port",
        dest="port",
        type=whole_number(0, 65535),
        help="TF Serving's name for --port (the REST API's)",
    )


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the flags of ``add_arguments`` set (None: as configured)."""
    return {
        "model_repository": getattr(args, "model_repository", None),
        "model_control_mode": getattr(args, "model_control_mode", None),
        "repository_poll_secs": getattr(args, "repository_poll_secs", None),
        "load_model": getattr(args, "load_model", None),
        "strict_model_config": True if getattr(args, "strict_model_config", False) else None,
        "model_config_name": getattr(args, "model_config_name", None),
        "model_name": getattr(args, "model_name", None),
        "model_base_path": getattr(args, "model_base_path", None),
        "model_config_file": getattr(args, "model_config_file", None),
        "file_system_poll_wait_seconds": getattr(args, "file_system_poll_wait_seconds", None),
        "model_config_file_poll_wait_seconds": getattr(
            args, "model_config_file_poll_wait_seconds", None
        ),
    }
