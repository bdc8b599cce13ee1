"""Work that stops when its HTTP client goes away: a pipeline's remaining steps are not run
for nobody.

uvicorn does not cancel a request's handler when the client disconnects; it only answers the
handler's next ``receive()`` with ``http.disconnect``. So once the body is read, a watcher waits
on ``receive()`` beside the work, and cancels the work if the disconnect comes first. (gRPC
needs none of this: grpc.aio cancels the handler itself when its client cancels the call.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.types import Receive

from modelserve.engine.errors import ServingError

T = TypeVar("T")


class ClientDisconnected(ServingError):
    """The client closed the connection before the answer (nginx's 499: nobody reads it,
    the access log and the status counters do)."""

    status = 499


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result; when the client disconnects first, ``work`` is cancelled (and has
    ended) and ClientDisconnected is raised. The request's body must have been read."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(request.receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # this handler is cancelled (shutdown): so is the work
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait((task,))  # ended (its steps cancelled, and counted) before the answer
    raise ClientDisconnected("the client closed the connection before the answer")


async def _disconnect(receive: Receive) -> None:
    """Returns once ``receive`` tells of the disconnect (what else comes is not the body)."""
    while (await receive())["type"] != "http.disconnect":
        pass
