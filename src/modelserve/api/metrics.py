"""The metrics plane (8082): Prometheus text exposition, with TorchServe's ``name[]`` filter,
and the live dashboard."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelserve.api.openapi import description_routes, metrics_openapi
from modelserve.api.plane import PlaneAccess, build_plane
from modelserve.parameters import METRICS, NAME_FILTER
from modelserve.telemetry.store import render


def build_metrics_app(
    collectors: list[Collector],
    count_response: Callable[[int], None],
    max_request_size: int,
    access: PlaneAccess | None = None,
    dashboard: Sequence[BaseRoute] = (),
) -> Starlette:
    """The Starlette app of the metrics plane; ``dashboard``: the dashboard's routes, when
    it is on."""

    async def metrics(request: Request) -> Response:
        METRICS.parse(request.query_params)
        names = request.query_params.getlist(NAME_FILTER)
        return Response(render(collectors, names), media_type=CONTENT_TYPE_LATEST)

    return build_plane(
        [
            *description_routes(metrics_openapi),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/metrics/{rest:path}", metrics, methods=["GET"]),
            *dashboard,
        ],
        count_response,
        max_request_size,
        access,
    )
