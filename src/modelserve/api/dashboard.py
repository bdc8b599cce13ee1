"""The live dashboard: a page of charts at ``/``, its static files, and its series as JSON.

Read-only: every route answers GET. The page is static HTML that loads uPlot (vendored in
``dashboard_static/uplot``, no CDN) and polls ``/dashboard/series``; the plane it is mounted
on decides who may read it (its key check and CORS policy apply as to every route).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelserve.api.responses import JSON_MEDIA_TYPE
from modelserve.engine.errors import BadRequestException
from modelserve.parameters import DASHBOARD_PAGE, DASHBOARD_RANGES, DASHBOARD_SERIES
from modelserve.suggestions import did_you_mean
from modelserve.telemetry.dashboard_series import DashboardRecorder

STATIC_DIR = Path(__file__).parent / "dashboard_static"
STATIC_PREFIX = "/dashboard/static"
SERIES_PATH = "/dashboard/series"
# The files the page loads, and their types: nothing else under STATIC_DIR has a route.
STATIC_FILES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "uplot/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uplot/uPlot.min.css": "text/css; charset=utf-8",
}
# What a browser loads before the page can send a key (the series it fetches carry one).
PAGE_PATHS = frozenset({"/", *(f"{STATIC_PREFIX}/{name}" for name in STATIC_FILES)})
# The page runs only its own files: no inline script, nothing from elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@cache
def _static(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


def dashboard_routes(recorder: DashboardRecorder, instance: str) -> list[BaseRoute]:
    """The dashboard's routes, for any plane to mount: the page at ``/``, its files under
    ``/dashboard/static/``, and ``/dashboard/series?range=minutes|hours|days``. ``instance``
    is the server's name, shown in the page's title."""

    async def page(request: Request) -> Response:
        DASHBOARD_PAGE.parse(request.query_params)
        return Response(_static("index.html"), media_type="text/html", headers=PAGE_HEADERS)

    def static(name: str, media_type: str) -> Route:
        async def serve(_request: Request) -> Response:
            return Response(_static(name), media_type=media_type, headers=PAGE_HEADERS)

        return Route(f"{STATIC_PREFIX}/{name}", serve, methods=["GET"])

    async def series(request: Request) -> Response:
        DASHBOARD_SERIES.parse(request.query_params)
        range_name = request.query_params.get("range") or DASHBOARD_RANGES[0]
        if range_name not in DASHBOARD_RANGES:
            raise BadRequestException(
                f"Invalid value for range: {range_name!r}"
                f"{did_you_mean(range_name, DASHBOARD_RANGES)}; "
                f"accepted: {', '.join(DASHBOARD_RANGES)}"
            )
        body = {"instance": instance, **recorder.series(range_name)}
        # Compact, unlike the planes' pretty-printed JSON: a range is tens of thousands of
        # numbers, polled every second.
        return Response(
            orjson.dumps(body), media_type=JSON_MEDIA_TYPE, headers={"Cache-Control": "no-store"}
        )

    return [
        Route("/", page, methods=["GET"]),
        Route(SERIES_PATH, series, methods=["GET"]),
        *(static(name, media_type) for name, media_type in STATIC_FILES.items()),
    ]
