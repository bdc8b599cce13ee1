"""Where a model's files are in its directory, and which framework loads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelserve.protocol_contract import (
    ONNX_SUFFIXES,
    SAVED_MODEL_FILE,
    TENSORRT_SUFFIXES,
    TORCHSCRIPT_SUFFIXES,
    is_paddle_model,
)

from .model import ModelLoadError

BACKENDS = ("torchscript", "eager", "onnx", "tensorflow", "tensorrt", "paddle")


def _model_entry(manifest: dict[str, Any], key: str) -> str | None:
    return (manifest.get("model") or {}).get(key) or None


def serialized_name(manifest: dict[str, Any]) -> str | None:
    """The manifest's ``serializedFile``, None when it names none."""
    return _model_entry(manifest, "serializedFile")


def serialized_file(model_dir: Path, manifest: dict[str, Any]) -> Path | None:
    """The manifest's ``serializedFile`` inside ``model_dir``, None when it names none."""
    name = serialized_name(manifest)
    return model_dir / name if name else None


def model_file(model_dir: Path, manifest: dict[str, Any]) -> Path | None:
    """The manifest's ``modelFile`` (an eager model's class) inside ``model_dir``."""
    name = _model_entry(manifest, "modelFile")
    return model_dir / name if name else None


def saved_model_dir(model_dir: Path, manifest: dict[str, Any]) -> Path | None:
    """The TensorFlow SavedModel directory, when the archive holds one.

    Archivers take only files as ``--serialized-file``, so a SavedModel usually arrives as
    ``--extra-files <dir>`` (its content lands in the model directory itself), optionally
    with ``--serialized-file <dir>/saved_model.pb``; a directory named as serializedFile
    works too.
    """
    serialized = serialized_file(model_dir, manifest)
    if serialized is None:
        candidate = model_dir
    elif serialized.name == SAVED_MODEL_FILE:
        candidate = serialized.parent
    elif serialized.is_dir():
        candidate = serialized
    else:
        return None
    return candidate if (candidate / SAVED_MODEL_FILE).is_file() else None


def detect_backend(model_dir: Path, manifest: dict[str, Any]) -> str:
    """Which backend loads this model, from its serialized file (and modelFile).

    A SavedModel, an ``.onnx`` file or a TensorRT engine decides by itself; otherwise a
    ``modelFile`` means an eager model whose serialized file is a state dict, as in
    TorchServe; a ``.pt``/``.pth`` without one is TorchScript.
    """
    if saved_model_dir(model_dir, manifest) is not None:
        return "tensorflow"
    serialized = serialized_file(model_dir, manifest)
    suffix = serialized.suffix.lower() if serialized else ""
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in TENSORRT_SUFFIXES:
        return "tensorrt"
    if serialized is not None and is_paddle_model(serialized):
        return "paddle"
    if model_file(model_dir, manifest) is not None:
        return "eager"
    if suffix in TORCHSCRIPT_SUFFIXES:
        return "torchscript"
    raise ModelLoadError(
        serialized or "the model archive",
        "any backend",
        "cannot tell the framework: expected a .pt/.pth (TorchScript, or a state dict with "
        "--model-file), an .onnx file, a TensorRT .engine/.plan/.trt, a Paddle inference "
        f"model (.pdmodel with its .pdiparams) or a TensorFlow SavedModel directory (with "
        f"{SAVED_MODEL_FILE})",
    )


def require_serialized_file(model_dir: Path, manifest: dict[str, Any], framework: str) -> Path:
    """The serialized file, which must exist; a load error saying what is missing otherwise."""
    path = serialized_file(model_dir, manifest)
    if path is None:
        raise ModelLoadError("the model archive", framework, "the manifest has no serializedFile")
    if not path.is_file():
        raise ModelLoadError(path, framework, "the file is not in the model archive")
    return path
