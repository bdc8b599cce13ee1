"""The ``triton_python`` built-in handler: a Triton Python-backend model, ``<version>/model.py``
with its ``TritonPythonModel`` class, run unchanged.

The class gets what Triton gives it: ``auto_complete_config`` (when it has one) and
``initialize(args)`` with Triton's string arguments at load, ``execute(requests)`` with one
``pb_utils.InferenceRequest`` per client request of the batch (a dynamic batch gives several;
``async def execute`` runs on the worker's own event loop). Requests arrive in any protocol
the tensor handler takes (KServe v2 REST and gRPC, TF Serving) and are checked against the
config's inputs first, as Triton checks them. Each ``InferenceResponse`` is answered in its
request's protocol; one with a ``TritonError`` fails that request alone, with Triton's status
(INVALID_ARG 400, NOT_FOUND 404, UNAVAILABLE 503, others 500). An exception from ``execute``
fails the batch (500, the traceback in the model's log). A decoupled model
(``model_transaction_policy { decoupled: true }``) returns ``None`` from ``execute``; each
response its requests' senders get, from any thread, goes to its client as a part at once, and
``handle`` returns when every request had its FINAL flag or its client left (a request with no
response at all gets an empty answer). A stateful model (``sequence_batching``, each sequence
kept on one worker by the frontend) gets each request's ``correlation_id()``, ``flags()`` and
control inputs (``triton.sequence_controls``). ``triton_python_backend_utils`` is the worker's
compatibility module unless a real one is installed; its BLS calls go to the server's inference
plane (``triton.bls``). The module defines exactly one class, as handler loading requires.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import inspect
import json
import sys
import threading
from pathlib import Path
from typing import Any

from modelserve.protocol_contract import SEQUENCE_PARAMETERS
from modelserve_handlers.errors import BadInputError
from modelserve_handlers.tensor_io.formats import TensorRequest
from modelserve_handlers.tensor_io.open_inference import InferRequest
from modelserve_handlers.tensor_io.protocols import (
    Decoded,
    decode,
    model_version,
    protocol_of,
    refuse,
    respond,
)
from modelserve_handlers.triton.bls import BlsClient
from modelserve_handlers.triton.cancellation import BatchCancellation
from modelserve_handlers.triton.inputs import bind_config_inputs, v2_datatype
from modelserve_handlers.triton.sequence_controls import control_tensors, request_sequence

PB_UTILS = "triton_python_backend_utils"
DEFAULT_MODEL_FILE = "model.py"
# HTTP status by Triton error code name; any other code is 500.
STATUS_BY_CODE = {"INVALID_ARG": 400, "NOT_FOUND": 404, "UNAVAILABLE": 503}
# Request parameters that are the transport's, not the model's.
TRANSPORT_PARAMETERS = ("binary_data_output", "triton_enable_empty_final_response")
# How often a decoupled model's wait for its FINAL flags looks whether the client went away.
FINAL_WAIT_SLICE_S = 0.05


class TritonPythonHandler:
    """Runs one ``TritonPythonModel`` instance in the worker."""

    def __init__(self) -> None:
        self.model: Any = None
        self.config: dict[str, Any] = {}
        self.pb: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.initialized = False

    def initialize(self, context: Any) -> None:
        """Import model.py, complete the config, and call ``initialize(args)``."""
        properties = context.system_properties
        model_dir = Path(properties["model_dir"])
        name = context.model_name
        version = model_version(context) or "1"
        config = dict((context.model_yaml_config or {}).get("tritonConfig") or {})
        config["name"] = name
        self.pb = importlib.import_module(PB_UTILS)
        model_class = _model_class(model_dir / version, config, name)
        if hasattr(model_class, "auto_complete_config"):
            completed = model_class.auto_complete_config(self.pb.ModelConfig(json.dumps(config)))
            config = completed.as_dict() if completed is not None else config
        self.config = config
        self.pb.set_bls_executor(
            BlsClient(
                self.pb, properties.get("server_url", ""), properties.get("server_token", ""), name
            )
        )
        gpu = properties.get("gpu_id")
        args = {
            "model_config": json.dumps(config),
            "model_instance_kind": "CPU" if gpu is None else "GPU",
            "model_instance_name": f"{name}_0_{properties.get('worker_id', '0')}",
            "model_instance_device_id": str(gpu or 0),
            "model_repository": str(model_dir),
            "model_version": version,
            "model_name": name,
        }
        self.model = model_class()
        if hasattr(self.model, "initialize"):
            self._run(self.model.initialize(args))
        if hasattr(self.model, "is_ready") and not self.model.is_ready():
            raise RuntimeError(f"model {name}: is_ready() answered False after initialize()")
        self.initialized = True

    def close(self) -> None:
        """The worker stops: the model's ``finalize()``, then the BLS client's connections."""
        if self.model is not None and hasattr(self.model, "finalize"):
            self._run(self.model.finalize())
        if self.pb is not None:
            self.pb.set_bls_executor(None)
        if self.loop is not None:
            self.loop.close()

    def tensor_metadata(self) -> dict[str, Any]:
        """The config's inputs and outputs as KServe v2 metadata, for the worker's READY."""
        batched = int(self.config.get("max_batch_size", 0)) > 0

        def describe(entry: dict[str, Any]) -> dict[str, Any]:
            dims = [int(size) for size in entry.get("dims", [])]
            return {
                "name": entry["name"],
                "datatype": v2_datatype(str(entry.get("data_type", ""))),
                "shape": [-1, *dims] if batched else dims,
            }

        return {
            "inputs": [describe(entry) for entry in self.config.get("input", [])],
            "outputs": [describe(entry) for entry in self.config.get("output", [])],
            "platform": "python",
        }

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        """Hand the batch's readable requests to ``execute`` in one list; answer each."""
        results: list[Any] = [None] * len(data)
        protocols = [protocol_of(row, context, index) for index, row in enumerate(data)]
        decoded: dict[int, Decoded] = {}
        requests = []
        batch = BatchCancellation(context)
        for index, row in enumerate(data):
            try:
                decoded[index] = decode(row, context, index, protocols[index])
                tensors = bind_config_inputs(
                    decoded[index].tensors, decoded[index].typed, self.config
                )
                requests.append(self._request(decoded[index], tensors, context, index, batch))
            except BadInputError as exc:
                results[index] = refuse(context, index, exc.error_code, str(exc), protocols[index])
                decoded.pop(index, None)
        if not requests:
            return results
        try:
            if self.decoupled:
                self._execute_decoupled(context, requests, decoded, protocols)
                return results  # each request's answer was its parts (or nothing at all)
            responses = self._run(self.model.execute(requests))
        finally:
            batch.over = True
        if not isinstance(responses, list | tuple) or len(responses) != len(requests):
            count = (
                len(responses) if isinstance(responses, list | tuple) else type(responses).__name__
            )
            raise RuntimeError(
                f"execute() must return one InferenceResponse per request: it returned {count} "
                f"for {len(requests)} requests"
            )
        for index, request, response in zip(decoded, requests, responses, strict=True):
            results[index] = self._answer(
                context, index, decoded[index], self._sent(request, response), protocols[index]
            )
        return results

    @property
    def decoupled(self) -> bool:
        """Whether the config makes the model decoupled (any number of responses a request)."""
        return bool((self.config.get("model_transaction_policy") or {}).get("decoupled"))

    # ----- internals

    def _execute_decoupled(
        self,
        context: Any,
        requests: list[Any],
        decoded: dict[int, Decoded],
        protocols: list[Any],
    ) -> None:
        """Run ``execute`` on a decoupled model's requests: each response a request's sender
        gets (from ``execute`` or any thread after it) goes to its client as a part at once;
        returns when every request got its FINAL flag, or its client went away."""
        finished = {index: threading.Event() for index in decoded}
        for index, request in zip(decoded, requests, strict=True):
            context.answer_empty(index)  # unless it gets a response
            request.get_response_sender().deliver_to(
                functools.partial(
                    self._deliver,
                    context,
                    index,
                    decoded[index],
                    protocols[index],
                    request,
                    finished[index],
                )
            )
        returned = self._run(self.model.execute(requests))
        if returned is not None:
            raise RuntimeError(
                "execute() of a decoupled model must return None: its responses go through "
                "each request's response sender"
            )
        for index, request in zip(decoded, requests, strict=True):
            # The FINAL flag may come from a thread of the model's; a client that left is
            # not waited for (the model sees request.is_cancelled(), its sends are dropped).
            while not finished[index].wait(FINAL_WAIT_SLICE_S):
                if request.is_cancelled():
                    break

    def _deliver(
        self,
        context: Any,
        index: int,
        decoded: Decoded,
        protocol: Any,
        request: Any,
        finished: threading.Event,
        response: Any,
        final: bool,
    ) -> None:
        """One send of a decoupled model's request: its response as a part, then the end."""
        if response is not None and not request.is_cancelled():
            context.send_part(index, self._answer(context, index, decoded, response, protocol))
        if final:
            finished.set()

    def _run(self, outcome: Any) -> Any:
        """``outcome`` itself, or what it awaits to (``async def`` methods) on the worker's loop."""
        if not inspect.isawaitable(outcome):
            return outcome
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(outcome)

    def _request(
        self,
        decoded: Decoded,
        tensors: dict[str, Any],
        context: Any,
        index: int,
        batch: BatchCancellation,
    ) -> Any:
        """Request ``index`` of the batch as ``execute`` gets it: with its sequence's
        correlation id, flags and control inputs when the model is stateful."""
        request = decoded.request
        request_id = ""
        wanted: list[str] = []
        parameters: dict[str, Any] = {}
        if isinstance(request, InferRequest):
            request_id = "" if request.request_id is None else str(request.request_id)
            wanted = [output.name for output in request.outputs or []]
            parameters = dict(request.parameters)
        elif isinstance(request, TensorRequest):
            request_id = request.request_id or ""
            wanted = list(request.requested_outputs or [])
        elif hasattr(request, "outputs"):  # a protocol-neutral tensor request (gRPC)
            request_id = request.id
            wanted = [output.name for output in request.outputs]
            parameters = dict(request.parameters)
        sequence = request_sequence(context, index, parameters)
        tensors = {**tensors, **control_tensors(self.config, sequence)}
        # The sequence's parameters are Triton's server's, not the model's.
        for key in (*TRANSPORT_PARAMETERS, *SEQUENCE_PARAMETERS):
            parameters.pop(key, None)
        # Triton names every output of the config when the client asked for none.
        wanted = wanted or [entry["name"] for entry in self.config.get("output", [])]
        return self.pb.InferenceRequest.from_client(
            model_name=context.model_name,
            inputs=[self.pb.Tensor(name, array) for name, array in tensors.items()],
            request_id=request_id,
            correlation_id=sequence.correlation_id,
            flags=sequence.flags,
            requested_output_names=wanted,
            parameters=parameters,
            decoupled=self.decoupled,
            cancelled=functools.partial(batch.is_cancelled, index),
        )

    def _sent(self, request: Any, returned: Any) -> Any:
        """The request's one response: the one ``execute`` returned, delivered through its
        response sender as Triton does (pruned to the outputs asked for), or the one the model
        sent itself; an error response when it did both, or neither."""
        if returned is not None and not hasattr(returned, "has_error"):
            return returned  # not a response at all: _answer says so
        sender = request.get_response_sender()
        try:
            if returned is not None:
                sender.send(returned, self.pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        except self.pb.TritonModelException as exc:
            return self.pb.InferenceResponse(error=self.pb.TritonError(str(exc)))
        response = sender.response()
        if response is None:
            message = "execute() returned None for a request and sent it no response"
            return self.pb.InferenceResponse(error=self.pb.TritonError(message))
        return response

    def _answer(
        self, context: Any, index: int, decoded: Decoded, response: Any, protocol: Any
    ) -> Any:
        if response is None or not hasattr(response, "has_error"):
            message = f"execute() answered request {index} with {type(response).__name__}"
            return refuse(context, index, 500, message, protocol, "TritonModelException")
        if response.has_error():
            error = response.error()
            code = _code_name(self.pb, error.code())
            status = STATUS_BY_CODE.get(code, 500)
            return refuse(context, index, status, error.message(), protocol, "TritonError")
        outputs = {tensor.name(): tensor.as_numpy() for tensor in response.output_tensors()}
        try:
            return respond(context, index, decoded.request, outputs)
        except BadInputError as exc:
            return refuse(context, index, exc.error_code, str(exc), protocol)


def _model_class(version_dir: Path, config: dict[str, Any], name: str) -> type:
    """``TritonPythonModel`` from the version's model file (its directory importable first,
    so the file's neighbours import as under Triton)."""
    path = version_dir / (config.get("default_model_filename") or DEFAULT_MODEL_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"model {name}: no {path.name} in version {version_dir.name}")
    if str(version_dir) not in sys.path:
        sys.path.insert(0, str(version_dir))
    spec = importlib.util.spec_from_file_location(f"triton_model_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model_class = getattr(module, "TritonPythonModel", None)
    if not isinstance(model_class, type):
        raise TypeError(f"model {name}: {path.name} defines no class TritonPythonModel")
    return model_class


def _code_name(pb: Any, code: Any) -> str:
    """The name of a TritonError code (``INVALID_ARG`` …)."""
    for name in STATUS_BY_CODE:
        if code == getattr(pb.TritonError, name, object()):
            return name
    return "INTERNAL"
