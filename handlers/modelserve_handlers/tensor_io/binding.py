"""Matching a request's tensors to the model's inputs: names, shapes and dtypes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from modelserve.protocol_contract import TENSOR_DATATYPES
from modelserve_handlers.backends import TORCH_BACKENDS, LoadedModel, TensorSpec
from modelserve_handlers.errors import BadInputError

from . import Tensors
from .datatypes import OBJECT, numpy_dtype, positional_index, undeclared_dtype


def declare_input_dtypes(model: LoadedModel, declared: Any) -> LoadedModel:
    """``model``, its inputs of undeclared dtype given the datatype the model config declares.

    ``declared`` is the model config's ``inputs:`` list of ``{name, datatype, shape}``
    (checked by the frontend at registration); an entry names an input by its own name or by
    Triton's positional ``<name>__<i>``. What the framework itself declares is never replaced.
    """
    by_name = {
        entry["name"]: numpy_dtype(entry["datatype"])
        for entry in declared or []
        if isinstance(entry, dict) and entry.get("datatype") in TENSOR_DATATYPES
    }
    if not by_name:
        return model
    by_position = {positional_index(name): dtype for name, dtype in by_name.items()}
    inputs = tuple(
        spec
        if spec.dtype is not None
        else replace(spec, dtype=by_name.get(spec.name, by_position.get(index)))
        for index, spec in enumerate(model.inputs)
    )
    return replace(model, inputs=inputs)


def bind_inputs(
    tensors: Mapping[str | None, np.ndarray], typed: bool, model: LoadedModel
) -> Tensors:
    """A request's tensors keyed by model input name, checked and cast where the model says.

    ``None`` keys the request's only, unnamed tensor; ``typed`` is False when the values came
    from JSON numbers, which carry no dtype of their own. Torch modules declare names but no
    shapes or dtypes, so for them the checks are left to the model itself (see ``invoke``);
    their JSON numbers take the input's declared dtype, else the one the module computes in.
    """
    tensors = _named(tensors, model)
    if model.backend in TORCH_BACKENDS:
        if typed:
            return tensors
        return {
            name: _conform(array, TensorSpec(name, dtype=_torch_input_dtype(model, name)))
            for name, array in tensors.items()
        }
    specs = {spec.name: spec for spec in model.inputs}
    unknown = sorted(set(tensors) - set(specs))
    missing = [name for name in specs if name not in tensors]
    if unknown or missing:
        problem = f'unknown input "{unknown[0]}"' if unknown else f'missing input "{missing[0]}"'
        raise BadInputError(f"{problem} (the model takes {_names(model)})")
    bound = {name: _conform(tensors[name], specs[name]) for name in specs}
    if model.backend == "onnx":
        return {name: _onnx_strings(array, name) for name, array in bound.items()}
    return bound


def _torch_input_dtype(model: LoadedModel, name: str) -> np.dtype | None:
    for index, spec in enumerate(model.inputs):
        if (name == spec.name or positional_index(name) == index) and spec.dtype is not None:
            return spec.dtype
    return undeclared_dtype(model)


def batchable(model: LoadedModel) -> bool:
    """Whether requests may be concatenated along axis 0: no input fixes its first dimension."""
    return all(
        spec.shape is None or (spec.shape and spec.shape[0] is None) for spec in model.inputs
    )


def _named(tensors: Mapping[str | None, np.ndarray], model: LoadedModel) -> Tensors:
    if None not in tensors:
        return {str(name): array for name, array in tensors.items()}
    (array,) = tensors.values()
    names = model.input_names
    # A torch module gets a lone tensor as its first argument, whatever else forward() takes.
    if len(names) > 1 and model.backend not in TORCH_BACKENDS:
        raise BadInputError(
            f"the model takes {len(names)} inputs ({_names(model)}): send named tensors "
            '{"inputs": [{"name", "shape", "datatype", "data"}, ...]}'
        )
    return {names[0] if names else "input_0": array}


def _conform(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.shape is not None and (
        array.ndim != len(spec.shape)
        or any(
            want is not None and want != got
            for want, got in zip(spec.shape, array.shape, strict=True)
        )
    ):
        raise BadInputError(
            f'input "{spec.name}": expected shape {_render(spec.shape)}, got {array.shape}'
        )
    if spec.dtype is None or array.dtype == spec.dtype:
        return array
    if OBJECT in (spec.dtype, array.dtype):  # strings and numbers never convert
        want, got = (_kind(dtype) for dtype in (spec.dtype, array.dtype))
        raise BadInputError(f'input "{spec.name}": expected {want} values, got {got}')
    # Same kind only: ints and lower precision widen silently, floats never become ints.
    if not np.can_cast(array.dtype, spec.dtype, "same_kind"):
        raise BadInputError(f'input "{spec.name}": expected {spec.dtype} values, got {array.dtype}')
    return array.astype(spec.dtype)


def _kind(dtype: np.dtype) -> str:
    return "string" if dtype == OBJECT else str(dtype)


def _onnx_strings(array: np.ndarray, name: str) -> np.ndarray:
    """BYTES elements as text: ONNX Runtime stores ``str(b"...")`` for a bytes element."""
    if array.dtype != OBJECT:
        return array
    try:
        return np.vectorize(_text, otypes=[OBJECT])(array)
    except UnicodeDecodeError as exc:
        raise BadInputError(f'input "{name}": ONNX string tensors take UTF-8 text') from exc


def _text(value: object) -> object:
    return value.decode() if isinstance(value, bytes) else value


def _render(shape: tuple[int | None, ...]) -> str:
    dims = [
        str(dim) if dim is not None else ("N" if axis == 0 else "?")
        for axis, dim in enumerate(shape)
    ]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


def _names(model: LoadedModel) -> str:
    return ", ".join(model.input_names)
