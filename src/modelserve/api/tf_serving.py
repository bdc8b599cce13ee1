"""TensorFlow Serving's REST API (KServe v1), on the inference plane.

``GET /v1/models/{m}[/versions/{v}|/labels/{l}]`` is the model status,
``GET .../metadata`` the signature from the tensor metadata, and
``POST .../{target}:predict`` / ``:explain`` go through the ordinary predict path with the
client's body and headers unchanged, plus ``modelserve-protocol: tfserving`` (``:explain``
with explain semantics, as ``/explanations``). The handler answers ``{"predictions": ...}``
(row format, ``instances``) or ``{"outputs": ...}`` (columnar format, ``inputs``).

The ``:verb`` suffix is part of the last path segment, so one route takes every path under
``/v1/models/`` and this module parses it; the rest is the data plane's (version status, label
resolution from the model configs' ``versionLabels``, metadata, inference). Errors are TF
Serving's ``{"error": "<message>"}`` with the status code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from modelserve.api.hot_path import HotRoute
from modelserve.api.protocol_routes import (
    any_path,
    compact_json,
    error_body,
    protocol_app,
    protocol_request,
    render_serving_error,
)
from modelserve.api.responses import handler_response
from modelserve.engine.dataplane import DataPlane
from modelserve.engine.errors import ServingError
from modelserve.engine.results import ModelMetadata, VersionStatus
from modelserve.protocol_contract import DATATYPES, TF_SERVING

VERBS = ("predict", "explain")
UNSUPPORTED_VERBS = ("classify", "regress")
SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"


class NotFound(ServingError):
    """A path under /v1/models/ that names nothing (malformed path, unknown verb)."""

    status = 404


@dataclass(slots=True)
class Target:
    """What a /v1/models/ path addresses."""

    name: str
    version: str | None = None
    label: str | None = None
    metadata: bool = False
    verb: str | None = None


def parse_path(rest: str, method: str) -> Target:
    """``{m}[/versions/{v}|/labels/{l}][/metadata]`` (GET) or ``...:{verb}`` (POST)."""
    segments = rest.split("/")
    verb = None
    metadata = False
    if method == "POST":
        head, colon, verb = segments[-1].rpartition(":")
        if not colon:
            raise NotFound(
                f"Malformed request: POST /v1/models/{rest} (expected a path ending in "
                ":predict or :explain)"
            )
        segments[-1] = head
    elif len(segments) in (2, 4) and segments[-1] == "metadata":
        metadata = True
        segments.pop()
    target = _target(segments, rest)
    target.metadata = metadata
    target.verb = verb
    return target


def _target(segments: list[str], rest: str) -> Target:
    if all(segments):
        if len(segments) == 1:
            return Target(segments[0])
        if len(segments) == 3 and segments[1] == "versions":
            return Target(segments[0], version=segments[2])
        if len(segments) == 3 and segments[1] == "labels":
            return Target(segments[0], label=segments[2])
    raise NotFound(f"Malformed request: /v1/models/{rest}")


def _tensor_info(tensor: dict[str, Any]) -> dict[str, Any]:
    shape = tensor.get("shape")
    if isinstance(shape, list):
        dims = [
            {"size": str(dim if isinstance(dim, int) and dim >= 0 else -1), "name": ""}
            for dim in shape
        ]
        tensor_shape: dict[str, Any] = {"dim": dims, "unknown_rank": False}
    else:
        tensor_shape = {"dim": [], "unknown_rank": True}
    datatype = DATATYPES.get(str(tensor.get("datatype")))
    return {
        "dtype": "DT_INVALID" if datatype is None else datatype.tf_name,
        "tensor_shape": tensor_shape,
        "name": tensor.get("name", ""),
    }


def metadata_body(metadata: ModelMetadata) -> dict[str, Any]:
    """TF Serving's metadata answer: the model spec and ``signature_def`` from the v2 tensors."""
    signature = {
        "inputs": {tensor["name"]: _tensor_info(tensor) for tensor in metadata.inputs},
        "outputs": {tensor["name"]: _tensor_info(tensor) for tensor in metadata.outputs},
        "method_name": PREDICT_METHOD,
    }
    return {
        "model_spec": {"name": metadata.name, "signature_name": "", "version": metadata.version},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
    }


def status_body(status: VersionStatus) -> dict[str, Any]:
    """One entry of ``model_version_status``."""
    error = status.error
    code = "OK" if error is None else "UNKNOWN"
    return {
        "version": status.version,
        "state": status.state.value,
        "status": {"error_code": code, "error_message": error or ""},
    }


def tf_serving_routes(plane: DataPlane) -> tuple[list[BaseRoute], list[HotRoute]]:
    """Every path under ``/v1/models/`` of the inference plane, and ``POST /v1/models/{m}:verb``
    (answered by the same endpoint) as a hot path."""

    async def models(request: Request) -> Response:
        rest = request.path_params["rest"]
        target = parse_path(rest, request.method)
        name = target.name
        version = target.version
        if target.label is not None:
            version = plane.resolve_label(name, target.label)
        if target.verb is not None:
            return await run(request, target, version)
        try:
            if target.metadata:
                return compact_json(metadata_body(plane.model_metadata(name, version)))
            if version is None:
                statuses = plane.version_statuses(name)
            else:
                statuses = [plane.version_status(name, version)]
        except ServingError:
            if target.version is None and target.label is None:
                _, colon, verb = name.rpartition(":")
                if colon and verb in VERBS:
                    return error_body(405, f"Use POST for :{verb}")
            raise
        return compact_json({"model_version_status": [status_body(s) for s in statuses]})

    async def run(request: Request, target: Target, version: str | None) -> Response:
        if target.verb in UNSUPPORTED_VERBS:
            return error_body(501, f":{target.verb} is not supported; use :predict")
        if target.verb not in VERBS:
            raise NotFound(f"Malformed request: unknown verb :{target.verb}")
        plane.check_model(target.name, version)  # 404 before reading the body
        wire = await protocol_request(request, TF_SERVING)
        call = plane.explain if target.verb == "explain" else plane.infer
        return handler_response(await call(target.name, version, wire), wire.request_id)

    every_model_path = any_path(Route("/models/{rest:path}", models, methods=["GET", "POST"]))
    # One path segment: versioned and labelled paths, and a trailing slash (which the full
    # stack strips first), take the full stack.
    hot = [HotRoute("/v1/models/{rest}", models, render_serving_error)]
    return [any_path(Mount("/v1", app=protocol_app([every_model_path])))], hot
