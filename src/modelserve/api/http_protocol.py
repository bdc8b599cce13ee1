"""uvicorn's httptools protocol with a bound on the request line and headers, and one write
per response.

httptools buffers any number of header bytes, so without a bound one client could make the
frontend hold megabytes per connection before a route ever sees the request.

uvicorn writes a response's status line and headers when the app starts the response, and the
body when it comes: two ``send`` calls, two TCP segments and two reads for the client, for
every answer of a few bytes. A response that declares its ``Content-Length`` has its whole body
on the way (Starlette's ``Response`` sends it right after), so its head waits for the body's
first write and both go out in one ``writev``. Streamed answers (chunked) keep their head
going out at once: their first part may take a while.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

# The fixed cost per header line: ": " and CRLF.
_HEADER_LINE_OVERHEAD = 4


_CONTENT_LENGTH = b"\r\ncontent-length:"


class HeadWithBody:
    """One response's transport: its head (the first write), when it declares the length,
    waits for the next write (the body) or a close and goes out with it."""

    __slots__ = ("_first", "_head", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._first = True

    def write(self, data: bytes) -> None:
        """Hold the head if it has a Content-Length; write anything else, after a held head."""
        if self._first:
            self._first = False
            if _CONTENT_LENGTH in data:
                self._head = data
                return
        head = self._head
        if head is not None:
            self._head = None
            self._transport.writelines((head, data))
        else:
            self._transport.write(data)

    def close(self) -> None:
        """Write a held head (a response without a body write), then close."""
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeadersTooLarge(Exception):
    """The request line and headers exceed the plane's limit."""


class BoundedHttpProtocol(HttpToolsProtocol):
    """Answers 431 with a JSON error, and closes, once a request's head exceeds ``limit``."""

    limit = 64 * 1024
    _head_bytes = 0
    _head_too_large = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._head_too_large = False

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limit:
            self._head_too_large = True
            raise HeadersTooLarge  # stops the parser; uvicorn then answers through send_400

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + _HEADER_LINE_OVERHEAD)
        super().on_header(name, value)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # The answer to HEAD has no body write to take its head along. (An interim "100
        # Continue" declares no length: it goes out at once, and then nothing is held.)
        if cycle.scope["method"] != "HEAD":
            cycle.transport = HeadWithBody(self.transport)  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        body = orjson.dumps(
            {
                "code": 431,
                "type": "RequestHeaderFieldsTooLargeException",
                "message": f"Request line and headers exceed max_header_size ({self.limit} bytes)",
            },
            option=orjson.OPT_INDENT_2,
        )
        head = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body) + 1).encode() + b"\r\n"
            b"connection: close\r\n\r\n"
        )
        self.transport.write(head + body + b"\n")
        self.transport.close()


def bounded_protocol(limit: int) -> type[BoundedHttpProtocol]:
    """A protocol class for uvicorn's ``http`` setting, bounding request heads to ``limit``."""
    return type("BoundedHttpProtocol", (BoundedHttpProtocol,), {"limit": limit})
