"""The calling convention shared by the TorchScript and eager backends."""

from __future__ import annotations

import inspect
import itertools
from typing import TYPE_CHECKING, Any

from .model import LoadedModel, TensorSpec

if TYPE_CHECKING:
    import numpy as np


def forward_inputs(module: Any) -> tuple[TensorSpec, ...]:
    """The named parameters of ``forward``: torch declares names, not shapes or dtypes."""
    schema = getattr(module.forward, "schema", None)
    if schema is not None:  # TorchScript keeps the signature in the method's schema
        return tuple(TensorSpec(argument.name) for argument in schema.arguments[1:])
    parameters = inspect.signature(module.forward).parameters.values()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(TensorSpec(p.name) for p in parameters if p.kind in positional)


def torch_model(backend: str, module: Any, device: str) -> LoadedModel:
    """Wrap an ``nn.Module`` (or ScriptModule) in eval mode on ``device``."""
    import torch

    target = torch.device(device)

    def run(inputs: Any) -> Any:
        with torch.inference_mode():
            if isinstance(inputs, dict):
                return module(**{k: torch.as_tensor(v, device=target) for k, v in inputs.items()})
            if isinstance(inputs, list | tuple):
                return module(*(torch.as_tensor(value, device=target) for value in inputs))
            return module(torch.as_tensor(inputs, device=target))

    return LoadedModel(
        backend, module, forward_inputs(module), (), run, parameter_dtype=parameter_dtype(module)
    )


def parameter_dtype(module: Any) -> np.dtype | None:
    """The numpy dtype of the module's first floating-point parameter or buffer.

    None when it has none, or when numpy has no such dtype (bfloat16).
    """
    import torch

    for tensor in itertools.chain(module.parameters(), module.buffers()):
        if tensor.is_floating_point():
            try:
                return torch.empty(0, dtype=tensor.dtype).numpy().dtype
            except TypeError:
                return None
    return None
