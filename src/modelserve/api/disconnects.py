"""Work that stops when its HTTP client goes away: a pipeline's remaining steps are not run
for nobody.

uvicorn does not cancel a request's handler when the client disconnects; it only answers the
handler's next ``receive()`` with ``http.disconnect``, once the client has gone or the response
is complete. So once the body is read, a watcher task waits on ``receive()`` while the handler
awaits the work, and cancels the handler if the client goes first; when the answer comes first,
the watcher just ends with the response. (gRPC needs none of this: grpc.aio cancels the handler
itself when its client cancels the call.)

The work runs in the handler's own task, and the watcher ends without being cancelled: a task
fewer, and no cancellation to unwind, on every request that is answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request
from starlette.types import Receive

from modelserve.engine.errors import ServingError

T = TypeVar("T")
# The watchers still waiting: the event loop keeps only weak references to tasks.
_watchers: set[asyncio.Task[None]] = set()


class ClientDisconnected(ServingError):
    """The client closed the connection before the answer (nginx's 499: nobody reads it,
    the access log and the status counters do)."""

    status = 499


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result; when the client disconnects first, ``work`` is cancelled (and has
    ended) and ClientDisconnected is raised. The request's body must have been read."""
    handler = asyncio.current_task()
    assert handler is not None  # a request handler runs in a task
    answered = left = False

    async def watch() -> None:
        nonlocal left
        await _disconnect(request.receive)
        if not answered:
            left = True
            handler.cancel()

    watcher = asyncio.create_task(watch())
    _watchers.add(watcher)
    watcher.add_done_callback(_watchers.discard)
    try:
        return await work
    except asyncio.CancelledError:
        if not left:
            raise  # the server cancels the handler (shutdown)
        if hasattr(handler, "uncancel"):  # Python 3.11+: this cancellation is handled here
            handler.uncancel()
        raise ClientDisconnected("the client closed the connection before the answer") from None
    finally:
        answered = True


async def _disconnect(receive: Receive) -> None:
    """Returns once ``receive`` tells of the disconnect (or of the response's end: uvicorn says
    ``http.disconnect`` for both); what else comes is not the body."""
    while (await receive())["type"] != "http.disconnect":
        pass
