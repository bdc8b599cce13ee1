"""The ``tensor`` built-in handler: tensors in, tensors out, for a model of any framework.

Each request carries the model's input as a JSON nested list (``[[...]]`` or
``{"data": [[...]]}``), a ``.npy`` file, or KServe-v2-style named tensors
(``{"inputs": [{"name", "shape", "datatype", "data"}]}``), and is answered in the same
format (see ``tensor_io.formats``). The model is loaded by ``modelserve_handlers.backends``
(TorchScript, eager PyTorch, ONNX Runtime, TensorFlow SavedModel, TensorRT), detected from
the archive or named in the model-config yaml as ``handler: {backend: onnx}``.

The requests of a batch go through the model in one call where their shapes allow. A request
that does not fit the model is answered 400 with the reason, and the rest of its batch is
still served. The module defines exactly one class, as handler loading requires.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from modelserve_handlers.backends import LoadedModel, load_model
from modelserve_handlers.errors import BadInputError
from modelserve_handlers.payload import required_payload
from modelserve_handlers.tensor_io import Tensors
from modelserve_handlers.tensor_io.batching import Outcome, run_requests
from modelserve_handlers.tensor_io.binding import batchable, bind_inputs
from modelserve_handlers.tensor_io.formats import (
    EXPECTED,
    TensorRequest,
    decode_request,
    encode_response,
)
from modelserve_handlers.tensor_io.invoke import call_model


class TensorHandler:
    """Serves any supported model on raw tensors; standalone, so it needs no torch for ONNX
    or TensorFlow models."""

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.concatenate = False
        self.initialized = False

    def initialize(self, context: Any) -> None:
        """Load the archive's model on the worker's GPU, if it has one, else the CPU."""
        properties = context.system_properties
        gpu_id = properties.get("gpu_id")
        device = "cpu" if gpu_id is None else f"cuda:{gpu_id}"
        backend = ((context.model_yaml_config or {}).get("handler") or {}).get("backend")
        model_dir = Path(properties["model_dir"])
        self.model = load_model(model_dir, context.manifest or {}, device, backend)
        self.concatenate = batchable(self.model)
        self.initialized = True

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        """Answer every request of the batch, in order."""
        assert self.model is not None, "initialize() loads the model first"
        results: list[Any] = [None] * len(data)
        requests: dict[int, TensorRequest] = {}
        inputs: dict[int, Tensors] = {}
        for index, row in enumerate(data):
            try:
                request = decode_request(
                    required_payload(row, EXPECTED), _content_type(context, index)
                )
                inputs[index] = bind_inputs(request, self.model)
            except BadInputError as exc:
                results[index] = _refuse(context, index, exc)
                continue
            requests[index] = request
        outcomes = run_requests(partial(call_model, self.model), inputs, self.concatenate)
        for index, outcome in outcomes.items():
            results[index] = _respond(context, index, requests[index], outcome)
        return results


def _content_type(context: Any, index: int) -> str | None:
    value = context.get_request_header(index, "content-type")
    return value.partition(";")[0].strip().lower() if isinstance(value, str) else None


def _respond(context: Any, index: int, request: TensorRequest, outcome: Outcome) -> Any:
    """The body for one request, its content type set on the context."""
    if isinstance(outcome, BadInputError):
        return _refuse(context, index, outcome)
    try:
        body, content_type = encode_response(request, outcome, context.model_name)
    except BadInputError as exc:  # e.g. an output the request asked for does not exist
        return _refuse(context, index, exc)
    if content_type is not None:
        context.set_response_content_type(index, content_type)
    return body


def _refuse(context: Any, index: int, error: BadInputError) -> dict[str, Any]:
    # Per request, so that the batch's valid requests are still answered.
    context.set_response_status(error.error_code, "Bad Request", index)
    return {"code": error.error_code, "type": type(error).__name__, "message": str(error)}
