"""The request formats of the ``tensor`` handler, in and out.

* JSON: a nested list ``[[...]]`` or ``{"data": [[...]]}``; answered with nested lists.
* ``.npy``: a numpy file body (``application/x-npy``, or recognised by its magic bytes);
  answered with a ``.npy`` file (``.npz`` when the model has several outputs).
* Named tensors, as KServe's v2 protocol: ``{"inputs": [{"name", "shape", "datatype",
  "data"}]}``; answered with ``{"model_name", "outputs": [...]}`` (and ``"id"`` when sent).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelserve_handlers.errors import BadInputError

from .datatypes import BYTES, V2_DATATYPES, datatype_of
from .json_body import parse_json_body

NPY_CONTENT_TYPE = "application/x-npy"
NPZ_CONTENT_TYPE = "application/x-npz"
NPY_MAGIC = b"\x93NUMPY"
EXPECTED = "a JSON array, a .npy file, or named tensors"


@dataclass
class TensorRequest:
    """One request's tensors, keyed by input name (None: the model's only input).

    ``typed`` is False for JSON lists, whose numbers carry no dtype of their own.
    """

    kind: str  # "json", "npy" or "named"
    tensors: dict[str | None, np.ndarray]
    typed: bool = True
    request_id: str | None = None
    requested_outputs: list[str] | None = None


def decode_request(payload: Any, content_type: str | None) -> TensorRequest:
    """Parse one request's payload (already JSON-decoded by the worker where it could)."""
    if isinstance(payload, bytes | bytearray):
        payload = bytes(payload)
        if payload.startswith(NPY_MAGIC) or content_type == NPY_CONTENT_TYPE:
            return TensorRequest("npy", {None: _load_npy(payload)})
        payload = parse_json_body(payload, EXPECTED)
    elif isinstance(payload, str):
        payload = parse_json_body(payload.encode(), EXPECTED)
    if isinstance(payload, dict):
        if "inputs" in payload:
            return _decode_named(payload)
        if "data" not in payload:
            raise BadInputError(
                f"expected {EXPECTED}; got a JSON object with keys {sorted(payload)} "
                '(a tensor goes in "data", named tensors in "inputs")'
            )
        payload = payload["data"]
    return TensorRequest("json", {None: _json_array(payload, "the request")}, typed=False)


def encode_response(
    request: TensorRequest, outputs: dict[str, np.ndarray], model_name: str
) -> tuple[Any, str | None]:
    """The response body in the request's format, and its content type (None: JSON)."""
    if request.kind == "named":
        return _encode_named(request, outputs, model_name), None
    if request.kind == "npy":
        buffer = io.BytesIO()
        if len(outputs) == 1:
            np.save(buffer, next(iter(outputs.values())), allow_pickle=False)
            return buffer.getvalue(), NPY_CONTENT_TYPE
        np.savez(buffer, **outputs)
        return buffer.getvalue(), NPZ_CONTENT_TYPE
    # Contiguous arrays go to the worker's orjson encoder as they are, without a tolist().
    arrays = {name: np.ascontiguousarray(array) for name, array in outputs.items()}
    return (next(iter(arrays.values())) if len(arrays) == 1 else arrays), None


def _load_npy(raw: bytes) -> np.ndarray:
    try:
        # No pickles: an object array in a .npy file would be unpickled, running its code.
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise BadInputError(f"request body is not a valid .npy file: {exc}") from exc


def _json_array(value: Any, where: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError as exc:  # numpy refuses ragged nested lists
        raise BadInputError(f"{where} is not an array: rows of different lengths ({exc})") from exc
    if array.dtype.kind not in "biuf":
        raise BadInputError(f"{where} holds non-numeric values ({array.dtype})")
    return array


def _decode_named(body: dict[str, Any]) -> TensorRequest:
    entries = body["inputs"]
    if not isinstance(entries, list) or not entries:
        raise BadInputError('"inputs" must be a non-empty list of named tensors')
    tensors: dict[str | None, np.ndarray] = {}
    for entry in entries:
        name, array = _decode_named_tensor(entry)
        if name in tensors:
            raise BadInputError(f'input "{name}" is given twice')
        tensors[name] = array
    requested = body.get("outputs")
    names = None
    if requested is not None:
        if not isinstance(requested, list) or not all(
            isinstance(item, dict) and isinstance(item.get("name"), str) for item in requested
        ):
            raise BadInputError('"outputs" must be a list of {"name": ...} objects')
        names = [item["name"] for item in requested]
    request_id = body.get("id")
    return TensorRequest(
        "named",
        tensors,
        request_id=None if request_id is None else str(request_id),
        requested_outputs=names,
    )


def _decode_named_tensor(entry: Any) -> tuple[str, np.ndarray]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise BadInputError('each of "inputs" must be an object with a "name"')
    name = entry["name"]
    shape, datatype = entry.get("shape"), entry.get("datatype")
    if not isinstance(shape, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape
    ):
        raise BadInputError(f'input "{name}": "shape" must be a list of non-negative integers')
    if datatype not in V2_DATATYPES:
        raise BadInputError(
            f'input "{name}": unsupported datatype {datatype!r} '
            f"(supported: {', '.join(V2_DATATYPES)})"
        )
    if "data" not in entry:
        raise BadInputError(f'input "{name}": no "data"')
    array = _json_array(entry["data"], f'input "{name}"')
    dtype = V2_DATATYPES[datatype]
    # Same-kind only: 1.5 sent as INT64 is a mistake to report, not a value to truncate.
    if array.size and not np.can_cast(array.dtype, dtype, "same_kind"):
        raise BadInputError(f'input "{name}": datatype {datatype}, but the data are {array.dtype}')
    array = array.astype(dtype, copy=False)
    if array.size != math.prod(shape):
        raise BadInputError(
            f'input "{name}": shape {shape} needs {math.prod(shape)} values, got {array.size}'
        )
    return name, array.reshape(shape)


def _encode_named(
    request: TensorRequest, outputs: dict[str, np.ndarray], model_name: str
) -> dict[str, Any]:
    names = request.requested_outputs or list(outputs)
    unknown = [name for name in names if name not in outputs]
    if unknown:
        raise BadInputError(
            f"unknown output {unknown[0]!r} requested (the model has {', '.join(outputs)})"
        )
    body: dict[str, Any] = {"model_name": model_name}
    if request.request_id is not None:
        body["id"] = request.request_id
    body["outputs"] = [_named_tensor(name, outputs[name]) for name in names]
    return body


def _named_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    datatype = datatype_of(array.dtype)
    if datatype is None or datatype == BYTES:
        raise TypeError(f"output {name!r} has dtype {array.dtype}, which KServe v2 cannot carry")
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "data": np.ascontiguousarray(array).ravel(),
    }
