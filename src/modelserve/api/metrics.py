"""The metrics plane (8082): Prometheus text exposition."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelserve.api.responses import EXCEPTION_HANDLERS


def build_metrics_app() -> Starlette:
    """The Starlette app of the metrics plane."""

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/metrics", metrics, methods=["GET"])],
        exception_handlers=EXCEPTION_HANDLERS,
    )
