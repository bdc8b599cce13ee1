"""The ``tensor`` built-in handler: tensors in, tensors out, for a model of any framework.

Each request carries the model's input as a JSON nested list (``[[...]]`` or
``{"data": [[...]]}``), a ``.npy`` file, or KServe-v2-style named tensors
(``{"inputs": [{"name", "shape", "datatype", "data"}]}``), and is answered in the same
format (see ``tensor_io.formats``). The model is loaded by ``modelserve_handlers.backends``
(TorchScript, eager PyTorch, ONNX Runtime, TensorFlow SavedModel, TensorRT), detected from
the archive or named in the model-config yaml as ``handler: {backend: onnx}``; the same
``handler:`` section may ask for custom op libraries and a GPU memory limit
(``backends.framework_setup``).

With the request header ``modelserve-protocol`` (set by the frontend's protocol routes) a
request is instead a KServe v2 / Open Inference Protocol infer request (``v2``, see
``tensor_io.open_inference``) or a TF Serving predict request (``tfserving``, see
``tensor_io.tf_serving``), answered in that protocol, errors as ``{"error": "..."}``.

A row holding ``protocol_contract.TENSOR_REQUEST`` (gRPC ModelInfer) is a protocol-neutral
``TensorInferRequest``: raw input buffers, read without a copy (see ``tensor_io.neutral``). It is
answered with a ``TensorInferResponse`` whose output buffers go back as they are; a refusal is
its message as text.

A stateful Triton model (``sequence_batching`` in its config) gets the control inputs the
config names (START, END, READY, CORRID) with each request (``triton.sequence_controls``).

The requests of a batch go through the model in one call where their shapes allow. A request
that does not fit the model is answered 400 with the reason, and the rest of its batch is
still served. The module defines exactly one class, as handler loading requires.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from modelserve.protocol_contract import PLATFORMS
from modelserve_handlers.backends import (
    TORCH_BACKENDS,
    FrameworkOptions,
    LoadedModel,
    load_model,
    serialized_name,
)
from modelserve_handlers.errors import BadInputError
from modelserve_handlers.tensor_io import Tensors
from modelserve_handlers.tensor_io.batching import run_requests
from modelserve_handlers.tensor_io.binding import batchable, bind_inputs, declare_input_dtypes
from modelserve_handlers.tensor_io.datatypes import (
    UNNAMED_OUTPUT,
    positional_index,
    tensor_metadata,
)
from modelserve_handlers.tensor_io.formats import TensorRequest
from modelserve_handlers.tensor_io.invoke import TORCH_OUTPUT, call_model
from modelserve_handlers.tensor_io.protocols import Request, decode, protocol_of, refuse, respond
from modelserve_handlers.triton.sequence_controls import control_inputs


class TensorHandler:
    """Serves any supported model on raw tensors; standalone, so it needs no torch for ONNX
    or TensorFlow models."""

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.concatenate = False
        self.initialized = False
        # What the model config calls the outputs a torch module returns positionally, by
        # position (Triton's OUTPUT__0 …).
        self.output_names: dict[int, str] = {}
        self.sequence_config: dict[str, Any] | None = None

    def initialize(self, context: Any) -> None:
        """Load the archive's model on the worker's GPU, if it has one, else the CPU."""
        properties = context.system_properties
        gpu_id = properties.get("gpu_id")
        device = "cpu" if gpu_id is None else f"cuda:{gpu_id}"
        model_config = context.model_yaml_config or {}
        handler_config = model_config.get("handler") or {}
        model_dir = Path(properties["model_dir"])
        manifest = context.manifest or {}
        options = FrameworkOptions.from_config(
            handler_config, serialized_name(manifest) or "the model archive"
        )
        model = load_model(model_dir, manifest, device, handler_config.get("backend"), options)
        # The model config's ``inputs:`` type JSON numbers where the framework does not.
        self.model = declare_input_dtypes(model, model_config.get("inputs"))
        self.concatenate = batchable(self.model)
        self.output_names = _positional_names(model_config.get("outputs"))
        # A stateful Triton model takes its sequence's control inputs (START, READY …).
        triton_config = model_config.get("tritonConfig") or {}
        self.sequence_config = triton_config if "sequence_batching" in triton_config else None
        self.initialized = True

    def tensor_metadata(self) -> dict[str, Any]:
        """The model's inputs and outputs as KServe v2 metadata, and its framework as a v2
        platform, for the worker's READY."""
        assert self.model is not None, "initialize() loads the model first"
        return {**tensor_metadata(self.model), "platform": PLATFORMS[self.model.backend]}

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        """Answer every request of the batch, in order."""
        assert self.model is not None, "initialize() loads the model first"
        results: list[Any] = [None] * len(data)
        protocols = [protocol_of(row, context, index) for index, row in enumerate(data)]
        requests: dict[int, Request] = {}
        inputs: dict[int, Tensors] = {}
        for index, row in enumerate(data):
            try:
                decoded = decode(row, context, index, protocols[index])
                requests[index] = decoded.request
                tensors = decoded.tensors
                if self.sequence_config is not None:
                    controls = control_inputs(self.sequence_config, context, index, decoded.request)
                    tensors = {**tensors, **controls}
                inputs[index] = bind_inputs(tensors, decoded.typed, self.model)
            except BadInputError as exc:
                results[index] = _refuse(context, index, exc, protocols[index])
        outcomes = run_requests(partial(call_model, self.model), inputs, self.concatenate)
        for index, outcome in outcomes.items():
            if isinstance(outcome, BadInputError):
                results[index] = _refuse(context, index, outcome, protocols[index])
                continue
            try:
                request = requests[index]
                # The plain formats keep torch's own output names; the protocols get Triton's.
                plain = isinstance(request, TensorRequest)
                outputs = outcome if plain else self._protocol_names(outcome)
                results[index] = respond(context, index, request, outputs)
            except BadInputError as exc:  # e.g. an output the request asked for does not exist
                results[index] = _refuse(context, index, exc, protocols[index])
        return results

    def _protocol_names(self, outputs: Tensors) -> Tensors:
        """The tensors a torch module returns positionally, named as the model config names
        them (``OUTPUT__<i>``), else Triton's ``output__<i>``."""
        assert self.model is not None
        positional = [TORCH_OUTPUT.format(index) for index in range(len(outputs))]
        if self.model.backend not in TORCH_BACKENDS or list(outputs) != positional:
            return outputs
        return {
            self.output_names.get(index, UNNAMED_OUTPUT.format(index)): array
            for index, array in enumerate(outputs.values())
        }


def _positional_names(declared: Any) -> dict[int, str]:
    """The model config's ``outputs:`` entries named ``<name>__<i>``, by position."""
    names = {}
    for entry in declared or []:
        name = entry.get("name") if isinstance(entry, dict) else None
        index = None if not isinstance(name, str) else positional_index(name)
        if index is not None:
            names[index] = name
    return names


def _refuse(context: Any, index: int, error: BadInputError, protocol: Any) -> Any:
    return refuse(context, index, error.error_code, str(error), protocol)
