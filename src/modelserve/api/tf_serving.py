"""TensorFlow Serving's REST API (KServe v1), on the inference plane.

``GET /v1/models/{m}[/versions/{v}|/labels/{l}]`` is the model status,
``GET .../metadata`` the signature from the tensor metadata, and
``POST .../{target}:predict`` / ``:explain`` go through the ordinary predict path with the
client's body and headers unchanged, plus ``modelserve-protocol: tfserving`` (``:explain``
with explain semantics, as ``/explanations``). The handler answers ``{"predictions": ...}``
(row format, ``instances``) or ``{"outputs": ...}`` (columnar format, ``inputs``).

The ``:verb`` suffix is part of the last path segment, so one route takes every path under
``/v1/models/`` and this module parses it. Labels come from the model config's
``versionLabels: {label: version}`` (any registered version's config; the default version's
wins). Errors are TF Serving's ``{"error": "<message>"}`` with the status code.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from modelserve.api.open_inference import (
    compact_json,
    error_body,
    protocol_app,
    protocol_request,
)
from modelserve.api.responses import handler_response
from modelserve.engine.engine import Engine
from modelserve.engine.errors import ModelVersionNotFoundException, ServingError
from modelserve.engine.model_config import load_model_config
from modelserve.engine.model_version import ModelVersion
from modelserve.protocol_contract import DATATYPES, TF_SERVING

VERBS = ("predict", "explain")
UNSUPPORTED_VERBS = ("classify", "regress")
SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
LABELS_KEY = "versionLabels"

# versionLabels of each registered version, read once from its model config.
_labels_cache: weakref.WeakKeyDictionary[ModelVersion, dict[str, str]] = weakref.WeakKeyDictionary()


class NotFound(ServingError):
    """A path under /v1/models/ that names nothing (unknown label, malformed path)."""

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


def version_labels(version: ModelVersion) -> dict[str, str]:
    """The ``versionLabels`` of a version's model config (empty without one)."""
    labels = _labels_cache.get(version)
    if labels is None:
        labels = {}
        config_file = version.manifest.config_file
        if config_file:
            try:
                raw = load_model_config(version.model_dir / config_file).raw
            except ServingError:
                raw = {}
            declared = raw.get(LABELS_KEY)
            if isinstance(declared, dict):
                labels = {
                    str(label): str(value)
                    for label, value in declared.items()
                    if value is not None and not isinstance(value, (dict, list))
                }
        _labels_cache[version] = labels
    return labels


def resolve_label(engine: Engine, name: str, label: str) -> str:
    """The version a label names; 404 for an unknown label or an unregistered version."""
    entry = engine.registry.entry(name)
    default = entry.versions.get(entry.default_version)
    others = [version for key, version in sorted(entry.versions.items()) if version is not default]
    for version in [default, *others] if default is not None else others:
        target = version_labels(version).get(label)
        if target is None:
            continue
        if target not in entry.versions:
            raise ModelVersionNotFoundException(
                f"Label {label} of model {name} names version {target}, which is not registered"
            )
        return target
    raise NotFound(f"Unknown version label {label} for model {name}")


def version_status(version: ModelVersion) -> dict[str, Any]:
    """One entry of ``model_version_status``."""
    pool = version.pool
    status = {"error_code": "OK", "error_message": ""}
    if pool.ready_count() > 0:
        state = "AVAILABLE"
    elif pool.target > 0:
        state = "LOADING"
        if pool.last_failure is not None:
            status = {"error_code": "UNKNOWN", "error_message": pool.last_failure.summary()}
    else:  # no worker asked for: registered, but not serving
        state = "END"
    return {"version": version.version, "state": state, "status": status}


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


def signature_def(tensors: dict[str, Any]) -> dict[str, Any]:
    """TF Serving's ``metadata.signature_def`` from v2 tensor metadata."""
    return {
        "signature_def": {
            SIGNATURE: {
                "inputs": {t["name"]: _tensor_info(t) for t in tensors["inputs"]},
                "outputs": {t["name"]: _tensor_info(t) for t in tensors["outputs"]},
                "method_name": PREDICT_METHOD,
            }
        }
    }


def tf_serving_routes(engine: Engine) -> list[BaseRoute]:
    """Every path under ``/v1/models/`` of the inference plane."""

    async def models(request: Request) -> Response:
        rest = request.path_params["rest"]
        target = parse_path(rest, request.method)
        name = target.name
        version = target.version
        if target.label is not None:
            version = resolve_label(engine, name, target.label)
        if target.verb is not None:
            return await run(request, target, version)
        try:
            model_version = engine.registry.get(name, version)
        except ServingError:
            if target.version is None and target.label is None:
                _, colon, verb = name.rpartition(":")
                if colon and verb in VERBS:
                    return error_body(405, f"Use POST for :{verb}")
            raise
        if target.metadata:
            tensors = engine.tensor_metadata(name, version)
            return compact_json(
                {
                    "model_spec": {
                        "name": name,
                        "signature_name": "",
                        "version": model_version.version,
                    },
                    "metadata": {"signature_def": signature_def(tensors)},
                }
            )
        if version is None:
            entry = engine.registry.entry(name)
            versions = [entry.versions[key] for key in sorted(entry.versions)]
        else:
            versions = [model_version]
        return compact_json({"model_version_status": [version_status(v) for v in versions]})

    async def run(request: Request, target: Target, version: str | None) -> Response:
        if target.verb in UNSUPPORTED_VERBS:
            return error_body(501, f":{target.verb} is not supported; use :predict")
        if target.verb not in VERBS:
            raise NotFound(f"Malformed request: unknown verb :{target.verb}")
        engine.registry.get(target.name, version)  # 404 before reading the body
        wire = await protocol_request(request, TF_SERVING, explain=target.verb == "explain")
        response = await engine.predict(target.name, version, wire)
        return handler_response(response, wire.request_id)

    return [
        Mount(
            "/v1",
            app=protocol_app([Route("/models/{rest:path}", models, methods=["GET", "POST"])]),
        )
    ]
