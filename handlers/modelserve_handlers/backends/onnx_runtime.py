"""ONNX models on ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .artifacts import require_serialized_file
from .model import LoadedModel, ModelLoadError, TensorSpec, feed_by_name, import_framework

FRAMEWORK = "ONNX Runtime"
# ONNX Runtime's element type names that numpy spells differently; strings are object arrays.
_ORT_TYPE_NAMES = {"float": "float32", "double": "float64", "string": "object"}


def load(model_dir: Path, manifest: dict[str, Any], device: str) -> LoadedModel:
    """An InferenceSession on CUDA when ``device`` is a GPU and the CUDA provider exists."""
    path = require_serialized_file(model_dir, manifest, FRAMEWORK)
    ort = import_framework("onnxruntime", "onnx", path, FRAMEWORK)
    try:
        session = ort.InferenceSession(str(path), providers=_providers(ort, device))
    except Exception as exc:  # onnxruntime's own exception types are not importable API
        raise ModelLoadError(path, FRAMEWORK, str(exc) or type(exc).__name__) from exc
    inputs = tuple(_spec(node) for node in session.get_inputs())
    outputs = tuple(_spec(node) for node in session.get_outputs())
    input_names = [spec.name for spec in inputs]
    output_names = [spec.name for spec in outputs]

    def run(feed: Any) -> dict[str, Any]:
        results = session.run(output_names, feed_by_name(feed, input_names))
        return dict(zip(output_names, results, strict=True))

    return LoadedModel("onnx", session, inputs, outputs, run)


def _providers(ort: Any, device: str) -> list[Any]:
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        _, _, index = device.partition(":")
        return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _spec(node: Any) -> TensorSpec:
    import numpy as np

    shape = tuple(dim if isinstance(dim, int) else None for dim in node.shape)
    element = node.type.removeprefix("tensor(").removesuffix(")")
    try:
        dtype = np.dtype(_ORT_TYPE_NAMES.get(element, element))
    except TypeError:  # bfloat16 and other types numpy has no dtype for
        dtype = None
    return TensorSpec(node.name, shape, dtype)
