"""What every backend returns: a loaded model behind one calling convention."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


class ModelLoadError(RuntimeError):
    """The model cannot be loaded; the message names the file, the framework and the cause.

    A RuntimeError, so that TorchServe-style handlers that catch load failures keep working.
    """

    def __init__(self, file: Path | str, framework: str, reason: str) -> None:
        name = file.name if isinstance(file, Path) else file
        # File names, not full paths: the message reaches clients of the management API.
        super().__init__(f"cannot load {name} with {framework}: {reason}")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as the framework declares it.

    ``shape`` has None for each dimension the model leaves open (batch, sequence …) and is
    None itself when the framework does not declare it; ``dtype`` is None when unknown.
    """

    name: str
    shape: tuple[int | None, ...] | None = None
    dtype: np.dtype | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run.

    Calling it runs the model. Torch backends take a tensor (or a sequence of tensors as
    positional arguments, or a dict as keyword arguments) and return what the module
    returns, computed under ``torch.inference_mode()``. ONNX Runtime, TensorFlow and
    TensorRT take a dict input name → numpy array, or one array for a single-input model,
    and return a dict output name → numpy array.
    """

    backend: str
    module: Any
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    run: Callable[[Any], Any] = field(repr=False)
    # The dtype of the model's own floating-point weights where the framework declares no
    # input dtypes (torch), so that numbers without a dtype (JSON) can be given the one the
    # model computes in; None when unknown or not numpy-representable (bfloat16).
    parameter_dtype: np.dtype | None = None

    @property
    def input_names(self) -> list[str]:
        """Input names, in the model's order; empty where the framework does not say."""
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        """Output names, in the model's order; empty where the framework does not say."""
        return [spec.name for spec in self.outputs]

    def __call__(self, inputs: Any) -> Any:
        """Run the model on ``inputs``."""
        return self.run(inputs)


def import_framework(package: str, extra: str, file: Path | str, framework: str) -> ModuleType:
    """Import a framework that is an optional dependency, or say how to install it."""
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        if exc.name != package:
            raise  # installed, but broken: its own message is the useful one
        reason = f"{package} is not installed: pip install modelserve[{extra}]"
        raise ModelLoadError(file, framework, reason) from exc


def feed_by_name(inputs: Any, input_names: list[str]) -> dict[str, Any]:
    """Inputs as a dict keyed by input name; a lone array feeds a single-input model."""
    if isinstance(inputs, dict):
        return inputs
    if len(input_names) != 1:
        raise TypeError(
            f"the model takes {len(input_names)} inputs ({', '.join(input_names)}): "
            "pass a dict input name → array"
        )
    return {input_names[0]: inputs}
