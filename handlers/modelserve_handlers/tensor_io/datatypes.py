"""KServe v2 / Triton datatype names ↔ numpy dtypes, and a model's tensors described in them.

BYTES tensors are numpy object arrays holding one ``bytes`` (or ``str``) per element: numpy's
fixed-width ``S``/``U`` dtypes would pad every element to the longest one.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from modelserve.protocol_contract import BYTES, DATATYPES, TENSOR_DATATYPES
from modelserve_handlers.backends import TORCH_BACKENDS, LoadedModel, TensorSpec

OBJECT = np.dtype(object)

# The numeric datatypes; every one has a numpy dtype of the same width and layout.
V2_DATATYPES: dict[str, np.dtype] = {
    name: np.dtype(DATATYPES[name].numpy_name) for name in TENSOR_DATATYPES if name != BYTES
}
_NAMES = {dtype: name for name, dtype in V2_DATATYPES.items()}

# A torch module's undeclared dtype when its weights do not say (torch's default dtype).
TORCH_DEFAULT_DTYPE = np.dtype("float32")
# Triton's names for tensors a framework leaves unnamed.
UNNAMED_OUTPUT = "output__{}"
UNNAMED_INPUT = "input__{}"
# Triton's convention for a torch module's positional tensors: any name ending in __<index>
# (INPUT__0, output__1 …) stands for the tensor at that position.
POSITIONAL_NAME = re.compile(r".+__(\d+)")


def positional_index(name: str) -> int | None:
    """The position a ``<name>__<index>`` tensor name stands for; None for other names."""
    match = POSITIONAL_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def datatype_of(dtype: np.dtype) -> str | None:
    """The v2 name of ``dtype``; BYTES for strings and objects; None when v2 has none."""
    if dtype.kind in "OSU":
        return BYTES
    return _NAMES.get(dtype)


def output_datatype(name: str, array: np.ndarray) -> str:
    """The v2 name of an output's dtype; TypeError (the model's fault) when v2 has none."""
    datatype = datatype_of(array.dtype)
    if datatype is None:
        raise TypeError(f"output {name!r} has dtype {array.dtype}, which KServe v2 cannot carry")
    return datatype


def numpy_dtype(datatype: str) -> np.dtype:
    """The numpy dtype a v2 datatype decodes to (object for BYTES)."""
    return OBJECT if datatype == BYTES else V2_DATATYPES[datatype]


def as_bytes(value: Any) -> bytes:
    """One BYTES element as bytes (text as UTF-8)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"a BYTES element must be bytes or text, not {type(value).__name__}")


def undeclared_dtype(model: LoadedModel) -> np.dtype | None:
    """What a tensor whose dtype the framework does not declare is taken to be: for a torch
    module, the dtype of its weights (it computes in it); None for other frameworks."""
    if model.backend not in TORCH_BACKENDS:
        return None
    # Not ``or``: a dtype's truth value is its field count under numpy 1.
    return TORCH_DEFAULT_DTYPE if model.parameter_dtype is None else model.parameter_dtype


def tensor_metadata(model: LoadedModel) -> dict[str, list[dict[str, Any]]]:
    """The model's inputs and outputs as v2 metadata: name, datatype, shape (-1: open)."""
    fallback = undeclared_dtype(model)
    return {
        "inputs": [_describe(spec, fallback) for spec in model.inputs],
        "outputs": [_describe(spec, fallback) for spec in _outputs(model)],
    }


def _outputs(model: LoadedModel) -> tuple[TensorSpec, ...]:
    if model.outputs or model.backend not in TORCH_BACKENDS:
        return model.outputs
    # A TorchScript method's schema says how many tensors it returns; eager code does not.
    schema = getattr(getattr(model.module, "forward", None), "schema", None)
    if schema is None or len(schema.returns) != 1:
        return ()
    returned = schema.returns[0].type
    kinds = (
        [item.kind() for item in returned.elements()]
        if returned.kind() == "TupleType"
        else [returned.kind()]
    )
    if any(kind != "TensorType" for kind in kinds):
        return ()
    return tuple(TensorSpec(UNNAMED_OUTPUT.format(index)) for index in range(len(kinds)))


def _describe(spec: TensorSpec, fallback: np.dtype | None) -> dict[str, Any]:
    dtype = spec.dtype if spec.dtype is not None else fallback
    datatype = None if dtype is None else datatype_of(dtype)
    if datatype is None:
        datatype = BYTES
    # An undeclared shape is reported as one open dimension: v2 cannot say "any rank".
    shape = [-1] if spec.shape is None else [-1 if dim is None else dim for dim in spec.shape]
    return {"name": spec.name, "datatype": datatype, "shape": shape}
