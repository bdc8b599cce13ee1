"""A Triton model repository read as Triton reads it: ``<repository>/<model>/config.pbtxt`` and
numeric version directories holding the model file.

``config.pbtxt`` is parsed by protobuf's ``text_format`` against ``proto/model_config.proto``
(Triton's field names and numbers). A field modelserve does not know is a load error naming it.
Without a config file, the model's backend is told from its default file name, as Triton's
auto-complete does (the worker then reports the tensors), unless ``strict``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import json_format, text_format

from modelserve.repository.proto.model_config_pb2 import ModelConfig, ModelVersionPolicy

CONFIG_FILE = "config.pbtxt"
ALTERNATIVE_CONFIGS = "configs"
# A version directory: a positive number without leading zeros (Triton ignores the others).
VERSION_NAME = re.compile(r"[1-9][0-9]*")
# Triton platform or backend → (default model file, the tensor handler's backend).
BACKENDS = {
    "onnxruntime_onnx": ("model.onnx", "onnx"),
    "onnxruntime": ("model.onnx", "onnx"),
    "pytorch_libtorch": ("model.pt", "torchscript"),
    "pytorch": ("model.pt", "torchscript"),
    "tensorflow_savedmodel": ("model.savedmodel", "tensorflow"),
    "tensorflow": ("model.savedmodel", "tensorflow"),
    "tensorrt_plan": ("model.plan", "tensorrt"),
    "tensorrt": ("model.plan", "tensorrt"),
    # Triton's Python backend: model.py with TritonPythonModel, run by its own handler.
    "python": ("model.py", "python"),
}


# The one backend whose models may be decoupled (many responses per request) here.
PYTHON_BACKEND = "python"

# An ensemble: no model file and no worker; its steps run as a pipeline (``ensembles``).
ENSEMBLE = "ensemble"


# The backends a model without config.pbtxt is told apart by, from their default file names.
AUTO_COMPLETED = ("onnxruntime", "pytorch", "tensorflow", "tensorrt")


class RepositoryError(Exception):
    """A model of the repository cannot be served; the message says which and why."""


@dataclass(frozen=True)
class TritonVersion:
    """One served version: its number and the model file (or SavedModel directory)."""

    version: str
    model_path: Path


@dataclass(frozen=True)
class TritonModel:
    """A model directory: its config (filled in where auto-completed), the tensor handler's
    backend for it, and the versions its version policy serves, oldest first."""

    name: str
    directory: Path
    config: ModelConfig
    backend: str
    versions: list[TritonVersion]
    # No config.pbtxt: the backend was told from the file, the tensors come from the worker.
    auto_completed: bool = False
    # TF Serving's version labels: label → version.
    version_labels: dict[str, str] = field(default_factory=dict)


def model_directories(roots: list[Path]) -> tuple[dict[str, Path], dict[str, str]]:
    """Every model directory of ``roots`` by name, and the names two repositories hold (name →
    why: neither is served). RepositoryError for a root that is not a directory."""
    found: dict[str, Path] = {}
    twice: dict[str, str] = {}
    for root in roots:
        if not root.is_dir():
            raise RepositoryError(f"model repository {root} is not a directory")
        for directory in sorted(path for path in root.iterdir() if path.is_dir()):
            name = directory.name
            if name in found:
                twice[name] = f"model {name} is in two repositories ({found[name]} and {directory})"
            else:
                found[name] = directory
    for name in twice:
        found.pop(name)
    return found, twice


def read_model(
    directory: Path, strict: bool, config_name: str | None, override: str | None = None
) -> TritonModel:
    """One model directory; RepositoryError naming the model and the problem. ``override``:
    a configuration in Triton's JSON, used instead of the directory's config.pbtxt (the
    repository API's load ``parameters.config``)."""
    name = directory.name
    config = (
        _read_config(directory, strict, config_name)
        if override is None
        else _parse_json_config(name, override)
    )
    auto_completed = config.ByteSize() == 0
    if config.name and config.name != name:
        raise RepositoryError(
            f"model {name}: config.pbtxt names it {config.name!r}; the name must be the directory's"
        )
    config.name = name
    available = sorted((p.name for p in directory.iterdir() if _is_version(p)), key=int)
    if not config.platform and not config.backend:
        config.backend = _backend_from_files(name, directory, available)
    key = config.platform or config.backend
    if config.model_transaction_policy.decoupled and key != PYTHON_BACKEND:
        raise RepositoryError(
            f"model {name}: decoupled models (model_transaction_policy {{ decoupled: true }}) "
            f"are served for the python backend only, not {key!r}"
        )
    if key == ENSEMBLE:
        # Its version directories hold nothing (Triton wants them all the same).
        versions = served_versions(config.version_policy, available, name)
        entries = [TritonVersion(version, directory / version) for version in versions]
        return TritonModel(name, directory, config, ENSEMBLE, entries)
    if key not in BACKENDS:
        raise RepositoryError(
            f"model {name}: platform/backend {key!r} is not served (choose one of "
            f"{', '.join(sorted([*BACKENDS, ENSEMBLE]))})"
        )
    default_file, backend = BACKENDS[key]
    file_name = config.default_model_filename or default_file
    versions = []
    for version in served_versions(config.version_policy, available, name):
        path = directory / version / file_name
        if not path.exists():
            raise RepositoryError(f"model {name} version {version}: no {file_name} in it")
        versions.append(TritonVersion(version, path))
    return TritonModel(name, directory, config, backend, versions, auto_completed)


def served_versions(policy: ModelVersionPolicy, available: list[str], model: str) -> list[str]:
    """The versions ``policy`` serves out of ``available`` (ascending): Triton's latest N
    (the default, N = 1), all, or specific ones."""
    choice = policy.WhichOneof("policy_choice")
    if not available:
        raise RepositoryError(f"model {model}: no version directory (1, 2, …) in it")
    if choice == "all":
        return available
    if choice == "specific":
        wanted = [str(version) for version in policy.specific.versions]
        missing = [version for version in wanted if version not in available]
        if missing:
            raise RepositoryError(
                f"model {model}: version_policy names version(s) {', '.join(missing)}, which "
                "have no directory"
            )
        return sorted(set(wanted), key=int)
    count = policy.latest.num_versions if choice == "latest" else 1
    if count < 1:
        raise RepositoryError(f"model {model}: version_policy latest num_versions must be ≥ 1")
    return available[-count:]


def _is_version(path: Path) -> bool:
    return path.is_dir() and VERSION_NAME.fullmatch(path.name) is not None


def _read_config(directory: Path, strict: bool, config_name: str | None) -> ModelConfig:
    path = directory / CONFIG_FILE
    if config_name is not None and (directory / ALTERNATIVE_CONFIGS / config_name).is_file():
        path = directory / ALTERNATIVE_CONFIGS / config_name
    if not path.is_file():
        if strict:
            raise RepositoryError(
                f"model {directory.name}: no {CONFIG_FILE} (strict model config: "
                "--strict-model-config / --disable-auto-complete-config)"
            )
        return ModelConfig()
    try:
        return text_format.Parse(path.read_text(), ModelConfig())
    except text_format.ParseError as exc:
        raise RepositoryError(f"model {directory.name}: {path.name}:{exc}") from exc


def _parse_json_config(name: str, text: str) -> ModelConfig:
    try:
        return json_format.Parse(text, ModelConfig())
    except json_format.ParseError as exc:
        raise RepositoryError(f"model {name}: the configuration given is not valid: {exc}") from exc


def _backend_from_files(name: str, directory: Path, versions: list[str]) -> str:
    """Triton's auto-complete: the backend whose default file the newest version holds."""
    if not versions:
        raise RepositoryError(f"model {name}: no version directory (1, 2, …) in it")
    newest = directory / versions[-1]
    for key in AUTO_COMPLETED:
        if (newest / BACKENDS[key][0]).exists():
            return key
    if (newest / "model.py").exists():
        return PYTHON_BACKEND
    files = ", ".join(sorted(BACKENDS[key][0] for key in AUTO_COMPLETED))
    raise RepositoryError(
        f"model {name}: no {CONFIG_FILE}, and version {versions[-1]} holds none of {files}"
    )
