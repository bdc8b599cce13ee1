"""A request's tensors checked against a Triton model config's ``input`` list, as Triton
checks them before ``execute`` sees them: every input declared (no unknown ones, none of the
non-optional ones missing), the declared datatype, and a shape that fits ``dims`` (after the
batch dimension when ``max_batch_size`` > 0, which bounds it). ``reshape`` is then applied.
JSON numbers, which carry no dtype, take the declared one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelserve.protocol_contract import BYTES
from modelserve_handlers.errors import BadInputError
from modelserve_handlers.tensor_io.buffers import object_array
from modelserve_handlers.tensor_io.datatypes import as_bytes, datatype_of, numpy_dtype


def v2_datatype(data_type: str) -> str:
    """Triton's ``TYPE_FP32`` as the v2 name ``FP32`` (``TYPE_STRING`` is ``BYTES``)."""
    name = data_type.removeprefix("TYPE_")
    return BYTES if name == "STRING" else name


def bind_config_inputs(
    tensors: dict[str | None, np.ndarray], typed: bool, config: dict[str, Any]
) -> dict[str, np.ndarray]:
    """``tensors`` keyed by input name, checked and shaped as the config says (a lone unnamed
    tensor is the model's only input); BadInputError naming what does not fit."""
    model = config.get("name", "")
    declared = {entry["name"]: entry for entry in config.get("input", [])}
    if None in tensors:
        if len(declared) != 1:
            raise BadInputError(
                f"model {model} takes {len(declared)} inputs ({', '.join(declared)}): "
                "send them by name"
            )
        tensors = {next(iter(declared)): tensors[None]}
    unknown = [name for name in tensors if name not in declared]
    if unknown:
        raise BadInputError(
            f'unexpected input "{unknown[0]}" for model {model} (it takes {", ".join(declared)})'
        )
    missing = [
        name
        for name, entry in declared.items()
        if name not in tensors and not entry.get("optional")
    ]
    if missing:
        raise BadInputError(f'model {model} needs input "{missing[0]}", which was not sent')
    max_batch_size = int(config.get("max_batch_size", 0))
    return {
        str(name): _bind(str(name), array, typed, declared[str(name)], max_batch_size)
        for name, array in tensors.items()
    }


def _bind(
    name: str, array: np.ndarray, typed: bool, entry: dict[str, Any], max_batch_size: int
) -> np.ndarray:
    where = f'input "{name}"'
    datatype = v2_datatype(str(entry.get("data_type", "")))
    if not typed:
        array = _typed(array, datatype, where)
    elif datatype_of(array.dtype) != datatype:
        raise BadInputError(
            f"{where}: datatype {datatype_of(array.dtype)} does not match the model's {datatype}"
        )
    dims = [int(size) for size in entry.get("dims", [])]
    expected = [-1, *dims] if max_batch_size > 0 else dims
    fits = len(array.shape) == len(expected) and all(
        want in (-1, got) for want, got in zip(expected, array.shape, strict=True)
    )
    if not fits:
        raise BadInputError(f"{where}: expected shape {expected}, got {list(array.shape)}")
    if max_batch_size > 0 and array.shape[0] > max_batch_size:
        raise BadInputError(
            f"{where}: a batch of {array.shape[0]} is more than max_batch_size {max_batch_size}"
        )
    reshape = (entry.get("reshape") or {}).get("shape")
    if reshape is not None:
        batch = [array.shape[0]] if max_batch_size > 0 else []
        array = array.reshape([*batch, *[int(size) for size in reshape]])
    return array


def _typed(array: np.ndarray, datatype: str, where: str) -> np.ndarray:
    """JSON values as the declared datatype."""
    if datatype == BYTES:
        try:
            items = [as_bytes(item) for item in array.reshape(-1).tolist()]
        except TypeError as exc:
            raise BadInputError(f"{where}: {exc}") from exc
        return object_array(items).reshape(array.shape)
    try:
        return np.asarray(array, dtype=numpy_dtype(datatype))
    except (TypeError, ValueError, KeyError) as exc:
        raise BadInputError(f"{where}: the values are not {datatype}") from exc
