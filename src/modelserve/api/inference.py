"""The inference plane (8080): ping, predictions, explanations, API description, and the
other protocols' REST routes (KServe v2, TF Serving, grps)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from modelserve.api.disconnects import unless_disconnected
from modelserve.api.grps import grps_routes
from modelserve.api.hot_path import HotPath, HotRoute
from modelserve.api.open_inference import v2_routes
from modelserve.api.openapi import inference_openapi
from modelserve.api.paddle import paddle_routes
from modelserve.api.plane import PlaneAccess, build_plane, request_headers
from modelserve.api.responses import handler_response, json_response, serving_error_response
from modelserve.api.streaming import (
    TORCHSERVE_STREAM_HEADERS,
    PartsResponse,
    part_body,
    parts_response,
)
from modelserve.api.tf_serving import tf_serving_routes
from modelserve.engine.dataplane import EXPLAIN_HEADER, DataPlane
from modelserve.engine.health import HealthStatus
from modelserve.engine.streams import ResponseStream
from modelserve.grps.service import GrpsService
from modelserve.wire import RequestParameter, WireRequest, WireResponse, new_request_id

# The data plane's infer_streaming or explain.
Infer = Callable[[str, str | None, WireRequest], Awaitable[WireResponse | ResponseStream]]

MULTIPART_FORM = "multipart/form-data"
URLENCODED_FORM = "application/x-www-form-urlencoded"
# A genuine urlencoded form: ``name=value`` pairs joined by ``&``, ASCII only, ``%`` only as an
# escape, names without spaces or punctuation that encoders escape. curl sends every ``-d`` /
# ``--data-binary`` body with this content type, so anything else (a JSON array, an image) is
# a body mislabelled by default, not a form. Written as "run (escape run)*" with classes that
# exclude ``%``, ``=`` and ``&``, so matching never backtracks more than once per byte.
_ESCAPE = rb"%[0-9A-Fa-f]{2}"
_NAME_CHARS = rb"[A-Za-z0-9*\-._~+]"
_VALUE_CHARS = rb"[\x20-\x24\x27-\x7e]"
_FORM_NAME = _NAME_CHARS + rb"*(?:" + _ESCAPE + _NAME_CHARS + rb"*)*"
_FORM_VALUE = _VALUE_CHARS + rb"*(?:" + _ESCAPE + _VALUE_CHARS + rb"*)*"
_FORM_PAIR = rb"(?!=)" + _FORM_NAME + rb"=" + _FORM_VALUE  # the lookahead: a name is not empty
URLENCODED_FORM_BODY = re.compile(_FORM_PAIR + rb"(?:&" + _FORM_PAIR + rb")*")
# Bounds a form's part count; each part's size is already bounded by the body limit.
MAX_FORM_PARTS = 1000
# TorchServe runs inference for any method on a predictions path; OPTIONS describes the API.
INFERENCE_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


async def wire_request(request: Request, url_path: str, max_part_size: int) -> WireRequest:
    """Translate an HTTP request into TorchServe's handler input (reference §1.1)."""
    headers = request_headers(request)
    headers["url_path"] = url_path
    headers[EXPLAIN_HEADER] = "False"  # the data plane's explain sets it
    parameters = (
        [
            RequestParameter(name, None, value.encode())
            for name, value in request.query_params.multi_items()
        ]
        if request.scope["query_string"]  # most requests have none: no parsing
        else []
    )
    mime = headers.get("content-type", "").partition(";")[0].strip().lower()
    if mime == MULTIPART_FORM or (
        mime == URLENCODED_FORM and URLENCODED_FORM_BODY.fullmatch(await request.body())
    ):
        # A body already read is kept by the request, and the form parser reads it from there.
        form_reader = request.form(
            max_files=MAX_FORM_PARTS, max_fields=MAX_FORM_PARTS, max_part_size=max_part_size
        )
        async with form_reader as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    parameters.append(
                        RequestParameter(name, value.content_type, await value.read())
                    )
                else:
                    parameters.append(RequestParameter(name, None, value.encode()))
    else:
        parameters.append(RequestParameter("body", mime or None, await request.body()))
    return WireRequest(new_request_id(), headers, parameters)


def build_inference_app(
    plane: DataPlane,
    grps: GrpsService,
    max_request_size: int,
    count_response: Callable[[int], None],
    access: PlaneAccess | None = None,
    paddle: bool = False,
    dashboard: Sequence[BaseRoute] = (),
) -> ASGIApp:
    """The inference plane: its Starlette app, with the hot paths in front (``HotPath``).
    ``paddle``: with the route of Paddle Serving pipeline services
    (``POST /{service}/{method}``), for a server that serves some;
    ``dashboard``: the dashboard's routes, where this plane shows it (grps mode)."""

    infer, explain = plane.infer_streaming, plane.explain

    async def run(request: Request, call: Infer) -> Response | PartsResponse:
        if request.method == "OPTIONS":
            return json_response(inference_openapi())
        params = request.path_params
        wire = await wire_request(request, params.get("url_path", ""), max_request_size)
        answer = await call(params["model_name"], params.get("version"), wire)
        if isinstance(answer, ResponseStream):  # TorchServe's chunked answer in parts
            return parts_response(
                answer, wire.request_id, part_body, headers=TORCHSERVE_STREAM_HEADERS
            )
        return handler_response(answer, wire.request_id)

    async def predictions(request: Request) -> Response | PartsResponse:
        return await run(request, infer)

    async def explanations(request: Request) -> Response | PartsResponse:
        return await run(request, explain)

    async def workflow_predictions(request: Request) -> Response:
        wire = await wire_request(request, "", max_request_size)
        # A client that goes away cancels the nodes not yet answered.
        work = plane.predict_workflow(request.path_params["workflow_name"], wire)
        response = await unless_disconnected(request, work)
        return handler_response(response, wire.request_id)

    async def ping(_request: Request) -> Response:
        health = plane.health()
        unhealthy = health.status is HealthStatus.UNHEALTHY
        return json_response(health.body(), 500 if unhealthy else 200)

    async def api_description(_request: Request) -> Response:
        return json_response(inference_openapi())

    routes = [
        Route("/", api_description, methods=["OPTIONS"]),
        Route("/api-description", api_description, methods=["GET", "POST", "OPTIONS"]),
        Route("/ping", ping, methods=["GET", "POST"]),
    ]
    for prefix, endpoint in (("/predictions", predictions), ("/explanations", explanations)):
        routes += [
            Route(f"{prefix}/{{model_name}}", endpoint, methods=INFERENCE_METHODS),
            Route(f"{prefix}/{{model_name}}/{{version}}", endpoint, methods=INFERENCE_METHODS),
            Route(
                f"{prefix}/{{model_name}}/{{version}}/{{url_path:path}}",
                endpoint,
                methods=INFERENCE_METHODS,
            ),
        ]
    routes.append(Route("/wfpredict/{workflow_name}", workflow_predictions, methods=["POST"]))
    # KServe v2 (Open Inference Protocol), TF Serving / KServe v1 REST and grps.
    v2, v2_hot = v2_routes(plane)
    tf_serving, tf_serving_hot = tf_serving_routes(plane)
    routes += v2 + tf_serving + grps_routes(grps)
    routes += dashboard
    if paddle:  # last: it takes any two-segment path the routes above leave
        routes += paddle_routes(plane)
    app = build_plane(routes, count_response, max_request_size, access)
    hot = [
        HotRoute(path, predictions, serving_error_response)
        for path in ("/predictions/{model_name}", "/predictions/{model_name}/{version}")
    ]
    return HotPath(
        app,
        hot + v2_hot + tf_serving_hot,
        count_response,
        max_request_size,
        access or PlaneAccess(),
    )
