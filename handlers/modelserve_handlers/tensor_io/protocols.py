"""One request of a batch in whichever protocol it came, and its answer in the same protocol:
what every handler that serves tensors shares (``tensor``, ``triton_python``).

A row holding ``protocol_contract.TENSOR_REQUEST`` is a protocol-neutral tensor request (gRPC
ModelInfer, TF Serving Predict); otherwise the ``modelserve-protocol`` header says KServe v2 or
TF Serving REST, and without it the body is one of the plain formats of ``formats``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelserve.protocol_contract import (
    HEADER_LENGTH,
    PROTOCOL_HEADER,
    TENSOR_REQUEST,
    TF_SERVING,
    V2,
    TensorInferRequest,
)
from modelserve_handlers.errors import BadInputError
from modelserve_handlers.payload import required_payload, row_payload

from . import Tensors, open_inference, tf_serving
from .formats import EXPECTED, TensorRequest, decode_request, encode_response
from .neutral import Neutral, Protocol, decode_tensor_request, encode_tensor_response
from .open_inference import InferRequest
from .tf_serving import DEFAULT_SIGNATURE, PredictRequest

# The signatures a TF Serving request may name: the handlers run serving_default only.
SIGNATURES = [DEFAULT_SIGNATURE]

Request = TensorRequest | InferRequest | PredictRequest | TensorInferRequest
# Reason phrases of the statuses a request may be refused with.
PHRASES = {400: "Bad Request", 404: "Not Found", 500: "Internal Server Error", 503: "Unavailable"}


@dataclass
class Decoded:
    """One request and its tensors as sent, keyed by input name (None: the only, unnamed one).
    ``typed`` is False for JSON numbers, which carry no dtype of their own."""

    request: Request
    tensors: dict[str | None, np.ndarray]
    typed: bool


def protocol_of(row: dict[str, Any], context: Any, index: int) -> Protocol:
    """The protocol request ``index`` of the batch came in."""
    if isinstance(row.get(TENSOR_REQUEST), TensorInferRequest):
        return Neutral.TENSORS
    return context.get_request_header(index, PROTOCOL_HEADER)


def decode(row: dict[str, Any], context: Any, index: int, protocol: Protocol) -> Decoded:
    """Request ``index`` of the batch; BadInputError when it cannot be read."""
    if protocol is Neutral.TENSORS:
        request: Request = row[TENSOR_REQUEST]
        return Decoded(request, dict(decode_tensor_request(request)), True)
    if protocol is None:
        request = decode_request(required_payload(row, EXPECTED), _content_type(context, index))
        return Decoded(request, request.tensors, request.typed)
    if protocol == V2:
        header_length = context.get_request_header(index, HEADER_LENGTH)
        request = open_inference.decode_infer_request(row_payload(row), header_length)
        return Decoded(request, dict(request.tensors), True)
    if protocol == TF_SERVING:
        request = tf_serving.decode_predict_request(row_payload(row), SIGNATURES)
        return Decoded(request, request.tensors, False)
    raise BadInputError(f"unknown {PROTOCOL_HEADER} {protocol!r} (expected {V2} or {TF_SERVING})")


def respond(context: Any, index: int, request: Request, outputs: Tensors) -> Any:
    """The answer to request ``index`` in its protocol; its content type (and headers) set on
    the context. BadInputError when it asks for an output the model did not give."""
    if isinstance(request, InferRequest):
        response = open_inference.encode_infer_response(
            request, outputs, context.model_name, model_version(context)
        )
        if response.json_length is not None:
            context.set_response_header(index, HEADER_LENGTH, str(response.json_length))
        context.set_response_content_type(index, response.content_type)
        return response.body
    if isinstance(request, PredictRequest):
        return tf_serving.encode_predict_response(request, outputs)
    if isinstance(request, TensorInferRequest):
        return encode_tensor_response(request, outputs, context.model_name, model_version(context))
    body, content_type = encode_response(request, outputs, context.model_name)
    if content_type is not None:
        context.set_response_content_type(index, content_type)
    return body


def refuse(
    context: Any,
    index: int,
    status: int,
    message: str,
    protocol: Protocol,
    error_type: str = "BadInputError",
) -> Any:
    """Answer request ``index`` alone with ``status`` and ``message``, in its protocol's error
    shape, so that the batch's other requests are still answered."""
    context.set_response_status(status, PHRASES.get(status, "Error"), index)
    if protocol is Neutral.TENSORS:  # the gRPC status's message
        return message
    if protocol is not None:  # both protocols' error shape
        return {"error": message}
    return {"code": status, "type": error_type, "message": message}


def model_version(context: Any) -> str | None:
    """The version of the model the worker serves, as its manifest says."""
    version = ((context.manifest or {}).get("model") or {}).get("modelVersion")
    return None if version is None else str(version)


def _content_type(context: Any, index: int) -> str | None:
    value = context.get_request_header(index, "content-type")
    return value.partition(";")[0].strip().lower() if isinstance(value, str) else None
