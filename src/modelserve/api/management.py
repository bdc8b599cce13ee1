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
from modelserve.api.openapi import accepted_parameters, management_openapi
from modelserve.api.params import bool_param, int_param, reject_unknown, str_param
from modelserve.api.plane import PlaneAccess, build_plane
from modelserve.api.responses import json_response, status_response
from modelserve.engine.engine import Engine, Outcome, RegisterOptions
from modelserve.engine.errors import BadRequestException, MethodNotAllowedException
from modelserve.engine.worker_pool import MAX_WORKERS_PER_VERSION


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


def register_options(params: Mapping[str, Any]) -> RegisterOptions:
    """Validate the register parameters."""
    return RegisterOptions(
        url=str_param(params, "url") or "",
        model_name=str_param(params, "model_name"),
        handler=str_param(params, "handler"),
        runtime=str_param(params, "runtime"),
        batch_size=int_param(params, "batch_size", None, minimum=1),
        max_batch_delay=int_param(params, "max_batch_delay", None),
        initial_workers=int_param(params, "initial_workers", None, maximum=MAX_WORKERS_PER_VERSION),
        synchronous=bool_param(params, "synchronous", True),
        response_timeout=int_param(params, "response_timeout", None, minimum=1),
        startup_timeout=int_param(params, "startup_timeout", None, minimum=1),
    )


def outcome_response(outcome: Outcome) -> Response:
    """A management status body."""
    return status_response(outcome.message, outcome.status)


def build_management_app(
    engine: Engine,
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

    # The parameters each operation accepts are those its API description declares.
    document = management_openapi()
    listing_accepts = accepted_parameters(document, "/models", "get")
    register_accepts = accepted_parameters(document, "/models", "post")
    model_accepts = {
        method: accepted_parameters(document, "/models/{model_name}", method.lower())
        for method in ("GET", "PUT", "DELETE")
    }
    default_accepts = accepted_parameters(
        document, "/models/{model_name}/{version}/set-default", "put"
    )

    async def models(request: Request) -> Response:
        if request.method == "POST":
            require_model_api()
            params = await register_params(request)
            reject_unknown(params, register_accepts)
            return outcome_response(await engine.register(register_options(params)))
        params = request.query_params
        reject_unknown(params, listing_accepts)
        limit = int_param(params, "limit", 100)
        token = int_param(params, "next_page_token", 0)
        return json_response(engine.list_models(limit, token))

    async def model(request: Request) -> Response:
        method = request.method
        if method == "OPTIONS":
            return json_response(management_openapi())
        if method == "DELETE":
            require_model_api()
        params = request.query_params
        reject_unknown(params, model_accepts[method])
        name = request.path_params["model_name"]
        version = request.path_params.get("version")
        if method == "GET":
            if version == "all" and bool_param(params, "customized", False):
                raise BadRequestException("customized=true cannot be combined with all versions")
            return json_response(engine.describe(name, version))
        if method == "PUT":
            min_workers = int_param(params, "min_worker", 1, maximum=MAX_WORKERS_PER_VERSION)
            max_workers = int_param(
                params, "max_worker", min_workers, maximum=MAX_WORKERS_PER_VERSION
            )
            version = version or str_param(params, "model_version")
            synchronous = bool_param(params, "synchronous", False)
            outcome = await engine.scale(name, version, min_workers, max_workers, synchronous)
            return outcome_response(outcome)
        return outcome_response(await engine.unregister(name, version))

    async def set_default(request: Request) -> Response:
        reject_unknown(request.query_params, default_accepts)
        path = request.path_params
        return outcome_response(await engine.set_default(path["model_name"], path["version"]))

    async def api_description(_request: Request) -> Response:
        return json_response(management_openapi())

    model_methods = ["GET", "PUT", "DELETE", "OPTIONS"]
    routes = [
        Route("/", api_description, methods=["OPTIONS"]),
        Route("/api-description", api_description, methods=["GET", "POST", "OPTIONS"]),
        Route("/models", models, methods=["GET", "POST"]),
        Route("/models/{model_name}", model, methods=model_methods),
        Route("/models/{model_name}/{version}", model, methods=model_methods),
        Route("/models/{model_name}/{version}/set-default", set_default, methods=["PUT"]),
    ]
    if access is not None and access.verifier is not None:
        token_params = accepted_parameters(document, TOKEN_API_PATH, "get")
        routes.append(
            Route(TOKEN_API_PATH, token_endpoint(access.verifier, token_params), methods=["GET"])
        )
    return build_plane(routes, count_response, max_request_size, access)
