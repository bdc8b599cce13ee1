"""Reading a request body as JSON, with the 400 message every tensor format gives."""

from __future__ import annotations

from typing import Any

import orjson

from modelserve_handlers.errors import BadInputError


def parse_json_body(raw: bytes, expected: str) -> Any:
    """The decoded body; BadInputError naming ``expected`` when it is empty or not JSON."""
    if not raw.strip():
        raise BadInputError(f"empty request body: expected {expected}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"the request is not valid JSON ({exc}); expected {expected}") from exc
