"""``modelserve serve PATH``: serve one saved model at once, with no handler or archive to write.

The format is told from PATH; the model is packed for the built-in ``tensor`` handler (JSON
nested lists in and out) into a private temporary model store, which the server, run in the
foreground, loads at start with the requested batching and workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from modelserve_archiver.builder import build_archive
from modelserve_archiver.errors import ArchiverError
from modelserve_archiver.options import ArchiveOptions
from modelserve_archiver.validation import MODEL_NAME_PATTERN

from modelserve.config import PortFlags, Settings, load_settings
from modelserve.engine.settings import VersionSettings
from modelserve.protocol_contract import (
    ONNX_SUFFIXES,
    PADDLE_PARAMS_SUFFIX,
    SAVED_MODEL_FILE,
    TENSORRT_SUFFIXES,
    TORCHSCRIPT_SUFFIXES,
    is_paddle_model,
)

HANDLER = "tensor"
MODEL_VERSION = "1.0"
DEFAULT_BATCH_SIZE = 1
DEFAULT_MAX_BATCH_DELAY_MS = 5
DEFAULT_WORKERS = 1
# The model config packed with the archive when the request has handler options.
MODEL_CONFIG_FILE = "model-config.yaml"
SUPPORTED_FORMATS = (
    "a TorchScript .pt/.pth file, an .onnx file, a TensorFlow SavedModel directory "
    f"(with {SAVED_MODEL_FILE}), a TensorRT .engine/.plan/.trt file or a Paddle inference "
    f"model (.pdmodel, or Paddle 3's .json, with its {PADDLE_PARAMS_SUFFIX} beside it)"
)
SERIALIZED_SUFFIXES = TORCHSCRIPT_SUFFIXES + ONNX_SUFFIXES + TENSORRT_SUFFIXES
# Clients on this machine reach a server bound to every interface through loopback.
_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class QuickDeployError(Exception):
    """PATH or a flag cannot be served; the message is one line for the user."""


@dataclass(frozen=True)
class ServeRequest:
    """What ``modelserve serve`` was asked for; None = the configured or built-in default."""

    path: Path
    name: str | None = None
    # The model's batch_size, max_batch_delay and workers (min_workers = max_workers).
    settings: VersionSettings = field(
        default_factory=lambda: VersionSettings(
            batch_size=DEFAULT_BATCH_SIZE,
            max_batch_delay=DEFAULT_MAX_BATCH_DELAY_MS,
            min_workers=DEFAULT_WORKERS,
            max_workers=DEFAULT_WORKERS,
        )
    )
    device: str | None = None
    ports: PortFlags = field(default_factory=PortFlags)
    instance_name: str | None = None
    output: Path | None = None
    # Further server settings (None: as configured) and the model config's ``handler:``
    # entries (custom op libraries, a GPU memory limit): grpst's flags (grpst_flags).
    server: dict[str, Any] = field(default_factory=dict)
    handler_options: dict[str, Any] = field(default_factory=dict)
    # Started as a grps command: its usage line is grps's, and the dashboard is also at / of
    # the inference plane.
    grps: bool = False


@dataclass(frozen=True)
class Deployment:
    """A model ready to serve: the server settings, its startup entry, and how to call it."""

    settings: Settings
    startup_models: list[str]
    usage: str


def is_servable(path: Path) -> bool:
    """Whether ``path`` is a model ``modelserve serve`` takes: a SavedModel directory, a
    file of one of ``SERIALIZED_SUFFIXES`` or a Paddle inference model."""
    if path.is_dir():
        return (path / SAVED_MODEL_FILE).is_file()
    return path.is_file() and (path.suffix.lower() in SERIALIZED_SUFFIXES or is_paddle_model(path))


def servable_in(directory: Path) -> Path:
    """The one model ``directory`` is or holds (at any depth); QuickDeployError naming what
    it found when that is not exactly one."""
    if is_servable(directory):
        return directory
    found = sorted(path for path in directory.rglob("*") if is_servable(path))
    if len(found) != 1:
        what = ", ".join(str(path) for path in found) if found else "none"
        raise QuickDeployError(
            f"{directory} must hold exactly one model: {SUPPORTED_FORMATS}; found {what}"
        )
    return found[0]


def archive_inputs(path: Path) -> dict[str, Any]:
    """The ArchiveOptions fields that pack ``path``; QuickDeployError for other formats."""
    if not path.exists():
        raise QuickDeployError(f"cannot serve {path}: no such file or directory")
    if not is_servable(path):
        raise QuickDeployError(f"cannot serve {path}: expected {SUPPORTED_FORMATS}")
    if path.is_dir():
        # The SavedModel's content becomes the model directory, where the tensorflow backend
        # looks for it when the manifest names no serialized file.
        return {"extra_files": [str(path)]}
    if is_paddle_model(path):
        return {
            "serialized_file": str(path),
            "extra_files": [str(path.with_suffix(PADDLE_PARAMS_SUFFIX))],
        }
    return {"serialized_file": str(path)}


def model_name(request: ServeRequest) -> str:
    """``--name``, else the file's stem with characters a model name cannot hold as ``_``."""
    name = request.name
    if name is None:
        stem = request.path.name if request.path.is_dir() else request.path.stem
        name = re.sub(r"[^A-Za-z0-9_\-.]", "_", stem)
    if not MODEL_NAME_PATTERN.fullmatch(name):
        raise QuickDeployError(
            f"invalid model name {name!r}: use letters, digits, '_', '-' and '.', starting "
            "with a letter or digit (pass --name)"
        )
    return name


def pack(
    name: str, inputs: dict[str, Any], store: Path, handler: str = HANDLER, **options: Any
) -> Path:
    """Pack ``inputs`` (see archive_inputs) for ``handler`` into ``store`` as the archive of
    model ``name``; ``options`` are further ArchiveOptions (``config_file`` …)."""
    try:
        return build_archive(
            ArchiveOptions(
                model_name=name,
                version=MODEL_VERSION,
                handler=handler,
                export_path=store,
                # Uncompressed: weights barely shrink, and a large model is packed in seconds.
                archive_format="zip-store",
                **inputs,
                **options,
            )
        )
    except ArchiverError as exc:
        what = inputs.get("serialized_file") or inputs.get("extra_files") or name
        raise QuickDeployError(f"cannot pack {what}: {exc}") from exc


def build_model_archive(
    request: ServeRequest, name: str, inputs: dict[str, Any], store: Path
) -> Path:
    """Pack ``inputs`` (see archive_inputs) for the ``tensor`` handler into ``store``, with a
    model config of the request's handler options, and copy the archive to ``--output``."""
    options: dict[str, Any] = {}
    if request.handler_options:
        config_file = store / MODEL_CONFIG_FILE
        config_file.write_text(yaml.safe_dump({"handler": request.handler_options}))
        options["config_file"] = str(config_file)
    archive = pack(name, inputs, store, **options)
    if request.output is not None:
        try:
            request.output.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(archive, request.output)
        except OSError as exc:
            raise QuickDeployError(f"cannot write --output {request.output}: {exc}") from exc
    return archive


def server_settings(
    request: ServeRequest, name: str, store: Path | None, config_file: Path | None
) -> Settings:
    """The configured settings with the store, the model's knobs, the request's settings and
    the ports."""
    overrides = {
        "model_store": store,
        # The ``models`` property, which registration reads the knobs of startup models from.
        "models": {name: {MODEL_VERSION: request.settings.to_torchserve()}},
        "device": request.device,
        "instance_name": request.instance_name,
        # The archive lives in a temporary store: a snapshot of it could not be restored.
        "enable_snapshots": False,
        # It serves the one model it was started with: an idle spare would only hold memory.
        "spare_worker": False,
        "deploy_path": request.path.resolve(),
        "inference_dashboard": request.grps or None,
        **request.server,
    }
    return request.ports.apply(load_settings(config_file, overrides))


def client_url(settings: Settings) -> str:
    """Where a client on this machine reaches the inference plane."""
    address = settings.address("inference")
    host = _LOOPBACK_FOR.get(address.host, address.host)
    return str(dataclasses.replace(address, host=host))


def usage(settings: Settings, name: str, grps: bool = False) -> str:
    """A curl command line that asks the model for a prediction (grps's, for a grps
    command), and what it sends."""
    url = client_url(settings)
    if grps:
        return (
            f"curl -X POST {url}/grps/v1/infer/predict -H 'Content-Type: application/json' "
            """-d '{"ndarray": [[0.5, 1.0, 1.5]]}'\n"""
            "  (ndarray: the model's float32 input as a JSON nested list; gtensors: "
            "docs/from-grps.md)"
        )
    return (
        f"curl -X POST {url}/predictions/{name} "
        "-H 'Content-Type: application/json' -d @input.json\n"
        "  (input.json: the model's input as a JSON nested list, one row per item, "
        "e.g. [[0.5, 1.0, 1.5]])"
    )


def check(request: ServeRequest, config_file: Path | None = None) -> Settings:
    """The settings the server will run with, the request checked as ``prepare`` checks it,
    without packing the model (a command that starts the server in the background)."""
    archive_inputs(request.path)
    return server_settings(request, model_name(request), None, config_file)


@contextlib.contextmanager
def prepare(request: ServeRequest, config_file: Path | None = None) -> Iterator[Deployment]:
    """Pack the model into a private temporary store, removed when the context ends.

    Raises QuickDeployError for a path or name that cannot be served, ConfigError for a bad
    setting (``--device``, the config file).
    """
    inputs = archive_inputs(request.path)
    name = model_name(request)
    with tempfile.TemporaryDirectory(prefix="modelserve-serve-") as directory:
        store = Path(directory)
        settings = server_settings(request, name, store, config_file)
        archive = build_model_archive(request, name, inputs, store)
        note = usage(settings, name, request.grps)
        yield Deployment(settings, [f"{name}={archive.name}"], note)
