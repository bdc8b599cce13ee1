"""What every plane's Starlette app shares: error rendering, the response observer, limits."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from modelserve.api.access_log import AccessLog
from modelserve.api.limits import BodySizeLimit
from modelserve.api.responses import EXCEPTION_HANDLERS


def build_plane(
    routes: list[BaseRoute],
    count_response: Callable[[int], None],
    max_request_size: int | None = None,
) -> Starlette:
    """A plane's app: TorchServe-shaped errors, access log and status counters (outermost),
    and the request body limit when given."""
    middleware = [Middleware(AccessLog, count=count_response)]
    if max_request_size is not None:
        middleware.append(Middleware(BodySizeLimit, limit=max_request_size))
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, middleware=middleware)
