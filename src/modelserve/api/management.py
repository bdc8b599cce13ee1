"""The management plane (8081): register, scale, describe, list, set-default, unregister."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelserve.api.auth import TOKEN_API_PATH, token_endpoint
from modelserve.api.openapi import description_routes, management_openapi
from modelserve.api.plane import PlaneAccess, build_plane
from modelserve.api.responses import json_response, status_response
from modelserve.engine.dataplane import DataPlane
from modelserve.engine.errors import BadRequestException, MethodNotAllowedException
from modelserve.engine.outcomes import Outcome
from modelserve.engine.registration import RegisterOptions
from modelserve.parameters import (
    DESCRIBE,
    LIST,
    REGISTER,
    REGISTER_WORKFLOW,
    SCALE,
    SERVICE,
    SET_DEFAULT,
    UNREGISTER,
    WORKFLOW,
)


async def register_params(request: Request) -> Mapping[str, Any]:
    """Query parameters, or a JSON body with the same keys (TorchServe accepts both)."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/json":
        return request.query_params
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequestException(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestException("Request body must be a JSON object")
    return body


def outcome_response(outcome: Outcome) -> Response:
    """A management status body."""
    return status_response(outcome.message, outcome.status)


def build_management_app(
    plane: DataPlane,
    max_request_size: int,
    model_control_refusal: str | None,
    count_response: Callable[[int], None],
    access: PlaneAccess | None = None,
) -> Starlette:
    """The Starlette app of the management plane. ``model_control_refusal`` says why
    register and unregister are refused (405), or is None when they are allowed."""

    def require_model_api() -> None:
        if model_control_refusal is not None:
            raise MethodNotAllowedException(model_control_refusal)

    async def models(request: Request) -> Response:
        if request.method == "POST":
            require_model_api()
            params = REGISTER.parse(await register_params(request))
            return outcome_response(await plane.register(RegisterOptions.from_parameters(params)))
        values = LIST.parse(request.query_params)
        return json_response(plane.list_models(values["limit"], values["next_page_token"]))

    async def model(request: Request) -> Response:
        method = request.method
        if method == "OPTIONS":
            return json_response(management_openapi())
        name = request.path_params["model_name"]
        version = request.path_params.get("version")
        if method == "GET":
            values = DESCRIBE.parse(request.query_params)
            return json_response(plane.describe(name, version, values["customized"]))
        if method == "PUT":
            values = SCALE.parse(request.query_params)
            outcome = await plane.scale(
                name,
                version or values["model_version"],
                values["min_worker"],
                values["max_worker"],
                values["synchronous"],
            )
            return outcome_response(outcome)
        require_model_api()
        UNREGISTER.parse(request.query_params)
        return outcome_response(await plane.unregister(name, version))

    async def set_default(request: Request) -> Response:
        SET_DEFAULT.parse(request.query_params)
        path = request.path_params
        return outcome_response(await plane.set_default(path["model_name"], path["version"]))

    async def workflows(request: Request) -> Response:
        if request.method == "POST":
            require_model_api()
            params = REGISTER_WORKFLOW.parse(await register_params(request))
            outcome = await plane.register_workflow(params["url"], params["workflow_name"])
            return outcome_response(outcome)
        values = LIST.parse(request.query_params)
        return json_response(plane.list_workflows(values["limit"], values["next_page_token"]))

    async def workflow(request: Request) -> Response:
        name = request.path_params["workflow_name"]
        WORKFLOW.parse(request.query_params)
        if request.method == "GET":
            return json_response(plane.describe_workflow(name))
        require_model_api()
        return outcome_response(await plane.unregister_workflow(name))

    async def service(request: Request) -> Response:
        SERVICE.parse(request.query_params)
        return json_response(plane.describe_paddle_service(request.path_params["service_name"]))

    model_methods = ["GET", "PUT", "DELETE", "OPTIONS"]
    routes = [
        *description_routes(management_openapi),
        Route("/models", models, methods=["GET", "POST"]),
        Route("/models/{model_name}", model, methods=model_methods),
        Route("/models/{model_name}/{version}", model, methods=model_methods),
        Route("/models/{model_name}/{version}/set-default", set_default, methods=["PUT"]),
        Route("/workflows", workflows, methods=["GET", "POST"]),
        Route("/workflows/{workflow_name}", workflow, methods=["GET", "DELETE"]),
        Route("/services/{service_name}", service, methods=["GET"]),
    ]
    if access is not None and access.verifier is not None:
        routes.append(Route(TOKEN_API_PATH, token_endpoint(access.verifier), methods=["GET"]))
    return build_plane(routes, count_response, max_request_size, access)
