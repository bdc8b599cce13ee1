"""Model repositories in other servers' layouts, served unchanged: Triton's
(``modelserve start --model-repository DIR``, or ``tritonserver``'s own flags).

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


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the flags of ``add_arguments`` set (None: as configured)."""
    return {
        "model_repository": getattr(args, "model_repository", None),
        "model_control_mode": getattr(args, "model_control_mode", None),
        "repository_poll_secs": getattr(args, "repository_poll_secs", None),
        "load_model": getattr(args, "load_model", None),
        "strict_model_config": True if getattr(args, "strict_model_config", False) else None,
        "model_config_name": getattr(args, "model_config_name", None),
    }
