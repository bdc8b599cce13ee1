"""What the container image runs (``modelserve container``): the server in the foreground, set
up from what is mounted and from the container's conventions.

The command line it runs:

* ``torchserve --start …`` or ``modelserve …`` after ``container``: that command, in the
  foreground (KServe's TorchServe runtime passes ``torchserve --start --model-store=…
  --ts-config=…``, so the image replaces TorchServe's unchanged);
* else by what the model directory (``--model-dir``, default ``/mnt/models``, where KServe's
  storage initializer puts the model) holds:
  ``config/config.properties`` (TorchServe's KServe layout: its ``model_snapshot`` names the
  archives of ``model-store/``), ``.mar`` archives (all served), or one model file or
  SavedModel directory (served with no handler, as ``modelserve serve`` does, named
  ``--name``);
* when the model directory holds nothing, TF Serving's image's layout:
  ``${MODEL_BASE_PATH}/${MODEL_NAME}`` (defaults ``/models`` and ``model``, as in its image)
  served as ``modelserve start --model-name $MODEL_NAME --model-base-path …``.

``PORT`` (set by Knative, KServe and Cloud Run) is the inference plane's port unless the command
gives one (``--port``, Triton's ``--http-port`` or TF Serving's ``--rest_api_port``). Listening
on every interface, open health checks and metrics are the image's defaults
(``CONTAINER_DEFAULTS``): they apply only where neither the config file nor a ``MODELSERVE_*``
variable sets the key.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modelserve.config import ConfigError, parse_properties
from modelserve.config.loading import ENV_PREFIX
from modelserve.quick_deploy import QuickDeployError, servable_in

MODEL_DIR = Path("/mnt/models")
# TF Serving's image serves ${MODEL_BASE_PATH}/${MODEL_NAME}; their defaults there.
TF_SERVING_MODEL_NAME = "model"
TF_SERVING_BASE_PATH = "/models"
KSERVE_CONFIG = Path("config") / "config.properties"
KSERVE_STORE = "model-store"
# A container is reached from outside it: every plane listens on all interfaces, and probes
# (which cannot send a key) may ask whether it serves. Keys stay on for everything else.
CONTAINER_DEFAULTS = {
    "inference_address": "http://0.0.0.0:8080",
    "management_address": "http://0.0.0.0:8081",
    "metrics_address": "http://0.0.0.0:8082",
    "grpc_inference_address": "0.0.0.0",
    "grpc_management_address": "0.0.0.0",
    "open_health_checks": "true",
}


# The flags that name the inference (HTTP) port: modelserve's, Triton's and TF Serving's.
HTTP_PORT_FLAGS = ("--port", "--http-port", "--rest-api-port", "--rest_api_port")


@dataclass(frozen=True)
class ContainerPlan:
    """The ``modelserve`` command line to run, and the variables to add to the environment."""

    argv: list[str]
    environment: dict[str, str]


def add_arguments(command: argparse.ArgumentParser) -> None:
    """``modelserve container``'s arguments."""
    command.add_argument(
        "--model-dir",
        type=Path,
        default=MODEL_DIR,
        metavar="DIR",
        help=f"what to serve (default {MODEL_DIR}, KServe's): config/config.properties with "
        "model-store/, .mar archives, or one model file; when it holds nothing, TF Serving's "
        "$MODEL_BASE_PATH/$MODEL_NAME (default /models/model)",
    )
    command.add_argument("--name", help="the model's name when DIR holds one model file")
    command.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="torchserve|modelserve ...",
        help="run this command instead (in the foreground): KServe's TorchServe runtime args",
    )


def plan(
    model_dir: Path, name: str | None, command: list[str], environ: Mapping[str, str]
) -> ContainerPlan:
    """What the container runs for ``command`` (after ``container``) and ``model_dir``."""
    if command and command[0] in ("torchserve", "modelserve"):
        argv = command[1:]
    elif command:
        raise ConfigError(
            f"container: expected torchserve … or modelserve … after 'container', got "
            f"{command[0]!r}"
        )
    else:
        argv = _by_layout(model_dir, name, environ)
    is_start = "start" in argv[:1] or "--start" in argv
    if is_start and "--foreground" not in argv:
        argv = [*argv, "--foreground"]
    gives_port = any(arg.partition("=")[0] in HTTP_PORT_FLAGS for arg in argv)
    if (is_start or argv[:1] == ["serve"]) and environ.get("PORT") and not gives_port:
        argv = [*argv, "--port", environ["PORT"]]
    return ContainerPlan(argv, _defaults(_config_file(argv, environ), environ))


def _by_layout(model_dir: Path, name: str | None, environ: Mapping[str, str]) -> list[str]:
    if (model_dir / KSERVE_CONFIG).is_file():
        return [
            "start",
            "--ts-config",
            str(model_dir / KSERVE_CONFIG),
            "--model-store",
            str(model_dir / KSERVE_STORE),
        ]
    if not model_dir.is_dir() or not any(model_dir.iterdir()):
        tf_name = environ.get("MODEL_NAME") or TF_SERVING_MODEL_NAME
        base_path = Path(environ.get("MODEL_BASE_PATH") or TF_SERVING_BASE_PATH) / tf_name
        if base_path.is_dir():
            return ["start", "--model-name", tf_name, "--model-base-path", str(base_path)]
        raise ConfigError(
            f"container: nothing to serve: mount a model at {model_dir} (--model-dir), or a TF "
            f"Serving model at {base_path} (MODEL_BASE_PATH/MODEL_NAME, as in its image)"
        )
    if any(model_dir.glob("*.mar")):
        return ["start", "--model-store", str(model_dir), "--models", "all"]
    return ["serve", str(_bare_model(model_dir)), *(["--name", name] if name else [])]


def _bare_model(model_dir: Path) -> Path:
    """The one model ``modelserve serve`` can serve in ``model_dir``."""
    try:
        return servable_in(model_dir)
    except QuickDeployError as exc:
        raise ConfigError(
            f"container: {model_dir} holds no config/config.properties and no .mar archive, so "
            f"it must hold exactly one model file (.pt, .onnx, .engine …) or SavedModel ({exc})"
        ) from None


def _config_file(argv: list[str], environ: Mapping[str, str]) -> Path | None:
    for index, arg in enumerate(argv):
        if arg.startswith("--ts-config="):
            return Path(arg.partition("=")[2])
        if arg == "--ts-config" and index + 1 < len(argv):
            return Path(argv[index + 1])
    return Path(environ["TS_CONFIG_FILE"]) if environ.get("TS_CONFIG_FILE") else None


def _defaults(config_file: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The container defaults as ``MODELSERVE_*`` variables, for the keys nobody set."""
    configured: dict[str, str] = {}
    if config_file is not None:
        try:
            configured = parse_properties(config_file.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from exc
    return {
        ENV_PREFIX + key.upper(): value
        for key, value in CONTAINER_DEFAULTS.items()
        if key not in configured and ENV_PREFIX + key.upper() not in environ
    }
