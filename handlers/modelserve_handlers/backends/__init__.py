"""Loading a model archive's model with the framework it was saved in.

``load_model(model_dir, manifest, device)`` picks the backend from the manifest's
serializedFile (and modelFile), as ``detect_backend`` explains, or takes it explicitly:

===============  ===============================================================
``torchscript``  ``.pt``/``.pth`` without modelFile: ``torch.jit.load``
``eager``        modelFile's one ``nn.Module`` class + a state dict, loaded with
                 ``torch.load(weights_only=True)``
``onnx``         ``.onnx``: an ONNX Runtime InferenceSession
``tensorflow``   a SavedModel directory: its ``serving_default`` signature
``tensorrt``     ``.engine``/``.plan``/``.trt``: a TensorRT engine, on a GPU only
``paddle``       ``.pdmodel`` (or Paddle 3's ``.json``) with its ``.pdiparams``:
                 Paddle Inference
===============  ===============================================================
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .artifacts import BACKENDS, detect_backend, serialized_name
from .framework_setup import FrameworkOptions, prepare_framework
from .model import LoadedModel, ModelLoadError, TensorSpec

__all__ = [
    "BACKENDS",
    "TORCH_BACKENDS",
    "FrameworkOptions",
    "LoadedModel",
    "ModelLoadError",
    "TensorSpec",
    "detect_backend",
    "load_model",
    "serialized_name",
]

TORCH_BACKENDS = frozenset({"torchscript", "eager"})
# Imported on use, so that only the framework of the model in hand has to be installed.
_LOADER_MODULES = {
    "torchscript": "torchscript",
    "eager": "eager",
    "onnx": "onnx_runtime",
    "tensorflow": "tensorflow_saved_model",
    "tensorrt": "tensorrt_engine",
    "paddle": "paddle_inference",
}


def load_model(
    model_dir: Path,
    manifest: dict[str, Any],
    device: str,
    backend: str | None = None,
    options: FrameworkOptions | None = None,
) -> LoadedModel:
    """Load the archive's model onto ``device`` (``"cpu"``, ``"cuda:0"`` …).

    ``backend`` (one of BACKENDS) overrides detection; the framework is first set up as
    ``options`` ask (custom op libraries, a GPU memory limit: see ``framework_setup``).
    Raises ModelLoadError naming the file, the framework and the cause; a missing framework
    package says which extra to install.
    """
    model_dir = Path(model_dir)
    backend = backend or detect_backend(model_dir, manifest)
    label = serialized_name(manifest) or "the model archive"
    if backend not in _LOADER_MODULES:
        raise ModelLoadError(
            label, repr(backend), f"unknown backend (choose one of {', '.join(BACKENDS)})"
        )
    prepare_framework(backend, options or FrameworkOptions(), device, label)
    loader = importlib.import_module(f"{__name__}.{_LOADER_MODULES[backend]}")
    return loader.load(model_dir, manifest, device)
