"""TorchScript archives (``torch.jit.save``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .artifacts import require_serialized_file
from .model import LoadedModel, ModelLoadError, import_framework
from .torch_module import torch_model

FRAMEWORK = "TorchScript"


def load(model_dir: Path, manifest: dict[str, Any], device: str) -> LoadedModel:
    """``torch.jit.load`` the serialized file onto ``device``, in eval mode."""
    path = require_serialized_file(model_dir, manifest, FRAMEWORK)
    torch = import_framework("torch", "torch", path, FRAMEWORK)
    try:
        with warnings.catch_warnings():
            # Recent torch marks TorchScript deprecated; serving one is still supported, and
            # the notice would repeat in every worker's log.
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            module = torch.jit.load(str(path), map_location=device)
    except RuntimeError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(
            path,
            FRAMEWORK,
            f"not a TorchScript archive ({reason}); for a state dict, archive the model's "
            "class with --model-file",
        ) from exc
    module.eval()
    return torch_model("torchscript", module, device)
