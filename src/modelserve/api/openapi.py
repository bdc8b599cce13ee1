"""OpenAPI 3.0 descriptions of the three planes, served at ``OPTIONS /`` and /api-description.

The inference plane's is a static file (``specs/inference.yaml``). The management and metrics
planes' are generated: their query parameters from the table their handlers validate with
(``modelserve.parameters``), so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelserve import __version__
from modelserve.api.auth import TOKEN_API_PATH
from modelserve.api.dashboard import SERIES_PATH
from modelserve.api.responses import json_response
from modelserve.parameters import (
    DASHBOARD_PAGE,
    DASHBOARD_SERIES,
    DESCRIBE,
    LIST,
    METRICS,
    REGISTER,
    REGISTER_WORKFLOW,
    SCALE,
    SERVICE,
    SET_DEFAULT,
    TOKEN,
    UNREGISTER,
    WORKFLOW,
    Operation,
    Parameter,
)

OPENAPI_VERSION = "3.0.1"


@cache
def _inference_spec() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("specs", "inference.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _shared(name: str) -> dict[str, Any]:
    # The error and status bodies and the path parameters are the same on every plane.
    return _inference_spec()["shared"][name]


def _document(title: str, paths: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": __version__},
        "paths": paths,
    }


def query_parameter(parameter: Parameter) -> dict[str, Any]:
    """The OpenAPI description of one query parameter of the table."""
    schema: dict[str, Any] = {"type": parameter.kind}
    if parameter.kind == "integer":
        schema["minimum"] = parameter.minimum
        schema["maximum"] = parameter.maximum
    elif parameter.kind == "array":
        schema["items"] = {"type": "string"}
    if parameter.pattern is not None:
        schema["pattern"] = parameter.pattern
    if parameter.enum is not None:
        schema["enum"] = list(parameter.enum)
    elif parameter.kind == "string" and parameter.required:  # an empty value counts as absent
        schema["minLength"] = 1
    if parameter.default is not None:
        schema["default"] = parameter.default
    description = parameter.description
    if parameter.ignored:
        description += " Accepted, ignored (as in TorchServe)."
    return {
        "in": "query",
        "name": parameter.name,
        "required": parameter.required,
        "description": description,
        "schema": schema,
    }


def _operation(summary: str, operation: Operation, responses: dict[str, Any]) -> dict[str, Any]:
    described: dict[str, Any] = {"summary": summary}
    if operation.parameters:
        described["parameters"] = [query_parameter(parameter) for parameter in operation.parameters]
    described["responses"] = responses
    return described


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _answers(ok: dict[str, dict[str, Any]], *errors: int) -> dict[str, Any]:
    """Responses: ``ok`` (status → description and schema of a success), then TorchServe
    errors with the codes ``errors``."""
    return {**ok, **{str(code): _shared("error") for code in errors}}


def _listing(items: str) -> dict[str, Any]:
    """A paged listing's body: ``items`` (models, workflows) and the next page's token."""
    return {
        "type": "object",
        "properties": {
            "nextPageToken": {"type": "string"},
            items: {"type": "array", "items": {"type": "object"}},
        },
    }


def _status(description: str) -> dict[str, Any]:
    return _json(_shared("status"), description)


@cache
def inference_openapi() -> dict[str, Any]:
    """The inference plane's API description."""
    return _document("modelserve inference API", _inference_spec()["paths"])


@cache
def management_openapi() -> dict[str, Any]:
    """The management plane's API description."""
    model, version = _shared("model_name"), _shared("version")
    described = {"type": "array", "items": {"type": "object"}}
    model_operations = {
        "get": _operation(
            "Describe a model version (a pipeline, such as a Triton ensemble: its nodes, "
            "edges and state).",
            DESCRIBE,
            _answers({"200": _json(described, "Description")}, 400, 404),
        ),
        "put": _operation(
            "Scale the workers of a model version.",
            SCALE,
            _answers({"200": _status("Scaled"), "202": _status("Scaling")}, 400, 404, 500),
        ),
        "delete": _operation(
            "Unregister a model version.",
            UNREGISTER,
            _answers({"200": _status("Unregistered")}, 400, 403, 404, 405),
        ),
    }
    return _document(
        "modelserve management API",
        {
            "/models": {
                "get": _operation(
                    "List registered models.",
                    LIST,
                    _answers({"200": _json(_listing("models"), "Models")}, 400),
                ),
                "post": _operation(
                    "Register a model archive.",
                    REGISTER,
                    _answers(
                        {
                            "200": _status("Registered"),
                            "202": _status("Registered, workers starting"),
                        },
                        400,
                        404,
                        405,
                        409,
                        500,
                    ),
                ),
            },
            "/models/{model_name}": {"parameters": [model], **model_operations},
            "/models/{model_name}/{version}": {"parameters": [model, version], **model_operations},
            "/models/{model_name}/{version}/set-default": {
                "parameters": [model, version],
                "put": _operation(
                    "Make a version the default.",
                    SET_DEFAULT,
                    _answers({"200": _status("Default set")}, 400, 404),
                ),
            },
            "/workflows": {
                "get": _operation(
                    "List registered workflows.",
                    LIST,
                    _answers({"200": _json(_listing("workflows"), "Workflows")}, 400),
                ),
                "post": _operation(
                    "Register a workflow archive (.war) and its node models.",
                    REGISTER_WORKFLOW,
                    _answers({"200": _status("Registered")}, 400, 404, 405, 409, 500, 503),
                ),
            },
            "/workflows/{workflow_name}": {
                "parameters": [_shared("workflow_name")],
                "get": _operation(
                    "Describe a workflow: TorchServe's fields, then its nodes, edges and state.",
                    WORKFLOW,
                    _answers({"200": _json(described, "Description")}, 400, 404),
                ),
                "delete": _operation(
                    "Unregister a workflow and its node models.",
                    WORKFLOW,
                    _answers({"200": _status("Unregistered")}, 400, 404, 405),
                ),
            },
            "/services/{service_name}": {
                "parameters": [_shared("service_name")],
                "get": _operation(
                    "Describe a Paddle Serving pipeline service (modelserve paddle): its ops "
                    "as nodes, with the models they call, its edges and state.",
                    SERVICE,
                    _answers({"200": _json(described, "Description")}, 400, 404),
                ),
            },
            TOKEN_API_PATH: {
                "get": _operation(
                    "Regenerate the management or inference key (API key required; "
                    "404 while token authorization is off).",
                    TOKEN,
                    _answers(
                        {"200": _json({"type": "object"}, "The new key and its expiry")},
                        400,
                        401,
                        404,
                    ),
                ),
            },
        },
    )


@cache
def metrics_openapi() -> dict[str, Any]:
    """The metrics plane's API description."""
    exposition = {
        "description": "The metrics, in the Prometheus text format.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    page = {
        "description": "The dashboard's page (it loads its files from /dashboard/static/).",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    series = _json(
        {"type": "object"},
        "Every chart's series (the times, the server's processes and GPUs, each model "
        "version's series) and the model table.",
    )
    return _document(
        "modelserve metrics API",
        {
            "/metrics": {
                "get": _operation(
                    "Prometheus metrics.", METRICS, _answers({"200": exposition}, 400)
                )
            },
            "/": {
                "get": _operation(
                    "The live dashboard.", DASHBOARD_PAGE, _answers({"200": page}, 400)
                )
            },
            SERIES_PATH: {
                "get": _operation(
                    "The dashboard's series.", DASHBOARD_SERIES, _answers({"200": series}, 400)
                )
            },
        },
    )


def description_routes(document: Callable[[], dict[str, Any]]) -> list[Route]:
    """The routes that serve a plane's API description: ``OPTIONS /`` and, as in TorchServe,
    /api-description."""

    async def api_description(_request: Request) -> Response:
        return json_response(document())

    return [
        Route("/", api_description, methods=["OPTIONS"]),
        Route("/api-description", api_description, methods=["GET", "POST", "OPTIONS"]),
    ]
