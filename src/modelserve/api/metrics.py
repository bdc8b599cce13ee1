"""The metrics plane (8082): Prometheus text exposition, with TorchServe's ``name[]`` filter."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelserve.api.params import reject_unknown
from modelserve.api.plane import PlaneAccess, build_plane
from modelserve.telemetry.store import render

# TorchServe's filter: /metrics?name[]=a&name[]=b renders only those metric families.
NAME_FILTER = "name[]"
ACCEPTED_PARAMETERS = (NAME_FILTER,)


def build_metrics_app(
    collectors: list[Collector],
    count_response: Callable[[int], None],
    max_request_size: int,
    access: PlaneAccess | None = None,
) -> Starlette:
    """The Starlette app of the metrics plane."""

    async def metrics(request: Request) -> Response:
        reject_unknown(request.query_params, ACCEPTED_PARAMETERS)
        names = request.query_params.getlist(NAME_FILTER)
        return Response(render(collectors, names), media_type=CONTENT_TYPE_LATEST)

    return build_plane(
        [
            Route("/metrics", metrics, methods=["GET"]),
            Route("/metrics/{rest:path}", metrics, methods=["GET"]),
        ],
        count_response,
        max_request_size,
        access,
    )
