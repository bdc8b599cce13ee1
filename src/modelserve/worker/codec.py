"""Turning wire parameters into the handler's ``data`` rows, and handler outputs into bytes.

Input decoding follows TorchServe's ``decode_input_request``: a JSON part becomes the parsed
value (raw bytes when it does not parse), a ``text/*`` part a str, anything else bytes. A
protocol-neutral tensor request is handed over as it came: any handler may receive it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from modelserve.protocol_contract import TENSOR_REQUEST
from modelserve.wire import RequestParameter, WireRequest

JSON_CONTENT_TYPE = "application/json"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
_ORJSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def decode_parameter(parameter: RequestParameter) -> Any:
    """The value a handler sees for one parameter."""
    content_type = parameter.content_type or ""
    if content_type == JSON_CONTENT_TYPE:
        try:
            return orjson.loads(parameter.value)
        except orjson.JSONDecodeError:
            return parameter.value
    if content_type.startswith("text"):
        return parameter.value.decode("utf-8", errors="replace")
    return parameter.value


def request_row(request: WireRequest) -> dict[str, Any]:
    """One entry of the handler's ``data`` list: parameter name → decoded value, and a tensor
    request (``protocol_contract.TensorInferRequest``) under ``TENSOR_REQUEST``."""
    row = {parameter.name: decode_parameter(parameter) for parameter in request.parameters}
    if request.tensors is not None:
        row[TENSOR_REQUEST] = request.tensors
    return row


def request_headers(request: WireRequest) -> dict[str, Any]:
    """Headers as ``context.get_request_header`` sees them, with each parameter's content type."""
    headers: dict[str, Any] = dict(request.headers)
    for parameter in request.parameters:
        headers[parameter.name] = {"content-type": parameter.content_type}
    return headers


def _plain(value: Any) -> Any:
    # Tensors and arrays from any framework expose tolist(); nothing else is guessed at.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_output(value: Any) -> tuple[bytes, str | None]:
    """Serialise one handler output; returns the body and the content type it implies."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), None
    if isinstance(value, str):
        return value.encode("utf-8"), TEXT_CONTENT_TYPE
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS), JSON_CONTENT_TYPE
    except TypeError:
        return json.dumps(value, indent=2, default=_plain).encode("utf-8"), JSON_CONTENT_TYPE
