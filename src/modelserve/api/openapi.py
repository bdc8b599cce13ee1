"""OpenAPI 3.0 descriptions of the inference and management planes (``OPTIONS /``)."""

from __future__ import annotations

from functools import cache
from typing import Any

from modelserve import __version__
from modelserve.api.params import INT_MAX
from modelserve.engine.engine import RUNTIMES
from modelserve.engine.model_config import TENSOR_DATATYPES
from modelserve.engine.registry import PATH_SEGMENT_PATTERN
from modelserve.engine.worker_pool import MAX_WORKERS_PER_VERSION

_ERROR = {
    "type": "object",
    "required": ["code", "type", "message"],
    "properties": {
        "code": {"type": "integer"},
        "type": {"type": "string"},
        "message": {"type": "string"},
    },
}
_STATUS = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json(_ERROR, "Error") for code in codes}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "in": "path",
        "name": name,
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(
    name: str,
    kind: str,
    description: str,
    required: bool = False,
    *,
    minimum: int = 0,
    maximum: int = INT_MAX,
    values: tuple[str, ...] | None = None,
    pattern: str | None = None,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind}
    if pattern is not None:
        schema["pattern"] = pattern
    if values is not None:
        schema["enum"] = list(values)
    elif kind == "string" and required:  # an empty value counts as absent
        schema["minLength"] = 1
    if kind == "integer":  # the bounds int_param enforces (a 400 outside them)
        schema["minimum"] = minimum
        schema["maximum"] = maximum
    return {
        "in": "query",
        "name": name,
        "required": required,
        "description": description,
        "schema": schema,
    }


def _document(title: str, paths: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.0.1",
        "info": {"title": title, "version": __version__},
        "paths": paths,
    }


_MODEL = _path_param("model_name", "Name of the model.")
_VERSION = _path_param("version", "Version of the model.")


def _inference_operation(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": params,
            "requestBody": {
                "description": "Input for the model: any content type, or a multipart form.",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": {}},
                },
            },
            "responses": {
                "200": {"description": "The model's output, in the handler's content type."},
                **_errors(400, 404, 413, 500, 503, 504),
            },
        }
    }


# ----- KServe v2 (Open Inference Protocol) and TF Serving REST: errors are {"error": ...}

_PROTOCOL_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
_LABEL = _path_param("label", "A version label (the model config's versionLabels).")
_TENSOR_METADATA = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
    },
}
_V2_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": list(TENSOR_DATATYPES)},
        "parameters": {"type": "object"},
        "data": {},
    },
}
_V2_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": _V2_TENSOR},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
            },
        },
    },
}
_TF_REQUEST = {
    "type": "object",
    "properties": {
        "signature_name": {"type": "string"},
        "instances": {"type": "array"},
        "inputs": {},
    },
}
_TF_STATUS = {
    "type": "object",
    "required": ["model_version_status"],
    "properties": {
        "model_version_status": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["version", "state", "status"],
                "properties": {
                    "version": {"type": "string"},
                    "state": {
                        "type": "string",
                        "enum": ["UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END"],
                    },
                    "status": {
                        "type": "object",
                        "properties": {
                            "error_code": {"type": "string"},
                            "error_message": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}
_TF_METADATA = {
    "type": "object",
    "required": ["model_spec", "metadata"],
    "properties": {
        "model_spec": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "signature_name": {"type": "string"},
                "version": {"type": "string"},
            },
        },
        "metadata": {
            "type": "object",
            "required": ["signature_def"],
            "properties": {"signature_def": {"type": "object"}},
        },
    },
}


def _protocol_errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json(_PROTOCOL_ERROR, "Error") for code in codes}


def _protocol_get(summary: str, schema: dict[str, Any], *codes: int) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "responses": {"200": _json(schema, "OK"), **_protocol_errors(*codes)},
        }
    }


def _protocol_inference(summary: str, body: dict[str, Any], binary: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": body}}
    answers: dict[str, Any] = {"application/json": {"schema": {}}}
    if binary:  # the binary tensor data extension
        content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
        answers["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": content},
            "responses": {
                "200": {"description": "The handler's answer.", "content": answers},
                **_protocol_errors(400, 404, 413, 500, 503, 504),
            },
        }
    }


def _v2_paths() -> dict[str, Any]:
    metadata_schema = {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _TENSOR_METADATA},
            "outputs": {"type": "array", "items": _TENSOR_METADATA},
        },
    }
    server_schema = {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    }
    ready_schema = {
        "type": "object",
        "required": ["ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    }
    live_schema = {"type": "object", "properties": {"live": {"type": "boolean"}}}
    paths: dict[str, Any] = {
        "/v2": _protocol_get("KServe v2 server metadata.", server_schema),
        "/v2/health/live": _protocol_get("KServe v2: the server is live.", live_schema),
        "/v2/health/ready": _protocol_get(
            "KServe v2: every model has a ready worker (400 when not).", ready_schema, 400
        ),
    }
    for prefix, params, which in (
        ("/v2/models/{model_name}", [_MODEL], "the default version"),
        ("/v2/models/{model_name}/versions/{version}", [_MODEL, _VERSION], "one version"),
    ):
        paths[prefix] = {
            "parameters": params,
            **_protocol_get(f"KServe v2 metadata of {which}.", metadata_schema, 404),
        }
        paths[f"{prefix}/ready"] = {
            "parameters": params,
            **_protocol_get(
                f"KServe v2: {which} has a ready worker (400 when not).", ready_schema, 400, 404
            ),
        }
        paths[f"{prefix}/infer"] = {
            "parameters": params,
            **_protocol_inference(f"KServe v2 inference with {which}.", _V2_REQUEST, True),
        }
        paths[f"{prefix}/explain"] = {
            "parameters": params,
            **_protocol_inference(f"Explanation with {which}.", _V2_REQUEST, True),
        }
    return paths


def _tf_serving_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for prefix, params, which in (
        ("/v1/models/{model_name}", [_MODEL], "the default version"),
        ("/v1/models/{model_name}/versions/{version}", [_MODEL, _VERSION], "one version"),
        ("/v1/models/{model_name}/labels/{label}", [_MODEL, _LABEL], "a labelled version"),
    ):
        paths[prefix] = {
            "parameters": params,
            **_protocol_get(f"TF Serving status of {which}.", _TF_STATUS, 404, 405),
        }
        paths[f"{prefix}/metadata"] = {
            "parameters": params,
            **_protocol_get(f"TF Serving metadata of {which}.", _TF_METADATA, 404),
        }
        for verb in ("predict", "explain"):
            paths[f"{prefix}:{verb}"] = {
                "parameters": params,
                **_protocol_inference(f"TF Serving {verb} with {which}.", _TF_REQUEST, False),
            }
    return paths


def accepted_parameters(document: dict[str, Any], path: str, method: str) -> frozenset[str]:
    """The query parameters ``document`` declares for one operation: the only ones that
    operation accepts (any other is a 400), so the document cannot miss one."""
    item = document["paths"][path]
    declared = [*item.get("parameters", ()), *item[method].get("parameters", ())]
    return frozenset(parameter["name"] for parameter in declared if parameter["in"] == "query")


@cache
def inference_openapi() -> dict[str, Any]:
    """The inference plane's API description."""
    ping = {
        "summary": "Health of the server: Healthy, Partial Healthy or Unhealthy.",
        "responses": {"200": _json(_STATUS, "Healthy"), "500": _json(_STATUS, "Unhealthy")},
    }
    return _document(
        "modelserve inference API",
        {
            "/ping": {"get": ping},
            "/predictions/{model_name}": _inference_operation(
                "Predict with the default version.", [_MODEL]
            ),
            "/predictions/{model_name}/{version}": _inference_operation(
                "Predict with one version.", [_MODEL, _VERSION]
            ),
            "/explanations/{model_name}": _inference_operation(
                "Explain with the default version.", [_MODEL]
            ),
            "/explanations/{model_name}/{version}": _inference_operation(
                "Explain with one version.", [_MODEL, _VERSION]
            ),
            **_v2_paths(),
            **_tf_serving_paths(),
        },
    )


@cache
def management_openapi() -> dict[str, Any]:
    """The management plane's API description."""
    list_schema = {
        "type": "object",
        "properties": {
            "nextPageToken": {"type": "string"},
            "models": {"type": "array", "items": {"type": "object"}},
        },
    }
    register_params = [
        _query(
            "url",
            "string",
            "Archive name in the model store, a file:// url, or a url matching allowed_urls.",
            True,
        ),
        _query(
            "model_name",
            "string",
            "Overrides the manifest's model name.",
            pattern=PATH_SEGMENT_PATTERN,
        ),
        _query("handler", "string", "Overrides the manifest's handler."),
        _query("runtime", "string", "The runtime.", values=RUNTIMES),
        _query("batch_size", "integer", "Largest batch.", minimum=1),
        _query(
            "max_batch_delay",
            "integer",
            "Longest a request is held for batch-mates, ms (only while more are on their way).",
        ),
        _query("initial_workers", "integer", "Workers to start.", maximum=MAX_WORKERS_PER_VERSION),
        _query("synchronous", "boolean", "Wait for the workers (default true)."),
        _query("response_timeout", "integer", "Seconds a batch may take.", minimum=1),
        _query("startup_timeout", "integer", "Seconds a model load may take.", minimum=1),
        _query("s3_sse_kms", "boolean", "TorchServe's signed S3 download; accepted, ignored."),
    ]
    scale_params = [
        _query(
            "min_worker",
            "integer",
            "Workers to run at least (default 1).",
            maximum=MAX_WORKERS_PER_VERSION,
        ),
        _query(
            "max_worker",
            "integer",
            "Workers to run at most (default min_worker; less than min_worker is a 400).",
            maximum=MAX_WORKERS_PER_VERSION,
        ),
        _query("synchronous", "boolean", "Wait for the workers (default false)."),
        _query("model_version", "string", "The version, when the path names none."),
        # TorchServe 0.12 documents these and its REST API ignores them; so does modelserve.
        _query("timeout", "integer", "Accepted, ignored (as in TorchServe).", minimum=-1),
        _query("number_gpu", "integer", "Accepted, ignored (as in TorchServe)."),
    ]
    describe = {
        "summary": "Describe a model version.",
        "parameters": [
            _query(
                "customized",
                "boolean",
                "TorchServe's handler-defined metadata: accepted, not yet returned; "
                "a 400 with the version all.",
            )
        ],
        "responses": {
            "200": _json({"type": "array", "items": {"type": "object"}}, "Description"),
            **_errors(400, 404),
        },
    }
    scale = {
        "summary": "Scale the workers of a model version.",
        "parameters": scale_params,
        "responses": {
            "200": _json(_STATUS, "Scaled"),
            "202": _json(_STATUS, "Scaling"),
            **_errors(400, 404, 500),
        },
    }
    unregister = {
        "summary": "Unregister a model version.",
        # TorchServe reads no parameter here, and scripts written for it pass the one its
        # other calls take; unregistering returns once the workers have stopped either way.
        "parameters": [
            _query("synchronous", "boolean", "Accepted, ignored: the call always waits.")
        ],
        "responses": {"200": _json(_STATUS, "Unregistered"), **_errors(400, 403, 404, 405)},
    }
    return _document(
        "modelserve management API",
        {
            "/models": {
                "get": {
                    "summary": "List registered models.",
                    "parameters": [
                        _query("limit", "integer", "Page size (at most 100)."),
                        _query("next_page_token", "integer", "Offset of the page."),
                    ],
                    "responses": {"200": _json(list_schema, "Models"), **_errors(400)},
                },
                "post": {
                    "summary": "Register a model archive.",
                    "parameters": register_params,
                    "responses": {
                        "200": _json(_STATUS, "Registered"),
                        "202": _json(_STATUS, "Registered, workers starting"),
                        **_errors(400, 404, 405, 409, 500),
                    },
                },
            },
            "/models/{model_name}": {
                "parameters": [_MODEL],
                "get": describe,
                "put": scale,
                "delete": unregister,
            },
            "/models/{model_name}/{version}": {
                "parameters": [_MODEL, _VERSION],
                "get": describe,
                "put": scale,
                "delete": unregister,
            },
            "/models/{model_name}/{version}/set-default": {
                "parameters": [_MODEL, _VERSION],
                "put": {
                    "summary": "Make a version the default.",
                    "responses": {"200": _json(_STATUS, "Default set"), **_errors(400, 404)},
                },
            },
            "/token": {
                "get": {
                    "summary": "Regenerate the management or inference key (API key required; "
                    "404 while token authorization is off).",
                    "parameters": [
                        _query("type", "string", "Which key.", values=("management", "inference"))
                    ],
                    "responses": {
                        "200": _json({"type": "object"}, "The new key and its expiry"),
                        **_errors(400, 401, 404),
                    },
                },
            },
        },
    )
