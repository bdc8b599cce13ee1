"""HTTP responses that send an answer's parts as they come, one HTTP/1.1 chunk per part: the
one place every HTTP adapter that streams renders through (``parts_response``: TorchServe's
``/predictions``, KServe's ``generate_stream``; grps's streaming plugs in the same way, with
its own renderer of a part).

The response starts with the first part's status and headers. Each later part is written as
the worker sends it; uvicorn's write waits while the client's socket is full, so a slow
client holds the stream (whose bounded queue holds the worker: engine/streams.py). A client
that disconnects cancels the request in its worker at once, even while no part is on its
way. An error after the first part cannot change the status any more: a renderer for errors
writes it as a last chunk (server-sent events); without one, the response is cut off without
its closing chunk, which every HTTP client reports as an incomplete body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from modelserve.engine.errors import ServingError
from modelserve.engine.streams import ResponseStream
from modelserve.wire import WireResponse

log = logging.getLogger("modelserve.api")
# One part (or an error after the first) as the bytes of its chunk.
RenderPart = Callable[[WireResponse], bytes]
RenderError = Callable[[ServingError], bytes]
# TorchServe marks a streamed answer's headers with this (its handlers' "more parts follow").
TORCHSERVE_STREAM_HEADERS = {"ts_stream_next": "true"}
# Headers a handler may set that would contradict the chunked framing.
FRAMING = frozenset(("content-length", "transfer-encoding"))


class PartsResponse:
    """ASGI response: ``stream``'s parts, each rendered into one chunk."""

    def __init__(
        self,
        stream: ResponseStream,
        headers: dict[str, str],
        render: RenderPart,
        render_error: RenderError | None = None,
    ) -> None:
        self.stream = stream
        self.request_id = headers.get("x-request-id", "-")
        self.status = stream.first.status
        self.headers = headers
        self.render = render
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = self.stream
        raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self.headers.items()
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": raw_headers})
        watcher = asyncio.ensure_future(_cancel_on_disconnect(receive, stream))
        try:
            await self._send_parts(send)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            stream.cancel()  # nothing when it ended; else the worker stops (we raised)

    async def _send_parts(self, send: Send) -> None:
        stream = self.stream
        finished = False
        try:
            async for part in stream:
                finished = stream.at_end
                body = self.render(part)
                await send({"type": "http.response.body", "body": body, "more_body": not finished})
        except ServingError as error:
            if self.render_error is None:
                # Cut off: the client sees an incomplete body (uvicorn then logs that the
                # response did not complete; this line says why).
                log.warning(
                    "the answer to request %s failed after its first part, so it was cut off: "
                    "%d %s",
                    self.request_id,
                    error.status,
                    error.message,
                )
                return
            await send({"type": "http.response.body", "body": self.render_error(error)})
            return
        if not finished:
            await send({"type": "http.response.body", "body": b""})


async def _cancel_on_disconnect(receive: Receive, stream: ResponseStream) -> None:
    """Wait for the client to go away (the request body has been read, so ``receive`` says
    nothing else), then stop the stream."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            stream.cancel()
            return


def parts_response(
    stream: ResponseStream,
    request_id: str,
    render: RenderPart,
    render_error: RenderError | None = None,
    media_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> PartsResponse:
    """The chunked response of ``stream``: the first part's headers and content type (or
    ``media_type``), then ``headers``, ``x-request-id``, and no caching or buffering by
    proxies.

    This is the hook for every HTTP protocol that streams: TorchServe's ``/predictions``
    (``part_body``), KServe's ``generate_stream`` (server-sent events), and grps's chunked
    streaming when it comes (its renderer of a part)."""
    first = stream.first
    sent = {name: value for name, value in first.headers.items() if name.lower() not in FRAMING}
    content_type = media_type or first.content_type
    if content_type:
        sent["content-type"] = content_type
    sent |= headers or {}
    sent["cache-control"] = "no-cache"
    # nginx buffers what it proxies unless told not to, which would hold every part back.
    sent["x-accel-buffering"] = "no"
    sent["x-request-id"] = request_id
    return PartsResponse(stream, sent, render, render_error)


def part_body(part: WireResponse) -> bytes:
    """A part as TorchServe sends it: its body, unchanged."""
    return part.body
