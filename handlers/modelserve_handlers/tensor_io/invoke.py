"""Calling a loaded model with numpy arrays and getting numpy arrays back, for any backend."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelserve_handlers.backends import TORCH_BACKENDS, LoadedModel
from modelserve_handlers.errors import BadInputError

from . import Tensors
from .datatypes import positional_index

# The names of the tensors a torch module returns positionally.
TORCH_OUTPUT = "output_{}"


def call_model(model: LoadedModel, inputs: Tensors) -> Tensors:
    """Run ``model`` on named arrays; outputs by name (torch outputs are named ``TORCH_OUTPUT``
    unless the module returns a dict)."""
    if model.backend in TORCH_BACKENDS:
        return _call_torch(model, inputs)
    return {name: np.asarray(value) for name, value in model(inputs).items()}


def _call_torch(model: LoadedModel, inputs: Tensors) -> Tensors:
    import torch

    try:
        result = model(_torch_arguments(inputs))
    except torch.cuda.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        # A torch module declares no shapes or dtypes, so its own complaint is the only way to
        # learn that the input does not fit; the input is what the client chose. TorchScript
        # puts its interpreter's traceback first and the cause last.
        lines = [line for line in str(exc).splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else type(exc).__name__
        raise BadInputError(
            f"the model rejected the input ({_describe(inputs)}): {detail}"
        ) from exc
    if isinstance(result, dict):
        return {str(name): _to_numpy(torch, value) for name, value in result.items()}
    if isinstance(result, list | tuple):
        return {
            TORCH_OUTPUT.format(index): _to_numpy(torch, value)
            for index, value in enumerate(result)
        }
    return {TORCH_OUTPUT.format(0): _to_numpy(torch, result)}


def _torch_arguments(inputs: Tensors) -> Any:
    """A lone tensor, Triton's ``INPUT__0`` … in positional order, or keyword arguments."""
    if len(inputs) == 1:
        return next(iter(inputs.values()))
    by_index = {positional_index(name): name for name in inputs}
    if set(by_index) == set(range(len(inputs))):
        return [inputs[by_index[index]] for index in range(len(inputs))]
    return inputs


def _to_numpy(torch: Any, value: Any) -> np.ndarray:
    if not isinstance(value, torch.Tensor):
        return np.asarray(value)
    value = value.detach().cpu()
    if value.dtype == torch.bfloat16:  # numpy has no bfloat16
        value = value.float()
    return value.numpy()


def _describe(inputs: Tensors) -> str:
    return ", ".join(f"{name}: shape {array.shape} {array.dtype}" for name, array in inputs.items())
