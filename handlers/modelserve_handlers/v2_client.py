"""A worker's KServe v2 infer calls to another model of the same server, through the
server's inference plane: the request and its answer in the binary tensor data extension
(Triton's BLS calls, Paddle ops' model calls). Numpy arrays in, numpy arrays out."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np

from modelserve.protocol_contract import BINARY_DATA_SIZE, BYTES, HEADER_LENGTH
from modelserve_handlers.tensor_io.buffers import (
    array_from_buffer,
    element_count,
    object_array,
    raw_data,
)
from modelserve_handlers.tensor_io.datatypes import as_bytes, datatype_of, numpy_dtype

# A call without a timeout of its own waits at most this long.
DEFAULT_TIMEOUT_S = 300.0


def infer_call(
    server_url: str,
    model: str,
    version: str,
    inputs: dict[str, np.ndarray],
    outputs: list[str],
    request_id: str = "",
    parameters: dict[str, Any] | None = None,
) -> tuple[str, bytes, dict[str, str]]:
    """The URL, body and headers of the infer request of ``model`` (``version`` "": its
    default one) for ``inputs``, asking ``outputs`` (none: every one) as binary data."""
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
    entries = []
    buffers = []
    for name, value in inputs.items():
        array = np.asarray(value)
        datatype = datatype_of(array.dtype)
        data = bytes(raw_data(array, datatype))
        buffers.append(data)
        entries.append(
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype,
                "parameters": {BINARY_DATA_SIZE: len(data)},
            }
        )
    document: dict[str, Any] = {"inputs": entries}
    if request_id:
        document["id"] = request_id
    document["parameters"] = {**(parameters or {}), "binary_data_output": True}
    if outputs:
        document["outputs"] = [
            {"name": name, "parameters": {"binary_data": True}} for name in outputs
        ]
    header = json.dumps(document).encode()
    headers = {HEADER_LENGTH: str(len(header)), "Content-Type": "application/octet-stream"}
    return f"{server_url.rstrip('/')}{path}/infer", header + b"".join(buffers), headers


def decode_outputs(answer: httpx.Response) -> dict[str, np.ndarray]:
    """The output tensors of a v2 response, binary or JSON."""
    raw = answer.content
    length = answer.headers.get(HEADER_LENGTH)
    split = int(length) if length is not None else len(raw)
    document = json.loads(raw[:split])
    binary = memoryview(raw)[split:]
    offset = 0
    outputs: dict[str, np.ndarray] = {}
    for entry in document.get("outputs", []):
        name, datatype, shape = entry["name"], entry["datatype"], entry["shape"]
        where = f'output "{name}"'
        count = element_count(shape, datatype, where)
        size = (entry.get("parameters") or {}).get(BINARY_DATA_SIZE)
        if size is None:  # a handler that answered JSON after all
            array = _json_array(entry["data"], datatype)
        else:
            array = array_from_buffer(
                bytes(binary[offset : offset + size]), datatype, count, where, BINARY_DATA_SIZE
            )
            offset += size
        outputs[name] = array.reshape(shape)
    return outputs


def error_text(answer: httpx.Response) -> str:
    """What a failed answer says: its JSON ``error`` (v2) where it has one."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text
    return str(body.get("error", body)) if isinstance(body, dict) else answer.text


def _json_array(data: Any, datatype: str) -> np.ndarray:
    values = np.asarray(data).reshape(-1).tolist()
    if datatype == BYTES:
        return object_array([as_bytes(value) for value in values])
    return np.asarray(values, dtype=numpy_dtype(datatype))
