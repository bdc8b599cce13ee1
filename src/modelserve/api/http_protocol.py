"""uvicorn's httptools protocol with a bound on the request line and headers.

httptools buffers any number of header bytes, so without a bound one client could make the
frontend hold megabytes per connection before a route ever sees the request.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# The fixed cost per header line: ": " and CRLF.
_HEADER_LINE_OVERHEAD = 4


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
