"""TF Serving's REST ``:predict`` request and response (also KServe's v1 protocol).

Two request formats, answered in kind:

* row: ``{"instances": [row, ...]}``, a row being one input's value or an object input name →
  value; answered ``{"predictions": [...]}`` (a value per row, or an object per row when the
  model has several outputs);
* columnar: ``{"inputs": value}`` or ``{"inputs": {name: batched value}}``; answered
  ``{"outputs": value}`` or ``{"outputs": {name: value}}``.

Strings are UTF-8 text, or ``{"b64": "..."}`` for raw bytes, as in TF Serving.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelserve_handlers.errors import BadInputError

from . import Tensors
from .datatypes import OBJECT
from .json_body import parse_json_body

DEFAULT_SIGNATURE = "serving_default"


@dataclass
class PredictRequest:
    """One decoded predict request; ``None`` keys the model's only input."""

    tensors: dict[str | None, np.ndarray]
    columnar: bool
    rows: int | None = None  # the instance count, for row format


def decode_predict_request(payload: Any, signatures: list[str]) -> PredictRequest:
    """Parse one request; ``signatures`` are those the model can run."""
    if isinstance(payload, str):
        payload = payload.encode()
    if isinstance(payload, bytes | bytearray):
        payload = parse_json_body(bytes(payload), '{"instances": ...} or {"inputs": ...}')
    if not isinstance(payload, dict):
        raise BadInputError('a predict request must be a JSON object with "instances" or "inputs"')
    signature = payload.get("signature_name", DEFAULT_SIGNATURE)
    if signature not in signatures:
        raise BadInputError(
            f"unknown signature_name {signature!r} (the model serves {', '.join(signatures)})"
        )
    if ("instances" in payload) == ("inputs" in payload):
        raise BadInputError('a predict request needs exactly one of "instances" and "inputs"')
    if "inputs" in payload:
        return PredictRequest(_columns(payload["inputs"]), columnar=True)
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise BadInputError('"instances" must be a non-empty list of rows')
    return PredictRequest(_rows(instances), columnar=False, rows=len(instances))


def encode_predict_response(request: PredictRequest, outputs: Tensors) -> dict[str, Any]:
    """``{"outputs": ...}`` for a columnar request, ``{"predictions": [...]}`` for rows."""
    values = {name: _plain(array) for name, array in outputs.items()}
    if request.columnar:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    mismatched = [
        name for name, array in outputs.items() if array.ndim == 0 or array.shape[0] != request.rows
    ]
    if mismatched:
        # Rows are answered row by row; an output without one value per row cannot be.
        raise BadInputError(
            f'output "{mismatched[0]}" does not have one value per instance: send the '
            'columnar format {"inputs": ...} instead'
        )
    return {
        "predictions": [
            {name: value[row] for name, value in values.items()} for row in range(request.rows)
        ]
    }


def _columns(inputs: Any) -> dict[str | None, np.ndarray]:
    if isinstance(inputs, dict):
        if not inputs:
            raise BadInputError('"inputs" names no input')
        return {str(name): _array(value, f'input "{name}"') for name, value in inputs.items()}
    return {None: _array(inputs, '"inputs"')}


def _rows(instances: list[Any]) -> dict[str | None, np.ndarray]:
    if not all(isinstance(row, dict) for row in instances):
        if any(isinstance(row, dict) for row in instances):
            raise BadInputError('"instances" mixes objects with plain values')
        return {None: _array(instances, '"instances"')}
    names = list(instances[0])
    if not names:
        raise BadInputError("an instance names no input")
    for index, row in enumerate(instances):
        if sorted(row) != sorted(names):
            raise BadInputError(
                f"instance {index} has inputs {sorted(row)}, instance 0 has {sorted(names)}"
            )
    return {name: _array([row[name] for row in instances], f'input "{name}"') for name in names}


def _array(value: Any, where: str) -> np.ndarray:
    if _has_strings(value):
        return _bytes_array(value, where)
    try:
        array = np.asarray(value)
    except ValueError as exc:  # numpy refuses ragged nested lists
        raise BadInputError(f"{where}: rows of different lengths") from exc
    if array.dtype.kind not in "biuf":
        raise BadInputError(f"{where} holds values that are neither numbers nor strings")
    return array


def _has_strings(value: Any) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, str) or (isinstance(value, dict) and "b64" in value)


def _bytes_array(value: Any, where: str) -> np.ndarray:
    converted = _to_bytes(value, where)
    array = np.empty(_shape(converted, where), dtype=OBJECT)
    # Filled element by element, so that numpy cannot mistake bytes for nested sequences.
    for position, item in zip(np.ndindex(array.shape), _leaves(converted), strict=True):
        array[position] = item
    return array


def _to_bytes(value: Any, where: str) -> Any:
    if isinstance(value, list):
        return [_to_bytes(item, where) for item in value]
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and isinstance(value.get("b64"), str) and len(value) == 1:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error as exc:
            raise BadInputError(f"{where}: invalid base64 ({exc})") from exc
    raise BadInputError(f'{where} mixes strings with other values (bytes go in {{"b64": ...}})')


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    shapes = {_shape(item, where) for item in value}
    if len(shapes) > 1:
        raise BadInputError(f"{where}: rows of different lengths")
    return (len(value), *(shapes.pop() if shapes else ()))


def _leaves(value: Any) -> list[bytes]:
    if not isinstance(value, list):
        return [value]
    return [leaf for item in value for leaf in _leaves(item)]


def _plain(array: np.ndarray) -> Any:
    """JSON-ready values; bytes become text, or ``{"b64": ...}`` when they are not UTF-8."""
    if array.dtype.kind not in "OSU":
        return np.ascontiguousarray(array) if array.ndim else array.item()
    return _text(array.tolist())


def _text(value: Any) -> Any:
    if isinstance(value, list):
        return [_text(item) for item in value]
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode()}
    return value
