"""TensorFlow Serving's gRPC API: ``tensorflow.serving.PredictionService`` and ``ModelService``.

Predict hands the handler the request's tensors in protocol-neutral form, as gRPC ModelInfer
does (see ``tf_tensors``); metadata and status are the data plane's answers, as on TF Serving's
REST routes. A model spec's ``version_label`` resolves through the model configs'
``versionLabels``. Versions are TF Serving's int64 numbers: a model whose versions are not
numbers (a .mar's "1.0") is addressed without one. Classify, Regress and MultiInference answer
UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any

import grpc

from modelserve.engine.dataplane import DataPlane
from modelserve.engine.errors import BadRequestException, ServingError
from modelserve.engine.results import ModelMetadata, ServingState, VersionStatus
from modelserve.grpc import tf_tensors
from modelserve.grpc.proto import tf_serving_pb2 as pb
from modelserve.grpc.proto import tf_serving_pb2_grpc as pb_grpc
from modelserve.grpc.status import abort_with, grpc_code
from modelserve.protocol_contract import RequestedOutput, TensorInferRequest
from modelserve.wire import WireRequest, failure_message, new_request_id

SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
SIGNATURE_DEF_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
STATES = {
    ServingState.AVAILABLE: pb.ModelVersionStatus.AVAILABLE,
    ServingState.LOADING: pb.ModelVersionStatus.LOADING,
    ServingState.END: pb.ModelVersionStatus.END,
}


def _version_number(version: str) -> int:
    """A version as TF Serving's int64 (0: not a number, as a .mar's "1.0")."""
    return int(version) if version.isdigit() else 0


def _spec(name: str, version: str, signature: str = "") -> pb.ModelSpec:
    spec = pb.ModelSpec(name=name, signature_name=signature)
    if version.isdigit():
        spec.version.value = int(version)
    return spec


def _tensor_info(tensor: dict[str, Any]) -> pb.TensorInfo:
    """A v2 metadata tensor as a signature's TensorInfo (unknown sizes: -1)."""
    info = pb.TensorInfo(name=str(tensor.get("name", "")))
    info.dtype = tf_tensors.tf_dtype(str(tensor.get("datatype")))
    shape = tensor.get("shape")
    if isinstance(shape, list):
        for size in shape:
            known = isinstance(size, int) and size >= 0
            info.tensor_shape.dim.add(size=size if known else -1)
    else:
        info.tensor_shape.unknown_rank = True
    return info


def _status(status: VersionStatus) -> pb.ModelVersionStatus:
    reply = pb.ModelVersionStatus(
        version=_version_number(status.version), state=STATES[status.state]
    )
    if status.error is not None:
        reply.status.error_code = pb.UNKNOWN
        reply.status.error_message = status.error
    return reply


def version_of(plane: DataPlane, spec: pb.ModelSpec) -> str | None:
    """The version a model spec names: a number, or a label's version (None: the default)."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return str(spec.version.value)
    if choice == "version_label":
        return plane.resolve_label(spec.name, spec.version_label)
    return None


def tensor_request(request: pb.PredictRequest) -> TensorInferRequest:
    """Predict's inputs and output filter in protocol-neutral form."""
    signature = request.model_spec.signature_name
    if signature not in ("", SIGNATURE):
        raise BadRequestException(f"signature {signature!r} not found (served: {SIGNATURE})")
    inputs = [tf_tensors.input_tensor(name, t) for name, t in sorted(request.inputs.items())]
    outputs = [RequestedOutput(name) for name in request.output_filter]
    return TensorInferRequest(inputs, outputs=outputs)


def signature_def_map(metadata: ModelMetadata) -> pb.SignatureDefMap:
    """The model's one signature, ``serving_default``, from its v2 tensor metadata."""
    signatures = pb.SignatureDefMap()
    signature = signatures.signature_def[SIGNATURE]
    signature.method_name = PREDICT_METHOD
    for tensors, into in (
        (metadata.inputs, signature.inputs),
        (metadata.outputs, signature.outputs),
    ):
        for tensor in tensors:
            into[str(tensor.get("name", ""))].CopyFrom(_tensor_info(tensor))
    return signatures


class PredictionServicer(pb_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService``: tensorflow-serving-api's PredictionServiceStub."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def Predict(
        self, request: pb.PredictRequest, context: grpc.aio.ServicerContext
    ) -> pb.PredictResponse:
        name = request.model_spec.name
        try:
            version = version_of(self.plane, request.model_spec)
            wire = WireRequest(new_request_id(), {}, [], tensor_request(request))
            response = await self.plane.infer(name, version, wire)
        except ServingError as exc:
            await abort_with(context, exc)
        if response.status >= 400:
            await context.abort(grpc_code(response.status), failure_message(response))
        if response.tensors is None:
            await context.abort(
                grpc.StatusCode.INTERNAL, f"model {name}: the handler did not answer tensors"
            )
        answered = response.tensors.model_version or (version or "")
        reply = pb.PredictResponse(model_spec=_spec(name, answered, SIGNATURE))
        try:
            for tensor in response.tensors.outputs:
                reply.outputs[tensor.name].CopyFrom(tf_tensors.output_proto(tensor))
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INTERNAL, f"model {name}: {exc}")
        return reply

    async def GetModelMetadata(
        self, request: pb.GetModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelMetadataResponse:
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"metadata_field must be ['signature_def'] (the one served), got {fields}",
            )
        try:
            version = version_of(self.plane, request.model_spec)
            metadata = self.plane.model_metadata(request.model_spec.name, version)
        except ServingError as exc:
            await abort_with(context, exc)
        reply = pb.GetModelMetadataResponse(model_spec=_spec(metadata.name, metadata.version))
        packed = reply.metadata["signature_def"]
        packed.type_url = SIGNATURE_DEF_URL
        packed.value = signature_def_map(metadata).SerializeToString()
        return reply

    async def Classify(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _not_served(context, "Classify")

    async def Regress(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _not_served(context, "Regress")

    async def MultiInference(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _not_served(context, "MultiInference")


class ModelServicer(pb_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``: model status and config reloads. A reload is
    model control: refused (PERMISSION_DENIED) where the management API refuses it."""

    def __init__(self, plane: DataPlane, model_control_refusal: str | None) -> None:
        self.plane = plane
        self.model_control_refusal = model_control_refusal

    async def HandleReloadConfigRequest(
        self, request: pb.ReloadConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReloadConfigResponse:
        if self.model_control_refusal is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, self.model_control_refusal)
        try:
            await self.plane.reload_config(request.config)
        except ServingError as exc:
            await abort_with(context, exc)
        return pb.ReloadConfigResponse(status=pb.StatusProto(error_code=pb.OK))

    async def GetModelStatus(
        self, request: pb.GetModelStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetModelStatusResponse:
        name = request.model_spec.name
        try:
            version = version_of(self.plane, request.model_spec)
            if version is None:
                statuses = self.plane.version_statuses(name)
            else:
                statuses = [self.plane.version_status(name, version)]
        except ServingError as exc:
            await abort_with(context, exc)
        return pb.GetModelStatusResponse(model_version_status=[_status(s) for s in statuses])


async def _not_served(context: grpc.aio.ServicerContext, method: str) -> None:
    await context.abort(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{method} is not served by modelserve: call Predict with the model's input tensors",
    )
